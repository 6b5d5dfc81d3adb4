package cluster

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/internal/testutil/testcluster"
)

var (
	secretInitOnce sync.Once
	secretInitBin  string
	secretInitErr  error
)

// runSecretInit does what the pg-init Job's secret-init init container does
// on a real node (kwok runs no container): it runs cmd/secret-init as a
// process against the cluster's API server with the spec of the rendered
// ConfigMap <prefix>-secret-init and a token of the chart's ServiceAccount
// <prefix>-secret-init, so the chart's RBAC is what allows or refuses it.
func runSecretInit(t *testing.T, c *testcluster.Cluster, ns, prefix string) {
	t.Helper()
	secretInitOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kommons-secret-init-")
		if err != nil {
			secretInitErr = err
			return
		}
		secretInitBin = filepath.Join(dir, "secret-init")
		cmd := exec.Command("go", "build", "-o", secretInitBin, "./cmd/secret-init")
		cmd.Dir = c.Tools.RepoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			secretInitErr = err
			t.Logf("go build ./cmd/secret-init:\n%s", out)
		}
	})
	require.NoError(t, secretInitErr, "build secret-init")
	ctx := context.Background()
	name := prefix + "-secret-init"
	dir := t.TempDir()
	cm, err := c.Client().CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err, "the rendered secret-init spec")
	spec := filepath.Join(dir, "spec.yaml")
	require.NoError(t, os.WriteFile(spec, []byte(cm.Data["spec.yaml"]), 0o600))
	exp := int64(600)
	tr, err := c.Client().CoreV1().ServiceAccounts(ns).CreateToken(ctx, name,
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	require.NoError(t, err, "a token of the chart's ServiceAccount")
	token := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(token, []byte(tr.Status.Token), 0o600))
	cfg, err := c.RESTConfig()
	require.NoError(t, err)
	ca := cfg.CAData
	if len(ca) == 0 {
		ca, err = os.ReadFile(cfg.CAFile)
		require.NoError(t, err)
	}
	caFile := filepath.Join(dir, "ca.crt")
	require.NoError(t, os.WriteFile(caFile, ca, 0o600))
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(rctx, secretInitBin, "--spec", spec, "--namespace", ns, "--server", "https://127.0.0.1:"+strconv.Itoa(c.APIPort),
		"--token-file", token, "--ca-file", caFile, "--deadline", "90s", "--log-format", "json")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "secret-init as %s:\n%s", name, out)
}
