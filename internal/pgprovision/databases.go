package pgprovision

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/kommons/kommons/internal/outcome"
)

// databaseState is a database as the server has it.
type databaseState struct {
	owner                     string
	comment                   *string
	publicConnect, publicTemp bool
	ownerConnect              bool
}

// readDatabases reads the state of the plan's databases in one query;
// missing ones are absent from the map.
func (r *run) readDatabases() (map[string]*databaseState, error) {
	names := make([]string, 0, len(r.plan.Databases))
	for _, pd := range r.plan.Databases {
		names = append(names, pd.Physical)
		if pd.Legacy != "" {
			names = append(names, pd.Legacy)
		}
	}
	rows, err := r.admin.Query(r.stmtCtx, `SELECT d.datname, pg_catalog.pg_get_userbyid(d.datdba), pg_catalog.shobj_description(d.oid, 'pg_database'),
		pg_catalog.has_database_privilege('public', d.oid, 'CONNECT'), pg_catalog.has_database_privilege('public', d.oid, 'TEMPORARY'),
		pg_catalog.has_database_privilege(d.datdba, d.oid, 'CONNECT')
		FROM pg_catalog.pg_database d WHERE d.datname = ANY($1)`, names)
	if err != nil {
		return nil, r.redact(fmt.Errorf("read databases: %w", err))
	}
	out := map[string]*databaseState{}
	for rows.Next() {
		var name string
		s := &databaseState{}
		if err := rows.Scan(&name, &s.owner, &s.comment, &s.publicConnect, &s.publicTemp, &s.ownerConnect); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read databases: %w", err)
		}
		out[name] = s
	}
	if err := rows.Err(); err != nil {
		return nil, r.redact(fmt.Errorf("read databases: %w", err))
	}
	return out, nil
}

// reconcileDatabases reconciles every database of the plan, each with its
// extensions and schemas, in parallel (see run.each): CREATE DATABASE of
// different databases may run at once, and while one session waits for
// the server to copy template1, another runs an extension's script.
func (r *run) reconcileDatabases() error {
	if len(r.plan.Databases) == 0 {
		return nil
	}
	states, err := r.readDatabases()
	if err != nil {
		return err
	}
	subjects := make([]ObjectResult, len(r.plan.Databases))
	for i, pd := range r.plan.Databases {
		subjects[i] = ObjectResult{Kind: KindDatabase, Name: pd.Name, Physical: pd.Physical}
	}
	return r.each(subjects, func(i int, j *job) error {
		pd := &r.plan.Databases[i]
		var legacy *databaseState
		if pd.Legacy != "" {
			legacy = states[pd.Legacy]
		}
		inside, err := r.reconcileDatabase(j, pd, states[pd.Physical], legacy)
		if err != nil || !inside {
			return err
		}
		return r.reconcileInside(j, pd)
	})
}

// reconcileDatabase reconciles pd at the cluster level over the job's
// session, given its state st (nil: missing) and the state of its legacy
// name (nil: none, see renameLegacyDatabase); inside reports whether its
// extensions and schemas are to be reconciled next (not when the database
// was refused).
func (r *run) reconcileDatabase(j *job, pd *PlannedDatabase, st, legacy *databaseState) (inside bool, err error) {
	res := ObjectResult{Kind: KindDatabase, Name: pd.Name, Physical: pd.Physical}
	if !r.roleIsOurs(pd.OwnerPhysical) {
		res.Action = outcome.Refused
		res.Reason = "its owner role " + pd.OwnerPhysical + " was refused"
		j.record(res)
		return false, nil
	}
	db, owner := ident(pd.Physical), ident(pd.OwnerPhysical)
	marker := NewMarker(r.plan.Scope, pd.Name, pd.ReclaimPolicy).String()
	switch {
	case st == nil && legacy != nil:
		// The legacy database is this scope's when the server says its
		// owner is this scope's role (already renamed), as for any database.
		if verdict, _ := decideDatabaseOwnership(legacy, pd.OwnerPhysical); verdict == Ours {
			if err := r.renameLegacyDatabase(j, pd); err != nil {
				return false, err
			}
			st = legacy
			res.Changes = append(res.Changes, "renamed from "+pd.Legacy)
		}
	case legacy != nil:
		r.warnBothNames(KindDatabase, pd.Name, pd.Physical, pd.Legacy, legacy.comment)
	}
	if st == nil {
		// CREATE DATABASE cannot run in a transaction: if pg-init stops
		// before the marker is written, the next run recognises the
		// database by its owner (our role) and restores the marker.
		if err := r.exec(j.conn, "create database "+pd.Physical, fmt.Sprintf("CREATE DATABASE %s OWNER %s", db, owner)); err != nil {
			return false, err
		}
		res.Action = outcome.Created
		st = &databaseState{owner: pd.OwnerPhysical, publicConnect: true, publicTemp: true, ownerConnect: true}
	} else {
		switch verdict, reason := decideDatabaseOwnership(st, pd.OwnerPhysical); {
		case verdict == Ours && !r.isOurs(st.comment, pd.Name):
			res.Changes = append(res.Changes, "marker restored (owned by this scope's role; "+describeOwner(st.comment)+")")
		case verdict == Ours:
		case r.opts.Adopt:
			res.Changes = append(res.Changes, "adopted ("+describeOwner(st.comment)+", owner "+st.owner+")")
		default:
			res.Action, res.Reason = outcome.Refused, reason+"; rerun with --adopt to take it over"
			j.record(res)
			return false, nil
		}
	}
	var stmts []stmt
	change := func(note string, st stmt) {
		stmts = append(stmts, st)
		if res.Action != outcome.Created {
			res.Changes = append(res.Changes, note)
		}
	}
	if st.owner != pd.OwnerPhysical {
		change("owner "+st.owner+" -> "+pd.OwnerPhysical, stmt{fmt.Sprintf("ALTER DATABASE %s OWNER TO %s", db, owner), nil})
		st.ownerConnect = false // the ACL is rewritten for the new owner: grant again
	}
	if deref(st.comment) != marker {
		note := "marker"
		if !r.isOurs(st.comment, pd.Name) {
			note = "" // already explained: created, restored or adopted
		}
		change(note, stmt{fmt.Sprintf("COMMENT ON DATABASE %s IS $1", db), lit(marker)})
	}
	if st.publicConnect || st.publicTemp {
		change("REVOKE CONNECT, TEMPORARY FROM PUBLIC", stmt{fmt.Sprintf("REVOKE CONNECT, TEMPORARY ON DATABASE %s FROM PUBLIC", db), nil})
	}
	if !st.ownerConnect || res.Action == outcome.Created {
		change("GRANT CONNECT to owner", stmt{fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO %s", db, owner), nil})
	}
	if len(stmts) > 0 {
		if err := r.execBatch(j.conn, "set up database "+pd.Physical, stmts); err != nil {
			return false, err
		}
	}
	res.Changes = slices.DeleteFunc(res.Changes, func(c string) bool { return c == "" })
	if res.Action == "" {
		res.Action = outcome.Unchanged
		if len(res.Changes) > 0 {
			res.Action = outcome.Updated
		}
	}
	j.record(res)
	return len(pd.Extensions) > 0 || len(pd.Schemas) > 0, nil
}

// reconcileInside creates the extensions and schemas of pd over a
// connection to that database, opened here. A superuser admin creates
// extensions itself (any extension); any other admin acts as the owner role
// (SET ROLE), which can create trusted extensions because it owns the
// database.
func (r *run) reconcileInside(j *job, pd *PlannedDatabase) error {
	if len(pd.Extensions) == 0 && len(pd.Schemas) == 0 {
		return nil
	}
	if err := r.interrupted(); err != nil {
		return err
	}
	c := r.cfg.Copy()
	c.Database = pd.Physical
	conn, err := pgx.ConnectConfig(r.ctx, c)
	if err != nil {
		return r.redact(fmt.Errorf("connect to database %s: %w", pd.Physical, err))
	}
	defer conn.Close(context.Background())
	have, fixedSchema := map[string]bool{}, map[string]bool{}
	schemaOwner := map[string]string{}
	rows, err := conn.Query(r.stmtCtx, `SELECT 'e', e.extname::text, '' FROM pg_catalog.pg_extension e WHERE e.extname = ANY($1)
		UNION ALL SELECT 's', n.nspname::text, pg_catalog.pg_get_userbyid(n.nspowner) FROM pg_catalog.pg_namespace n WHERE n.nspname = ANY($2)
		UNION ALL SELECT 'f', a.name::text, '' FROM pg_catalog.pg_available_extensions a
			JOIN pg_catalog.pg_available_extension_versions v ON v.name = a.name AND v.version = a.default_version
			WHERE a.name = ANY($1) AND v.schema IS NOT NULL`,
		nonNil(pd.Extensions), nonNil(pd.Schemas))
	if err != nil {
		return r.redact(fmt.Errorf("read extensions and schemas of %s: %w", pd.Physical, err))
	}
	for rows.Next() {
		var kind, name, owner string
		if err := rows.Scan(&kind, &name, &owner); err != nil {
			rows.Close()
			return fmt.Errorf("read extensions and schemas of %s: %w", pd.Physical, err)
		}
		switch kind {
		case "e":
			have[name] = true
		case "f":
			fixedSchema[name] = true
		default:
			schemaOwner[name] = owner
		}
	}
	if err := rows.Err(); err != nil {
		return r.redact(fmt.Errorf("read extensions and schemas of %s: %w", pd.Physical, err))
	}
	roleSet := false
	asOwner := func() error {
		if r.facts.superuser || roleSet {
			return nil
		}
		roleSet = true
		return r.exec(conn, "SET ROLE "+pd.OwnerPhysical+" in "+pd.Physical, "SET ROLE "+ident(pd.OwnerPhysical))
	}
	for _, ext := range pd.Extensions {
		res := ObjectResult{Kind: KindExtension, Name: ext, Physical: ext, Database: pd.Physical, Action: outcome.Unchanged}
		if !have[ext] {
			if err := asOwner(); err != nil {
				return err
			}
			if err := r.exec(conn, "create extension "+ext+" in database "+pd.Physical, createExtension(ext, fixedSchema[ext])); err != nil {
				if sqlState(err) == "42501" && !r.facts.superuser {
					return fmt.Errorf("%w (extension %s is not trusted: it needs a superuser admin, or the managed service's extension allow-list)", err, ext)
				}
				return err
			}
			res.Action = outcome.Created
		}
		j.record(res)
	}
	for _, sc := range pd.Schemas {
		res := ObjectResult{Kind: KindSchema, Name: sc, Physical: sc, Database: pd.Physical, Action: outcome.Unchanged}
		owner, exists := schemaOwner[sc]
		switch {
		case IsSystemSchema(sc):
			// Validate refuses these; checked again before acting.
			res.Action, res.Reason = outcome.Refused, "system schema: never created or taken over"
		case !exists:
			if err := asOwner(); err != nil {
				return err
			}
			if err := r.exec(conn, "create schema "+sc+" in database "+pd.Physical,
				fmt.Sprintf("CREATE SCHEMA IF NOT EXISTS %s AUTHORIZATION %s", ident(sc), ident(pd.OwnerPhysical))); err != nil {
				return err
			}
			res.Action = outcome.Created
		case owner != pd.OwnerPhysical && !r.opts.Adopt:
			res.Action = outcome.Refused
			res.Reason = "schema exists owned by " + owner + "; rerun with --adopt to take it over"
		case owner != pd.OwnerPhysical:
			if err := asOwner(); err != nil {
				return err
			}
			if err := r.exec(conn, "set owner of schema "+sc+" in database "+pd.Physical,
				fmt.Sprintf("ALTER SCHEMA %s OWNER TO %s", ident(sc), ident(pd.OwnerPhysical))); err != nil {
				return err
			}
			res.Action = outcome.Updated
			res.Changes = []string{"adopted (owner " + owner + ")"}
		}
		j.record(res)
	}
	return nil
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

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
