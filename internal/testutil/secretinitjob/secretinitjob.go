// Package secretinitjob does the work of a chart's secret-init Job on the
// kwok test cluster (internal/testutil/testcluster), where no container
// runs: it runs the real secret-init binary with the Job's own spec (its
// ConfigMap) as the Job's ServiceAccount (a token from the TokenRequest
// API, so the rendered Roles apply), against the real API server. Tests of
// charts that generate credentials call Run after each install or upgrade,
// where a real node would run the Job.
package secretinitjob

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"

	authv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/internal/testutil/testcluster"
)

// SpecVolume is the pod volume holding the spec (kommons-common.secretInit.volumes).
const SpecVolume = "secret-init-spec"

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// build compiles cmd/secret-init once per test binary, into the cluster's
// run directory (removed with the cluster).
func build(c *testcluster.Cluster) (string, error) {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp(c.Dir, "secret-init-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "secret-init")
		cmd := exec.Command("go", "build", "-o", binary, "./cmd/secret-init")
		cmd.Dir = c.Tools.RepoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/secret-init: %w\n%s", err, out)
		}
	})
	return binary, buildErr
}

// Run runs the newest Job in namespace ns matching selector (e.g.
// "app.kubernetes.io/instance=commons,app.kubernetes.io/component=secret-init")
// the way its pod would, and returns secret-init's log (stderr). It fails
// the test when there is no such Job or secret-init exits non-zero.
func Run(t testing.TB, c *testcluster.Cluster, ns, selector string) string {
	t.Helper()
	ctx := context.Background()
	jobs, err := c.Client().BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatalf("secretinitjob: list Jobs: %v", err)
	}
	if len(jobs.Items) == 0 {
		t.Fatalf("secretinitjob: no Job %q in %s", selector, ns)
	}
	slices.SortFunc(jobs.Items, func(a, b batchv1.Job) int { return b.CreationTimestamp.Compare(a.CreationTimestamp.Time) })
	return RunJob(t, c, &jobs.Items[0])
}

// RunJob runs job's secret-init as its pod would (see Run).
func RunJob(t testing.TB, c *testcluster.Cluster, job *batchv1.Job) string {
	t.Helper()
	ctx := context.Background()
	pod := job.Spec.Template.Spec
	var cm string
	for _, v := range pod.Volumes {
		if v.Name == SpecVolume && v.ConfigMap != nil {
			cm = v.ConfigMap.Name
		}
	}
	if cm == "" || pod.ServiceAccountName == "" {
		t.Fatalf("secretinitjob: Job %s/%s has no %s volume or no serviceAccountName", job.Namespace, job.Name, SpecVolume)
	}
	spec, err := c.Client().CoreV1().ConfigMaps(job.Namespace).Get(ctx, cm, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("secretinitjob: spec ConfigMap: %v", err)
	}
	exp := int64(600)
	tr, err := c.Client().CoreV1().ServiceAccounts(job.Namespace).CreateToken(ctx, pod.ServiceAccountName,
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("secretinitjob: token of ServiceAccount %s/%s: %v", job.Namespace, pod.ServiceAccountName, err)
	}
	cfg, err := c.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	ca := cfg.CAData
	if len(ca) == 0 {
		if ca, err = os.ReadFile(cfg.CAFile); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	files := map[string][]byte{"spec.yaml": []byte(spec.Data["spec.yaml"]), "token": []byte(tr.Status.Token), "ca.crt": ca}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	bin, err := build(c)
	if err != nil {
		t.Fatalf("secretinitjob: %v", err)
	}
	cmd := exec.Command(bin, "--spec", filepath.Join(dir, "spec.yaml"), "--namespace", job.Namespace,
		"--server", "https://127.0.0.1:"+strconv.Itoa(c.APIPort), "--token-file", filepath.Join(dir, "token"),
		"--ca-file", filepath.Join(dir, "ca.crt"), "--log-format", "json", "--deadline", "2m")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("secretinitjob: secret-init of Job %s/%s: %v\n%s", job.Namespace, job.Name, err, stderr.String())
	}
	return stderr.String()
}
