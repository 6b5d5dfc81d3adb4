// Package isolation is the adversarial suite of kommons' tenant isolation
// on a shared PostgreSQL: it provisions two tenants the way charts/commons
// and the module charts do (one provisioner identity per tenant, pg-init
// running as it), then acts as tenant A against tenant B, and as a module
// role against pg-init itself. Every attempt must be refused by the server
// (or by pg-init with an ownership conflict, for squatting); the suite
// fails if any succeeds. It runs on every PostgreSQL major version the
// harness has (pgtest) and logs each server's version.
//
// Run it alone with `go test ./test/isolation/`.
package isolation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kommons/kommons/internal/outcome"
	"github.com/kommons/kommons/internal/pgnames"
	"github.com/kommons/kommons/internal/pgprovision"
	"github.com/kommons/kommons/internal/testutil/pgtest"
	"github.com/kommons/kommons/internal/testutil/syncbuf"
)

// world is one server with its admin, two tenants' provisioners and their
// modules, as commons and the module charts set them up.
type world struct {
	t       *testing.T
	srv     *pgtest.Server
	version int // server_version_num
	admin   *pgx.ConnConfig
	dir     string
	logs    syncbuf.Buffer
	secrets []string
	tenants map[string]*tenant
	id      string // makes this world's namespaces unique on a shared server
}

// tenant is what a tenant namespace holds: its provisioner's credentials
// (the commons tenant Secret) and its module's (the postgres-init Secret).
type tenant struct {
	ns       string
	prov     pgprovision.TenantProvisioner
	scope    pgprovision.Scope
	plan     *pgprovision.Plan
	role, db string // the module's physical role and database
	rolePW   string
}

func randomPassword() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "Pw-" + hex.EncodeToString(b)
}

// newWorld starts from srv's superuser; with managedAdmin the commons admin
// is instead a NOSUPERUSER CREATEDB CREATEROLE role, the way managed
// services (RDS's rds_superuser, Azure's azure_pg_admin) grant it.
func newWorld(t *testing.T, srv *pgtest.Server, managedAdmin bool) *world {
	w := &world{t: t, srv: srv, dir: t.TempDir(), tenants: map[string]*tenant{}, id: fmt.Sprint(time.Now().UnixNano() % 1000000)}
	cfg, err := pgx.ParseConfig(srv.AdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	w.admin = cfg
	w.secrets = append(w.secrets, srv.AdminPassword())
	if err := w.queryRow(srv.AdminDSN(), "SELECT current_setting('server_version_num')::int").Scan(&w.version); err != nil {
		t.Fatal(err)
	}
	if managedAdmin {
		pw := randomPassword()
		w.secrets = append(w.secrets, pw)
		role := fmt.Sprintf("managed_admin_%d", time.Now().UnixNano())
		srv.Exec(t, fmt.Sprintf("CREATE ROLE %s LOGIN CREATEDB CREATEROLE PASSWORD '%s'", role, pw))
		cfg, err := pgx.ParseConfig(srv.DSN(role, pw, "postgres"))
		if err != nil {
			t.Fatal(err)
		}
		w.admin = cfg
	}
	t.Cleanup(func() {
		out := w.logs.String()
		for _, s := range w.secrets {
			if strings.Contains(out, s) {
				t.Errorf("a password appears in pg-init's log output")
			}
		}
	})
	return w
}

func (w *world) queryRow(dsn, sql string, args ...any) pgx.Row {
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		w.t.Fatalf("connect: %v", err)
	}
	w.t.Cleanup(func() { conn.Close(context.Background()) })
	return conn.QueryRow(context.Background(), sql, args...)
}

func (w *world) logger() *slog.Logger { return slog.New(slog.NewJSONHandler(&w.logs, nil)) }

// onboard runs what commons' provisioner Job runs for the named tenants.
func (w *world) onboard(names ...string) error {
	var provs []pgprovision.TenantProvisioner
	for _, ns := range names {
		tn := w.tenants[ns]
		if tn == nil {
			pw := randomPassword()
			w.secrets = append(w.secrets, pw)
			full := ns + "-" + w.id
			tn = &tenant{ns: full, prov: pgprovision.TenantProvisioner{Namespace: full, Role: "kommons_tenant_" + ns + "_" + w.id, Password: pw}}
			w.tenants[ns] = tn
		}
		provs = append(provs, tn.prov)
	}
	_, err := pgprovision.EnsureProvisioners(context.Background(), w.admin, provs, pgprovision.ProvisionerOptions{Logger: w.logger()})
	return err
}

// provCfg is the connection a tenant's pg-init Job makes: its provisioner.
func (w *world) provCfg(tn *tenant) *pgx.ConnConfig {
	c := w.admin.Copy()
	c.User, c.Password, c.Database = tn.prov.Role, tn.prov.Password, "postgres"
	return c
}

// spec is a module of release r in tn's namespace: one role owning one
// database with an extension and a schema.
func (w *world) spec(tn *tenant, release, name string, extensions []string, schemas []string) (*pgprovision.Spec, string) {
	pw := randomPassword()
	w.secrets = append(w.secrets, pw)
	path := filepath.Join(w.dir, tn.ns+"-"+release+"-"+name+".pw")
	if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		w.t.Fatal(err)
	}
	return &pgprovision.Spec{Scope: pgprovision.Scope{Namespace: tn.ns, Release: release},
		Roles:     []pgprovision.Role{{Name: name, PasswordFile: path}},
		Databases: []pgprovision.Database{{Name: name, Owner: name, Extensions: extensions, Schemas: schemas}}}, pw
}

func (w *world) plan(spec *pgprovision.Spec) *pgprovision.Plan {
	if err := spec.Validate("test"); err != nil {
		w.t.Fatal(err)
	}
	p, err := pgprovision.NewPlan("test", spec)
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

// provision runs pg-init for spec as tn's provisioner.
func (w *world) provision(tn *tenant, spec *pgprovision.Spec, opts pgprovision.Options) (*pgprovision.Report, error) {
	opts.Logger = w.logger()
	return pgprovision.Reconcile(context.Background(), w.provCfg(tn), w.plan(spec), opts)
}

// module provisions tenant tn's module "app" as its provisioner and
// records its names.
func (w *world) module(tn *tenant) { w.moduleAs(tn, w.provCfg(tn)) }

// moduleAs provisions tenant tn's module "app" as cfg's user.
func (w *world) moduleAs(tn *tenant, cfg *pgx.ConnConfig) {
	spec, pw := w.spec(tn, "app", "app", []string{"pg_trgm"}, []string{"audit"})
	if _, err := pgprovision.Reconcile(context.Background(), cfg, w.plan(spec), pgprovision.Options{Logger: w.logger()}); err != nil {
		w.t.Fatalf("provision tenant %s: %v", tn.ns, err)
	}
	p := w.plan(spec)
	tn.role, tn.db, tn.rolePW, tn.plan = p.Roles[0].Physical, p.Databases[0].Physical, pw, p
	conn := w.connect(tn.role, pw, tn.db)
	if _, err := conn.Exec(context.Background(), "CREATE TABLE patients (name text); INSERT INTO patients VALUES ('secret of "+tn.ns+"')"); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) connect(user, pw, db string) *pgx.Conn {
	conn, err := pgx.Connect(context.Background(), w.srv.DSN(user, pw, db))
	if err != nil {
		w.t.Fatalf("connect as %s to %s: %v", user, db, err)
	}
	w.t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// refused runs each attack as conn's user; every one must fail with a
// server error.
func refused(t *testing.T, conn *pgx.Conn, attacks []string) {
	t.Helper()
	for _, sql := range attacks {
		_, err := conn.Exec(context.Background(), sql)
		var pgErr *pgconn.PgError
		switch {
		case err == nil:
			t.Errorf("ATTACK SUCCEEDED as %s: %s", conn.Config().User, sql)
		case errors.As(err, &pgErr):
			t.Logf("refused (%s): %s: %s", pgErr.Code, sql, pgErr.Message)
		default:
			t.Errorf("%s: not a server refusal: %v", sql, err)
		}
	}
}

// loginRefused checks that user cannot connect to db.
func (w *world) loginRefused(user, pw, db string) {
	w.t.Helper()
	conn, err := pgx.Connect(context.Background(), w.srv.DSN(user, pw, db))
	if err == nil {
		conn.Close(context.Background())
		w.t.Errorf("ATTACK SUCCEEDED: %s connected to database %s", user, db)
		return
	}
	w.t.Logf("refused: %s connecting to %s: %v", user, db, err)
}

// TestMain shares one server per PostgreSQL version between the tests:
// every world uses names of its own.
func TestMain(m *testing.M) { pgtest.Main(m) }

// eachServer runs fn once per PostgreSQL major version the harness runs
// (pgtest.EachSharedVersion: 15 to 18; KOMMONS_PG_MAJORS selects a subset;
// a missing version fails under make test), logging the server's version.
func eachServer(t *testing.T, fn func(t *testing.T, srv *pgtest.Server, version int)) {
	pgtest.EachSharedVersion(t, func(t *testing.T, srv *pgtest.Server) {
		t.Logf("running on %s", srv.Version())
		fn(t, srv, srv.VersionNum())
	})
}

// TestTenantAgainstTenant provisions tenants a and b, then acts as a
// (its provisioner, and its module role) against b. On PostgreSQL 15 and
// older, onboarding two tenants is refused (ErrUnconfinedCreateRole), and
// the suite shows why: there, a CREATEROLE role can reset any
// non-superuser role's password.
func TestTenantAgainstTenant(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *pgtest.Server, version int) {
		for _, managed := range []bool{false, true} {
			name := "superuser-admin"
			if managed {
				name = "managed-admin"
			}
			t.Run(name, func(t *testing.T) {
				w := newWorld(t, srv, managed)
				if version < 160000 {
					err := w.onboard("a", "b")
					if !errors.Is(err, pgprovision.ErrUnconfinedCreateRole) {
						t.Fatalf("two tenants on %d: got %v, want ErrUnconfinedCreateRole", version, err)
					}
					t.Logf("two tenants refused on server_version_num %d: %v", version, err)
					demonstrateUnconfinedCreateRole(t, w)
					return
				}
				if err := w.onboard("a", "b"); err != nil {
					t.Fatal(err)
				}
				a, b := w.tenants["a"], w.tenants["b"]
				w.module(a)
				w.module(b)
				attackAsTenant(t, w, a, b)
			})
		}
	})
}

// demonstrateUnconfinedCreateRole shows, on a server older than 16, the
// attack that makes kommons refuse a second tenant there: one CREATEROLE
// role resets the password of a role another created.
func demonstrateUnconfinedCreateRole(t *testing.T, w *world) {
	if err := w.onboard("only"); err != nil {
		t.Fatalf("one tenant must be accepted: %v", err)
	}
	only := w.tenants["only"]
	w.module(only)
	pw := randomPassword()
	w.secrets = append(w.secrets, pw)
	other := "other_createrole_" + w.id
	w.srv.Exec(t, fmt.Sprintf("CREATE ROLE %s LOGIN CREATEROLE PASSWORD '%s'", other, pw))
	conn := w.connect(other, pw, "postgres")
	if _, err := conn.Exec(context.Background(), fmt.Sprintf("ALTER ROLE %s CONNECTION LIMIT 7", pgx.Identifier{only.role}.Sanitize())); err != nil {
		t.Fatalf("expected PostgreSQL <16 to let any CREATEROLE role alter another's role; got %v", err)
	}
	t.Logf("as expected before PostgreSQL 16: another CREATEROLE role altered %s: one tenant per server", only.role)
}

func attackAsTenant(t *testing.T, w *world, a, b *tenant) {
	ctx := context.Background()
	bRole, bDB, bProv := pgx.Identifier{b.role}.Sanitize(), pgx.Identifier{b.db}.Sanitize(), pgx.Identifier{b.prov.Role}.Sanitize()
	aProv, aRole := pgx.Identifier{a.prov.Role}.Sanitize(), pgx.Identifier{a.role}.Sanitize()

	// Connecting to b's database, as a's provisioner and as a's module.
	w.loginRefused(a.prov.Role, a.prov.Password, b.db)
	w.loginRefused(a.role, a.rolePW, b.db)
	// b's session, to be signalled.
	bConn := w.connect(b.role, b.rolePW, b.db)
	var bPID int
	if err := bConn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&bPID); err != nil {
		t.Fatal(err)
	}

	asProv := w.connect(a.prov.Role, a.prov.Password, "postgres")
	refused(t, asProv, []string{
		"SET ROLE " + bRole,
		"SET SESSION AUTHORIZATION " + bRole,
		"ALTER ROLE " + bRole + " PASSWORD 'taken-over-123'",
		"ALTER ROLE " + bRole + " CONNECTION LIMIT 1",
		"ALTER ROLE " + bRole + " NOLOGIN",
		"ALTER ROLE " + bRole + " RENAME TO stolen",
		"ALTER ROLE " + bRole + " SET search_path = evil",
		"COMMENT ON ROLE " + bRole + " IS '{\"managedBy\":\"kommons/pg-init\",\"namespace\":\"a\",\"release\":\"app\",\"name\":\"app\",\"reclaimPolicy\":\"delete\"}'",
		"DROP ROLE " + bRole,
		"GRANT " + bRole + " TO " + aProv,
		"GRANT " + bRole + " TO " + aRole,
		"REVOKE CONNECT ON DATABASE " + bDB + " FROM " + bRole,
		"ALTER DATABASE " + bDB + " OWNER TO " + aProv,
		"ALTER DATABASE " + bDB + " RENAME TO stolen",
		"ALTER DATABASE " + bDB + " SET search_path = evil",
		"ALTER DATABASE " + bDB + " CONNECTION LIMIT 0",
		"COMMENT ON DATABASE " + bDB + " IS 'forged'",
		"GRANT CONNECT ON DATABASE " + bDB + " TO " + aProv,
		"DROP DATABASE " + bDB,
		"CREATE DATABASE stolen_copy TEMPLATE " + bDB,
		"REASSIGN OWNED BY " + bRole + " TO " + aProv,
		"DROP OWNED BY " + bRole,
		"SELECT * FROM pg_authid",
		"SELECT * FROM pg_shadow",
		"ALTER ROLE " + bProv + " PASSWORD 'taken-over-123'",
		"ALTER ROLE " + bProv + " NOCREATEROLE",
		"DROP ROLE " + bProv,
		"GRANT " + bProv + " TO " + aProv,
		"SET ROLE " + bProv,
		fmt.Sprintf("SELECT pg_terminate_backend(%d)", bPID),
		fmt.Sprintf("SELECT pg_cancel_backend(%d)", bPID),
		"CREATE ROLE escalated SUPERUSER",
		"CREATE ROLE escalated REPLICATION",
		"CREATE ROLE escalated BYPASSRLS",
		"ALTER ROLE " + aProv + " SUPERUSER",
		"CREATE EVENT TRIGGER grab ON ddl_command_start EXECUTE FUNCTION pg_catalog.now()",
	})
	asModule := w.connect(a.role, a.rolePW, a.db)
	refused(t, asModule, []string{
		"SET ROLE " + bRole,
		"ALTER ROLE " + bRole + " PASSWORD 'taken-over-123'",
		"GRANT " + bRole + " TO " + aRole,
		"REASSIGN OWNED BY " + bRole + " TO " + aRole,
		"SELECT * FROM pg_authid",
		"CREATE EVENT TRIGGER grab ON ddl_command_start EXECUTE FUNCTION pg_catalog.now()",
	})
	// b's data, session and credentials are intact.
	var secret string
	if err := bConn.QueryRow(ctx, "SELECT name FROM patients").Scan(&secret); err != nil || secret != "secret of "+b.ns {
		t.Fatalf("b's session or data was disturbed: %q %v", secret, err)
	}
	// b's pg-init still finds everything its own: nothing was taken.
	spec := w.plan(specOf(b))
	rep, err := pgprovision.Reconcile(ctx, w.provCfg(b), spec, pgprovision.Options{Logger: w.logger()})
	if err != nil {
		t.Fatalf("b's pg-init after the attacks: %v", err)
	}
	if n := rep.Count(outcome.Created) + rep.Count(outcome.Refused); n != 0 {
		t.Fatalf("b's pg-init after the attacks: %d objects created or refused: %+v", n, rep.Objects)
	}
}

// twoTenants onboards tenants a and b (superuser admin), each with its
// module provisioned by its own provisioner.
func twoTenants(t *testing.T, srv *pgtest.Server) (*world, *tenant, *tenant) {
	w := newWorld(t, srv, false)
	if err := w.onboard("a", "b"); err != nil {
		t.Fatal(err)
	}
	a, b := w.tenants["a"], w.tenants["b"]
	w.module(a)
	w.module(b)
	return w, a, b
}

// twoConfinedTenants is twoTenants on PostgreSQL 16 and newer. Before 16 a
// server takes one tenant (TestTenantAgainstTenant checks the refusal), so
// an attack of one tenant on another does not apply: skipped, saying so.
func twoConfinedTenants(t *testing.T, srv *pgtest.Server, version int) (*world, *tenant, *tenant) {
	if version < 160000 {
		t.Skip("not applicable: one tenant per server before PostgreSQL 16 (TestTenantAgainstTenant checks the refusal), so no other tenant to attack")
	}
	return twoTenants(t, srv)
}

// specOf is the spec tn's module was provisioned with.
func specOf(tn *tenant) *pgprovision.Spec {
	s := &pgprovision.Spec{Scope: tn.plan.Scope}
	for _, r := range tn.plan.Roles {
		s.Roles = append(s.Roles, r.Role)
	}
	for _, d := range tn.plan.Databases {
		s.Databases = append(s.Databases, d.Database)
	}
	return s
}

// TestSquatting: tenant a creates a role and a database under the physical
// names tenant b's next module will use, with b's marker forged on them.
// b's pg-init must refuse both (an ownership conflict, exit 3 in the
// binary), even with --adopt for the role, and b's module must never use
// an object a controls.
func TestSquatting(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *pgtest.Server, version int) {
		w, a, b := twoConfinedTenants(t, srv, version)
		ctx := context.Background()
		spec, _ := w.spec(b, "next", "web", nil, nil)
		target := w.plan(spec)
		role, db := target.Roles[0].Physical, target.Databases[0].Physical
		forged := pgprovision.NewMarker(spec.Scope, "web", pgprovision.ReclaimRetain).String()
		asA := w.connect(a.prov.Role, a.prov.Password, "postgres")
		for _, sql := range []string{
			fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD 'known-to-a-123'", pgx.Identifier{role}.Sanitize()),
			fmt.Sprintf("COMMENT ON ROLE %s IS '%s'", pgx.Identifier{role}.Sanitize(), forged),
			fmt.Sprintf("GRANT %s TO %s WITH ADMIN OPTION", pgx.Identifier{role}.Sanitize(), pgx.Identifier{b.prov.Role}.Sanitize()),
		} {
			if _, err := asA.Exec(ctx, sql); err != nil {
				t.Fatalf("setting up the squat: %s: %v", sql, err)
			}
		}
		for _, adopt := range []bool{false, true} {
			rep, err := w.provision(b, spec, pgprovision.Options{Adopt: adopt})
			var conflict *pgprovision.ConflictError
			if !errors.As(err, &conflict) {
				t.Fatalf("adopt=%v: squatted role: got %v, want an ownership conflict", adopt, err)
			}
			o, _ := rep.Find(pgprovision.KindRole, role)
			if o.Action != outcome.Refused || !strings.Contains(o.Reason, a.prov.Role) {
				t.Fatalf("adopt=%v: role %+v: want refused naming %s", adopt, o, a.prov.Role)
			}
			t.Logf("adopt=%v: refused: %s", adopt, err)
		}
		// The squatted role kept the password a set: b's pg-init changed nothing.
		w.connect(role, "known-to-a-123", "postgres").Close(ctx)

		// A database squatted under b's next name, owned by a's module role.
		spec2, _ := w.spec(b, "other", "store", nil, nil)
		target2 := w.plan(spec2)
		db2 := target2.Databases[0].Physical
		forged2 := pgprovision.NewMarker(spec2.Scope, "store", pgprovision.ReclaimRetain).String()
		for _, sql := range []string{
			fmt.Sprintf("CREATE DATABASE %s OWNER %s", pgx.Identifier{db2}.Sanitize(), pgx.Identifier{a.role}.Sanitize()),
			fmt.Sprintf("COMMENT ON DATABASE %s IS '%s'", pgx.Identifier{db2}.Sanitize(), forged2),
		} {
			if _, err := asA.Exec(ctx, sql); err != nil {
				t.Fatalf("setting up the database squat: %s: %v", sql, err)
			}
		}
		rep, err := w.provision(b, spec2, pgprovision.Options{})
		var conflict *pgprovision.ConflictError
		if !errors.As(err, &conflict) {
			t.Fatalf("squatted database: got %v, want an ownership conflict", err)
		}
		o, _ := rep.Find(pgprovision.KindDatabase, db2)
		if o.Action != outcome.Refused || !strings.Contains(o.Reason, a.role) {
			t.Fatalf("database %+v: want refused naming its owner %s", o, a.role)
		}
		_ = db
	})
}

// TestForgedMarkersAreNotTrustedByPrune: tenant a marks its own role and
// database with b's scope and reclaimPolicy delete; b's pg-init --prune
// must neither drop them nor fail because of them.
func TestForgedMarkersAreNotTrustedByPrune(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *pgtest.Server, version int) {
		w, a, b := twoConfinedTenants(t, srv, version)
		ctx := context.Background()
		forged := pgprovision.NewMarker(b.plan.Scope, "decoy", pgprovision.ReclaimDelete).String()
		asA := w.connect(a.prov.Role, a.prov.Password, "postgres")
		for _, sql := range []string{
			"CREATE ROLE a_decoy_" + fmt.Sprint(time.Now().UnixNano()%100000) + " NOLOGIN",
			fmt.Sprintf("COMMENT ON ROLE %s IS '%s'", pgx.Identifier{a.role}.Sanitize(), forged),
		} {
			if _, err := asA.Exec(ctx, sql); err != nil {
				t.Fatal(err)
			}
		}
		asAModule := w.connect(a.role, a.rolePW, a.db)
		if _, err := asAModule.Exec(ctx, fmt.Sprintf("COMMENT ON DATABASE %s IS '%s'", pgx.Identifier{a.db}.Sanitize(), forged)); err != nil {
			t.Fatal(err)
		}
		rep, err := pgprovision.Reconcile(ctx, w.provCfg(b), w.plan(specOf(b)), pgprovision.Options{Prune: true, Logger: w.logger()})
		if err != nil {
			t.Fatalf("b's prune was broken by a's forged markers: %v", err)
		}
		if rep.Count(outcome.Deleted) != 0 {
			t.Fatalf("b's prune dropped something: %+v", rep.Pruned)
		}
		w.connect(a.role, a.rolePW, a.db).Close(ctx)
		t.Logf("forged markers reported, not trusted: %+v", rep.Pruned)
	})
}

// TestModuleRoleCannotHijackPgInit: a module role owns its database, so it
// may set the database's and its own search_path and create objects named
// like catalog relations and functions in the schemas it owns. pg-init's
// next run in that database (which lists a new extension and schema) must
// execute none of them, as a superuser admin or as the tenant's provisioner.
func TestModuleRoleCannotHijackPgInit(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *pgtest.Server, version int) {
		for _, asSuperuser := range []bool{true, false} {
			t.Run(fmt.Sprintf("superuser-admin=%v", asSuperuser), func(t *testing.T) {
				ctx := context.Background()
				w := newWorld(t, srv, false)
				ns := "hijack"
				if err := w.onboard(ns); err != nil {
					t.Fatal(err)
				}
				tn := w.tenants[ns]
				cfg := w.provCfg(tn)
				if asSuperuser {
					cfg = w.admin
				}
				w.moduleAs(tn, cfg)
				mod := w.connect(tn.role, tn.rolePW, tn.db)
				me := pgx.Identifier{tn.role}.Sanitize()
				for _, sql := range []string{
					"CREATE TABLE public.calls (who text, at timestamptz DEFAULT now())",
					"GRANT INSERT, SELECT ON public.calls TO PUBLIC",
					`CREATE FUNCTION public.pwn() RETURNS text LANGUAGE plpgsql AS $$
					BEGIN
						INSERT INTO public.calls(who) VALUES (current_user);
						BEGIN EXECUTE 'ALTER ROLE ` + strings.ReplaceAll(me, `"`, `""`) + ` SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END;
						RETURN 'pg_trgm';
					END $$`,
					"GRANT EXECUTE ON FUNCTION public.pwn() TO PUBLIC",
					"CREATE VIEW public.pg_extension AS SELECT public.pwn()::name AS extname",
					"CREATE VIEW public.pg_namespace AS SELECT public.pwn()::name AS nspname, 0::oid AS nspowner",
					"CREATE VIEW public.pg_available_extensions AS SELECT public.pwn()::name AS name, '1'::text AS default_version",
					"CREATE FUNCTION public.pg_get_userbyid(oid) RETURNS name LANGUAGE sql AS $$ SELECT public.pwn()::name $$",
					"CREATE FUNCTION public.current_setting(text) RETURNS text LANGUAGE sql AS $$ SELECT public.pwn() $$",
					"CREATE FUNCTION public.shobj_description(oid, name) RETURNS text LANGUAGE sql AS $$ SELECT public.pwn() $$",
					"CREATE FUNCTION public.eq_pwn(name, name) RETURNS boolean LANGUAGE sql AS $$ SELECT public.pwn() IS NOT NULL $$",
					"CREATE OPERATOR public.= (LEFTARG = name, RIGHTARG = name, FUNCTION = public.eq_pwn)",
					"ALTER DATABASE " + pgx.Identifier{tn.db}.Sanitize() + " SET search_path = public, pg_catalog",
					"ALTER ROLE " + me + " SET search_path = public, pg_catalog",
				} {
					if _, err := mod.Exec(ctx, sql); err != nil {
						t.Fatalf("setting up the trap: %s: %v", sql, err)
					}
				}
				refused(t, mod, []string{
					"CREATE EVENT TRIGGER grab ON ddl_command_start EXECUTE FUNCTION public.pwn()",
					"CREATE SCHEMA information_schema_x AUTHORIZATION postgres",
					"ALTER SCHEMA information_schema OWNER TO " + me,
					"CREATE OR REPLACE VIEW information_schema.schemata AS SELECT 1",
				})
				spec := specOf(tn)
				spec.Databases[0].Extensions = append(spec.Databases[0].Extensions, "citext")
				spec.Databases[0].Schemas = append(spec.Databases[0].Schemas, "audit2")
				rep, err := pgprovision.Reconcile(ctx, cfg, w.plan(spec), pgprovision.Options{Logger: w.logger()})
				if err != nil {
					t.Fatalf("pg-init in the trapped database: %v", err)
				}
				for _, want := range []struct{ kind, name string }{{pgprovision.KindExtension, "citext"}, {pgprovision.KindSchema, "audit2"}} {
					if o, ok := rep.Find(want.kind, want.name); !ok || o.Action != outcome.Created {
						t.Errorf("%s %s: %+v, want created", want.kind, want.name, o)
					}
				}
				var calls int
				var super bool
				if err := mod.QueryRow(ctx, "SELECT count(*) FROM public.calls").Scan(&calls); err != nil {
					t.Fatal(err)
				}
				if err := mod.QueryRow(ctx, "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user").Scan(&super); err != nil {
					t.Fatal(err)
				}
				if calls != 0 || super {
					t.Fatalf("pg-init executed the module role's code: %d calls, superuser=%v", calls, super)
				}
				var schema string
				if err := mod.QueryRow(ctx, "SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'citext'").Scan(&schema); err != nil || schema != "public" {
					t.Fatalf("citext installed in %q (%v), want public", schema, err)
				}
			})
		}
	})
}

// TestSystemSchemasRefusedInSpec: a spec naming a system schema is invalid
// (exit 2 in the binary), with or without --adopt.
func TestSystemSchemasRefusedInSpec(t *testing.T) {
	for _, sc := range []string{"information_schema", "pg_catalog", "pg_toast", "pg_temp_1", "pg_anything"} {
		spec := &pgprovision.Spec{Scope: pgprovision.Scope{Namespace: "n", Release: "r"},
			Roles:     []pgprovision.Role{{Name: "a", PasswordFile: "/dev/null"}},
			Databases: []pgprovision.Database{{Name: "a", Owner: "a", Schemas: []string{sc}}}}
		err := spec.Validate("spec.yaml")
		if err == nil || !strings.Contains(err.Error(), "databases[0].schemas[0]") {
			t.Errorf("schema %s: got %v, want a spec error naming databases[0].schemas[0]", sc, err)
		}
	}
}

// TestOrphanedSquatAgainstASuperuserAdmin is the attack a security review
// found against pg-init and bootstrap-provisioner run by a superuser admin
// (as commons' bundled admin is): tenant a creates, through a helper role,
// a role under tenant b's next physical name (and under the provisioner
// name of a tenant not yet onboarded), forges the marker, plants a SECURITY
// DEFINER function owned by it in a's own database that resets its
// password, and drops the helper, leaving a role nobody is a member of.
// Before the fix a superuser pg-init took it over (exit 0) and a then
// became b's module role. Now: refused (exit 3) unless --adopt, and a
// provisioner role is never adopted; a managed-service admin (no
// superuser) refuses both as well, even with --adopt.
func TestOrphanedSquatAgainstASuperuserAdmin(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *pgtest.Server, version int) {
		w, a, b := twoConfinedTenants(t, srv, version)
		ctx := context.Background()
		spec, _ := w.spec(b, "next", "web", nil, nil)
		squat := w.plan(spec).Roles[0].Physical
		futureProv := "kommons_tenant_c_" + w.id
		helper := "a_helper_" + w.id
		helperPW := randomPassword()
		w.secrets = append(w.secrets, helperPW)
		asA := w.connect(a.prov.Role, a.prov.Password, "postgres")
		asAMod := w.connect(a.role, a.rolePW, a.db)
		forged := pgprovision.NewMarker(spec.Scope, "web", pgprovision.ReclaimRetain).String()
		exec := func(conn *pgx.Conn, sql string) {
			t.Helper()
			if _, err := conn.Exec(ctx, sql); err != nil {
				t.Fatalf("setting up the squat: %s: %v", sql, err)
			}
		}
		exec(asA, fmt.Sprintf("CREATE ROLE %s LOGIN CREATEROLE PASSWORD '%s'", helper, helperPW))
		asHelper := w.connect(helper, helperPW, "postgres")
		for _, name := range []string{squat, futureProv} {
			q := pgx.Identifier{name}.Sanitize()
			exec(asHelper, "CREATE ROLE "+q+" NOLOGIN")
			exec(asHelper, "GRANT "+q+" TO CURRENT_USER WITH SET TRUE")
			exec(asAMod, "GRANT CREATE ON SCHEMA public TO "+q)
		}
		exec(asHelper, fmt.Sprintf("COMMENT ON ROLE %s IS '%s'", pgx.Identifier{squat}.Sanitize(), forged))
		exec(asAMod, "GRANT CONNECT ON DATABASE "+pgx.Identifier{a.db}.Sanitize()+" TO "+helper)
		asHelperInA := w.connect(helper, helperPW, a.db)
		for i, name := range []string{squat, futureProv} {
			exec(asHelperInA, "SET ROLE "+pgx.Identifier{name}.Sanitize())
			exec(asHelperInA, fmt.Sprintf(`CREATE FUNCTION public.pw%d(t text) RETURNS void LANGUAGE plpgsql SECURITY DEFINER
				AS $$BEGIN EXECUTE pg_catalog.format('ALTER ROLE %%I PASSWORD %%L', current_user, t); END$$`, i))
			exec(asHelperInA, "RESET ROLE")
			exec(asAMod, "REVOKE CREATE ON SCHEMA public FROM "+pgx.Identifier{name}.Sanitize())
		}
		asHelper.Close(ctx)
		asHelperInA.Close(ctx)
		exec(asAMod, "REVOKE CONNECT ON DATABASE "+pgx.Identifier{a.db}.Sanitize()+" FROM "+helper)
		exec(asA, "DROP ROLE "+helper) // the squats now have no member at all

		// b's next module, provisioned by a superuser admin.
		rep, err := pgprovision.Reconcile(ctx, w.admin, w.plan(spec), pgprovision.Options{Logger: w.logger()})
		var conflict *pgprovision.ConflictError
		if !errors.As(err, &conflict) {
			t.Fatalf("orphaned squat, superuser admin: got %v, want an ownership conflict", err)
		}
		if o, _ := rep.Find(pgprovision.KindRole, squat); o.Action != outcome.Refused || !strings.Contains(o.Reason, "did not create it") {
			t.Fatalf("role %+v: want refused, not created by this admin", o)
		}
		// Tenant c's provisioner, onboarded by commons' superuser admin.
		pw := randomPassword()
		w.secrets = append(w.secrets, pw)
		_, err = pgprovision.EnsureProvisioners(ctx, w.admin, []pgprovision.TenantProvisioner{{Namespace: "c-" + w.id, Role: futureProv, Password: pw}},
			pgprovision.ProvisionerOptions{Logger: w.logger()})
		if !errors.As(err, &conflict) {
			t.Fatalf("orphaned squat of a provisioner name: got %v, want an ownership conflict", err)
		}
		// The same squats, met by a managed-service admin (CREATEDB CREATEROLE,
		// no superuser): it holds no grant on them, so neither is its.
		managed := newWorld(t, srv, true)
		_, err = pgprovision.Reconcile(ctx, managed.admin, w.plan(spec), pgprovision.Options{Adopt: true, Logger: w.logger()})
		if !errors.As(err, &conflict) {
			t.Fatalf("orphaned squat, managed admin, even with --adopt: got %v, want an ownership conflict", err)
		}
		_, err = pgprovision.EnsureProvisioners(ctx, managed.admin, []pgprovision.TenantProvisioner{{Namespace: "c-" + w.id, Role: futureProv, Password: pw}},
			pgprovision.ProvisionerOptions{Logger: w.logger()})
		if !errors.As(err, &conflict) {
			t.Fatalf("orphaned squat of a provisioner name, managed admin: got %v, want an ownership conflict", err)
		}
		// Neither squat got a password nor login from kommons.
		var logins int
		if err := w.queryRow(srv.AdminDSN(), "SELECT count(*)::int FROM pg_catalog.pg_roles WHERE rolname = ANY($1) AND rolcanlogin",
			[]string{squat, futureProv}).Scan(&logins); err != nil || logins != 0 {
			t.Fatalf("squats that can log in: %d (%v)", logins, err)
		}
		t.Logf("refused: %v", err)
	})
}

// TestLegacyNamesPlantedByAnotherTenant: tenant b, through its own
// provisioner, plants a role and a database under the legacy names
// (pgnames.Legacy: version 1's 8-digit hash) of tenant a's next module, as
// if an earlier kommons had made them: a's marker forged on both, the
// database owned by the role, data in it and a session of the role open on
// it. a's pg-init, run by a's provisioner and by a superuser admin, even
// with --adopt and --prune (the forged markers say reclaimPolicy delete),
// must rename and drop neither (the server says they are b's: b's
// provisioner holds membership in the role, the role owns the database),
// must not end b's session, creates a's objects under their current names,
// and warns naming each legacy-named object it left alone and why.
func TestLegacyNamesPlantedByAnotherTenant(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *pgtest.Server, version int) {
		w, a, b := twoConfinedTenants(t, srv, version)
		ctx := context.Background()
		asB := w.connect(b.prov.Role, b.prov.Password, "postgres")
		for _, admin := range []struct {
			name string
			cfg  *pgx.ConnConfig
		}{{"provisioner", w.provCfg(a)}, {"superuser", w.admin}} {
			t.Run(admin.name, func(t *testing.T) {
				spec, _ := w.spec(a, "old"+admin.name[:3], "web", nil, nil)
				legacy, ok := pgnames.Legacy(spec.Scope.Namespace, spec.Scope.Release, "web")
				if !ok {
					t.Fatalf("scope %s has no legacy names: the test needs hashed names", spec.Scope)
				}
				current := w.plan(spec).Roles[0].Physical
				q := pgx.Identifier{legacy}.Sanitize()
				pwB := randomPassword()
				w.secrets = append(w.secrets, pwB)
				forged := pgprovision.NewMarker(spec.Scope, "web", pgprovision.ReclaimDelete).String() // bait for --prune
				for _, sql := range []string{
					fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", q, pwB),
					fmt.Sprintf("COMMENT ON ROLE %s IS '%s'", q, forged),
					"GRANT " + q + " TO CURRENT_USER WITH SET TRUE",
					"CREATE DATABASE " + q + " OWNER " + q,
					fmt.Sprintf("COMMENT ON DATABASE %s IS '%s'", q, forged),
				} {
					if _, err := asB.Exec(ctx, sql); err != nil {
						t.Fatalf("planting under a's legacy name: %s: %v", sql, err)
					}
				}
				bSession := w.connect(legacy, pwB, legacy)
				var pid int
				if _, err := bSession.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('b''s')"); err != nil {
					t.Fatal(err)
				}
				if err := bSession.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
					t.Fatal(err)
				}
				for _, adopt := range []bool{false, true} {
					from := len(w.logs.String())
					opts := pgprovision.Options{Adopt: adopt, Prune: adopt, Logger: w.logger()}
					rep, err := pgprovision.Reconcile(ctx, admin.cfg, w.plan(spec), opts)
					if err != nil {
						t.Fatalf("adopt=%v: a's pg-init: %v", adopt, err)
					}
					if n := rep.Count(outcome.Deleted); n != 0 {
						t.Errorf("adopt=%v: --prune deleted %d objects: %+v", adopt, n, rep.Pruned)
					}
					for _, kind := range []string{pgprovision.KindRole, pgprovision.KindDatabase} {
						o, _ := rep.Find(kind, current)
						if o.Physical != current || (o.Action != outcome.Created && o.Action != outcome.Unchanged) || strings.Contains(strings.Join(o.Changes, " "), "renamed") {
							t.Errorf("adopt=%v: %s %+v: want created (then unchanged) under %s, not renamed", adopt, kind, o, current)
						}
					}
					// The warnings name the object and why it is not a's: who
					// controls the role, who owns the database.
					logs := w.logs.String()[from:]
					for kind, why := range map[string]string{
						"role":     "other roles hold membership in it (" + b.prov.Role + ")",
						"database": "database exists owned by " + legacy + ", not by this scope's role " + current,
					} {
						warn := `"msg":"legacy-named ` + kind + ` left alone: it is not this scope's"`
						line := ""
						for _, l := range strings.Split(logs, "\n") {
							if strings.Contains(l, warn) {
								line = l
							}
						}
						if !strings.Contains(line, `"legacyName":"`+legacy+`"`) || !strings.Contains(line, why) {
							t.Errorf("adopt=%v: want a warning %s naming %s and %q:\n%s", adopt, warn, legacy, why, logs)
						} else if !adopt {
							t.Logf("%s", line)
						}
					}
				}
				// b's objects are as b left them, and b's session was not ended.
				var owner, roleMarker, dbMarker string
				if err := w.queryRow(srv.AdminDSN(), `SELECT pg_catalog.pg_get_userbyid(d.datdba), pg_catalog.shobj_description(r.oid, 'pg_authid'),
					pg_catalog.shobj_description(d.oid, 'pg_database') FROM pg_catalog.pg_database d, pg_catalog.pg_roles r
					WHERE d.datname = $1 AND r.rolname = $1`, legacy).Scan(&owner, &roleMarker, &dbMarker); err != nil {
					t.Fatalf("b's planted role or database is gone: %v", err)
				}
				if owner != legacy || roleMarker != forged || dbMarker != forged {
					t.Errorf("b's planted objects changed: owner %s, markers %q %q", owner, roleMarker, dbMarker)
				}
				var kept string
				var samePID int
				if err := bSession.QueryRow(ctx, "SELECT v, pg_backend_pid() FROM kept").Scan(&kept, &samePID); err != nil || kept != "b's" || samePID != pid {
					t.Fatalf("b's session was ended or its data changed: %q pid %d (was %d): %v", kept, samePID, pid, err)
				}
				w.connect(legacy, pwB, "postgres").Close(ctx) // b's password still works
				t.Logf("left alone: role and database %s (b's), a's objects under %s", legacy, current)
			})
		}
	})
}
