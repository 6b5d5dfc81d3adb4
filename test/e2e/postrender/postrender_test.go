// Package postrender installs charts on the local cluster through the
// post-renderer, as users do: the Helm 3 CLI running the executable and the
// Helm 4 CLI running the plugin. It asserts the placement and storage
// classes on the live objects, where the scheduler and the provisioner acted
// on them: pods on the nodes of their pool, claims Bound in their class.
package postrender

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/internal/testutil/helmplugin"
	"github.com/kommons/kommons/internal/testutil/testcluster"
)

func TestMain(m *testing.M) { testcluster.Main(m) }

const policy = `apiVersion: postrender.kommons.io/v1alpha1
kind: PlacementPolicy
storage:
  defaultClass: standard
  rules:
  - name: database-volumes
    match: {labels: {app.kubernetes.io/component: database}}
    storageClass: fast-ssd
pools:
- name: db
  nodeSelector: {kommons.io/pool: db}
  tolerations:
  - {key: kommons.io/pool, operator: Equal, value: db, effect: NoSchedule}
- name: app
  nodeSelector: {kommons.io/pool: app}
placement:
  defaultPool: app
  rules:
  - name: databases
    match: {labels: {app.kubernetes.io/component: database}}
    pool: db
`

// pools adds one node per pool (the db node tainted) and the fast-ssd class.
func pools(t *testing.T, c *testcluster.Cluster) {
	ctx := context.Background()
	require.NoError(t, c.AddNode(ctx, testcluster.NodeSpec{Name: "kwok-db-0", Labels: map[string]string{"kommons.io/pool": "db"},
		Taints: []corev1.Taint{{Key: "kommons.io/pool", Value: "db", Effect: corev1.TaintEffectNoSchedule}}}))
	require.NoError(t, c.AddNode(ctx, testcluster.NodeSpec{Name: "kwok-app-0", Labels: map[string]string{"kommons.io/pool": "app"}}))
	require.NoError(t, c.AddStorageClass(ctx, "fast-ssd", false))
}

func buildPostrender(t *testing.T, root string) string {
	bin := filepath.Join(t.TempDir(), "postrender")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/postrender")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build ./cmd/postrender:\n%s", out)
	return bin
}

func TestHelm3Executable(t *testing.T) {
	c := testcluster.Start(t)
	pools(t, c)
	bin := buildPostrender(t, c.Tools.RepoRoot)
	policyPath := filepath.Join(t.TempDir(), "policy.yaml")
	require.NoError(t, os.WriteFile(policyPath, []byte(policy), 0o644))
	ns := c.Namespace(t, "pr-helm3")
	c.Helm3(t, "install", "smoke", filepath.Join(c.Tools.RepoRoot, "test", "charts", "smoke"), "-n", ns,
		"--wait", "--timeout", "3m", "--post-renderer", bin, "--post-renderer-args", "--config="+policyPath)
	assertPlaced(t, c, ns)
}

// TestHelm4Plugin installs plugins/kommons-postrender (with the binary it
// runs built for this machine) into a Helm 4 data home of its own and
// installs the smoke chart through it, as `--post-renderer kommons-postrender`.
func TestHelm4Plugin(t *testing.T) {
	c := testcluster.Start(t)
	pools(t, c)
	root := c.Tools.RepoRoot
	helm4 := c.Helm4WithPlugins(t, helmplugin.StagePostrender(t, root))
	require.Contains(t, helm4(t, "plugin", "list"), helmplugin.Name)

	policyPath := filepath.Join(t.TempDir(), "policy.yaml")
	require.NoError(t, os.WriteFile(policyPath, []byte(policy), 0o644))
	ns := c.Namespace(t, "pr-helm4")
	helm4(t, "install", "smoke", filepath.Join(root, "test", "charts", "smoke"), "-n", ns,
		"--wait", "--timeout", "3m", "--post-renderer", helmplugin.Name, "--post-renderer-args", "--config="+policyPath)
	assertPlaced(t, c, ns)
}

// assertPlaced checks the smoke release: the database StatefulSet on the
// db pool with the toleration and its claim Bound in fast-ssd; the web
// Deployment and the Job on the app pool.
func assertPlaced(t *testing.T, c *testcluster.Cluster, ns string) {
	ctx := context.Background()
	cs := c.Client()

	sts, err := cs.AppsV1().StatefulSets(ns).Get(ctx, "smoke-db", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"kommons.io/pool": "db"}, sts.Spec.Template.Spec.NodeSelector)
	require.Contains(t, sts.Spec.Template.Spec.Tolerations, corev1.Toleration{Key: "kommons.io/pool", Operator: corev1.TolerationOpEqual, Value: "db", Effect: corev1.TaintEffectNoSchedule})
	require.Equal(t, "fast-ssd", *sts.Spec.VolumeClaimTemplates[0].Spec.StorageClassName)

	dep, err := cs.AppsV1().Deployments(ns).Get(ctx, "smoke-web", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"kommons.io/pool": "app"}, dep.Spec.Template.Spec.NodeSelector)
	require.Empty(t, dep.Spec.Template.Spec.Tolerations)

	job, err := cs.BatchV1().Jobs(ns).Get(ctx, "smoke-init", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"kommons.io/pool": "app"}, job.Spec.Template.Spec.NodeSelector)

	pvc, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-smoke-db-0", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "fast-ssd", *pvc.Spec.StorageClassName)
	require.Equal(t, corev1.ClaimBound, pvc.Status.Phase)

	// The scheduler honoured the placement: every pod on a node of its pool.
	want := map[string]string{"database": "kwok-db-0", "web": "kwok-app-0", "init": "kwok-app-0"}
	deadline := time.Now().Add(time.Minute)
	for {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		require.NoError(t, err)
		seen := map[string]int{}
		ok := len(pods.Items) > 0
		for _, p := range pods.Items {
			comp := p.Labels["app.kubernetes.io/component"]
			if p.Spec.NodeName != want[comp] {
				ok = false
			}
			seen[comp]++
		}
		if ok && seen["database"] == 1 && seen["web"] == 2 {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range pods.Items {
				t.Logf("pod %s (%s) on %q", p.Name, p.Labels["app.kubernetes.io/component"], p.Spec.NodeName)
			}
			t.Fatal("pods are not on the nodes of their pools")
		}
		time.Sleep(300 * time.Millisecond)
	}
}
