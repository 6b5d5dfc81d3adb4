package pgprovision

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The statements pg-init sends, one small function per statement family.
// Every name is quoted with ident; literals (passwords' SCRAM verifiers,
// markers) are $1 parameters, never interpolated.

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// createRoleSQL creates a module role: LOGIN and nothing else, with the
// SCRAM verifier as $1.
func createRoleSQL(role string, connLimit int) string {
	return fmt.Sprintf("CREATE ROLE %s WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "+
		"NOREPLICATION NOBYPASSRLS CONNECTION LIMIT %d PASSWORD $1", ident(role), connLimit)
}

// alterRoleSQL sets attribute clauses (e.g. "NOCREATEDB", "PASSWORD $1").
func alterRoleSQL(role string, clauses []string) string {
	return fmt.Sprintf("ALTER ROLE %s WITH %s", ident(role), strings.Join(clauses, " "))
}

// commentSQL sets the marker ($1) of a role or database (kind KindRole or KindDatabase).
func commentSQL(kind, name string) string {
	return fmt.Sprintf("COMMENT ON %s %s IS $1", strings.ToUpper(kind), ident(name))
}

// selfGrantSQL makes the admin a member of role: CREATE DATABASE ... OWNER
// and SET ROLE need SET, and setting up the database (comment, privileges)
// needs the owner's privileges, so the membership also inherits. Made by a
// superuser on 16+, the server records it as the bootstrap superuser's
// grant: the anchor that tells this admin's roles from squatted ones.
func selfGrantSQL(role string) string { return fmt.Sprintf("GRANT %s TO CURRENT_USER", ident(role)) }

// renameSQL renames a role or database.
func renameSQL(kind, from, to string) string {
	return fmt.Sprintf("ALTER %s %s RENAME TO %s", strings.ToUpper(kind), ident(from), ident(to))
}

// dropSQL drops a role or database.
func dropSQL(kind, name string) string {
	return fmt.Sprintf("DROP %s %s", strings.ToUpper(kind), ident(name))
}

// createDatabaseSQL creates a database owned by owner.
func createDatabaseSQL(db, owner string) string {
	return fmt.Sprintf("CREATE DATABASE %s OWNER %s", ident(db), ident(owner))
}

func alterDatabaseOwnerSQL(db, owner string) string {
	return fmt.Sprintf("ALTER DATABASE %s OWNER TO %s", ident(db), ident(owner))
}

func revokePublicSQL(db string) string {
	return fmt.Sprintf("REVOKE CONNECT, TEMPORARY ON DATABASE %s FROM PUBLIC", ident(db))
}

func grantConnectSQL(db, owner string) string {
	return fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO %s", ident(db), ident(owner))
}

// createExtension is the CREATE EXTENSION statement for ext. The session's
// search_path is pinned to pg_catalog, which would otherwise become the
// schema of a relocatable extension: unless the extension's control file
// names its schema (fixedSchema), it goes to public, where the server's
// default search_path put it before.
func createExtension(ext string, fixedSchema bool) string {
	if fixedSchema {
		return "CREATE EXTENSION IF NOT EXISTS " + ident(ext)
	}
	return "CREATE EXTENSION IF NOT EXISTS " + ident(ext) + " SCHEMA public"
}

func createSchemaSQL(schema, owner string) string {
	return fmt.Sprintf("CREATE SCHEMA IF NOT EXISTS %s AUTHORIZATION %s", ident(schema), ident(owner))
}

func alterSchemaOwnerSQL(schema, owner string) string {
	return fmt.Sprintf("ALTER SCHEMA %s OWNER TO %s", ident(schema), ident(owner))
}

func setRoleSQL(role string) string { return "SET ROLE " + ident(role) }

// terminateSQL ends the sessions on database $1 of the roles named in $2,
// waiting up to $3 ms for each to end.
const terminateSQL = `SELECT pg_catalog.pg_terminate_backend(a.pid, $3) FROM pg_catalog.pg_stat_activity a
	WHERE a.datname = $1 AND a.pid <> pg_catalog.pg_backend_pid()
	AND a.usesysid IN (SELECT o.oid FROM pg_catalog.pg_roles o WHERE o.rolname = ANY($2))`
