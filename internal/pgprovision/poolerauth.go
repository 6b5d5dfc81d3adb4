package pgprovision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kommons/kommons/internal/pgconfig"
	"github.com/kommons/kommons/internal/redact"
)

// PoolerAuthFunctionSource is the body of CloudNativePG's (1.27)
// public.user_search(text), the function its PgBouncer's auth_query
// ("SELECT usename, passwd FROM public.user_search($1)") calls in the
// database a client logs in to. The operator's instance manager creates the
// function in every database where no function of that name has this body,
// so HardenPoolerAuth keeps the body byte for byte: the operator then leaves
// the hardened function alone.
const PoolerAuthFunctionSource = "SELECT usename, passwd FROM pg_catalog.pg_shadow WHERE usename=$1;"

// poolerAuthSearchPath is the search_path the hardened function runs with:
// its "=" can only be pg_catalog's, whatever the database's or the
// session's search_path says.
const poolerAuthSearchPath = "search_path=pg_catalog, pg_temp"

// PoolerAuthResult is what HardenPoolerAuth changed in one database.
type PoolerAuthResult struct {
	Database string
	// Changes lists the statements' purposes; empty when nothing changed.
	Changes []string
}

// HardenPoolerAuth makes the auth_query function of CloudNativePG's
// PgBouncer safe against the owners of the databases it runs in. As the
// operator creates it, public.user_search(text) is a SECURITY DEFINER
// function owned by the superuser without a pinned search_path, in a schema
// that on PostgreSQL 15+ the database's owner owns (pg_database_owner): a
// module role owning its database can set the database's search_path and
// add an "=" operator the function then calls as the superuser, or rename
// public and plant its own user_search, which the pooler role then runs
// (and which can call the renamed original to read every role's password
// verifier). In template1 (so every database created later inherits it)
// and in every database that accepts connections, HardenPoolerAuth, as a
// superuser:
//   - makes the superuser the owner of schema public, granting USAGE and
//     CREATE to pg_database_owner (the database's owner still creates
//     objects there, but can no longer rename or drop the schema or what
//     others own in it);
//   - drops every function named user_search in public that a non-superuser
//     owns (a planted one or an overload);
//   - creates or replaces public.user_search(text) with the operator's
//     body, SECURITY DEFINER, search_path pinned to pg_catalog, pg_temp,
//     EXECUTE for role only;
//
// and creates role (LOGIN, as the operator does) when it is missing, and
// pins its own search_path (PinRoleSearchPath).
// Reruns change nothing. The admin of cfg must be a superuser.
func HardenPoolerAuth(ctx context.Context, cfg *pgx.ConnConfig, role string, log *slog.Logger) ([]PoolerAuthResult, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !roleName.MatchString(role) {
		return nil, fmt.Errorf("pooler role %q: want a lower-case identifier of at most 63 bytes", role)
	}
	redactErr := func(err error) error { return redact.Error(err, cfg.Password) }
	cfg = pinSearchPath(cfg)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, redactErr(fmt.Errorf("connect as admin (%s): %w", pgconfig.Describe(cfg), err))
	}
	defer conn.Close(context.Background())
	var admin string
	var super bool
	if err := conn.QueryRow(ctx, "SELECT CURRENT_USER, r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER").Scan(&admin, &super); err != nil {
		return nil, redactErr(fmt.Errorf("read admin role: %w", err))
	}
	if !super {
		return nil, fmt.Errorf("admin role %s is not a superuser: hardening the pooler's auth_query function (public.user_search) needs one", admin)
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1)", role).Scan(&exists); err != nil {
		return nil, redactErr(fmt.Errorf("read pooler role %s: %w", role, err))
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE ROLE "+ident(role)+" LOGIN"); err != nil {
			return nil, redactErr(fmt.Errorf("create pooler role %s: %w", role, err))
		}
		log.Info("created the pooler's auth_query role", "role", role)
	}
	if err := PinRoleSearchPath(ctx, conn, role, log); err != nil {
		return nil, redactErr(err)
	}
	// pg-init's lock: no tenant's CREATE DATABASE runs while a session of
	// ours is connected to template1 (it would fail, "being accessed by other users").
	if _, err := conn.Exec(ctx, "SELECT pg_catalog.pg_advisory_lock($1)", LockKey()); err != nil {
		return nil, redactErr(fmt.Errorf("advisory lock: %w", err))
	}
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_catalog.pg_database
		WHERE datallowconn AND (NOT datistemplate OR datname = 'template1') ORDER BY datname <> 'template1', datname`)
	if err != nil {
		return nil, redactErr(fmt.Errorf("list databases: %w", err))
	}
	dbs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, redactErr(fmt.Errorf("list databases: %w", err))
	}
	var out []PoolerAuthResult
	for _, db := range dbs {
		c := cfg.Copy()
		c.Database = db
		changes, err := hardenPoolerAuthIn(ctx, c, role)
		if err != nil {
			return out, redactErr(fmt.Errorf("database %s: %w", db, err))
		}
		out = append(out, PoolerAuthResult{Database: db, Changes: changes})
		if len(changes) > 0 {
			log.Info("hardened the pooler's auth_query function", "database", db, "changes", changes)
		} else {
			log.Debug("pooler's auth_query function already hardened", "database", db)
		}
	}
	return out, nil
}

// hardenPoolerAuthIn hardens public and public.user_search in cfg's
// database, in one transaction.
func hardenPoolerAuthIn(ctx context.Context, cfg *pgx.ConnConfig, role string) ([]string, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	var changes []string
	exec := func(why, sql string) error {
		if _, err := tx.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", why, err)
		}
		changes = append(changes, why)
		return nil
	}

	// Schema public: the superuser's, USAGE and CREATE for the database's owner.
	var schemaExists, ownerSuper, dbOwnerCreate bool
	if err := tx.QueryRow(ctx, `SELECT count(*) > 0, coalesce(bool_and(r.rolsuper), false),
		coalesce(bool_and(pg_catalog.has_schema_privilege('pg_database_owner', n.oid, 'CREATE')), false)
		FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner WHERE n.nspname = 'public'`).
		Scan(&schemaExists, &ownerSuper, &dbOwnerCreate); err != nil {
		return nil, fmt.Errorf("read schema public: %w", err)
	}
	if !schemaExists {
		if err := exec("create schema public", "CREATE SCHEMA public"); err != nil {
			return nil, err
		}
	} else if !ownerSuper {
		if err := exec("schema public owned by the superuser", "ALTER SCHEMA public OWNER TO CURRENT_USER"); err != nil {
			return nil, err
		}
		dbOwnerCreate = false // the owner change dropped pg_database_owner's grants
	}
	if !dbOwnerCreate {
		if err := exec("GRANT USAGE, CREATE ON SCHEMA public TO pg_database_owner", "GRANT USAGE, CREATE ON SCHEMA public TO pg_database_owner"); err != nil {
			return nil, err
		}
	}

	// Functions named user_search in public a non-superuser owns: planted.
	rows, err := tx.Query(ctx, `SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_roles r ON r.oid = p.proowner
		WHERE p.pronamespace = 'public'::regnamespace AND p.proname = 'user_search' AND NOT r.rolsuper ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("read functions user_search: %w", err)
	}
	planted, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read functions user_search: %w", err)
	}
	for _, f := range planted {
		if err := exec("drop "+f+" (owned by a non-superuser)", "DROP FUNCTION "+f); err != nil {
			return nil, err
		}
	}

	// public.user_search(text): the operator's body, pinned search_path,
	// EXECUTE for the pooler role only.
	var found, secdef, publicExec, roleExec bool
	var src string
	var config []string
	err = tx.QueryRow(ctx, `SELECT true, p.prosecdef, p.prosrc, coalesce(p.proconfig, '{}'),
		pg_catalog.has_function_privilege('public', p.oid, 'EXECUTE'), pg_catalog.has_function_privilege($1, p.oid, 'EXECUTE')
		FROM pg_catalog.pg_proc p WHERE p.oid = pg_catalog.to_regprocedure('public.user_search(text)')`, role).
		Scan(&found, &secdef, &src, &config, &publicExec, &roleExec)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("read public.user_search(text): %w", err)
	}
	if !found || !secdef || src != PoolerAuthFunctionSource || !slices.Equal(config, []string{poolerAuthSearchPath}) {
		why := "create public.user_search(text) with a pinned search_path"
		if found {
			why = "pin public.user_search(text)'s search_path"
		}
		if err := exec(why, `CREATE OR REPLACE FUNCTION public.user_search(uname pg_catalog.text)
			RETURNS TABLE (usename pg_catalog.name, passwd pg_catalog.text)
			LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
			AS `+sqlLiteral(PoolerAuthFunctionSource)); err != nil {
			return nil, err
		}
		if !found { // a new function is executable by PUBLIC, not by the role
			publicExec, roleExec = true, false
		}
	}
	if publicExec {
		if err := exec("REVOKE EXECUTE on public.user_search(text) FROM PUBLIC", "REVOKE ALL ON FUNCTION public.user_search(pg_catalog.text) FROM PUBLIC"); err != nil {
			return nil, err
		}
	}
	if !roleExec {
		if err := exec("GRANT EXECUTE on public.user_search(text) TO "+role, "GRANT EXECUTE ON FUNCTION public.user_search(pg_catalog.text) TO "+ident(role)); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return changes, nil
}

// sqlLiteral quotes s as a standard-conforming SQL string literal.
func sqlLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// RoleSearchPath is the search_path PinRoleSearchPath gives a role:
// PostgreSQL's default, with pg_catalog implicitly first.
const RoleSearchPath = `"$user", public`

// PinRoleSearchPath sets role's own search_path (ALTER ROLE ... SET, for
// every database) to RoleSearchPath when the role has none. A role's
// setting overrides a database's (ALTER DATABASE ... SET search_path, which
// a database's owner may run): the owner of a module database cannot then
// put a schema of its own before pg_catalog in the sessions of role, where
// an operator or function it plants would be found before the catalog's
// and run with role's privileges (CloudNativePG's instance manager, as the
// superuser, runs unqualified "rolname = '...'" in every database). A
// search_path the role already has is left alone and logged. conn is a
// superuser's session.
func PinRoleSearchPath(ctx context.Context, conn *pgx.Conn, role string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var current string
	err := conn.QueryRow(ctx, `SELECT c FROM pg_catalog.pg_db_role_setting s, pg_catalog.unnest(s.setconfig) c
		WHERE s.setdatabase = 0 AND s.setrole = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $1)
		AND c LIKE 'search\_path=%'`, role).Scan(&current)
	switch {
	case err == nil:
		log.Info("role has a search_path of its own: left alone", "role", role, "setting", current)
		return nil
	case !errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("read role %s's settings: %w", role, err)
	}
	if _, err := conn.Exec(ctx, "ALTER ROLE "+ident(role)+" SET search_path = "+RoleSearchPath); err != nil {
		return fmt.Errorf("pin role %s's search_path: %w", role, err)
	}
	log.Info("pinned the role's search_path over any database's", "role", role, "search_path", RoleSearchPath)
	return nil
}

// PinAdminSearchPath is PinRoleSearchPath for the admin of cfg itself.
func PinAdminSearchPath(ctx context.Context, cfg *pgx.ConnConfig, log *slog.Logger) error {
	conn, err := pgx.ConnectConfig(ctx, pinSearchPath(cfg))
	if err != nil {
		return redact.Error(fmt.Errorf("connect as admin (%s): %w", pgconfig.Describe(cfg), err), cfg.Password)
	}
	defer conn.Close(context.Background())
	var admin string
	if err := conn.QueryRow(ctx, "SELECT CURRENT_USER").Scan(&admin); err != nil {
		return redact.Error(fmt.Errorf("read admin role: %w", err), cfg.Password)
	}
	return redact.Error(PinRoleSearchPath(ctx, conn, admin, log), cfg.Password)
}
