// Package cluster installs the example module examples/charts/hello-module
// (which depends on charts/postgres-init) on the test Kubernetes cluster with
// Helm 3 and Helm 4: `--wait --wait-for-jobs` succeeds with the pg-init Job,
// the connection Secret secret-init writes (run as a process with the chart's
// ServiceAccount and spec: kwok runs no container) keeps its password across
// upgrades and a reinstall, a new Job runs only when the
// spec changed, hook mode works, and a failing pg-init Job (kwok's failure
// annotation, set through postgresInit.job.podAnnotations) fails the install
// with a message naming the Job instead of hanging. kwok runs no containers:
// what the containers do is tested with real processes in ../ (package
// postgresinit).
package cluster

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/internal/testutil/testcluster"
)

func TestMain(m *testing.M) { testcluster.Main(m) }

// stageModule stages the charts (testcluster.StageCharts: the repository's
// layout, dependencies built there, never in the work tree) and returns the
// staged example module.
func stageModule(t *testing.T, c *testcluster.Cluster) string {
	t.Helper()
	return filepath.Join(c.StageCharts(t), "examples", "charts", "hello-module")
}

// tenantSecret creates the Secret charts/commons gives a tenant namespace.
func tenantSecret(t *testing.T, c *testcluster.Cluster, ns string) {
	t.Helper()
	_, err := c.Client().CoreV1().Secrets(ns).Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "kommons-commons"},
		StringData: map[string]string{"PGHOST": "commons-postgresql.commons.svc", "PGPORT": "5432", "PGSSLMODE": "prefer",
			"PGDATABASE": "postgres", "PGUSER": "kommons_provisioner", "PGPASSWORD": "provisioner-pw"},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
}

// runPgSecretInit runs the secret-init init container of the newest pg-init
// Job of ns as its pod would on a node (kwok runs no container).
func runPgSecretInit(t *testing.T, c *testcluster.Cluster, ns string) {
	t.Helper()
	jobs := jobsOf(t, c, ns)
	require.NotEmpty(t, jobs, "no pg-init Job in %s", ns)
	newest := jobs[0]
	for _, j := range jobs[1:] {
		if j.CreationTimestamp.After(newest.CreationTimestamp.Time) {
			newest = j
		}
	}
	c.RunSecretInitJob(t, &newest)
}

func jobsOf(t *testing.T, c *testcluster.Cluster, ns string) []batchv1.Job {
	t.Helper()
	l, err := c.Client().BatchV1().Jobs(ns).List(context.Background(), metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/name=postgres-init,app.kubernetes.io/component=provisioning"})
	require.NoError(t, err)
	return l.Items
}

func jobComplete(j batchv1.Job) bool {
	for _, cond := range j.Status.Conditions {
		if cond.Type == batchv1.JobComplete && cond.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func secretData(t *testing.T, c *testcluster.Cluster, ns, name string) map[string]string {
	t.Helper()
	s, err := c.Client().CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(t, err)
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	return out
}

// waitJobsGone polls until only the named Job of the release remains
// (Helm deletes a Job that left the manifest; its pods go with it).
func waitJobsGone(t *testing.T, c *testcluster.Cluster, ns, keep string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var names []string
		for _, j := range jobsOf(t, c, ns) {
			if j.DeletionTimestamp == nil {
				names = append(names, j.Name)
			}
		}
		if len(names) == 1 && names[0] == keep {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pg-init Jobs in %s: %v, want only %s", ns, names, keep)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func TestInstallUpgradeKeepsPassword(t *testing.T) {
	c := testcluster.Start(t)
	chart := stageModule(t, c)
	for _, tc := range []struct {
		name string
		helm string
	}{{"helm3", c.Tools.Helm3}, {"helm4", c.Tools.Helm4}} {
		t.Run(tc.name, func(t *testing.T) {
			ns := c.Namespace(t, "hello-"+tc.name)
			tenantSecret(t, c, ns)
			c.Run(t, tc.helm, "install", "hello", chart, "-n", ns, "--wait", "--wait-for-jobs", "--timeout", "3m")

			jobs := jobsOf(t, c, ns)
			require.Len(t, jobs, 1)
			first := jobs[0]
			assert.True(t, jobComplete(first), "pg-init Job %s completed before --wait returned", first.Name)
			assert.Regexp(t, `^hello-pg-init-[0-9a-f]{10}$`, first.Name)
			assert.Empty(t, first.Annotations["helm.sh/hook"])

			// The Job's init container (kwok runs none: a process here)
			// writes the connection Secret; the chart renders none.
			_, err := c.Client().CoreV1().Secrets(ns).Get(context.Background(), "hello-pg-hello", metav1.GetOptions{})
			require.True(t, apierrors.IsNotFound(err), "the chart renders no credentials Secret: %v", err)
			runPgSecretInit(t, c, ns)
			sec := secretData(t, c, ns, "hello-pg-hello")
			pw := sec["password"]
			require.Regexp(t, `^[A-Za-z0-9]{32}$`, pw)
			// Connection facts were copied from the tenant Secret in the cluster.
			assert.Equal(t, "commons-postgresql.commons.svc", sec["host"])
			assert.Equal(t, "5432", sec["port"])
			user := ns + "_hello_hello"
			if !strings.Contains(ns, "-") {
				t.Fatalf("namespace %q: the test expects a hashed scope", ns)
			}
			assert.NotEqual(t, user, sec["username"], "a namespace with '-' gives a hashed physical name")
			assert.Contains(t, sec["uri"], ":"+pw+"@commons-postgresql.commons.svc:5432/"+sec["dbname"]+"?sslmode=prefer")

			// Same values: same Job, same password.
			c.Run(t, tc.helm, "upgrade", "hello", chart, "-n", ns, "--wait", "--wait-for-jobs", "--timeout", "3m")
			runPgSecretInit(t, c, ns)
			assert.Equal(t, pw, secretData(t, c, ns, "hello-pg-hello")["password"], "upgrade keeps the generated password")
			waitJobsGone(t, c, ns, first.Name)

			// A spec change runs a new Job (Jobs are immutable) and keeps the password.
			c.Run(t, tc.helm, "upgrade", "hello", chart, "-n", ns, "--wait", "--wait-for-jobs", "--timeout", "3m",
				"--set", "postgresInit.databases[0].name=hello,postgresInit.databases[0].owner=hello,postgresInit.databases[0].extensions[0]=pgcrypto")
			runPgSecretInit(t, c, ns)
			assert.Equal(t, pw, secretData(t, c, ns, "hello-pg-hello")["password"], "upgrade keeps the generated password")
			var second batchv1.Job
			for _, j := range jobsOf(t, c, ns) {
				if j.Name != first.Name {
					second = j
				}
			}
			require.NotEmpty(t, second.Name, "a changed spec creates a new Job")
			assert.True(t, jobComplete(second))
			waitJobsGone(t, c, ns, second.Name)

			// Uninstall keeps the credentials (secret-init's Secret is not
			// part of the release): a reinstall reuses the password the
			// database role has.
			c.Run(t, tc.helm, "uninstall", "hello", "-n", ns, "--wait")
			assert.Equal(t, pw, secretData(t, c, ns, "hello-pg-hello")["password"], "uninstall keeps the credentials Secret")
			c.Run(t, tc.helm, "install", "hello", chart, "-n", ns, "--wait", "--wait-for-jobs", "--timeout", "3m")
			runPgSecretInit(t, c, ns)
			assert.Equal(t, pw, secretData(t, c, ns, "hello-pg-hello")["password"], "a reinstall keeps the password")
		})
	}
}

func TestHookMode(t *testing.T) {
	c := testcluster.Start(t)
	chart := stageModule(t, c)
	ns := c.Namespace(t, "hello-hook")
	tenantSecret(t, c, ns)
	c.Run(t, c.Tools.Helm3, "install", "hello", chart, "-n", ns, "--wait", "--timeout", "3m", "--set", "postgresInit.hook=true")
	jobs := jobsOf(t, c, ns)
	require.Len(t, jobs, 1)
	assert.Equal(t, "hello-pg-init", jobs[0].Name)
	assert.True(t, jobComplete(jobs[0]), "Helm waits for a hook Job")
	runPgSecretInit(t, c, ns) // its RBAC and spec exist: hooks of lower weight
	pw := secretData(t, c, ns, "hello-pg-hello")["password"]
	require.NotEmpty(t, pw)
	c.Run(t, c.Tools.Helm3, "upgrade", "hello", chart, "-n", ns, "--wait", "--timeout", "3m", "--set", "postgresInit.hook=true")
	runPgSecretInit(t, c, ns)
	assert.Equal(t, pw, secretData(t, c, ns, "hello-pg-hello")["password"], "hook-mode upgrade keeps the password")
}

func TestFailingJobFailsInstall(t *testing.T) {
	c := testcluster.Start(t)
	chart := stageModule(t, c)
	for _, tc := range []struct {
		name string
		helm string
	}{{"helm3", c.Tools.Helm3}, {"helm4", c.Tools.Helm4}} {
		t.Run(tc.name, func(t *testing.T) {
			ns := c.Namespace(t, "hello-fail-"+tc.name)
			tenantSecret(t, c, ns)
			start := time.Now()
			out, err := c.Exec(tc.helm, "install", "hello", chart, "-n", ns, "--wait", "--wait-for-jobs", "--timeout", "4m",
				"--set", "postgresInit.job.backoffLimit=0",
				"--set-string", `postgresInit.job.podAnnotations.kommons\.test/fail=true`)
			t.Logf("%s install of a failing Job returned after %.1fs:\n%s", tc.name, time.Since(start).Seconds(), out)
			require.Error(t, err, "the install must fail")
			jobs := jobsOf(t, c, ns)
			require.Len(t, jobs, 1)
			failed := false
			for _, cond := range jobs[0].Status.Conditions {
				failed = failed || (cond.Type == batchv1.JobFailed && cond.Status == corev1.ConditionTrue)
			}
			assert.True(t, failed, "the pg-init Job failed")
			assert.Contains(t, out, jobs[0].Name, "the message names the Job")
			assert.NotContains(t, strings.ToLower(out), "timed out", "Helm fails on the Job's failure, not its own timeout")
			assert.NotContains(t, strings.ToLower(out), "context deadline exceeded")
			status, _ := c.Exec(tc.helm, "status", "hello", "-n", ns)
			assert.Contains(t, status, "STATUS: failed")
		})
	}
}

// TestNotATenantFailsAtOnce: in a namespace without the commons tenant
// Secret the install fails before creating anything, naming the Secret.
func TestNotATenantFailsAtOnce(t *testing.T) {
	c := testcluster.Start(t)
	chart := stageModule(t, c)
	for _, tc := range []struct {
		name string
		helm string
	}{{"helm3", c.Tools.Helm3}, {"helm4", c.Tools.Helm4}} {
		t.Run(tc.name, func(t *testing.T) {
			ns := c.Namespace(t, "not-tenant-"+tc.name)
			out, err := c.Exec(tc.helm, "install", "hello", chart, "-n", ns, "--wait", "--wait-for-jobs", "--timeout", "3m")
			require.Error(t, err, out)
			assert.Contains(t, out, `Secret "kommons-commons" not found in namespace "`+ns+`"`)
			assert.Contains(t, out, "not a tenant of charts/commons")
			assert.Empty(t, jobsOf(t, c, ns), "nothing was created")
		})
	}
}
