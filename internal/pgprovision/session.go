package pgprovision

import "github.com/jackc/pgx/v5"

// pinnedSearchPath is the search_path of every session pg-init opens.
// pg_temp is named last so that no relation name resolves to a temporary
// table before pg_catalog (the session's own temporary schema is the only
// one it could be, and pg-init creates none); functions and operators are
// never looked up in pg_temp.
const pinnedSearchPath = "pg_catalog, pg_temp"

// pinSearchPath returns a copy of cfg whose sessions start with
// search_path pinned to pinnedSearchPath. A startup parameter overrides the
// defaults a tenant can set (ALTER DATABASE / ALTER ROLE ... SET
// search_path), so no object a module role creates in its database (a
// public.pg_extension view, a function shadowing a catalog function) is
// ever resolved by pg-init's statements; every catalog name in them is also
// schema-qualified.
func pinSearchPath(cfg *pgx.ConnConfig) *pgx.ConnConfig {
	c := cfg.Copy()
	if c.RuntimeParams == nil {
		c.RuntimeParams = map[string]string{}
	}
	c.RuntimeParams["search_path"] = pinnedSearchPath
	return c
}
