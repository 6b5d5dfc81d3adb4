package cnpg

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/internal/pgnames"
	"github.com/kommons/kommons/internal/testutil/testcluster"
)

// moduleLifecycle proves that pg-init's life cycle works unchanged on the
// Cluster, through its -rw Service, for hello-module (release hello in the
// first tenant, installed by moduleFirstTenant):
//   - an unchanged rerun (a new Job through job.revision) creates nothing:
//     pg-init's markers on the Cluster's objects are found;
//   - two more databases, one reclaimPolicy delete and one retain, are
//     created; taken out of the list with job.prune, the first is dropped and
//     the second kept;
//   - rotation as the chart README says: the password key of the role's
//     Secret deleted, job.revision changed: secret-init generates a new
//     password, pg-init sets it, the old one is refused (28P01) and the
//     restarted module logs in with the new one.
func (s *scenario) moduleLifecycle(t *testing.T) {
	ctx := context.Background()
	ns, release := s.cm.tenants[0], "hello"
	admin := s.commonsAdmin(ctx, t)
	defer admin.Close(ctx)
	physical := func(logical string) string {
		t.Helper()
		name, err := pgnames.Physical(ns, release, logical)
		require.NoError(t, err)
		return name
	}
	databaseExists := func(name string) bool {
		t.Helper()
		var n int
		require.NoError(t, admin.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n))
		return n == 1
	}

	sum := s.upgradeModule(t, ns, release, "--set", "postgresInit.job.revision=rerun")
	assert.Equal(t, 0, sum["created"], "an unchanged rerun creates nothing: %v", sum)
	assert.Equal(t, 0, sum["refused"], "%v", sum)
	assert.Positive(t, sum["unchanged"], "%v", sum)

	databases := func(extra string) string {
		return `[{"name":"hello","owner":"hello","schemas":["greetings"]}` + extra + `]`
	}
	sum = s.upgradeModule(t, ns, release, "--set", "postgresInit.job.revision=more",
		"--set-json", "postgresInit.databases="+databases(
			`,{"name":"scratch","owner":"hello","reclaimPolicy":"delete"},{"name":"kept","owner":"hello","reclaimPolicy":"retain"}`))
	assert.Equal(t, 2, sum["created"], "two databases: %v", sum)
	require.True(t, databaseExists(physical("scratch")))
	require.True(t, databaseExists(physical("kept")))

	sum = s.upgradeModule(t, ns, release, "--set", "postgresInit.job.revision=prune", "--set", "postgresInit.job.prune=true",
		"--set-json", "postgresInit.databases="+databases(""))
	assert.Equal(t, 1, sum["deleted"], "%v", sum)
	assert.Equal(t, 1, sum["retained"], "%v", sum)
	assert.False(t, databaseExists(physical("scratch")), "reclaimPolicy delete + prune: dropped")
	assert.True(t, databaseExists(physical("kept")), "reclaimPolicy retain: kept")
	t.Logf("prune on the Cluster: %s dropped, %s kept", physical("scratch"), physical("kept"))

	// Rotation.
	role := physical("hello")
	secretName := release + "-pg-hello"
	old, err := s.c.Client().CoreV1().Secrets(ns).Get(ctx, secretName, metav1.GetOptions{})
	require.NoError(t, err)
	oldPassword := string(old.Data["password"])
	require.NotEmpty(t, oldPassword)
	s.kubectl(t, "patch", "secret", secretName, "-n", ns, "--type=json", "-p", `[{"op":"remove","path":"/data/password"}]`)
	sum = s.upgradeModule(t, ns, release, "--set", "postgresInit.job.revision=rotate", "--set", "postgresInit.job.prune=false")
	assert.Equal(t, 0, sum["refused"], "%v", sum)
	rotated, err := s.c.Client().CoreV1().Secrets(ns).Get(ctx, secretName, metav1.GetOptions{})
	require.NoError(t, err)
	newPassword := string(rotated.Data["password"])
	require.NotEmpty(t, newPassword)
	require.NotEqual(t, oldPassword, newPassword, "secret-init generated a new password")
	assert.NotContains(t, string(rotated.Data["uri"]), oldPassword, "the URIs carry the new password")

	rw := fmt.Sprintf("%s-rw.%s.svc", commonsCluster, s.cm.ns)
	dbName := physical("hello")
	_, err = pgxConnect(ctx, s.clusterConnConfig(t, s.cm.ns, commonsCluster, rw, role, oldPassword, dbName))
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "the old password is refused by the server: %v", err)
	assert.Equal(t, "28P01", pgErr.Code)
	conn, err := pgxConnect(ctx, s.clusterConnConfig(t, s.cm.ns, commonsCluster, rw, role, newPassword, dbName))
	require.NoError(t, err, "the new password logs in")
	conn.Close(ctx)

	start := time.Now()
	s.kubectl(t, "rollout", "restart", "deployment", "-n", ns, "-l", "app.kubernetes.io/instance="+release)
	s.kubectl(t, "rollout", "status", "deployment", "-n", ns, "-l", "app.kubernetes.io/instance="+release, "--timeout=5m")
	t.Logf("rotation: old password refused (28P01), module restarted on the new one and ready in %.1fs", time.Since(start).Seconds())
	s.requireModuleServes(ctx, t)
}

// summaryLine is pg-init's summary log line (internal/pgprovision).
var summaryLine = regexp.MustCompile(`"msg":"summary".*`)

// summaryCount extracts the counters of a pg-init summary line.
var summaryCount = regexp.MustCompile(`"(created|updated|unchanged|refused|deleted|retained)":(\d+)`)

// upgradeModule upgrades hello-module release in ns with the values it had
// and extra, waits for the new pg-init Job and returns its summary counters.
func (s *scenario) upgradeModule(t *testing.T, ns, release string, extra ...string) map[string]int {
	t.Helper()
	ctx := context.Background()
	before, err := s.c.Client().BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, j := range before.Items {
		seen[j.Name] = true
	}
	args := []string{"upgrade", release, filepath.Join(s.cm.charts, "examples", "charts", "hello-module"), "-n", ns,
		"--reuse-values", "--wait", "--wait-for-jobs", "--timeout", "10m"}
	out := s.c.Helm3(t, append(args, extra...)...)
	require.Contains(t, out, "STATUS: deployed")
	after, err := s.c.Client().BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + release})
	require.NoError(t, err)
	var job string
	for _, j := range after.Items {
		if !seen[j.Name] {
			require.Empty(t, job, "one new pg-init Job per upgrade")
			job = j.Name
			require.EqualValues(t, 1, j.Status.Succeeded, "Job %s", j.Name)
		}
	}
	require.NotEmpty(t, job, "the upgrade (%v) ran a new pg-init Job", extra)
	line := summaryLine.FindString(s.kubectl(t, "logs", "-n", ns, "job/"+job, "-c", "pg-init"))
	require.NotEmpty(t, line, "pg-init's summary in Job %s", job)
	t.Logf("%v: %s", extra, line)
	counts := map[string]int{}
	for _, m := range summaryCount.FindAllStringSubmatch(line, -1) {
		counts[m[1]], _ = strconv.Atoi(m[2])
	}
	return counts
}

// requireModuleServes requires a ready hello-module pod in the first tenant:
// its wait-for-pg logged in, and its readiness probe (GET /) connects with
// the role's connection facts and queries its database.
func (s *scenario) requireModuleServes(ctx context.Context, t *testing.T) {
	t.Helper()
	pods, err := s.c.Client().CoreV1().Pods(s.cm.tenants[0]).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=hello,app.kubernetes.io/name=hello-module"})
	require.NoError(t, err)
	var ready int
	for i := range pods.Items {
		if pods.Items[i].DeletionTimestamp == nil && testcluster.PodReady(&pods.Items[i]) {
			ready++
		}
	}
	require.Positive(t, ready, "a ready hello-module pod after the restart")
}
