// Package cluster installs charts/commons and then charts/orthanc on the
// local Kubernetes cluster (internal/testutil/testcluster: real apiserver,
// controllers, scheduler and admission; kwok pods never run containers, so
// Orthanc itself is exercised by the sibling package test/e2e/orthanc) with
// `--wait`: Helm 3 through the kommons post-renderer executable, Helm 4
// through the post-renderer plugin. It asserts what only a live API server shows: the objects are
// accepted and become ready, the post-renderer's storage class and node
// pool are on the live objects, an upgrade keeps the generated credentials
// (lookup) and rolls the pods on a configuration change, and uninstalling
// keeps the credentials and the storage volume.
package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
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
  - name: dicom-volumes
    match: {labels: {app.kubernetes.io/name: orthanc, app.kubernetes.io/component: storage}}
    storageClass: shared-rwx
pools:
- name: imaging
  nodeSelector: {kommons.io/pool: imaging}
placement:
  defaultPool: imaging
`

// stage stages the charts (testcluster.StageCharts: dependencies built
// there, the work tree is never written) and returns the staged charts/.
func stage(t *testing.T, c *testcluster.Cluster) string {
	return filepath.Join(c.StageCharts(t), "charts")
}

func TestCommonsThenOrthanc(t *testing.T) {
	c := testcluster.Start(t)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		require.NoError(t, c.AddNode(ctx, testcluster.NodeSpec{Name: fmt.Sprintf("kwok-imaging-%d", i), Labels: map[string]string{"kommons.io/pool": "imaging"}}))
	}
	require.NoError(t, c.AddStorageClass(ctx, "shared-rwx", false))

	bin := filepath.Join(t.TempDir(), "postrender")
	build := exec.Command("go", "build", "-o", bin, "./cmd/postrender")
	build.Dir = c.Tools.RepoRoot
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build ./cmd/postrender:\n%s", out)
	policyPath := filepath.Join(t.TempDir(), "policy.yaml")
	require.NoError(t, os.WriteFile(policyPath, []byte(policy), 0o644))
	charts := stage(t, c)

	for _, tc := range []struct {
		name string
		helm func(testing.TB, ...string) string
		post []string
	}{
		{"helm3-postrender", c.Helm3, []string{"--post-renderer", bin, "--post-renderer-args", "--config=" + policyPath}},
		{"helm4-plugin", c.Helm4WithPlugins(t, helmplugin.StagePostrender(t, c.Tools.RepoRoot)),
			[]string{"--post-renderer", helmplugin.Name, "--post-renderer-args", "--config=" + policyPath}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lifecycle(t, c, charts, tc.helm, tc.post)
		})
	}
}

func lifecycle(t *testing.T, c *testcluster.Cluster, charts string, helm func(testing.TB, ...string) string, post []string) {
	ctx := context.Background()
	cs := c.Client()
	commonsNS := c.Namespace(t, "commons")
	ns := c.Namespace(t, "imaging")

	// --wait-for-jobs: commons' secret-init Job writes the tenant Secret
	// orthanc's postgres-init checks for.
	helm(t, append([]string{"install", "commons", filepath.Join(charts, "commons"), "-n", commonsNS, "--wait", "--wait-for-jobs", "--timeout", "5m",
		"--set", "tenants[0].namespace=" + ns, "--set", "tenants[0].buckets[0]=dicom"}, post...)...)

	// The provisioner facts come from commons' tenant Secret (libpq key names).
	values := []string{
		"--set", "replicaCount=2", "--set", "storage.type=filesystem", "--set", "storage.filesystem.size=1Gi",
		"--set", "postgresInit.provisioner.secretName=kommons-commons",
		"--set", "postgresInit.provisioner.keys.host=PGHOST", "--set", "postgresInit.provisioner.keys.port=PGPORT",
		"--set", "postgresInit.provisioner.keys.sslmode=PGSSLMODE", "--set", "postgresInit.provisioner.keys.username=PGUSER",
		"--set", "postgresInit.provisioner.keys.password=PGPASSWORD",
	}
	start := time.Now()
	helm(t, append(append([]string{"install", "pacs", filepath.Join(charts, "orthanc"), "-n", ns, "--wait", "--timeout", "5m"}, values...), post...)...)
	t.Logf("orthanc install --wait: %.1fs", time.Since(start).Seconds())

	dep, err := cs.AppsV1().Deployments(ns).Get(ctx, "pacs-orthanc", metav1.GetOptions{})
	require.NoError(t, err)
	assert.EqualValues(t, 2, dep.Status.ReadyReplicas)
	pvc, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "pacs-orthanc-storage", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}, pvc.Spec.AccessModes)
	if post != nil {
		require.NotNil(t, pvc.Spec.StorageClassName)
		assert.Equal(t, "shared-rwx", *pvc.Spec.StorageClassName, "storage class injected by the post-renderer")
		assert.Equal(t, map[string]string{"kommons.io/pool": "imaging"}, dep.Spec.Template.Spec.NodeSelector, "node pool injected by the post-renderer")
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=orthanc,app.kubernetes.io/component=web"})
		require.NoError(t, err)
		require.Len(t, pods.Items, 2)
		for _, p := range pods.Items {
			assert.True(t, strings.HasPrefix(p.Spec.NodeName, "kwok-imaging-"), "pod %s on %s", p.Name, p.Spec.NodeName)
		}
	}
	// The account is written by the chart's secret-init Job (kwok runs it
	// with the real binary, testcluster.RunSecretInitPods), not rendered.
	var auth *corev1.Secret
	deadline := time.Now().Add(2 * time.Minute)
	for {
		auth, err = cs.CoreV1().Secrets(ns).Get(ctx, "pacs-orthanc-auth", metav1.GetOptions{})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	require.NoError(t, err, "the secret-init Job writes the account Secret")
	password := string(auth.Data["password"])
	require.Len(t, password, 32)
	hash := dep.Spec.Template.Annotations["kommons.io/config-hash"]

	// Upgrade with a configuration change: same password (never overwritten), new pod template.
	helm(t, append(append([]string{"upgrade", "pacs", filepath.Join(charts, "orthanc"), "-n", ns, "--wait", "--timeout", "5m",
		"--set", "orthanc.config.StableAge=30"}, values...), post...)...)
	auth, err = cs.CoreV1().Secrets(ns).Get(ctx, "pacs-orthanc-auth", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, password, string(auth.Data["password"]), "the generated password survives the upgrade")
	dep, err = cs.AppsV1().Deployments(ns).Get(ctx, "pacs-orthanc", metav1.GetOptions{})
	require.NoError(t, err)
	assert.NotEqual(t, hash, dep.Spec.Template.Annotations["kommons.io/config-hash"], "a config change rolls the pods")
	assert.Equal(t, "RollingUpdate", string(dep.Spec.Strategy.Type), "same image: rolling update")

	// An image change switches the live Deployment to Recreate (auto strategy).
	helm(t, append(append([]string{"upgrade", "pacs", filepath.Join(charts, "orthanc"), "-n", ns, "--wait", "--timeout", "5m",
		"--set", "orthanc.config.StableAge=30", "--set", "image.tag=26.8.0"}, values...), post...)...)
	dep, err = cs.AppsV1().Deployments(ns).Get(ctx, "pacs-orthanc", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "Recreate", string(dep.Spec.Strategy.Type), "image change: no rolling update across a possible schema migration")

	helm(t, "uninstall", "pacs", "-n", ns, "--wait", "--timeout", "3m")
	_, err = cs.AppsV1().Deployments(ns).Get(ctx, "pacs-orthanc", metav1.GetOptions{})
	assert.Error(t, err, "Deployment removed")
	auth, err = cs.CoreV1().Secrets(ns).Get(ctx, "pacs-orthanc-auth", metav1.GetOptions{})
	require.NoError(t, err, "the account Secret is kept on uninstall")
	assert.Equal(t, password, string(auth.Data["password"]))
	_, err = cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "pacs-orthanc-storage", metav1.GetOptions{})
	assert.NoError(t, err, "the DICOM volume is kept on uninstall")

	helm(t, "uninstall", "commons", "-n", commonsNS, "--wait", "--timeout", "3m")
}
