package cnpg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/internal/pgnames"
	"github.com/kommons/kommons/internal/pgprovision"
	"github.com/kommons/kommons/internal/testutil/nodeimages"
)

// The connection-budget steps run on a Cluster of their own: one instance
// with a max_connections low enough that the test can exceed it, and a
// Pooler in transaction mode in front of it.
const (
	budgetCluster = "budget"
	budgetPooler  = "budget-pooler-rw"
	// budgetMaxConnections is the Cluster's max_connections: 3 of them are
	// superuser_reserved_connections, and the instance manager holds some.
	budgetMaxConnections = 20
	// budgetPoolSize is the Pooler's default_pool_size: server connections
	// per database and user.
	budgetPoolSize = 5
	// budgetClients is how many client connections the test holds open at
	// once, directly and through the pooler: more than max_connections.
	budgetClients = 40
)

// budgetYAML is the budget Cluster and its Pooler: PgBouncer from the image
// built here (Debian 13's), transaction pooling, the Cluster's server
// certificate also naming the pooler's Service (PgBouncer presents it).
func (s *scenario) budgetYAML() string {
	names := []string{budgetPooler, budgetPooler + "." + s.ns, budgetPooler + "." + s.ns + ".svc", budgetPooler + "." + s.ns + ".svc.cluster.local"}
	return fmt.Sprintf(`apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata:
  name: %[1]s
  namespace: %[2]s
spec:
  instances: 1
  imageName: %[3]s
  postgresql:
    parameters:
      max_connections: "%[4]d"
      shared_buffers: 32MB
  certificates:
    serverAltDNSNames: ["%[5]s"]
  storage:
    size: 1Gi
    storageClass: standard
---
apiVersion: postgresql.cnpg.io/v1
kind: Pooler
metadata:
  name: %[6]s
  namespace: %[2]s
spec:
  cluster:
    name: %[1]s
  instances: 1
  type: rw
  pgbouncer:
    poolMode: transaction
    parameters:
      default_pool_size: "%[7]d"
      max_client_conn: "200"
      max_prepared_statements: "200"
  template:
    spec:
      containers:
        - name: pgbouncer
          image: %[8]s
`, budgetCluster, s.ns, s.imgs.Operand.Ref(), budgetMaxConnections, strings.Join(names, `", "`), budgetPooler, budgetPoolSize, s.imgs.PgBouncer.Ref())
}

// poolerReady creates the budget Cluster and its Pooler and waits until the
// PgBouncer pod is Ready; the pod runs the image built here with the
// operator's instance manager, and a session through the pooler's Service
// with verify-full (the Cluster's CA, the pooler's name in the certificate)
// reaches the primary, over TLS from PgBouncer to PostgreSQL too.
func (s *scenario) poolerReady(t *testing.T) {
	start := time.Now()
	out, err := s.apply(s.budgetYAML())
	require.NoError(t, err, out)
	s.kubectl(t, "wait", "-n", s.ns, "cluster/"+budgetCluster, "--for=condition=Ready", "--timeout=10m")
	t.Logf("Cluster %s Ready %.1fs after apply", budgetCluster, time.Since(start).Seconds())
	s.waitPooler(t, s.ns, budgetPooler, s.imgs.PgBouncer)
	t.Logf("Pooler %s Ready %.1fs after apply", budgetPooler, time.Since(start).Seconds())

	ctx := context.Background()
	conn := s.connectEventually(ctx, t, s.budgetConfig(t, budgetPooler))
	defer conn.Close(ctx)
	var primary, serverSSL bool
	var db, user string
	require.NoError(t, conn.QueryRow(ctx, "SELECT NOT pg_is_in_recovery(), current_database(), current_user, (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())").
		Scan(&primary, &db, &user, &serverSSL))
	assert.True(t, primary, "the pooler leads to the primary")
	assert.True(t, serverSSL, "PgBouncer -> PostgreSQL is TLS (server_tls_sslmode verify-ca)")
	t.Logf("through %s (verify-full): %s as %s on the primary, PgBouncer -> PostgreSQL over TLS", budgetPooler, db, user)
}

// waitPooler waits until the Pooler ns/name's Deployment has its pods Ready
// and checks they run img in the pgbouncer container, started by the
// operator's instance manager.
func (s *scenario) waitPooler(t *testing.T, ns, name string, img nodeimages.Image) {
	t.Helper()
	ctx := context.Background()
	require.Eventually(t, func() bool {
		_, err := s.c.Client().AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil
	}, 5*time.Minute, time.Second, "the operator makes the Pooler's Deployment")
	s.kubectl(t, "rollout", "status", "-n", ns, "deployment/"+name, "--timeout=5m")
	pods, err := s.c.Client().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "cnpg.io/poolerName=" + name})
	require.NoError(t, err)
	require.NotEmpty(t, pods.Items)
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		var bouncer *corev1.Container
		for i := range p.Spec.Containers {
			if p.Spec.Containers[i].Name == "pgbouncer" {
				bouncer = &p.Spec.Containers[i]
			}
		}
		require.NotNil(t, bouncer, p.Name)
		assert.Equal(t, img.Ref(), bouncer.Image, p.Name)
		assert.Equal(t, []string{"/controller/manager", "pgbouncer", "run"}, bouncer.Command, p.Name)
		require.NotNil(t, p.Spec.SecurityContext.RunAsUser)
		assert.EqualValues(t, nodeimages.CNPGPgBouncerUID, *p.Spec.SecurityContext.RunAsUser, "the operator runs PgBouncer as 998")
	}
}

// budgetConfig is a verify-full connection to host (a Service of the
// budget Cluster's namespace) as the Cluster's application user.
func (s *scenario) budgetConfig(t *testing.T, host string) *pgx.ConnConfig {
	t.Helper()
	app, err := s.c.Client().CoreV1().Secrets(s.ns).Get(context.Background(), budgetCluster+"-app", metav1.GetOptions{})
	require.NoError(t, err)
	return s.clusterConnConfig(t, s.ns, budgetCluster, host+"."+s.ns+".svc",
		string(app.Data["username"]), string(app.Data["password"]), string(app.Data["dbname"]))
}

// connectionBudget opens budgetClients connections at once, more than the
// server's max_connections: directly to -rw some are refused with "too many
// clients" (SQLSTATE 53300: PostgreSQL 17 says "remaining connection slots
// are reserved for roles with the SUPERUSER attribute" to other roles once
// only the reserved slots are left); through the pooler (transaction mode) all of
// them connect and each runs queries with pgx's default query mode
// (prepared statements, which PgBouncer 1.21+ carries across server
// connections) while all are open, on at most default_pool_size server
// connections.
func (s *scenario) connectionBudget(t *testing.T) {
	defer s.removeBudget(t)
	ctx := context.Background()
	direct := s.openMany(ctx, t, budgetCluster+"-rw", budgetClients)
	var refused int
	for _, err := range direct.errs {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "53300" {
			refused++
		}
	}
	t.Logf("DIRECT to %s-rw (max_connections %d): %d of %d connections opened, %d refused (53300: %s); other errors: %v",
		budgetCluster, budgetMaxConnections, direct.opened(), budgetClients, refused, strings.Join(direct.otherErrs(""), "; "), direct.otherErrs("53300"))
	opened := direct.opened()
	direct.closeAll()
	assert.Positive(t, refused, "max_connections %d must refuse some of %d direct connections", budgetMaxConnections, budgetClients)
	assert.Less(t, opened, budgetClients)
	assert.Equal(t, budgetClients-opened, refused, "every refusal is the server's connection limit (53300): %v", direct.otherErrs("53300"))

	pooled := s.openMany(ctx, t, budgetPooler, budgetClients)
	defer pooled.closeAll()
	require.Equal(t, budgetClients, pooled.opened(), "every client connects through the pooler: %v", pooled.otherErrs(""))
	// Every client runs a parameterized query (pgx prepares and caches it:
	// QueryExecModeCacheStatement) twice while all are connected.
	var wg sync.WaitGroup
	errs := make([]error, len(pooled.conns))
	pids := make([]int32, len(pooled.conns))
	for i, c := range pooled.conns {
		wg.Add(1)
		go func(i int, c *pgx.Conn) {
			defer wg.Done()
			for round := 0; round < 2 && errs[i] == nil; round++ {
				var n int
				errs[i] = c.QueryRow(ctx, "SELECT $1::int + 1, pg_backend_pid()", i).Scan(&n, &pids[i])
				if errs[i] == nil && n != i+1 {
					errs[i] = fmt.Errorf("client %d got %d", i, n)
				}
			}
		}(i, c)
	}
	wg.Wait()
	servers := map[int32]bool{}
	for i, err := range errs {
		require.NoError(t, err, "client %d through the pooler", i)
		servers[pids[i]] = true
	}
	assert.LessOrEqual(t, len(servers), budgetPoolSize, "at most default_pool_size server connections serve the clients")
	t.Logf("POOLER %s (transaction, default_pool_size %d): %d of %d clients connected at once and ran 2 prepared queries each, on %d server connections",
		budgetPooler, budgetPoolSize, pooled.opened(), budgetClients, len(servers))
}

// manyConns is the outcome of opening many connections at once.
type manyConns struct {
	conns []*pgx.Conn
	errs  []error
}

func (m *manyConns) opened() int { return len(m.conns) }

// otherErrs lists the distinct errors other than SQLSTATE code ("" lists all).
func (m *manyConns) otherErrs(code string) []string {
	seen := map[string]bool{}
	var out []string
	for _, err := range m.errs {
		if err == nil {
			continue
		}
		var pgErr *pgconn.PgError
		if code != "" && errors.As(err, &pgErr) && pgErr.Code == code {
			continue
		}
		if !seen[err.Error()] {
			seen[err.Error()] = true
			out = append(out, err.Error())
		}
	}
	return out
}

func (m *manyConns) closeAll() {
	for _, c := range m.conns {
		c.Close(context.Background())
	}
	m.conns = nil
}

// openMany opens n connections to host, one after another, keeping every
// one open.
func (s *scenario) openMany(ctx context.Context, t *testing.T, host string, n int) *manyConns {
	t.Helper()
	cfg := s.budgetConfig(t, host)
	cfg.ConnectTimeout = 10 * time.Second
	m := &manyConns{}
	for i := 0; i < n; i++ {
		c, err := pgx.ConnectConfig(ctx, cfg)
		m.errs = append(m.errs, err)
		if err == nil {
			m.conns = append(m.conns, c)
		}
	}
	return m
}

// removeBudget deletes the budget Cluster and its Pooler: room on the node.
func (s *scenario) removeBudget(t *testing.T) {
	s.kubectl(t, "delete", "-n", s.ns, "pooler/"+budgetPooler, "cluster/"+budgetCluster, "--wait=false")
}

// connectEventually connects with cfg, retrying for up to 2 minutes: the
// pooler's auth_query needs the role and the user_search function the
// instance manager creates once the operator has recorded the Pooler in
// the Cluster's status.
func (s *scenario) connectEventually(ctx context.Context, t *testing.T, cfg *pgx.ConnConfig) *pgx.Conn {
	t.Helper()
	start := time.Now()
	var lastErr string
	for {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			t.Logf("connected to %s as %s %.1fs after the first attempt", cfg.Host, cfg.User, time.Since(start).Seconds())
			return conn
		}
		if err.Error() != lastErr {
			t.Logf("%.1fs: connect to %s as %s: %v", time.Since(start).Seconds(), cfg.Host, cfg.User, err)
			lastErr = err.Error()
		}
		require.Less(t, time.Since(start), 2*time.Minute, "connect to %s as %s: %v", cfg.Host, cfg.User, err)
		time.Sleep(2 * time.Second)
	}
}

// commonsPooler: charts/commons with postgresql.cloudnativepg.pooler
// enabled (session mode, the image built here): the operator makes its
// PgBouncer pod, the tenant Secrets name it (PGHOST_POOLER), and the
// tenant's provisioner logs in through it with verify-full (the Cluster's
// certificate names the pooler's Service).
func (s *scenario) commonsPooler(t *testing.T) {
	ctx := context.Background()
	name := commonsCluster + "-pooler-rw"
	start := time.Now()
	s.waitPooler(t, s.cm.ns, name, s.imgs.PgBouncer)
	t.Logf("commons' Pooler %s Ready (%.1fs of waiting after the install)", name, time.Since(start).Seconds())
	ts, err := s.c.Client().CoreV1().Secrets(s.cm.tenants[0]).Get(ctx, "kommons-commons", metav1.GetOptions{})
	require.NoError(t, err)
	host := string(ts.Data["PGHOST_POOLER"])
	assert.Equal(t, name+"."+s.cm.ns+".svc.cluster.local", host)
	assert.Equal(t, "5432", string(ts.Data["PGPORT_POOLER"]))
	assert.Equal(t, "session", string(ts.Data["PGPOOLER_MODE"]))
	assert.Equal(t, "cnpg_pooler_pgbouncer", string(ts.Data["PGPOOLER_ROLE"]))
	cfg := s.clusterConnConfig(t, s.cm.ns, commonsCluster, strings.TrimSuffix(host, ".cluster.local"),
		string(ts.Data["PGUSER"]), string(ts.Data["PGPASSWORD"]), string(ts.Data["PGDATABASE"]))
	conn := s.connectEventually(ctx, t, cfg)
	defer conn.Close(ctx)
	var user string
	var primary bool
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_user, NOT pg_is_in_recovery()").Scan(&user, &primary))
	assert.Equal(t, string(ts.Data["PGUSER"]), user)
	assert.True(t, primary)
	t.Logf("tenant provisioner %s through %s (verify-full, session pooling) on the primary", user, name)

	// The ro Pooler: its own PgBouncer pod in front of -ro, named in the
	// tenant Secret; the same login lands on a replica.
	roName := commonsCluster + "-pooler-ro"
	s.waitPooler(t, s.cm.ns, roName, s.imgs.PgBouncer)
	roHost := string(ts.Data["PGHOST_POOLER_RO"])
	assert.Equal(t, roName+"."+s.cm.ns+".svc.cluster.local", roHost)
	assert.Equal(t, "5432", string(ts.Data["PGPORT_POOLER_RO"]))
	roCfg := s.clusterConnConfig(t, s.cm.ns, commonsCluster, strings.TrimSuffix(roHost, ".cluster.local"),
		string(ts.Data["PGUSER"]), string(ts.Data["PGPASSWORD"]), string(ts.Data["PGDATABASE"]))
	ro := s.connectEventually(ctx, t, roCfg)
	defer ro.Close(ctx)
	var replica bool
	require.NoError(t, ro.QueryRow(ctx, "SELECT current_user, pg_is_in_recovery()").Scan(&user, &replica))
	assert.Equal(t, string(ts.Data["PGUSER"]), user)
	assert.True(t, replica, "the ro Pooler leads to a replica")
	_, err = ro.Exec(ctx, "CREATE TEMP TABLE ro_probe (x int)")
	require.Error(t, err, "a write through the ro Pooler")
	t.Logf("tenant provisioner %s through %s (verify-full) on a replica; writes refused: %v", user, roName, err)
}

// commonsAdmin connects to commons' Cluster -rw as its superuser (verify-full).
func (s *scenario) commonsAdmin(ctx context.Context, t *testing.T) *pgx.Conn {
	t.Helper()
	admin, err := s.c.Client().CoreV1().Secrets(s.cm.ns).Get(ctx, commonsCluster+"-admin", metav1.GetOptions{})
	require.NoError(t, err)
	cfg := s.clusterConnConfig(t, s.cm.ns, commonsCluster, fmt.Sprintf("%s-rw.%s.svc", commonsCluster, s.cm.ns), "postgres", string(admin.Data["password"]), "postgres")
	conn, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	return conn
}

// moduleThroughPooler installs hello-module (release hello-pooled) in the
// first tenant with its connection facts pointed at the pooler
// (connection.hostKey PGHOST_POOLER, portKey PGPORT_POOLER): its pg-init Job
// provisions through -rw and grants the pooler's auth_query role CONNECT on
// the module's database, and the module's wait-for-pg and web pod log in
// through the pooler (session mode) as the module's role; the server sees
// that role's sessions coming from the PgBouncer pod.
func (s *scenario) moduleThroughPooler(t *testing.T) {
	ctx := context.Background()
	ns, release := s.cm.tenants[0], "hello-pooled"
	s.installModuleAs(t, ns, release, "--set", "postgresInit.connection.hostKey=PGHOST_POOLER", "--set", "postgresInit.connection.portKey=PGPORT_POOLER")

	deps, err := s.c.Client().AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + release})
	require.NoError(t, err)
	require.Len(t, deps.Items, 1)
	var hostKey string
	for _, c := range deps.Items[0].Spec.Template.Spec.InitContainers {
		for _, e := range c.Env {
			if e.Name == "PGHOST" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				hostKey = e.ValueFrom.SecretKeyRef.Key
			}
		}
	}
	assert.Equal(t, "PGHOST_POOLER", hostKey, "wait-for-pg reads the pooler's host")

	role, err := pgnames.Physical(ns, release, "hello")
	require.NoError(t, err)
	pods, err := s.c.Client().CoreV1().Pods(s.cm.ns).List(ctx, metav1.ListOptions{LabelSelector: "cnpg.io/poolerName=" + commonsCluster + "-pooler-rw"})
	require.NoError(t, err)
	var ips []string
	for _, p := range pods.Items {
		ips = append(ips, p.Status.PodIP)
	}
	conn := s.commonsAdmin(ctx, t)
	defer conn.Close(ctx)
	var grant bool
	require.NoError(t, conn.QueryRow(ctx, "SELECT has_database_privilege('cnpg_pooler_pgbouncer', $1, 'CONNECT')", role).Scan(&grant))
	assert.True(t, grant, "pg-init granted the pooler's auth_query role CONNECT on %s", role)
	// Session pooling keeps the module's server connection in the pool after
	// the client leaves (server_idle_timeout): it is there to be seen.
	var fromPooler, total int
	require.Eventually(t, func() bool {
		err := conn.QueryRow(ctx, "SELECT count(*) FILTER (WHERE host(client_addr) = ANY($2)), count(*) FROM pg_stat_activity WHERE usename = $1", role, ips).Scan(&fromPooler, &total)
		return err == nil && fromPooler > 0
	}, 2*time.Minute, 2*time.Second, "sessions of %s from the PgBouncer pod %v", role, ips)
	t.Logf("module role %s: %d of its %d server sessions come from the PgBouncer pod %v", role, fromPooler, total, ips)
}

// Benchmark of pg-init through -rw against through the pooler (session
// mode). A Pooler with the operator's defaults refuses pg-init (its
// search_path startup parameter: asserted); for the measurement only, the
// Pooler is patched to ignore that parameter (the session then runs with
// the server's default search_path, shown). Then the same spec (benchModules modules, each a role and a database
// with one schema, as hello-module's) provisioned cold under a fresh scope,
// then again unchanged (a rerun), as the second tenant's provisioner, by
// pgprovision.Reconcile (pg-init's engine, in the test process: no pod
// start in the figure), alternating which path goes first each round.
// Figures are logged (BENCH lines), never asserted.
const (
	benchModules = 10
	benchRounds  = 3
)

func (s *scenario) benchPgInitPooler(t *testing.T) {
	ctx := context.Background()
	ns := s.cm.tenants[1]
	ts, err := s.c.Client().CoreV1().Secrets(ns).Get(ctx, "kommons-commons", metav1.GetOptions{})
	require.NoError(t, err)
	hosts := map[string]string{
		"-rw":    strings.TrimSuffix(string(ts.Data["PGHOST"]), ".cluster.local"),
		"pooler": strings.TrimSuffix(string(ts.Data["PGHOST_POOLER"]), ".cluster.local"),
	}
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(pw, []byte("bench-password-0123456789\n"), 0o600))
	spec := func(release string) *pgprovision.Spec {
		sp := &pgprovision.Spec{Scope: pgprovision.Scope{Namespace: ns, Release: release}}
		for i := 0; i < benchModules; i++ {
			name := fmt.Sprintf("m%d", i)
			sp.Roles = append(sp.Roles, pgprovision.Role{Name: name, PasswordFile: pw})
			sp.Databases = append(sp.Databases, pgprovision.Database{Name: name, Owner: name, Schemas: []string{"app"}})
		}
		return sp
	}
	runOnce := func(path, release string) time.Duration {
		cfg := s.clusterConnConfig(t, s.cm.ns, commonsCluster, hosts[path], string(ts.Data["PGUSER"]), string(ts.Data["PGPASSWORD"]), string(ts.Data["PGDATABASE"]))
		plan, err := pgprovision.NewPlan("bench", spec(release))
		require.NoError(t, err)
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		_, err = pgprovision.Reconcile(rctx, cfg, plan, pgprovision.Options{PoolerRole: string(ts.Data["PGPOOLER_ROLE"])})
		require.NoError(t, err, "pg-init through %s", path)
		return time.Since(start)
	}
	// pg-init pins search_path as a startup parameter, which PgBouncer
	// refuses unless it tracks it (or ignores it, which would drop the pin).
	cfg := s.clusterConnConfig(t, s.cm.ns, commonsCluster, hosts["pooler"], string(ts.Data["PGUSER"]), string(ts.Data["PGPASSWORD"]), string(ts.Data["PGDATABASE"]))
	plan, err := pgprovision.NewPlan("bench", spec("refused"))
	require.NoError(t, err)
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	_, err = pgprovision.Reconcile(rctx, cfg, plan, pgprovision.Options{})
	cancel()
	require.Error(t, err, "pg-init through a Pooler with the operator's defaults")
	assert.Contains(t, err.Error(), "unsupported startup parameter: search_path")
	t.Logf("pg-init through the pooler with its default parameters: %v", err)
	// For the measurement only: PgBouncer told to ignore search_path, so
	// pg-init gets in, without its pin (the server's default search_path).
	pooler := commonsCluster + "-pooler-rw"
	s.kubectl(t, "patch", "-n", s.cm.ns, "pooler/"+pooler, "--type", "merge", "-p",
		`{"spec":{"pgbouncer":{"parameters":{"ignore_startup_parameters":"search_path"}}}}`)
	cfg.RuntimeParams["search_path"] = "pg_catalog"
	probe := s.connectEventually(ctx, t, cfg)
	var sp string
	require.NoError(t, probe.QueryRow(ctx, "SHOW search_path").Scan(&sp))
	probe.Close(ctx)
	assert.NotEqual(t, "pg_catalog", sp, "an ignored startup parameter is dropped")
	t.Logf("Pooler %s with ignore_startup_parameters search_path (measurement only): a session asking for search_path pg_catalog gets %q", pooler, sp)

	times := map[string][]time.Duration{}
	for round := 0; round < benchRounds; round++ {
		order := []string{"-rw", "pooler"}
		if round%2 == 1 {
			order = []string{"pooler", "-rw"}
		}
		for _, path := range order {
			release := fmt.Sprintf("b%d%s", round, strings.TrimPrefix(path, "-"))
			cold := runOnce(path, release)
			rerun := runOnce(path, release)
			times[path+" cold"] = append(times[path+" cold"], cold)
			times[path+" rerun"] = append(times[path+" rerun"], rerun)
			t.Logf("BENCH round %d %s: cold %d modules %.0f ms, rerun %.0f ms", round+1, path, benchModules, ms(cold), ms(rerun))
		}
	}
	for _, k := range []string{"-rw cold", "pooler cold", "-rw rerun", "pooler rerun"} {
		var all []string
		for _, d := range times[k] {
			all = append(all, fmt.Sprintf("%.0f", ms(d)))
		}
		t.Logf("BENCH pg-init %d modules through %s: median %.0f ms (runs %s ms), load %s", benchModules, k, ms(median(times[k])), strings.Join(all, ", "), loadAvg())
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(ds []time.Duration) time.Duration {
	c := append([]time.Duration(nil), ds...)
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	return c[len(c)/2]
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
