package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kommons/kommons/internal/kubeapi"
	"github.com/kommons/kommons/internal/testutil/testcluster"
)

// The test binary doubles as secret-init: with this variable set it runs
// main() (exec os.Args[0]), so every test drives a real secret-init process.
const asBinaryEnv = "SECRET_INIT_TEST_AS_BINARY"

func TestMain(m *testing.M) {
	if os.Getenv(asBinaryEnv) == "1" {
		main()
		return
	}
	testcluster.Main(m)
}

// result is one finished secret-init process.
type result struct {
	code   int
	stderr string
}

// env is one secret-init installation on the test cluster: the namespace it
// runs in, its spec file and its ServiceAccount's token (the RBAC rendered
// by kommons-common.secretInit.rbac through test/charts/secretinit).
type env struct {
	c         *testcluster.Cluster
	ns        string
	spec      string
	tokenFile string
	caFile    string
	server    string
}

// install renders test/charts/secretinit with spec into namespace ns (as
// `helm template | kubectl apply`), and returns the env running secret-init
// as its ServiceAccount. spec is YAML; NS in it is replaced by ns and
// OTHER by other (when not empty).
func install(t *testing.T, c *testcluster.Cluster, ns, spec string) *env {
	t.Helper()
	dir := t.TempDir()
	// The test chart with its library dependency unpacked in charts/ (as
	// helm dependency build would vendor it), fresh from charts/: a package
	// an earlier `make lint` left in the work tree's charts/ is dropped.
	chart := filepath.Join(dir, "secretinit")
	root := c.Tools.RepoRoot
	for _, cp := range [][]string{
		{"cp", "-r", filepath.Join(root, "test/charts/secretinit"), chart},
		{"rm", "-rf", filepath.Join(chart, "charts")},
		{"mkdir", "-p", filepath.Join(chart, "charts")},
		{"cp", "-r", filepath.Join(root, "charts/kommons-common"), filepath.Join(chart, "charts/kommons-common")},
	} {
		out, err := exec.Command(cp[0], cp[1:]...).CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
	values := filepath.Join(dir, "values.yaml")
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(spec), &doc))
	vb, err := yaml.Marshal(map[string]any{"name": "secret-init", "spec": doc})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(values, vb, 0o600))
	out := c.Helm3(t, "template", "si", chart, "-n", ns, "-f", values)
	manifest := filepath.Join(dir, "manifest.yaml")
	require.NoError(t, os.WriteFile(manifest, []byte(out), 0o600))
	c.Kubectl(t, "apply", "-f", manifest)

	// The spec secret-init reads is the rendered ConfigMap's.
	cm, err := c.Client().CoreV1().ConfigMaps(ns).Get(context.Background(), "secret-init", metav1.GetOptions{})
	require.NoError(t, err)
	e := &env{c: c, ns: ns, spec: filepath.Join(dir, "spec.yaml"), tokenFile: filepath.Join(dir, "token"),
		caFile: filepath.Join(dir, "ca.crt"), server: "https://127.0.0.1:" + strconv.Itoa(c.APIPort)}
	require.NoError(t, os.WriteFile(e.spec, []byte(cm.Data["spec.yaml"]), 0o600))

	exp := int64(3600)
	tr, err := c.Client().CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), "secret-init",
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(e.tokenFile, []byte(tr.Status.Token), 0o600))
	cfg, err := c.RESTConfig()
	require.NoError(t, err)
	ca := cfg.CAData
	if len(ca) == 0 {
		ca, err = os.ReadFile(cfg.CAFile)
		require.NoError(t, err)
	}
	require.NoError(t, os.WriteFile(e.caFile, ca, 0o600))
	return e
}

// client is a kubeapi client with the ServiceAccount's token.
func (e *env) client(t *testing.T) *kubeapi.Client {
	t.Helper()
	ca, err := os.ReadFile(e.caFile)
	require.NoError(t, err)
	cl, err := kubeapi.New(kubeapi.Config{Server: e.server, TokenFile: e.tokenFile, CAData: ca, Namespace: e.ns})
	require.NoError(t, err)
	return cl
}

// start launches secret-init with the env's credentials.
func (e *env) start(t *testing.T, extra ...string) func() result {
	t.Helper()
	args := append([]string{"--spec", e.spec, "--server", e.server, "--token-file", e.tokenFile,
		"--ca-file", e.caFile, "--namespace", e.ns, "--log-format", "json"}, extra...)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asBinaryEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	return func() result {
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(4 * time.Minute):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("secret-init did not finish in 4 minutes:\n%s", stderr.String())
		}
		return result{code: cmd.ProcessState.ExitCode(), stderr: stderr.String()}
	}
}

func (e *env) run(t *testing.T, extra ...string) result {
	t.Helper()
	return e.start(t, extra...)()
}

func requireExit(t *testing.T, r result, code int) {
	t.Helper()
	require.Equal(t, code, r.code, "exit code; stderr:\n%s", r.stderr)
}

// secret reads a Secret as the admin.
func secret(t *testing.T, c *testcluster.Cluster, ns, name string) *corev1.Secret {
	t.Helper()
	s, err := c.Client().CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(t, err)
	return s
}

// requireNoValues fails when any value of the Secrets appears in the logs.
func requireNoValues(t *testing.T, logs string, secrets ...*corev1.Secret) {
	t.Helper()
	for _, s := range secrets {
		for k, v := range s.Data {
			if len(v) >= 6 {
				require.NotContains(t, logs, string(v), "value of %s/%s key %s in the logs", s.Namespace, s.Name, k)
			}
		}
	}
}

func createSecret(t *testing.T, c *testcluster.Cluster, ns, name string, data map[string]string) {
	t.Helper()
	_, err := c.Client().CoreV1().Secrets(ns).Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, StringData: data}, metav1.CreateOptions{})
	require.NoError(t, err)
}

func createConfigMap(t *testing.T, c *testcluster.Cluster, ns, name string, data map[string]string) {
	t.Helper()
	_, err := c.Client().CoreV1().ConfigMaps(ns).Create(context.Background(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: data}, metav1.CreateOptions{})
	require.NoError(t, err)
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
