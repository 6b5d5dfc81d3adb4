package cnpg

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/internal/pgprovision"
)

// moduleCreds is a module role's connection Secret (postgres-init).
type moduleCreds struct{ user, password, db string }

func (s *scenario) moduleCreds(t *testing.T, ns, release string) moduleCreds {
	t.Helper()
	secs, err := s.c.Client().CoreV1().Secrets(ns).List(context.Background(), metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/instance=" + release + ",app.kubernetes.io/component=credentials"})
	require.NoError(t, err)
	require.Len(t, secs.Items, 1, "%s/%s's connection Secret", ns, release)
	d := secs.Items[0].Data
	return moduleCreds{user: string(d["username"]), password: string(d["password"]), db: string(d["dbname"])}
}

// poolerAdversarial attacks the pooler's authentication as the owner of
// module A's database (hello-pooled in the first tenant), on commons'
// Cluster, whose provisioner Job ran pg-init bootstrap-provisioner with
// --pin-admin-search-path and --pooler-role. A plants "=" operators that
// make it a superuser when a superuser calls them, overloads and shadows of
// user_search returning a forged verifier, and puts its schemas first in its
// database's search_path; dropping, renaming or replacing the function is
// refused. Then PgBouncer's auth session in A's database is made anew
// (terminated) and A logs in through the pooler; the instance manager's
// sessions (the Cluster poked) run there, first, as a control, without
// postgres's role-level search_path (A becomes a superuser), then with it;
// A stays no superuser, the auth_query as the pooler
// role in A's database returns the real verifiers, module B (second tenant)
// logs in through the pooler and directly, and nobody logs in through the
// pooler as B, postgres or the pooler role with the forged password. The
// pooler role cannot read pg_authid.
func (s *scenario) poolerAdversarial(t *testing.T) {
	ctx := context.Background()
	start := time.Now()
	a := s.moduleCreds(t, s.cm.tenants[0], "hello-pooled")
	b := s.moduleCreds(t, s.cm.tenants[1], "hello")
	rw := commonsCluster + "-rw." + s.cm.ns + ".svc"
	pooler := commonsCluster + "-pooler-rw." + s.cm.ns + ".svc"
	cfg := func(host, user, pw, db string) *pgx.ConnConfig {
		return s.clusterConnConfig(t, s.cm.ns, commonsCluster, host, user, pw, db)
	}
	admin := s.commonsAdmin(ctx, t)
	defer admin.Close(ctx)
	adminSecret, err := s.c.Client().CoreV1().Secrets(s.cm.ns).Get(ctx, commonsCluster+"-admin", metav1.GetOptions{})
	require.NoError(t, err)
	// adminIn is a superuser session in db with search_path pinned by the
	// client (A's operators are never found by the test's own statements).
	adminIn := func(db string) *pgx.Conn {
		c := cfg(rw, "postgres", string(adminSecret.Data["password"]), db)
		c.RuntimeParams["search_path"] = "pg_catalog"
		conn, err := pgx.ConnectConfig(ctx, c)
		require.NoError(t, err)
		return conn
	}
	isSuper := func(role string) bool {
		var super bool
		require.NoError(t, admin.QueryRow(ctx, "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = $1", role).Scan(&super))
		return super
	}
	verifier := func(role string) string {
		var v string
		require.NoError(t, admin.QueryRow(ctx, "SELECT rolpassword FROM pg_catalog.pg_authid WHERE rolname = $1", role).Scan(&v))
		return v
	}

	// What the provisioner Job did.
	var settings []string
	require.NoError(t, admin.QueryRow(ctx, `SELECT array_agg(r.rolname || ':' || array_to_string(s.setconfig, ';') ORDER BY r.rolname)
		FROM pg_catalog.pg_db_role_setting s JOIN pg_catalog.pg_roles r ON r.oid = s.setrole WHERE s.setdatabase = 0`).Scan(&settings))
	assert.Contains(t, settings, `postgres:search_path="$user", public`)
	assert.Contains(t, settings, `cnpg_pooler_pgbouncer:search_path="$user", public`)
	ac := adminIn(a.db)
	var owner, config string
	var secdef bool
	require.NoError(t, ac.QueryRow(ctx, `SELECT (SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'public'),
		p.prosecdef, array_to_string(p.proconfig, ';') FROM pg_proc p WHERE p.oid = 'public.user_search(text)'::regprocedure`).Scan(&owner, &secdef, &config))
	ac.Close(ctx)
	assert.Equal(t, "postgres", owner, "schema public of %s", a.db)
	assert.True(t, secdef)
	assert.Equal(t, "search_path=pg_catalog, pg_temp", config)
	t.Logf("hardened: role settings %v; in %s public owned by %s, user_search SECURITY DEFINER with %s", settings, a.db, owner, config)

	// A, the owner of its database, attacks.
	forgedPW := "forged-password-0123456789"
	forged, err := pgprovision.SCRAMVerifier(forgedPW, []byte("kommons-forged-salt"), 4096)
	require.NoError(t, err)
	mod, err := pgx.ConnectConfig(ctx, cfg(rw, a.user, a.password, a.db))
	require.NoError(t, err)
	defer mod.Close(ctx)
	for _, sql := range []string{
		"DROP FUNCTION public.user_search(text)",
		"ALTER SCHEMA public RENAME TO public_old",
		"DROP SCHEMA public CASCADE",
		"ALTER FUNCTION public.user_search(text) RESET search_path",
		"CREATE OR REPLACE FUNCTION public.user_search(uname text) RETURNS TABLE (usename name, passwd text) LANGUAGE sql AS $$ SELECT $1::name, 'x' $$",
		"SELECT * FROM public.user_search('postgres')",
	} {
		_, err := mod.Exec(ctx, sql)
		var pgErr *pgconn.PgError
		if assert.True(t, errors.As(err, &pgErr), "ATTACK SUCCEEDED as %s: %s (%v)", a.user, sql, err) {
			t.Logf("refused (%s): %s: %s", pgErr.Code, sql, pgErr.Message)
		}
	}
	escalate := func(fn, left, right string) string {
		return fmt.Sprintf(`CREATE FUNCTION public.%s(%s, %s) RETURNS boolean LANGUAGE plpgsql AS $$
			BEGIN
				IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) current_user) THEN
					EXECUTE pg_catalog.format('ALTER ROLE %%I SUPERUSER', '%s');
				END IF;
				RETURN $1::pg_catalog.text OPERATOR(pg_catalog.=) $2::pg_catalog.text;
			END $$;
			CREATE OPERATOR public.= (LEFTARG = %s, RIGHTARG = %s, FUNCTION = public.%s)`, fn, left, right, a.user, left, right, fn)
	}
	forge := func(schema, arg string) string {
		return fmt.Sprintf("CREATE FUNCTION %s.user_search(uname %s) RETURNS TABLE (usename name, passwd text) LANGUAGE sql AS $$ SELECT $1::name, '%s'::text $$",
			schema, arg, forged)
	}
	for _, sql := range []string{
		escalate("evil_name_text", "name", "text"),
		escalate("evil_name_name", "name", "name"),
		forge("public", "name"),
		forge("public", "varchar"),
		"CREATE SCHEMA shadow; GRANT USAGE ON SCHEMA shadow TO PUBLIC",
		forge("shadow", "text"),
		"ALTER DATABASE " + pgx.Identifier{a.db}.Sanitize() + " SET search_path = shadow, public, pg_catalog",
	} {
		_, err := mod.Exec(ctx, sql)
		require.NoError(t, err, "as %s: %s", a.user, sql)
	}
	mod.Close(ctx)
	t.Cleanup(func() {
		c := adminIn(a.db)
		defer c.Close(context.Background())
		for _, sql := range []string{
			"ALTER DATABASE " + pgx.Identifier{a.db}.Sanitize() + " RESET search_path",
			"DROP SCHEMA shadow CASCADE",
			"DROP OPERATOR public.= (name, text)", "DROP OPERATOR public.= (name, name)",
			"DROP FUNCTION public.evil_name_text(name, text)", "DROP FUNCTION public.evil_name_name(name, name)",
			"DROP FUNCTION public.user_search(name)", "DROP FUNCTION public.user_search(varchar)",
		} {
			if _, err := c.Exec(context.Background(), sql); err != nil {
				t.Logf("cleanup %s: %v", sql, err)
			}
		}
	})

	// A new session in A's database for PgBouncer's auth_query role
	// (terminated): A logs in through the pooler, the auth_query runs there.
	var killed int
	require.NoError(t, admin.QueryRow(ctx, `SELECT count(pg_catalog.pg_terminate_backend(pid)) FROM pg_catalog.pg_stat_activity
		WHERE datname = $1 AND usename = 'cnpg_pooler_pgbouncer'`, a.db).Scan(&killed))
	a2 := s.connectEventually(ctx, t, cfg(pooler, a.user, a.password, a.db))
	var user string
	require.NoError(t, a2.QueryRow(ctx, "SELECT current_user").Scan(&user))
	a2.Close(ctx)
	assert.Equal(t, a.user, user)
	var auth int
	require.NoError(t, admin.QueryRow(ctx, "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE datname = $1 AND usename = 'cnpg_pooler_pgbouncer'", a.db).Scan(&auth))
	assert.Positive(t, auth, "PgBouncer's auth_query session in %s", a.db)
	assert.False(t, isSuper(a.user), "ATTACK SUCCEEDED: %s became a superuser through the auth_query", a.user)
	t.Logf("%d auth_query session terminated; A logged in through the pooler with %d new one; %s is no superuser", killed, auth, a.user)

	// The instance manager opens a new session per query (no idle pool) as
	// postgres in every database on each reconcile; poking the Cluster
	// makes one. Control: without postgres's role-level search_path its
	// next reconcile makes A a superuser (the attack works on 1.27.1).
	var lastPoke time.Time
	poke := func() {
		if time.Since(lastPoke) > 3*time.Second {
			s.kubectl(t, "annotate", "-n", s.cm.ns, "cluster/"+commonsCluster, fmt.Sprintf("kommons.io/poke=%d", time.Now().UnixNano()), "--overwrite")
			lastPoke = time.Now()
		}
	}
	sessions := func() int64 {
		var n int64
		require.NoError(t, admin.QueryRow(ctx, "SELECT sessions FROM pg_catalog.pg_stat_database WHERE datname = $1", a.db).Scan(&n))
		return n
	}
	pin := `ALTER ROLE postgres SET search_path = "$user", public`
	_, err = admin.Exec(ctx, "ALTER ROLE postgres RESET search_path")
	require.NoError(t, err)
	defer func() { _, _ = admin.Exec(context.Background(), pin) }()
	controlStart := time.Now()
	escalated := assert.Eventually(t, func() bool { poke(); return isSuper(a.user) }, 2*time.Minute, time.Second,
		"control: the instance manager's query in %s without postgres's role search_path calls A's operator", a.db)
	if escalated {
		t.Logf("CONTROL (postgres without its role search_path): the instance manager made %s a superuser %.1fs after the first poke", a.user, time.Since(controlStart).Seconds())
	}
	_, err = admin.Exec(ctx, "ALTER ROLE "+pgx.Identifier{a.user}.Sanitize()+" NOSUPERUSER")
	require.NoError(t, err)
	_, err = admin.Exec(ctx, pin)
	require.NoError(t, err)
	// Pinned (as the provisioner Job leaves it): several reconciles later, A
	// is no superuser.
	lastPoke = time.Time{}
	before := sessions()
	assert.Eventually(t, func() bool { poke(); return sessions() >= before+6 }, 2*time.Minute, time.Second,
		"new sessions in %s (the instance manager's)", a.db)
	assert.False(t, isSuper(a.user), "ATTACK SUCCEEDED: the instance manager made %s a superuser", a.user)
	t.Logf("PINNED: %d new sessions in %s since the pin (the instance manager's reconciles); %s is no superuser", sessions()-before, a.db, a.user)

	// The auth_query as PgBouncer sends it (untyped parameter), as the
	// pooler role, in A's database with the role's own search_path.
	ac = adminIn(a.db)
	_, err = ac.Exec(ctx, `SET search_path = "$user", public; SET ROLE cnpg_pooler_pgbouncer`)
	require.NoError(t, err)
	for _, u := range []string{a.user, b.user, "postgres"} {
		var name, got string
		require.NoError(t, ac.QueryRow(ctx, "SELECT usename, passwd FROM public.user_search($1)", u).Scan(&name, &got))
		assert.Equal(t, verifier(u), got, "ATTACK SUCCEEDED: the auth_query in %s returned a planted verifier for %s", a.db, u)
	}
	for _, sql := range []string{"SELECT rolpassword FROM pg_catalog.pg_authid", "SELECT passwd FROM pg_catalog.pg_shadow"} {
		_, err := ac.Exec(ctx, sql)
		var pgErr *pgconn.PgError
		if assert.True(t, errors.As(err, &pgErr), "the pooler role read %s", sql) {
			assert.Equal(t, "42501", pgErr.Code)
		}
	}
	ac.Close(ctx)

	// B through the pooler and directly; nobody with the forged password.
	for _, host := range []string{pooler, rw} {
		c, err := pgx.ConnectConfig(ctx, cfg(host, b.user, b.password, b.db))
		if assert.NoError(t, err, "B logs in to %s", host) {
			c.Close(ctx)
		}
	}
	for _, u := range []string{b.user, "postgres", "cnpg_pooler_pgbouncer"} {
		c, err := pgx.ConnectConfig(ctx, cfg(pooler, u, forgedPW, a.db))
		if err == nil {
			c.Close(ctx)
			t.Errorf("ATTACK SUCCEEDED: logged in through the pooler to %s as %s with the forged password", a.db, u)
			continue
		}
		t.Logf("refused: %s with the forged password through the pooler to %s: %v", u, a.db, err)
	}
	t.Logf("pooler adversarial step: %.1fs", time.Since(start).Seconds())
}
