package isolation

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/kommons/kommons/internal/outcome"
	"github.com/kommons/kommons/internal/pgprovision"
	"github.com/kommons/kommons/internal/testutil/pgtest"
)

// TestPoolerRoleConnectOnly: pg-init --pooler-role (Options.PoolerRole)
// gives the pooler's auth_query role CONNECT on exactly the module's
// database: no other privilege there (no CREATE or TEMP, no schema or table
// access), no other database (a module provisioned without the option stays
// closed to it), no role membership. A missing role is skipped with a log
// line and granted on a later run; a rerun changes nothing.
func TestPoolerRoleConnectOnly(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *pgtest.Server, version int) {
		ctx := context.Background()
		w := newWorld(t, srv, false)
		if err := w.onboard("a"); err != nil {
			t.Fatal(err)
		}
		a := w.tenants["a"]
		pooler := "pooler_" + w.id
		spec, appPW := w.spec(a, "web", "app", nil, []string{"data"})
		appDB := w.plan(spec).Databases[0].Physical
		appRole := w.plan(spec).Roles[0].Physical

		// The role is missing: a documented skip, the database is made.
		rep, err := w.provision(a, spec, pgprovision.Options{PoolerRole: pooler})
		if err != nil {
			t.Fatalf("pg-init with a missing pooler role: %v", err)
		}
		if o, _ := rep.Find(pgprovision.KindDatabase, appDB); o.Action != outcome.Created {
			t.Errorf("database %s: %s, want created", appDB, o.Action)
		}
		if !strings.Contains(w.logs.String(), `"msg":"pooler role does not exist: no CONNECT granted to it"`) {
			t.Errorf("a missing pooler role is logged; logs: %s", w.logs.String())
		}

		poolerPW := randomPassword()
		w.secrets = append(w.secrets, poolerPW)
		srv.Exec(t, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", pooler, poolerPW))
		other, _ := w.spec(a, "web", "other", nil, nil)
		otherDB := w.plan(other).Databases[0].Physical
		t.Cleanup(func() {
			admin := pgtest.Connect(t, srv.AdminDSN())
			for _, db := range []string{appDB, otherDB} {
				_, _ = admin.Exec(context.Background(), "REVOKE ALL ON DATABASE "+pgx.Identifier{db}.Sanitize()+" FROM "+pooler)
			}
			_, _ = admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+pooler)
		})
		rep, err = w.provision(a, spec, pgprovision.Options{PoolerRole: pooler})
		if err != nil {
			t.Fatal(err)
		}
		if o, _ := rep.Find(pgprovision.KindDatabase, appDB); o.Action != outcome.Updated || !slices.Contains(o.Changes, "GRANT CONNECT to pooler role "+pooler) {
			t.Errorf("database %s: %s %v, want updated with the grant", appDB, o.Action, o.Changes)
		}
		if _, err := w.provision(a, other, pgprovision.Options{}); err != nil {
			t.Fatal(err)
		}
		app := w.connect(appRole, appPW, appDB)
		if _, err := app.Exec(ctx, "CREATE TABLE public.patients (name text); CREATE TABLE data.notes (note text); INSERT INTO public.patients VALUES ('secret')"); err != nil {
			t.Fatal(err)
		}

		admin := pgtest.Connect(t, srv.AdminDSN())
		var closed []string
		if err := admin.QueryRow(ctx, `SELECT coalesce(array_agg(datname ORDER BY datname), '{}') FROM pg_database
			WHERE has_database_privilege($1, oid, 'CONNECT') AND NOT has_database_privilege('public', oid, 'CONNECT')`, pooler).Scan(&closed); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(closed, []string{appDB}) {
			t.Errorf("databases closed to PUBLIC that %s may connect to: %v, want exactly [%s]", pooler, closed, appDB)
		}
		var create, temp, otherConnect, usage, sel bool
		var members int
		if err := admin.QueryRow(ctx, `SELECT has_database_privilege($1, $2, 'CREATE'), has_database_privilege($1, $2, 'TEMP'),
			has_database_privilege($1, $3, 'CONNECT'),
			(SELECT count(*) FROM pg_auth_members WHERE member = $1::regrole)`, pooler, appDB, otherDB).
			Scan(&create, &temp, &otherConnect, &members); err != nil {
			t.Fatal(err)
		}
		if create || temp || otherConnect || members != 0 {
			t.Errorf("%s: CREATE %v, TEMP %v on %s, CONNECT %v on %s, %d role memberships; want none", pooler, create, temp, appDB, otherConnect, otherDB, members)
		}
		pc := w.connect(pooler, poolerPW, appDB)
		if err := pc.QueryRow(ctx, `SELECT has_schema_privilege('data', 'USAGE'), has_table_privilege('public.patients', 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER')`).Scan(&usage, &sel); err != nil {
			t.Fatal(err)
		}
		if usage || sel {
			t.Errorf("%s in %s: USAGE on schema data %v, a privilege on public.patients %v; want neither", pooler, appDB, usage, sel)
		}
		refused(t, pc, []string{"SELECT * FROM public.patients", "SELECT * FROM data.notes", "CREATE TABLE public.x (i int)", "CREATE TEMP TABLE x (i int)"})
		w.loginRefused(pooler, poolerPW, otherDB)

		// Rerun: nothing changes, the ACL neither.
		var before, after string
		if err := admin.QueryRow(ctx, "SELECT datacl::text FROM pg_database WHERE datname = $1", appDB).Scan(&before); err != nil {
			t.Fatal(err)
		}
		rep, err = w.provision(a, spec, pgprovision.Options{PoolerRole: pooler})
		if err != nil {
			t.Fatal(err)
		}
		if o, _ := rep.Find(pgprovision.KindDatabase, appDB); o.Action != outcome.Unchanged {
			t.Errorf("rerun: database %s %s %v, want unchanged", appDB, o.Action, o.Changes)
		}
		if err := admin.QueryRow(ctx, "SELECT datacl::text FROM pg_database WHERE datname = $1", appDB).Scan(&after); err != nil {
			t.Fatal(err)
		}
		if before != after {
			t.Errorf("rerun changed %s's ACL: %s -> %s", appDB, before, after)
		}
		t.Logf("%s: CONNECT on %s only (ACL %s); no CREATE/TEMP, no schema or table privilege, no other database", pooler, appDB, after)
	})
}

// cnpgPoolerRole is the role CloudNativePG's PgBouncer runs its auth_query as.
const cnpgPoolerRole = "cnpg_pooler_pgbouncer"

// TestPoolerAuthFunctionAgainstDatabaseOwner sets a server up as
// CloudNativePG 1.27 does for a Pooler (role cnpg_pooler_pgbouncer, and
// public.user_search(text), SECURITY DEFINER, owned by the superuser, no
// pinned search_path, in template1 and postgres), provisions a module with
// pg-init --pooler-role, and attacks as the module's role, the owner of its
// database and (pg_database_owner) of its schema public. Unhardened, the
// module role becomes a superuser the first time the pooler role looks a
// user up in its database (an "=" operator of its own, found first through
// the database's search_path, runs inside the SECURITY DEFINER function).
// After pgprovision.HardenPoolerAuth (pg-init bootstrap-provisioner
// --pooler-role) the same attack, and dropping, renaming, replacing or
// shadowing the function, fail or have no effect, in the module's existing
// database and in one created afterwards from template1.
func TestPoolerAuthFunctionAgainstDatabaseOwner(t *testing.T) {
	pgtest.EachVersion(t, func(t *testing.T, srv *pgtest.Server) {
		ctx := context.Background()
		t.Logf("running on %s", srv.Version())
		w := newWorld(t, srv, false)
		poolerPW := randomPassword()
		w.secrets = append(w.secrets, poolerPW)
		srv.Exec(t, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", cnpgPoolerRole, poolerPW))
		for _, db := range []string{"template1", "postgres"} {
			c := pgtest.Connect(t, srv.DSN(pgtest.AdminUser, srv.AdminPassword(), db))
			for _, sql := range []string{
				// As the operator's instance manager makes it (1.27.1).
				"CREATE OR REPLACE FUNCTION public.user_search(uname TEXT) RETURNS TABLE (usename name, passwd text) as '" +
					pgprovision.PoolerAuthFunctionSource + "' LANGUAGE sql SECURITY DEFINER",
				"REVOKE ALL ON FUNCTION public.user_search(text) FROM public",
				"GRANT EXECUTE ON FUNCTION public.user_search(text) TO " + cnpgPoolerRole,
			} {
				if _, err := c.Exec(ctx, sql); err != nil {
					t.Fatalf("%s: %s: %v", db, sql, err)
				}
			}
			c.Close(ctx)
		}
		if err := w.onboard("a"); err != nil {
			t.Fatal(err)
		}
		a := w.tenants["a"]
		spec, pw := w.spec(a, "web", "app", nil, nil)
		if _, err := w.provision(a, spec, pgprovision.Options{PoolerRole: cnpgPoolerRole}); err != nil {
			t.Fatal(err)
		}
		role, db := w.plan(spec).Roles[0].Physical, w.plan(spec).Databases[0].Physical
		admin := pgtest.Connect(t, srv.AdminDSN())
		isSuper := func() bool {
			var s bool
			if err := admin.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = $1", role).Scan(&s); err != nil {
				t.Fatal(err)
			}
			return s
		}
		// lookup is PgBouncer's auth_query in a new session of the pooler
		// role in db: parsed with an untyped parameter, as PgBouncer sends it.
		lookup := func(db, user string) (string, error) {
			c, err := pgx.Connect(ctx, srv.DSN(cnpgPoolerRole, poolerPW, db))
			if err != nil {
				return "", err
			}
			defer c.Close(ctx)
			var name, verifier string
			err = c.QueryRow(ctx, "SELECT usename, passwd FROM public.user_search($1)", user).Scan(&name, &verifier)
			return verifier, err
		}
		var want string
		if err := admin.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", role).Scan(&want); err != nil {
			t.Fatal(err)
		}

		// The module role plants an "=" (name, text) and puts public before
		// pg_catalog in its database's search_path.
		mod := w.connect(role, pw, db)
		for _, sql := range []string{
			`CREATE FUNCTION public.evil_eq(name, text) RETURNS boolean LANGUAGE plpgsql AS $$
			BEGIN
				IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
					EXECUTE pg_catalog.format('ALTER ROLE %I SUPERUSER', '` + role + `');
				END IF;
				RETURN $1::pg_catalog.text OPERATOR(pg_catalog.=) $2;
			END $$`,
			"CREATE OPERATOR public.= (LEFTARG = name, RIGHTARG = text, FUNCTION = public.evil_eq)",
			"ALTER DATABASE " + pgx.Identifier{db}.Sanitize() + " SET search_path = public, pg_catalog",
		} {
			if _, err := mod.Exec(ctx, sql); err != nil {
				t.Fatalf("as the database's owner: %s: %v", sql, err)
			}
		}
		// Unhardened: the lookup makes the module role a superuser.
		if got, err := lookup(db, role); err != nil || got != want {
			t.Errorf("unhardened lookup: %v (same verifier: %v)", err, got == want)
		}
		if !isSuper() {
			t.Fatalf("the unhardened function did not call the planted operator: the attack this test guards against is not exercised")
		}
		t.Logf("UNHARDENED (as CloudNativePG 1.27.1 makes it): one auth_query lookup in %s made %s a superuser", db, role)
		srv.Exec(t, "ALTER ROLE "+pgx.Identifier{role}.Sanitize()+" NOSUPERUSER")

		// A non-superuser admin is refused with a clear error.
		_, err := pgprovision.HardenPoolerAuth(ctx, w.provCfg(a), cnpgPoolerRole, w.logger())
		if err == nil || !strings.Contains(err.Error(), "is not a superuser") {
			t.Errorf("HardenPoolerAuth as a tenant provisioner: %v, want a refusal naming the missing superuser", err)
		}
		res, err := pgprovision.HardenPoolerAuth(ctx, w.admin, cnpgPoolerRole, w.logger())
		if err != nil {
			t.Fatal(err)
		}
		changed := map[string][]string{}
		for _, r := range res {
			changed[r.Database] = r.Changes
		}
		for _, d := range []string{"template1", "postgres", db} {
			if len(changed[d]) == 0 {
				t.Errorf("database %s: nothing hardened (%v)", d, changed)
			}
		}
		t.Logf("hardened: %v", changed)
		res, err = pgprovision.HardenPoolerAuth(ctx, w.admin, cnpgPoolerRole, w.logger())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if len(r.Changes) > 0 {
				t.Errorf("rerun changed %s: %v", r.Database, r.Changes)
			}
		}

		// A database created afterwards inherits the hardening from template1.
		later, _ := w.spec(a, "web", "later", nil, nil)
		if _, err := w.provision(a, later, pgprovision.Options{PoolerRole: cnpgPoolerRole}); err != nil {
			t.Fatal(err)
		}
		laterRole, laterDB := w.plan(later).Roles[0].Physical, w.plan(later).Databases[0].Physical
		for _, d := range []string{db, laterDB} {
			c := pgtest.Connect(t, srv.DSN(pgtest.AdminUser, srv.AdminPassword(), d))
			var owner, config string
			var secdef bool
			if err := c.QueryRow(ctx, `SELECT (SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'public'),
				p.prosecdef, array_to_string(p.proconfig, ';') FROM pg_proc p WHERE p.oid = 'public.user_search(text)'::regprocedure`).
				Scan(&owner, &secdef, &config); err != nil {
				t.Fatalf("%s: %v", d, err)
			}
			if owner != pgtest.AdminUser || !secdef || config != "search_path=pg_catalog, pg_temp" {
				t.Errorf("%s: public owned by %s, user_search SECURITY DEFINER %v, config %q", d, owner, secdef, config)
			}
		}

		// The same attack, hardened: the lookup is right, no superuser.
		if got, err := lookup(db, role); err != nil || got != want {
			t.Errorf("hardened lookup: %v (same verifier: %v)", err, got == want)
		}
		if isSuper() {
			t.Errorf("ATTACK SUCCEEDED: %s became a superuser through the hardened function", role)
		}
		// Dropping, renaming, replacing, re-owning the function or the schema.
		refused(t, mod, []string{
			"DROP FUNCTION public.user_search(text)",
			"ALTER SCHEMA public RENAME TO public_old",
			"DROP SCHEMA public CASCADE",
			"ALTER FUNCTION public.user_search(text) RESET search_path",
			"ALTER FUNCTION public.user_search(text) OWNER TO " + pgx.Identifier{role}.Sanitize(),
			"CREATE OR REPLACE FUNCTION public.user_search(uname text) RETURNS TABLE (usename name, passwd text) LANGUAGE sql AS $$ SELECT $1::name, 'forged' $$",
			"SELECT * FROM public.user_search('postgres')",
		})
		// Shadowing: an overload, and a schema of its own first in the
		// database's search_path. PgBouncer's query names public and
		// passes an untyped parameter: user_search(text) is taken.
		for _, sql := range []string{
			"CREATE FUNCTION public.user_search(uname name) RETURNS TABLE (usename name, passwd text) LANGUAGE sql AS $$ SELECT $1, 'forged' $$",
			"CREATE FUNCTION public.user_search(uname varchar) RETURNS TABLE (usename name, passwd text) LANGUAGE sql AS $$ SELECT $1::name, 'forged' $$",
			"CREATE SCHEMA shadow",
			"CREATE FUNCTION shadow.user_search(uname text) RETURNS TABLE (usename name, passwd text) LANGUAGE sql AS $$ SELECT $1::name, 'forged' $$",
			"GRANT USAGE ON SCHEMA shadow TO PUBLIC",
			"ALTER DATABASE " + pgx.Identifier{db}.Sanitize() + " SET search_path = shadow, public, pg_catalog",
			"CREATE TABLE public.still_mine (i int)",
		} {
			if _, err := mod.Exec(ctx, sql); err != nil {
				t.Fatalf("as the database's owner: %s: %v", sql, err)
			}
		}
		for _, u := range []string{role, pgtest.AdminUser, laterRole} {
			var real string
			if err := admin.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", u).Scan(&real); err != nil {
				t.Fatal(err)
			}
			if got, err := lookup(db, u); err != nil || got != real {
				t.Errorf("ATTACK SUCCEEDED: lookup of %s in %s returned a planted verifier (%v)", u, db, err)
			}
		}
		// The pooler role reads no verifier but through the function.
		pc := w.connect(cnpgPoolerRole, poolerPW, db)
		refused(t, pc, []string{"SELECT rolpassword FROM pg_catalog.pg_authid", "SELECT passwd FROM pg_catalog.pg_shadow"})
		// A rerun drops the planted overloads.
		res, err = pgprovision.HardenPoolerAuth(ctx, w.admin, cnpgPoolerRole, w.logger())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Database == db && len(r.Changes) != 2 {
				t.Errorf("rerun in %s: %v, want the two planted overloads dropped", db, r.Changes)
			}
		}
		var n int
		if err := mod.QueryRow(ctx, "SELECT count(*) FROM pg_proc WHERE proname = 'user_search' AND pronamespace = 'public'::regnamespace").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("%d functions public.user_search after the rerun, want 1", n)
		}

		// CloudNativePG's instance manager runs "rolname = '...'" as the
		// superuser in every database, with the database's search_path.
		if _, err := mod.Exec(ctx, `CREATE FUNCTION public.evil_nn(name, name) RETURNS boolean LANGUAGE plpgsql AS $$
			BEGIN
				IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) current_user) THEN
					EXECUTE pg_catalog.format('ALTER ROLE %I SUPERUSER', '`+role+`');
				END IF;
				RETURN $1 OPERATOR(pg_catalog.=) $2;
			END $$;
			CREATE OPERATOR public.= (LEFTARG = name, RIGHTARG = name, FUNCTION = public.evil_nn)`); err != nil {
			t.Fatal(err)
		}
		instanceManager := func() {
			c := pgtest.Connect(t, srv.DSN(pgtest.AdminUser, srv.AdminPassword(), db))
			var exists bool
			if err := c.QueryRow(ctx, "SELECT COUNT(*) > 0 FROM pg_catalog.pg_roles WHERE rolname = '"+cnpgPoolerRole+"'").Scan(&exists); err != nil || !exists {
				t.Errorf("the instance manager's query: %v, %v", exists, err)
			}
			c.Close(ctx)
		}
		instanceManager()
		if !isSuper() {
			t.Fatalf("without a role search_path, the superuser's unqualified = in %s did not call the planted operator: the attack is not exercised", db)
		}
		t.Logf("UNPINNED: the instance manager's query as %s in %s made %s a superuser", pgtest.AdminUser, db, role)
		srv.Exec(t, "ALTER ROLE "+pgx.Identifier{role}.Sanitize()+" NOSUPERUSER")
		if err := pgprovision.PinAdminSearchPath(ctx, w.admin, w.logger()); err != nil {
			t.Fatal(err)
		}
		instanceManager()
		if isSuper() {
			t.Errorf("ATTACK SUCCEEDED: %s became a superuser through the superuser's session in its database", role)
		}
		var settings []string
		if err := admin.QueryRow(ctx, `SELECT array_agg(r.rolname || ':' || array_to_string(s.setconfig, ';') ORDER BY r.rolname)
			FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole WHERE s.setdatabase = 0`).Scan(&settings); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(settings, []string{cnpgPoolerRole + `:search_path="$user", public`, pgtest.AdminUser + `:search_path="$user", public`}) {
			t.Errorf("role settings: %v", settings)
		}
		// An explicit role setting is left alone.
		srv.Exec(t, "ALTER ROLE "+cnpgPoolerRole+" SET search_path = pg_catalog")
		if _, err := pgprovision.HardenPoolerAuth(ctx, w.admin, cnpgPoolerRole, w.logger()); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(w.logs.String(), `"msg":"role has a search_path of its own: left alone","role":"`+cnpgPoolerRole+`","setting":"search_path=pg_catalog"`) {
			t.Errorf("an explicit role search_path is logged and kept")
		}
	})
}
