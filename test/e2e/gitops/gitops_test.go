// Package gitops runs the deployment paths of docs/gitops.md against the local
// cluster (testcluster, kwok nodes) with the files users copy from examples/:
// helmfile apply/apply/destroy of examples/helmfile.yaml with the built
// helmfile and helm-diff, the Argo CD plugin's exact init and generate
// commands with Argo CD's build environment, the render-in-CI script
// (examples/render.sh) for Argo CD directory Applications and Flux
// Kustomizations, and the Flux objects against Flux's own CRDs.
package gitops

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/internal/testutil/testcluster"
)

func TestMain(m *testing.M) { testcluster.Main(m) }

// policyFile is the placement policy every path here uses: the cloud-neutral
// one users start from.
const policyFile = "examples/policies/db-app-split.yaml"

// cachedTool returns <cache>/<dir>-<version of key>/<rel> as test/cluster/build.sh
// lays it out; missing, it fails under CI=true or KOMMONS_E2E=1 and skips
// otherwise, saying how to build it.
func cachedTool(t *testing.T, c *testcluster.Cluster, key, dir, target, rel string) string {
	t.Helper()
	v := c.Tools.Versions[key]
	if v == "" {
		t.Fatalf("%s is not set in test/cluster/versions.env", key)
	}
	p := filepath.Join(c.Tools.Cache, dir+"-"+v, rel)
	if _, err := os.Stat(p); err != nil {
		msg := p + " is missing: build it with `test/cluster/build.sh " + target + "`"
		if os.Getenv("CI") == "true" || os.Getenv(testcluster.EnvRequire) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// postrenderBin builds cmd/postrender into a directory of its own that the
// tests put first on PATH, as `make build` or `go install` provide it.
func postrenderBin(t *testing.T, root string) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/postrender")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build ./cmd/postrender:\n%s", out)
	return dir
}

// repoCopy copies the parts of the repository the examples use (charts/ and
// examples/) into a fresh directory: helm dependency build and the scripts
// write there, never into the repository.
func repoCopy(t *testing.T, root string) string {
	t.Helper()
	dst := t.TempDir()
	for _, d := range []string{"charts", "examples"} {
		require.NoError(t, os.CopyFS(filepath.Join(dst, d), os.DirFS(filepath.Join(root, d))), "copy %s", d)
	}
	return dst
}

// toolPath is PATH with the post-renderer, Helm 3 and kubectl first.
func toolPath(c *testcluster.Cluster, bin string) string {
	return strings.Join([]string{bin, filepath.Dir(c.Tools.Helm3), c.Tools.KubeBin, os.Getenv("PATH")}, string(os.PathListSeparator))
}

var poolsOnce sync.Once

// pools gives the cluster the node pools and storage classes of
// db-app-split.yaml (two db nodes tainted for databases, two app nodes, the
// fast-ssd class) and cordons the default node, so that a workload the
// policy missed stays Pending instead of landing there unnoticed.
func pools(t *testing.T, c *testcluster.Cluster) {
	t.Helper()
	var err error
	poolsOnce.Do(func() {
		ctx := context.Background()
		for i, zone := range []string{"zone-a", "zone-b"} {
			for _, pool := range []string{"db", "app"} {
				n := testcluster.NodeSpec{Name: pool + "-" + string(rune('0'+i)),
					Labels: map[string]string{"kommons.io/pool": pool, "topology.kubernetes.io/zone": zone}}
				if pool == "db" {
					n.Taints = []corev1.Taint{{Key: "kommons.io/pool", Value: "db", Effect: corev1.TaintEffectNoSchedule}}
				}
				if err = c.AddNode(ctx, n); err != nil {
					return
				}
			}
		}
		if err = c.AddStorageClass(ctx, "fast-ssd", false); err != nil {
			return
		}
		_, err = c.Client().CoreV1().Nodes().Patch(ctx, testcluster.DefaultNode, "application/merge-patch+json",
			[]byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{})
	})
	require.NoError(t, err, "node pools")
}

// createNamespace creates a namespace with a fixed name (the examples name
// theirs), waiting first for a namespace of that name that an earlier test
// deleted to be gone, and deletes it when the test passes.
func createNamespace(t *testing.T, c *testcluster.Cluster, name string) {
	t.Helper()
	waitNamespaceGone(t, c, name)
	_, err := c.Client().CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	require.NoError(t, err, "create namespace %s", name)
	deleteNamespaceAtEnd(t, c, name)
}

// deleteNamespaceAtEnd deletes the namespace when the test passes (kept for
// inspection when it fails).
func deleteNamespaceAtEnd(t *testing.T, c *testcluster.Cluster, name string) {
	t.Cleanup(func() {
		if !t.Failed() {
			_ = c.Client().CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
		}
	})
}

// waitNamespaceGone waits until no namespace name exists.
func waitNamespaceGone(t *testing.T, c *testcluster.Cluster, name string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		ns, err := c.Client().CoreV1().Namespaces().Get(context.Background(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return
		}
		require.NoError(t, err, "namespace %s", name)
		if ns.Status.Phase != corev1.NamespaceTerminating {
			t.Fatalf("namespace %s exists and is not being deleted: kept by an earlier test that failed?", name)
		}
		if time.Now().After(deadline) {
			t.Fatalf("namespace %s is still terminating", name)
		}
		time.Sleep(time.Second)
	}
}

// assertCommonsPlaced checks a commons release named release in ns as the
// policy places it: PostgreSQL and MinIO on the db pool (selector and
// toleration) with fast-ssd claims Bound, its Jobs on the app pool, and every
// pod of the namespace scheduled onto a node of its pool.
func assertCommonsPlaced(t *testing.T, c *testcluster.Cluster, ns, release string) {
	t.Helper()
	ctx := context.Background()
	cs := c.Client()
	dbToleration := corev1.Toleration{Key: "kommons.io/pool", Operator: corev1.TolerationOpEqual, Value: "db", Effect: corev1.TaintEffectNoSchedule}
	for _, name := range []string{release + "-postgresql", release + "-minio"} {
		sts, err := cs.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, "db", sts.Spec.Template.Spec.NodeSelector["kommons.io/pool"], "StatefulSet %s/%s", ns, name)
		require.Contains(t, sts.Spec.Template.Spec.Tolerations, dbToleration, "StatefulSet %s/%s", ns, name)
		require.NotEmpty(t, sts.Spec.VolumeClaimTemplates, "StatefulSet %s/%s", ns, name)
		for _, vct := range sts.Spec.VolumeClaimTemplates {
			require.NotNil(t, vct.Spec.StorageClassName, "StatefulSet %s/%s claim %s", ns, name, vct.Name)
			require.Equal(t, "fast-ssd", *vct.Spec.StorageClassName, "StatefulSet %s/%s claim %s", ns, name, vct.Name)
		}
	}
	jobs, err := cs.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, jobs.Items, "commons' provisioner and s3-init Jobs")
	for _, j := range jobs.Items {
		require.Equal(t, "app", j.Spec.Template.Spec.NodeSelector["kommons.io/pool"], "Job %s/%s", ns, j.Name)
	}
	waitPodsOnPools(t, c, ns, 2)
	waitClaimsBound(t, c, ns, "fast-ssd")
}

// waitPodsOnPools waits until at least min pods of ns are scheduled, each on a
// node whose pool is the one its nodeSelector names.
func waitPodsOnPools(t *testing.T, c *testcluster.Cluster, ns string, min int) {
	t.Helper()
	ctx := context.Background()
	nodes, err := c.Client().CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	poolOf := map[string]string{}
	for _, n := range nodes.Items {
		poolOf[n.Name] = n.Labels["kommons.io/pool"]
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		pods, err := c.Client().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		require.NoError(t, err)
		ok, problems := len(pods.Items) >= min, []string{}
		for _, p := range pods.Items {
			want := p.Spec.NodeSelector["kommons.io/pool"]
			if want == "" || p.Spec.NodeName == "" || poolOf[p.Spec.NodeName] != want {
				ok = false
				problems = append(problems, p.Name+" wants pool "+want+", on node "+p.Spec.NodeName)
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pods of %s not on their pools (%d pods): %s", ns, len(pods.Items), strings.Join(problems, "; "))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitClaimsBound waits until every claim of ns is Bound in class.
func waitClaimsBound(t *testing.T, c *testcluster.Cluster, ns, class string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		pvcs, err := c.Client().CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
		require.NoError(t, err)
		ok := len(pvcs.Items) > 0
		for _, p := range pvcs.Items {
			require.NotNil(t, p.Spec.StorageClassName, "claim %s/%s", ns, p.Name)
			require.Equal(t, class, *p.Spec.StorageClassName, "claim %s/%s", ns, p.Name)
			ok = ok && p.Status.Phase == corev1.ClaimBound
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("claims of %s not all Bound (%d claims)", ns, len(pvcs.Items))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// run executes name with args in dir and env, returning its combined output;
// a failure fails the test with that output.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	out, err := runErr(dir, env, name, args...)
	require.NoError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), out)
	return out
}

// stdout executes name like run but returns its standard output alone (for
// JSON); stderr goes into the failure message.
func stdout(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var errb strings.Builder
	cmd.Dir, cmd.Env, cmd.Stderr = dir, env, &errb
	out, err := cmd.Output()
	require.NoError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), errb.String())
	return string(out)
}

func runErr(dir string, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	return string(out), err
}
