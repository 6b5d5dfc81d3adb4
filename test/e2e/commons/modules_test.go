package commons

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/internal/testutil/testcluster"
)

// stageHelloModule stages the charts (testcluster.StageCharts: the
// repository's layout, dependencies built there, never in the work tree) and
// returns the staged example module.
func stageHelloModule(t *testing.T, c *testcluster.Cluster) string {
	t.Helper()
	return filepath.Join(c.StageCharts(t), "examples", "charts", "hello-module")
}

// TestCommonsThenTwoModules is the platform's everyday path: commons once,
// then a module release in each of two tenant namespaces, with nothing but
// the tenant Secret commons wrote connecting them. Both install with --wait
// (their pg-init Jobs complete), a release in a namespace that is not a
// tenant fails at once with a clear message and gets no credentials, an
// upgrade keeps every generated password, and uninstalling a module keeps its
// credentials Secret (the database is never dropped: pg-init has no delete
// path without --prune and reclaimPolicy delete, tested in internal/pgprovision).
func TestCommonsThenTwoModules(t *testing.T) {
	c := testcluster.Start(t)
	ctx := context.Background()
	cs := c.Client()
	commonsNS := c.Namespace(t, "commons")
	teamA := c.Namespace(t, "team-a")
	teamB := c.Namespace(t, "team-b")
	stranger := c.Namespace(t, "stranger")
	c.Helm3(t, "install", release, chartDir(t, c), "-n", commonsNS, "--wait", "--timeout", "5m",
		"--set", "tenants[0].namespace="+teamA, "--set", "tenants[1].namespace="+teamB)
	generate(t, c, commonsNS)

	module := stageHelloModule(t, c)
	passwords := map[string]string{}
	for _, ns := range []string{teamA, teamB} {
		out := c.Helm3(t, "install", "hello", module, "-n", ns, "--wait", "--wait-for-jobs", "--timeout", "5m")
		require.Contains(t, out, "STATUS: deployed", ns)
		runModuleSecretInit(t, c, ns)
		dep, err := cs.AppsV1().Deployments(ns).Get(ctx, "hello-hello", metav1.GetOptions{})
		require.NoError(t, err)
		require.EqualValues(t, *dep.Spec.Replicas, dep.Status.ReadyReplicas, "module ready in %s", ns)
		secrets, err := cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=postgres-init"})
		require.NoError(t, err)
		require.NotEmpty(t, secrets.Items, "module credentials in %s", ns)
		for _, s := range secrets.Items {
			if pw, ok := s.Data["password"]; ok {
				passwords[ns+"/"+s.Name] = string(pw)
			}
		}
	}
	require.Len(t, passwords, 2, "one module credential per tenant: %v", keysOf(passwords))

	// Not a tenant: no tenant Secret, so the install fails at once and names it.
	out, err := c.Exec(c.Tools.Helm3, "install", "hello", module, "-n", stranger, "--wait", "--timeout", "2m")
	require.Error(t, err, "a module outside the tenants must not install:\n%s", out)
	require.Contains(t, out, "kommons-commons", "the failure names the missing tenant Secret")
	leaked, err := cs.CoreV1().Secrets(stranger).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=postgres-init"})
	require.NoError(t, err)
	require.Empty(t, leaked.Items, "no credentials in a namespace that is not a tenant")

	// Upgrades (commons and a module) keep every generated password.
	c.Helm3(t, "upgrade", release, chartDir(t, c), "-n", commonsNS, "--wait", "--timeout", "5m",
		"--set", "tenants[0].namespace="+teamA, "--set", "tenants[1].namespace="+teamB)
	generate(t, c, commonsNS)
	c.Helm3(t, "upgrade", "hello", module, "-n", teamA, "--wait", "--wait-for-jobs", "--timeout", "5m")
	runModuleSecretInit(t, c, teamA)
	for key, pw := range passwords {
		ns, name := filepath.Split(key)
		s, err := cs.CoreV1().Secrets(filepath.Clean(ns)).Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, pw, string(s.Data["password"]), "password of %s kept across upgrades", key)
	}

	// Uninstalling a module keeps its credentials (and so access to its data).
	c.Helm3(t, "uninstall", "hello", "-n", teamB, "--wait")
	for key, pw := range passwords {
		ns, name := filepath.Split(key)
		if filepath.Clean(ns) != teamB {
			continue
		}
		s, err := cs.CoreV1().Secrets(teamB).Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err, "credentials Secret %s kept after uninstall", key)
		require.Equal(t, pw, string(s.Data["password"]))
	}
}

// runModuleSecretInit does what the module's pg-init Job's secret-init init
// container does on a node (kwok runs none): write the role's connection
// Secret.
func runModuleSecretInit(t *testing.T, c *testcluster.Cluster, ns string) {
	t.Helper()
	jobs, err := c.Client().BatchV1().Jobs(ns).List(context.Background(), metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/name=postgres-init,app.kubernetes.io/component=provisioning"})
	require.NoError(t, err)
	require.Len(t, jobs.Items, 1, "the module's pg-init Job in %s", ns)
	c.RunSecretInitJob(t, &jobs.Items[0])
}

func keysOf(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
