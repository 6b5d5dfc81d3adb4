package pgprovision

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/outcome"
	"github.com/kommons/kommons/internal/pgnames"
	"github.com/kommons/kommons/internal/pgready"
	"github.com/kommons/kommons/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// env is one test's scope, password files and captured log.
type env struct {
	t         *testing.T
	srv       *pgtest.Server
	cfg       *pgx.ConnConfig
	dir       string
	mu        sync.Mutex
	logs      bytes.Buffer
	passwords []string
}

func newEnv(t *testing.T, srv *pgtest.Server) *env {
	cfg, err := pgx.ParseConfig(srv.AdminDSN())
	require.NoError(t, err)
	e := &env{t: t, srv: srv, cfg: cfg, dir: t.TempDir()}
	t.Cleanup(func() {
		out := e.logText()
		for _, pw := range e.passwords {
			if strings.Contains(out, pw) {
				t.Errorf("a password appears in the log output")
			}
		}
	})
	return e
}

func (e *env) Write(p []byte) (int, error) { e.mu.Lock(); defer e.mu.Unlock(); return e.logs.Write(p) }
func (e *env) logText() string             { e.mu.Lock(); defer e.mu.Unlock(); return e.logs.String() }

// password writes a fresh random password file for role and returns its path and value.
func (e *env) password(role string) (string, string) {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	pw := "pw'\"; -- " + hex.EncodeToString(b) // quotes and comment markers: must survive quoting
	return e.setPassword(role, pw), pw
}

func (e *env) setPassword(role, pw string) string {
	sum := sha256.Sum256([]byte(role))
	path := filepath.Join(e.dir, hex.EncodeToString(sum[:8])+".pw")
	require.NoError(e.t, os.WriteFile(path, []byte(pw+"\n"), 0o600))
	e.passwords = append(e.passwords, pw)
	return path
}

// module is a spec of one role owning one database.
func (e *env) module(scope Scope, name string, exts ...string) (*Spec, string) {
	path, pw := e.password(scope.String() + name)
	return &Spec{Scope: scope, Roles: []Role{{Name: name, PasswordFile: path}},
		Databases: []Database{{Name: name, Owner: name, Extensions: exts}}}, pw
}

func (e *env) reconcile(spec *Spec, opts Options) (*Report, error) {
	return e.reconcileAs(e.cfg, spec, opts)
}

func (e *env) reconcileAs(cfg *pgx.ConnConfig, spec *Spec, opts Options) (*Report, error) {
	e.t.Helper()
	plan, err := NewPlan("test", spec)
	require.NoError(e.t, err)
	opts.Logger = slog.New(slog.NewJSONHandler(e, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return Reconcile(ctx, cfg, plan, opts)
}

func phys(t *testing.T, s Scope, name string) string {
	n, err := pgnames.Physical(s.Namespace, s.Release, name)
	require.NoError(t, err)
	return n
}

func login(srv *pgtest.Server, user, pw, db string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, srv.DSN(user, pw, db))
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

func queryRow(t *testing.T, dsn, sql string, args []any, dest ...any) {
	t.Helper()
	conn := pgtest.Connect(t, dsn)
	require.NoError(t, conn.QueryRow(context.Background(), sql, args...).Scan(dest...), sql)
}

func actions(rep *Report) map[string]Action {
	out := map[string]Action{}
	for _, o := range rep.Objects {
		out[o.Kind+":"+o.Physical] = o.Action
	}
	return out
}

func ddlStatements(t *testing.T, srv *pgtest.Server) []string {
	b, err := os.ReadFile(srv.LogPath())
	require.NoError(t, err)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if i := strings.Index(l, "LOG:  statement: "); i >= 0 {
			out = append(out, l[i+len("LOG:  statement: "):])
		}
	}
	return out
}

func TestFreshCreateThenRerunIssuesNoDDL(t *testing.T) {
	srv := pgtest.New(t, pgtest.Options{Settings: map[string]string{"log_statement": "ddl"}})
	e := newEnv(t, srv)
	scope := Scope{Namespace: "imaging", Release: "orthanc"}
	spec, pw := e.module(scope, "orthanc", "pg_trgm")
	limit := 60
	spec.Roles[0].ConnectionLimit = &limit
	spec.Databases[0].Schemas = []string{"index_data"}
	rep, err := e.reconcile(spec, Options{})
	require.NoError(t, err)
	name := "imaging_orthanc_orthanc"
	assert.Equal(t, map[string]Action{"role:" + name: outcome.Created, "database:" + name: outcome.Created,
		"extension:pg_trgm": outcome.Created, "schema:index_data": outcome.Created}, actions(rep))

	var super, createDB, createRole, canLogin, repl, bypass bool
	var connLimit int
	var comment string
	queryRow(t, srv.AdminDSN(), `SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin, rolreplication, rolbypassrls,
		rolconnlimit, shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1`, []any{name},
		&super, &createDB, &createRole, &canLogin, &repl, &bypass, &connLimit, &comment)
	assert.Equal(t, []bool{false, false, false, true, false, false}, []bool{super, createDB, createRole, canLogin, repl, bypass})
	assert.Equal(t, 60, connLimit)
	assert.Equal(t, `{"managedBy":"kommons/pg-init","namespace":"imaging","release":"orthanc","name":"orthanc","reclaimPolicy":"retain"}`, comment)

	var owner, dbComment string
	var publicConnect, publicTemp bool
	queryRow(t, srv.AdminDSN(), `SELECT pg_get_userbyid(datdba), shobj_description(oid, 'pg_database'),
		has_database_privilege('public', oid, 'CONNECT'), has_database_privilege('public', oid, 'TEMPORARY')
		FROM pg_database WHERE datname = $1`, []any{name}, &owner, &dbComment, &publicConnect, &publicTemp)
	assert.Equal(t, name, owner)
	assert.Contains(t, dbComment, `"namespace":"imaging"`)
	assert.False(t, publicConnect)
	assert.False(t, publicTemp)

	var ext, schemaOwner, publicOwner string
	queryRow(t, srv.DSN(name, pw, name), `SELECT (SELECT extname FROM pg_extension WHERE extname = 'pg_trgm'),
		(SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'index_data'),
		(SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'public')`, nil, &ext, &schemaOwner, &publicOwner)
	assert.Equal(t, "pg_trgm", ext)
	assert.Equal(t, name, schemaOwner)
	assert.Equal(t, "pg_database_owner", publicOwner, "PostgreSQL 15+: public belongs to the database owner")

	// The stored password is a SCRAM verifier of the file's password; no plain password was ever sent.
	var stored string
	queryRow(t, srv.AdminDSN(), "SELECT rolpassword FROM pg_authid WHERE rolname = $1", []any{name}, &stored)
	assert.True(t, SCRAMMatches(stored, pw))
	first := ddlStatements(t, srv)
	require.NotEmpty(t, first, "log_statement=ddl must log the first run's DDL")
	for _, s := range first {
		assert.NotContains(t, s, pw)
	}

	rep, err = e.reconcile(spec, Options{})
	require.NoError(t, err)
	for k, a := range actions(rep) {
		assert.Equal(t, outcome.Unchanged, a, k)
	}
	assert.Equal(t, first, ddlStatements(t, srv), "the rerun must issue no DDL")
}

func TestPasswordRotation(t *testing.T) {
	srv := pgtest.Shared(t)
	e := newEnv(t, srv)
	scope := Scope{Namespace: "rotation", Release: "app"}
	spec, oldPW := e.module(scope, "app")
	_, err := e.reconcile(spec, Options{})
	require.NoError(t, err)
	name := phys(t, scope, "app")
	require.NoError(t, login(srv, name, oldPW, name))

	newPW := "rotated-" + oldPW
	e.setPassword(scope.String()+"app", newPW)
	rep, err := e.reconcile(spec, Options{})
	require.NoError(t, err)
	o, _ := rep.Find(KindRole, name)
	assert.Equal(t, outcome.Updated, o.Action)
	assert.Equal(t, []string{"password (changed)"}, o.Changes)
	assert.NoError(t, login(srv, name, newPW, name), "new password works")
	err = login(srv, name, oldPW, name)
	require.Error(t, err, "old password must fail")
	assert.Equal(t, "28P01", pgready.SQLState(err))
	assert.NotContains(t, err.Error(), oldPW)
}

func TestIsolation(t *testing.T) {
	srv := pgtest.Shared(t)
	e := newEnv(t, srv)
	scope := Scope{Namespace: "isolation", Release: "r1"}
	specA, pwA := e.module(scope, "a")
	specB, pwB := e.module(scope, "b")
	spec := &Spec{Scope: scope, Roles: append(specA.Roles, specB.Roles...), Databases: append(specA.Databases, specB.Databases...)}
	_, err := e.reconcile(spec, Options{})
	require.NoError(t, err)
	a, b := phys(t, scope, "a"), phys(t, scope, "b")

	err = login(srv, a, pwA, b)
	require.Error(t, err, "A must not CONNECT to B's database")
	assert.Equal(t, "42501", pgready.SQLState(err))
	err = login(srv, b, pwB, a)
	require.Error(t, err)
	assert.Equal(t, "42501", pgready.SQLState(err))

	srv.Exec(t, "CREATE ROLE isolation_fresh LOGIN PASSWORD 'fresh-pw'")
	t.Cleanup(func() { srv.Exec(t, "DROP ROLE IF EXISTS isolation_fresh") })
	err = login(srv, "isolation_fresh", "fresh-pw", a)
	require.Error(t, err, "PUBLIC must not CONNECT")
	assert.Equal(t, "42501", pgready.SQLState(err))

	conn := pgtest.Connect(t, srv.DSN(a, pwA, a))
	ctx := context.Background()
	_, err = conn.Exec(ctx, "CREATE TABLE studies (id int PRIMARY KEY, name text)")
	require.NoError(t, err, "the owner creates tables in public")
	_, err = conn.Exec(ctx, "CREATE EXTENSION pg_trgm")
	require.NoError(t, err, "the owner creates the trusted extension pg_trgm")
	_, err = conn.Exec(ctx, "CREATE INDEX ON studies USING gin (name gin_trgm_ops)")
	require.NoError(t, err)
}

func TestHostileNamesAreQuotedNeverInterpolated(t *testing.T) {
	srv := pgtest.Shared(t)
	e := newEnv(t, srv)
	srv.Exec(t, "CREATE TABLE IF NOT EXISTS sentinel (x int)")
	t.Cleanup(func() { srv.Exec(t, "DROP TABLE IF EXISTS sentinel") })
	hostile := []string{
		`x'; DROP TABLE sentinel; --`,
		`x"; DROP TABLE sentinel; --`,
		`Robert'); DROP TABLE sentinel;--`,
		`select`, `user`, `UPPER case`, `données-日本語`, `$1 $$ $q$`,
		strings.Repeat("long-name-", 20),
	}
	scope := Scope{Namespace: "hostile-ns", Release: `rel'"; DROP TABLE sentinel; --`}
	spec := &Spec{Scope: scope}
	for _, h := range hostile {
		path, _ := e.password(h)
		spec.Roles = append(spec.Roles, Role{Name: h, PasswordFile: path})
		spec.Databases = append(spec.Databases, Database{Name: h, Owner: h, Schemas: []string{"s1"}})
	}
	rep, err := e.reconcile(spec, Options{})
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, h := range hostile {
		name := phys(t, scope, h)
		assert.Regexp(t, `^[a-z0-9_]{1,63}$`, name)
		assert.False(t, seen[name], "distinct")
		seen[name] = true
		o, ok := rep.Find(KindDatabase, name)
		require.True(t, ok, h)
		assert.Equal(t, outcome.Created, o.Action)
		var marker string
		queryRow(t, srv.AdminDSN(), "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1", []any{name}, &marker)
		m, ok := ParseMarker(marker)
		require.True(t, ok)
		assert.Equal(t, h, m.Name, "the marker keeps the hostile logical name verbatim")
		assert.Equal(t, scope, Scope{Namespace: m.Namespace, Release: m.Release})
	}
	var exists bool
	queryRow(t, srv.AdminDSN(), "SELECT to_regclass('public.sentinel') IS NOT NULL", nil, &exists)
	assert.True(t, exists, "the sentinel table survives")

	rep, err = e.reconcile(spec, Options{})
	require.NoError(t, err)
	assert.Equal(t, 0, rep.Count(outcome.Created)+rep.Count(outcome.Updated), "rerun with hostile names is a no-op")
}

func TestClashAndStability(t *testing.T) {
	srv := pgtest.Shared(t)
	e := newEnv(t, srv)
	prefix := "sandbox-" + strings.Repeat("p", 60)
	s1, s2 := Scope{Namespace: prefix + "-1", Release: "orthanc"}, Scope{Namespace: prefix + "-2", Release: "orthanc"}
	spec1, _ := e.module(s1, "orthanc")
	spec2, _ := e.module(s2, "orthanc")
	_, err := e.reconcile(spec1, Options{})
	require.NoError(t, err)
	_, err = e.reconcile(spec2, Options{})
	require.NoError(t, err, "a long common prefix must not clash")
	n1, n2 := phys(t, s1, "orthanc"), phys(t, s2, "orthanc")
	assert.NotEqual(t, n1, n2)
	var count int
	queryRow(t, srv.AdminDSN(), "SELECT count(*) FROM pg_database WHERE datname = ANY($1)", []any{[]string{n1, n2}}, &count)
	assert.Equal(t, 2, count)

	rep, err := e.reconcile(spec1, Options{})
	require.NoError(t, err)
	assert.Equal(t, map[string]Action{"role:" + n1: outcome.Unchanged, "database:" + n1: outcome.Unchanged}, actions(rep), "same scope, same names")
}

func TestForeignObjectsRefusedThenAdopted(t *testing.T) {
	srv := pgtest.Shared(t)
	e := newEnv(t, srv)
	scope := Scope{Namespace: "foreign", Release: "legacy"}
	spec, pw := e.module(scope, "app")
	name := phys(t, scope, "app")
	srv.Exec(t, "CREATE ROLE "+name+" LOGIN CREATEDB PASSWORD 'hand-made'")
	srv.Exec(t, "CREATE DATABASE "+name)
	srv.Exec(t, "CREATE TABLE IF NOT EXISTS keep_me (x int)")

	rep, err := e.reconcile(spec, Options{})
	var conflict *ConflictError
	require.ErrorAs(t, err, &conflict)
	assert.Contains(t, err.Error(), "role "+name+": role exists and it has no kommons ownership marker")
	assert.Contains(t, err.Error(), "rerun with --adopt")
	assert.Equal(t, map[string]Action{"role:" + name: outcome.Refused, "database:" + name: outcome.Refused}, actions(rep))
	var createDB bool
	queryRow(t, srv.AdminDSN(), "SELECT rolcreatedb FROM pg_roles WHERE rolname = $1", []any{name}, &createDB)
	assert.True(t, createDB, "a refused role is not touched")

	// Another scope's marker is refused too, naming that scope.
	srv.Exec(t, "COMMENT ON ROLE "+name+" IS '"+NewMarker(Scope{Namespace: "other", Release: "team"}, "app", ReclaimRetain).String()+"'")
	_, err = e.reconcile(spec, Options{})
	require.ErrorAs(t, err, &conflict)
	assert.Contains(t, err.Error(), "its marker names scope other/team")

	rep, err = e.reconcile(spec, Options{Adopt: true})
	require.NoError(t, err)
	assert.Equal(t, map[string]Action{"role:" + name: outcome.Updated, "database:" + name: outcome.Updated}, actions(rep))
	require.NoError(t, login(srv, name, pw, name))
	var owner string
	queryRow(t, srv.AdminDSN(), "SELECT rolcreatedb, pg_get_userbyid(d.datdba) FROM pg_roles r, pg_database d WHERE r.rolname = $1 AND d.datname = $1",
		[]any{name}, &createDB, &owner)
	assert.False(t, createDB)
	assert.Equal(t, name, owner)
	rep, err = e.reconcile(spec, Options{})
	require.NoError(t, err, "after adoption the objects are ours")
	assert.Equal(t, 0, rep.Count(outcome.Updated)+rep.Count(outcome.Created))
}

func TestPartialStateIsRepaired(t *testing.T) {
	srv := pgtest.Shared(t)
	e := newEnv(t, srv)
	scope := Scope{Namespace: "partial", Release: "app"}
	spec, _ := e.module(scope, "app", "pg_trgm")
	name := phys(t, scope, "app")
	// A run that stopped right after CREATE DATABASE: role marked, database without marker nor REVOKE.
	rolesOnly := &Spec{Scope: scope, Roles: spec.Roles}
	_, err := e.reconcile(rolesOnly, Options{})
	require.NoError(t, err)
	srv.Exec(t, fmt.Sprintf("CREATE DATABASE %s OWNER %s", name, name))
	rep, err := e.reconcile(spec, Options{})
	require.NoError(t, err)
	o, _ := rep.Find(KindDatabase, name)
	assert.Equal(t, outcome.Updated, o.Action)
	assert.Contains(t, strings.Join(o.Changes, ","), "marker restored")
	assert.Contains(t, strings.Join(o.Changes, ","), "REVOKE CONNECT, TEMPORARY FROM PUBLIC")
	ext, _ := rep.Find(KindExtension, "pg_trgm")
	assert.Equal(t, outcome.Created, ext.Action)
}

func TestPrune(t *testing.T) {
	srv := pgtest.Shared(t)
	e := newEnv(t, srv)
	scope := Scope{Namespace: "prune", Release: "app"}
	keep, _ := e.module(scope, "keep")
	gone, _ := e.module(scope, "gone")
	retained, _ := e.module(scope, "retained")
	gone.Roles[0].ReclaimPolicy, gone.Databases[0].ReclaimPolicy = ReclaimDelete, ReclaimDelete
	other, _ := e.module(Scope{Namespace: "prune", Release: "other"}, "gone")
	other.Roles[0].ReclaimPolicy, other.Databases[0].ReclaimPolicy = ReclaimDelete, ReclaimDelete
	all := &Spec{Scope: scope, Roles: append(append(keep.Roles, gone.Roles...), retained.Roles...),
		Databases: append(append(keep.Databases, gone.Databases...), retained.Databases...)}
	_, err := e.reconcile(all, Options{})
	require.NoError(t, err)
	_, err = e.reconcile(other, Options{})
	require.NoError(t, err)

	// Without --prune nothing is dropped.
	_, err = e.reconcile(keep, Options{})
	require.NoError(t, err)
	exists := func(name string) bool {
		var n int
		queryRow(t, srv.AdminDSN(), "SELECT (SELECT count(*) FROM pg_database WHERE datname = $1) + (SELECT count(*) FROM pg_roles WHERE rolname = $1)", []any{name}, &n)
		return n > 0
	}
	require.True(t, exists(phys(t, scope, "gone")))

	rep, err := e.reconcile(keep, Options{Prune: true})
	require.NoError(t, err)
	pruned := map[string]Action{}
	for _, o := range rep.Pruned {
		pruned[o.Kind+":"+o.Name] = o.Action
	}
	assert.Equal(t, map[string]Action{"database:gone": outcome.Deleted, "role:gone": outcome.Deleted, "database:retained": outcome.Retained, "role:retained": outcome.Retained}, pruned)
	assert.False(t, exists(phys(t, scope, "gone")))
	assert.True(t, exists(phys(t, scope, "retained")))
	assert.True(t, exists(phys(t, scope, "keep")))
	assert.True(t, exists(phys(t, Scope{Namespace: "prune", Release: "other"}, "gone")), "another scope's objects are never pruned")
}

func TestNonSuperuserAdmin(t *testing.T) {
	srv := pgtest.Shared(t)
	e := newEnv(t, srv)
	provPW := "prov-" + strings.Repeat("z", 10)
	e.passwords = append(e.passwords, provPW)
	provs := []TenantProvisioner{{Namespace: "managed", Role: "kommons_provisioner", Password: provPW}}
	rep, err := EnsureProvisioners(context.Background(), e.cfg, provs, ProvisionerOptions{Logger: slog.New(slog.NewJSONHandler(e, nil))})
	require.NoError(t, err)
	assert.Contains(t, []Action{outcome.Created, outcome.Unchanged}, rep.Objects[0].Action)
	rep, err = EnsureProvisioners(context.Background(), e.cfg, provs, ProvisionerOptions{Logger: slog.New(slog.NewJSONHandler(e, nil))})
	require.NoError(t, err)
	assert.Equal(t, outcome.Unchanged, rep.Objects[0].Action)
	provCfg, err := pgx.ParseConfig(srv.DSN("kommons_provisioner", provPW, "postgres"))
	require.NoError(t, err)

	scope := Scope{Namespace: "managed", Release: "svc"}
	spec, pw := e.module(scope, "app", "pg_trgm")
	spec.Databases[0].Schemas = []string{"audit"}
	rep, err = e.reconcileAs(provCfg, spec, Options{})
	require.NoError(t, err)
	name := phys(t, scope, "app")
	assert.Equal(t, map[string]Action{"role:" + name: outcome.Created, "database:" + name: outcome.Created, "extension:pg_trgm": outcome.Created, "schema:audit": outcome.Created}, actions(rep))
	require.NoError(t, login(srv, name, pw, name))

	rep, err = e.reconcileAs(provCfg, spec, Options{})
	require.NoError(t, err)
	for k, a := range actions(rep) {
		assert.Equal(t, outcome.Unchanged, a, "rerun as non-superuser: %s (verified by logging in)", k)
	}
	newPW := pw + "-2"
	e.setPassword(scope.String()+"app", newPW)
	rep, err = e.reconcileAs(provCfg, spec, Options{})
	require.NoError(t, err)
	o, _ := rep.Find(KindRole, name)
	assert.Equal(t, outcome.Updated, o.Action)
	assert.NoError(t, login(srv, name, newPW, name))
	assert.Error(t, login(srv, name, pw, name))
}

// TestConcurrentRunsToleratePlainRaces runs 8 reconciles of the same module
// at once with different advisory lock keys, as pg-init processes
// connecting through different admin databases would: they race for the
// same role, database and extension, and every one must still succeed.
func TestConcurrentRunsToleratePlainRaces(t *testing.T) {
	srv := pgtest.Shared(t)
	e := newEnv(t, srv)
	scope := Scope{Namespace: "race", Release: "r"}
	spec, pw := e.module(scope, "app", "pg_trgm")
	spec.Databases[0].Schemas = []string{"s1", "s2"}
	plan, err := NewPlan("test", spec)
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			_, errs[i] = Run(ctx, e.cfg, plan, RunOptions{Options: Options{LockKey: int64(i + 1), Logger: slog.New(slog.NewJSONHandler(e, nil))}})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		assert.NoError(t, err, "run %d", i)
	}
	t.Logf("transient races retried: %d", strings.Count(e.logText(), "retrying from the top"))
	name := phys(t, scope, "app")
	require.NoError(t, login(srv, name, pw, name))
	var n int
	queryRow(t, srv.DSN(name, pw, name), `SELECT (SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm')
		+ (SELECT count(*) FROM pg_namespace WHERE nspname IN ('s1', 's2') AND pg_get_userbyid(nspowner) = current_user)`, nil, &n)
	assert.Equal(t, 3, n)
	rep, err := e.reconcile(spec, Options{})
	require.NoError(t, err)
	assert.Equal(t, 0, rep.Count(outcome.Created)+rep.Count(outcome.Updated))
}
