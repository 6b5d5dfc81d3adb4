package pgprovision

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/outcome"
	"github.com/kommons/kommons/internal/pgnames"
	"github.com/kommons/kommons/internal/testutil/pgtest"
)

// legacyPlan is plan as kommons before the 64-bit hash named it: every
// hashed name replaced by its version 1 name (pgnames.Legacy). Reconciling
// it creates what an earlier pg-init created, markers included.
func legacyPlan(t *testing.T, spec *Spec) *Plan {
	plan, err := NewPlan("test", spec)
	require.NoError(t, err)
	old := func(logical, current string) string {
		if n, ok := pgnames.Legacy(spec.Scope.Namespace, spec.Scope.Release, logical); ok {
			return n
		}
		return current
	}
	owners := map[string]string{}
	for i := range plan.Roles {
		pr := &plan.Roles[i]
		pr.Physical, pr.Legacy = old(pr.Name, pr.Physical), ""
		owners[pr.Name] = pr.Physical
	}
	for i := range plan.Databases {
		pd := &plan.Databases[i]
		pd.Physical, pd.Legacy, pd.OwnerPhysical = old(pd.Name, pd.Physical), "", owners[pd.Owner]
	}
	return plan
}

func (e *env) reconcilePlan(cfg *pgx.ConnConfig, plan *Plan, opts Options) (*Report, error) {
	e.t.Helper()
	opts.Logger = slog.New(slog.NewJSONHandler(e, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return Reconcile(ctx, cfg, plan, opts)
}

func legacyName(t *testing.T, s Scope, name string) string {
	n, ok := pgnames.Legacy(s.Namespace, s.Release, name)
	require.True(t, ok, "%s/%s has a legacy name", s, name)
	return n
}

func exists(t *testing.T, srv *pgtest.Server, catalog, column, name string) bool {
	var n int
	queryRow(t, srv.AdminDSN(), "SELECT count(*) FROM pg_catalog."+catalog+" WHERE "+column+" = $1", []any{name}, &n)
	return n > 0
}

func comment(t *testing.T, srv *pgtest.Server, kind, name string) string {
	var c *string
	if kind == KindRole {
		queryRow(t, srv.AdminDSN(), "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1", []any{name}, &c)
	} else {
		queryRow(t, srv.AdminDSN(), "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1", []any{name}, &c)
	}
	return deref(c)
}

// TestLegacyNamesAreRenamed: objects an earlier version created under
// 32-bit-hash names are renamed to the 64-bit names on every version, by a
// superuser admin and (16+) by the tenant's provisioner: password, data and
// markers kept, the module's open session ended, an MD5 verifier (cleared
// by the rename) set again, a foreign role under a legacy name untouched.
func TestLegacyNamesAreRenamed(t *testing.T) {
	pgtest.EachSharedVersion(t, func(t *testing.T, srv *pgtest.Server) {
		t.Run("superuser", func(t *testing.T) {
			e := newEnv(t, srv)
			testLegacyRename(t, e, e.cfg)
		})
		if srv.Major() < 16 {
			return
		}
		t.Run("provisioner", func(t *testing.T) {
			e := newEnv(t, srv)
			prov := "legacy_prov_" + uniqueRelease()
			pw := "prov-" + strings.Repeat("q", 12)
			e.passwords = append(e.passwords, pw)
			_, err := EnsureProvisioners(context.Background(), e.cfg, []TenantProvisioner{{Namespace: "team-a", Role: prov, Password: pw}},
				ProvisionerOptions{Logger: slog.New(slog.NewJSONHandler(e, nil))})
			require.NoError(t, err)
			cfg, err := pgx.ParseConfig(srv.DSN(prov, pw, "postgres"))
			require.NoError(t, err)
			testLegacyRename(t, e, cfg)
		})
	})
}

func testLegacyRename(t *testing.T, e *env, admin *pgx.ConnConfig) {
	srv := e.srv
	scope := Scope{Namespace: "team-a", Release: "web-" + uniqueRelease()}
	appPath, appPW := e.password(scope.String() + "app")
	md5Path, md5PW := e.password(scope.String() + "md5")
	otherPath, _ := e.password(scope.String() + "other")
	spec := &Spec{Scope: scope,
		Roles:     []Role{{Name: "app", PasswordFile: appPath}, {Name: "md5", PasswordFile: md5Path}, {Name: "other", PasswordFile: otherPath}},
		Databases: []Database{{Name: "app", Owner: "app", Schemas: []string{"s1"}}}}
	app, oldApp := phys(t, scope, "app"), legacyName(t, scope, "app")
	md5, oldMD5 := phys(t, scope, "md5"), legacyName(t, scope, "md5")
	other, oldOther := phys(t, scope, "other"), legacyName(t, scope, "other")

	// What an earlier version created, with data inside; then a role under
	// "other"'s legacy name that is not this scope's, and an MD5 verifier.
	old := legacyPlan(t, spec)
	old.Roles = old.Roles[:2]
	_, err := e.reconcilePlan(admin, old, Options{})
	require.NoError(t, err)
	held := pgtest.Connect(t, srv.DSN(oldApp, appPW, oldApp))
	ctx := context.Background()
	_, err = held.Exec(ctx, "CREATE TABLE s1.studies (id int PRIMARY KEY); INSERT INTO s1.studies VALUES (42)")
	require.NoError(t, err)
	srv.Exec(t, "CREATE ROLE "+oldOther+" NOLOGIN CREATEDB")
	t.Cleanup(func() { srv.Exec(t, "DROP ROLE IF EXISTS "+oldOther) })
	srv.Exec(t, "SET password_encryption = 'md5'; ALTER ROLE "+oldMD5+" PASSWORD '"+strings.ReplaceAll(md5PW, "'", "''")+"'")
	markers := map[string]string{"role:app": comment(t, srv, KindRole, oldApp), "database:app": comment(t, srv, KindDatabase, oldApp)}

	rep, err := e.reconcileAs(admin, spec, Options{})
	require.NoError(t, err)
	ra, _ := rep.Find(KindRole, app)
	assert.Equal(t, outcome.Updated, ra.Action)
	assert.Equal(t, []string{"renamed from " + oldApp}, ra.Changes, "a SCRAM verifier survives the rename")
	rm, _ := rep.Find(KindRole, md5)
	assert.Equal(t, outcome.Updated, rm.Action)
	assert.Contains(t, rm.Changes, "renamed from "+oldMD5)
	ro, _ := rep.Find(KindRole, other)
	assert.Equal(t, outcome.Created, ro.Action, "a legacy-named role of someone else is not this scope's")
	da, _ := rep.Find(KindDatabase, app)
	assert.Equal(t, outcome.Updated, da.Action)
	assert.Equal(t, []string{"renamed from " + oldApp}, da.Changes)

	for _, n := range []string{oldApp, oldMD5} {
		assert.False(t, exists(t, srv, "pg_roles", "rolname", n), n)
	}
	assert.False(t, exists(t, srv, "pg_database", "datname", oldApp))
	require.NoError(t, login(srv, app, appPW, app), "the password works under the new name")
	require.NoError(t, login(srv, md5, md5PW, "postgres"), "the MD5 verifier cleared by the rename was set again")
	var id int
	queryRow(t, srv.DSN(app, appPW, app), "SELECT id FROM s1.studies", nil, &id)
	assert.Equal(t, 42, id, "the data is kept")
	assert.Equal(t, markers, map[string]string{"role:app": comment(t, srv, KindRole, app), "database:app": comment(t, srv, KindDatabase, app)}, "markers kept")
	_, err = held.Exec(ctx, "SELECT 1")
	assert.Error(t, err, "the module's session on the old database was ended")
	var createDB bool
	queryRow(t, srv.AdminDSN(), "SELECT rolcreatedb FROM pg_roles WHERE rolname = $1", []any{oldOther}, &createDB)
	assert.True(t, createDB, "the foreign legacy-named role is untouched")
	assert.Empty(t, comment(t, srv, KindRole, oldOther))

	rep, err = e.reconcileAs(admin, spec, Options{})
	require.NoError(t, err)
	assert.Equal(t, 0, rep.Count(outcome.Created)+rep.Count(outcome.Updated), "the rerun changes nothing")
}

// TestLegacyRenameRefusedWhileOthersAreConnected: sessions of roles outside
// the scope are never ended; the rename fails after its attempts naming
// them, and the legacy database is left as it was.
func TestLegacyRenameRefusedWhileOthersAreConnected(t *testing.T) {
	srv := pgtest.Shared(t)
	e := newEnv(t, srv)
	scope := Scope{Namespace: "team-b", Release: "busy-" + uniqueRelease()}
	spec, _ := e.module(scope, "app")
	_, err := e.reconcilePlan(e.cfg, legacyPlan(t, spec), Options{})
	require.NoError(t, err)
	oldApp := legacyName(t, scope, "app")
	pgtest.Connect(t, srv.DSN(pgtest.AdminUser, srv.AdminPassword(), oldApp)) // the admin's own session

	_, err = e.reconcile(spec, Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "rename database "+oldApp)
	assert.Contains(t, err.Error(), "sessions of "+pgtest.AdminUser+" are connected")
	assert.False(t, Retryable(err))
	assert.True(t, exists(t, srv, "pg_database", "datname", oldApp), "the legacy database is kept")
}

// TestVersion1CollidingScopesBothProvision: two Kubernetes-valid scopes
// whose 32-bit names collided (the second one got exit 3 before) each get
// their own objects.
func TestVersion1CollidingScopesBothProvision(t *testing.T) {
	srv := pgtest.Shared(t)
	e := newEnv(t, srv)
	name := func(i string) string { return "db_" + strings.Repeat("x", 48) + "_" + i }
	a, b := Scope{Namespace: "team-a", Release: "web"}, Scope{Namespace: "team", Release: "a-web"}
	require.Equal(t, legacyName(t, a, name("18146")), legacyName(t, b, name("17780")), "the pair collides under version 1")
	specA, pwA := e.module(a, name("18146"))
	specB, pwB := e.module(b, name("17780"))
	_, err := e.reconcile(specA, Options{})
	require.NoError(t, err)
	_, err = e.reconcile(specB, Options{})
	require.NoError(t, err, "the second scope is not refused")
	na, nb := phys(t, a, name("18146")), phys(t, b, name("17780"))
	assert.NotEqual(t, na, nb)
	require.NoError(t, login(srv, na, pwA, na))
	require.NoError(t, login(srv, nb, pwB, nb))
}
