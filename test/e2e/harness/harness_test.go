// Package harness proves the local Kubernetes harness is real: charts install
// with --wait through both Helm majors, claims bind, Jobs complete (or fail
// on request), and invalid manifests are rejected by kubeconform and by the
// apiserver's own validation.
package harness

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/internal/testutil/testcluster"
)

func TestMain(m *testing.M) { testcluster.Main(m) }

func smokeChart(c *testcluster.Cluster) string {
	return filepath.Join(c.Tools.RepoRoot, "test", "charts", "smoke")
}

// TestSmokeChartInstall installs the smoke chart with --wait through the
// Helm 3 and Helm 4 CLIs and checks the live objects.
func TestSmokeChartInstall(t *testing.T) {
	c := testcluster.Start(t)
	for _, tc := range []struct {
		name string
		helm string
	}{{"helm3", c.Tools.Helm3}, {"helm4", c.Tools.Helm4}} {
		t.Run(tc.name, func(t *testing.T) {
			ns := c.Namespace(t, "smoke-"+tc.name)
			start := time.Now()
			c.Run(t, tc.helm, "install", "smoke", smokeChart(c), "-n", ns, "--wait", "--timeout", "3m")
			t.Logf("%s install --wait: %.1fs", tc.name, time.Since(start).Seconds())
			ctx := context.Background()
			cs := c.Client()

			pvc, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-smoke-db-0", metav1.GetOptions{})
			require.NoError(t, err)
			require.Equal(t, corev1.ClaimBound, pvc.Status.Phase)
			require.Equal(t, testcluster.DefaultStorageClass, *pvc.Spec.StorageClassName)

			dep, err := cs.AppsV1().Deployments(ns).Get(ctx, "smoke-web", metav1.GetOptions{})
			require.NoError(t, err)
			require.EqualValues(t, 2, dep.Status.AvailableReplicas)

			sts, err := cs.AppsV1().StatefulSets(ns).Get(ctx, "smoke-db", metav1.GetOptions{})
			require.NoError(t, err)
			require.EqualValues(t, 1, sts.Status.ReadyReplicas)

			waitJob(t, c, ns, "smoke-init", batchv1.JobComplete)

			out := c.Run(t, tc.helm, "status", "smoke", "-n", ns)
			require.Contains(t, out, "STATUS: deployed")
			c.Run(t, tc.helm, "uninstall", "smoke", "-n", ns, "--wait")
		})
	}
}

// TestFailingJob shows that a pod annotated with the fail annotation fails,
// so charts can be tested against a failing Job.
func TestFailingJob(t *testing.T) {
	c := testcluster.Start(t)
	ns := c.Namespace(t, "fail")
	manifest := `apiVersion: batch/v1
kind: Job
metadata: {name: doomed}
spec:
  backoffLimit: 0
  template:
    metadata:
      annotations: {` + testcluster.FailAnnotation + `: "true"}
    spec:
      restartPolicy: Never
      containers: [{name: main, image: registry.k8s.io/pause:3.10}]
`
	path := filepath.Join(t.TempDir(), "job.yaml")
	require.NoError(t, os.WriteFile(path, []byte(manifest), 0o644))
	c.Kubectl(t, "apply", "-n", ns, "-f", path)
	waitJob(t, c, ns, "doomed", batchv1.JobFailed)
}

// TestInvalidManifestRejected: a Deployment with a wrong type and an unknown
// field is rejected by kubeconform -strict and by a server-side dry run.
func TestInvalidManifestRejected(t *testing.T) {
	c := testcluster.Start(t)
	schemas, err := c.EnsureSchemas(t.Context())
	require.NoError(t, err)
	ns := c.Namespace(t, "invalid")
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		return p
	}
	valid := write("valid.yaml", `apiVersion: v1
kind: ConfigMap
metadata: {name: fine}
data: {k: v}
`)
	invalid := write("invalid.yaml", `apiVersion: apps/v1
kind: Deployment
metadata: {name: broken}
spec:
  replicas: "three"
  selector: {matchLabels: {app: x}}
  template:
    metadata: {labels: {app: x}}
    spec:
      containers:
      - name: main
        image: registry.k8s.io/pause:3.10
        imagePullPolicee: Always
`)
	kc := func(path string) (string, error) {
		out, err := exec.Command(c.Tools.Kubeconform, "-strict", "-schema-location", schemas,
			"-kubernetes-version", c.Tools.Versions["KUBE_VERSION"], path).CombinedOutput()
		return string(out), err
	}
	out, err := kc(valid)
	require.NoError(t, err, out)
	out, err = kc(invalid)
	require.Error(t, err, "kubeconform must reject the invalid Deployment")
	require.Contains(t, out, "replicas")

	c.Kubectl(t, "apply", "--dry-run=server", "-n", ns, "-f", valid)
	out, err = c.Exec(filepath.Join(c.Tools.KubeBin, "kubectl"), "apply", "--dry-run=server", "-n", ns, "-f", invalid)
	require.Error(t, err, "the apiserver must reject the invalid Deployment:\n%s", out)
	require.True(t, strings.Contains(out, "replicas") || strings.Contains(out, "imagePullPolicee"), out)
	_, err = c.Client().AppsV1().Deployments(ns).Get(context.Background(), "broken", metav1.GetOptions{})
	require.Error(t, err, "a dry run must not create anything")
}

func waitJob(t *testing.T, c *testcluster.Cluster, ns, name string, want batchv1.JobConditionType) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		job, err := c.Client().BatchV1().Jobs(ns).Get(context.Background(), name, metav1.GetOptions{})
		require.NoError(t, err)
		for _, cond := range job.Status.Conditions {
			if cond.Status == corev1.ConditionTrue && (cond.Type == batchv1.JobComplete || cond.Type == batchv1.JobFailed) {
				require.Equal(t, want, cond.Type, "job %s/%s: %s", ns, name, cond.Message)
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s/%s: no %s condition after 2m: %+v", ns, name, want, job.Status)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
