package pgprovision

import (
	"fmt"
	"strings"
	"time"

	"github.com/kommons/kommons/internal/outcome"
	"github.com/kommons/kommons/internal/pgready"
)

// readDatabases observes the plan's databases, under their names and
// their legacy names, in one query; missing ones are absent from the map.
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
		pg_catalog.has_database_privilege(d.datdba, d.oid, 'CONNECT'),
		CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $2)
			THEN pg_catalog.has_database_privilege($2::name, d.oid, 'CONNECT') ELSE true END
		FROM pg_catalog.pg_database d WHERE d.datname = ANY($1)`, names, r.opts.PoolerRole)
	if err != nil {
		return nil, r.redact(fmt.Errorf("read databases: %w", err))
	}
	out := map[string]*databaseState{}
	for rows.Next() {
		var name string
		s := &databaseState{}
		if err := rows.Scan(&name, &s.owner, &s.comment, &s.publicConnect, &s.publicTemp, &s.ownerConnect, &s.poolerConnect); err != nil {
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
	pooler, err := r.poolerRole()
	if err != nil {
		return err
	}
	subjects := make([]ObjectResult, len(r.plan.Databases))
	for i, pd := range r.plan.Databases {
		subjects[i] = ObjectResult{Kind: KindDatabase, Name: pd.Name, Physical: pd.Physical}
	}
	return r.each(subjects, func(i int, j *job) error {
		pd := &r.plan.Databases[i]
		in := databaseInput{adopt: r.opts.Adopt, scope: r.plan.Scope, db: pd, ownerOurs: r.roleIsOurs(pd.OwnerPhysical), st: states[pd.Physical], pooler: pooler}
		if pd.Legacy != "" {
			in.legacy = states[pd.Legacy]
		}
		inside, err := r.reconcileDatabase(j, in)
		if err != nil || !inside {
			return err
		}
		return r.reconcileInside(j, pd)
	})
}

// poolerRole is Options.PoolerRole when that role exists, else "" (no
// grant: a pooler created later needs another run).
func (r *run) poolerRole() (string, error) {
	if r.opts.PoolerRole == "" {
		return "", nil
	}
	var exists bool
	if err := r.admin.QueryRow(r.stmtCtx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1)", r.opts.PoolerRole).Scan(&exists); err != nil {
		return "", r.redact(fmt.Errorf("read pooler role %s: %w", r.opts.PoolerRole, err))
	}
	if !exists {
		r.log.Info("pooler role does not exist: no CONNECT granted to it", "role", r.opts.PoolerRole)
		return "", nil
	}
	return r.opts.PoolerRole, nil
}

// reconcileDatabase decides and acts on one database at the cluster level
// over the job's session; inside reports whether its extensions and
// schemas are to be reconciled next (not when the database was refused).
func (r *run) reconcileDatabase(j *job, in databaseInput) (inside bool, err error) {
	pd := in.db
	res := ObjectResult{Kind: KindDatabase, Name: pd.Name, Physical: pd.Physical}
	switch n := decideDatabaseName(in); {
	case n.use == renameLegacy:
		if err := r.renameLegacyDatabase(j, pd); err != nil {
			return false, err
		}
		in.st, in.renamedFrom = in.legacy, pd.Legacy
	case n.warn:
		r.warnBothNames(KindDatabase, pd.Name, pd.Physical, pd.Legacy)
	case n.notOurs != "":
		r.warnNotOurs(KindDatabase, pd.Name, pd.Physical, pd.Legacy, n.notOurs)
	}
	d := decideDatabase(in)
	steps := d.steps
	if d.action == outcome.Created {
		// CREATE DATABASE cannot run in a transaction: if pg-init stops
		// before the marker is written, the next run recognises the
		// database by its owner (our role) and restores the marker.
		if err := r.exec(j.conn, "create database "+pd.Physical, steps[0].sql); err != nil {
			return false, err
		}
		steps = steps[1:]
	}
	if err := r.apply(j.conn, "set up database "+pd.Physical, nil, steps); err != nil {
		return false, err
	}
	_ = j.decided(res, d)
	return d.action != outcome.Refused && (len(pd.Extensions) > 0 || len(pd.Schemas) > 0), nil
}

// renameAttempts bounds the ALTER DATABASE ... RENAME attempts: each one
// first ends the sessions of this scope's roles on the database, and
// PostgreSQL itself waits up to 5 s for other sessions to leave.
const renameAttempts = 3

// terminateWaitMillis is how long pg_terminate_backend waits for each
// session to end.
const terminateWaitMillis = 5000

// renameLegacyDatabase renames pd's legacy-named database to pd.Physical.
// PostgreSQL refuses while other sessions are connected to it: during an
// upgrade the module's old pods still are. pg-init ends the sessions of
// this scope's roles on it (the admin has their privileges: superuser, or
// member of roles it created), then renames, a bounded number of times;
// sessions of any other role are not ended, and the rename then fails with
// an error naming their users.
func (r *run) renameLegacyDatabase(j *job, pd *PlannedDatabase) error {
	roles := r.ourRoles()
	for attempt := 1; ; attempt++ {
		if err := r.exec(j.conn, "end this scope's sessions on database "+pd.Legacy, terminateSQL, pd.Legacy, roles, terminateWaitMillis); err != nil {
			return err
		}
		err := r.exec(j.conn, "rename database "+pd.Legacy+" to "+pd.Physical, renameSQL(KindDatabase, pd.Legacy, pd.Physical))
		if err == nil {
			return nil
		}
		if pgready.SQLState(err) != "55006" { // object_in_use: other sessions
			return err
		}
		if attempt == renameAttempts {
			return fmt.Errorf("%w (after %d attempts; pg-init ends only the sessions of this scope's roles %s, "+
				"and sessions of %s are connected: end them and rerun)", err, attempt, strings.Join(roles, ", "), r.sessionUsers(j, pd.Legacy))
		}
		select {
		case <-r.ctx.Done():
			return r.interrupted()
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		}
	}
}

// sessionUsers names the users connected to database, for an error message.
func (r *run) sessionUsers(j *job, database string) string {
	var users []string
	err := j.conn.QueryRow(r.stmtCtx, `SELECT COALESCE(pg_catalog.array_agg(DISTINCT a.usename::text), '{}'::text[])
		FROM pg_catalog.pg_stat_activity a WHERE a.datname = $1 AND a.pid <> pg_catalog.pg_backend_pid()`, database).Scan(&users)
	if err != nil || len(users) == 0 {
		return "other roles"
	}
	return strings.Join(users, ", ")
}

// warnBothNames notes a legacy-named object, carrying this scope's marker,
// left beside the new-named one pg-init uses: it may hold data of an
// earlier version, to move or drop by hand.
func (r *run) warnBothNames(kind, name, physical, legacyName string) {
	r.log.Warn("legacy-named "+kind+" left alone: "+physical+" exists too and is used; the legacy one may hold data of an earlier kommons version, check it and drop it by hand",
		"kind", kind, "name", name, "physicalName", physical, "legacyName", legacyName)
}

// warnNotOurs notes a legacy-named object that the server's facts say is
// not this scope's, whatever its marker says (left by another owner, or
// planted under this scope's legacy name by another tenant): it is neither
// renamed nor used, and its sessions are not ended; this scope uses (or
// creates) physical.
func (r *run) warnNotOurs(kind, name, physical, legacyName, reason string) {
	r.log.Warn("legacy-named "+kind+" left alone: it is not this scope's",
		"kind", kind, "name", name, "physicalName", physical, "legacyName", legacyName, "reason", reason)
}
