package pgprovision

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Renaming objects an earlier kommons version named with the 32-bit hash of
// pgnames version 1 (pgnames.Legacy): when a planned role or database is
// missing under its name and present under its legacy name, and the server
// says the legacy object is this scope's (the same decisions as for any
// existing object), it is renamed and then reconciled as usual. A legacy
// object that is not this scope's is never touched; when both names exist,
// the new one is used and the legacy one is left alone with a warning.

// renameAttempts bounds the ALTER DATABASE ... RENAME attempts: each one
// first ends the sessions of this scope's roles on the database, and
// PostgreSQL itself waits up to 5 s for other sessions to leave.
const renameAttempts = 3

// terminateWaitMillis is how long pg_terminate_backend waits for each
// session to end.
const terminateWaitMillis = 5000

// renameLegacyRole renames the role found under pr's legacy name (state
// legacy) to pr.Physical when it is this scope's. renamed false with an
// empty refusal: the legacy role is not this scope's and was not touched
// (pr is created under its new name). A role whose marker names this scope
// but that the server facts make only Adoptable is refused without --adopt:
// creating an empty namesake would hide the module's data.
func (r *run) renameLegacyRole(j *job, pr *PlannedRole, legacy *roleState) (renamed bool, refusal string, err error) {
	markedOurs := r.isOurs(legacy.comment, pr.Name)
	verdict, reason := decideRoleOwnership(r.decisionFacts(), legacy, markedOurs)
	switch {
	case verdict == Ours, verdict == Adoptable && markedOurs && r.opts.Adopt:
	case verdict == Adoptable && markedOurs:
		return false, "legacy-named role " + pr.Legacy + ": " + reason + "; rerun with --adopt to rename and take it over", nil
	default:
		r.log.Debug("legacy-named role is not this scope's: left alone", "name", pr.Name, "legacyName", pr.Legacy, "reason", reason)
		return false, "", nil
	}
	if err := r.exec(j.conn, "rename role "+pr.Legacy+" to "+pr.Physical,
		fmt.Sprintf("ALTER ROLE %s RENAME TO %s", ident(pr.Legacy), ident(pr.Physical))); err != nil {
		return false, "", err
	}
	// PostgreSQL clears an MD5 verifier on rename (its salt is the name): the
	// password check that follows then sets the password again.
	if legacy.verifier != nil && !strings.HasPrefix(*legacy.verifier, "SCRAM-SHA-256$") {
		legacy.verifier, legacy.verifierMatches = nil, nil
	}
	return true, "", nil
}

// renameLegacyDatabase renames pd's legacy-named database to pd.Physical.
// PostgreSQL refuses while other sessions are connected to it: during an
// upgrade the module's old pods still are. pg-init ends the sessions of
// this scope's roles on it (the admin has their privileges: superuser, or
// member of roles it created), then renames, a bounded number of times;
// sessions of any other role are not ended, and the rename then fails with
// an error naming their users.
func (r *run) renameLegacyDatabase(j *job, pd *PlannedDatabase) error {
	roles := r.ourRoles()
	what := "rename database " + pd.Legacy + " to " + pd.Physical
	for attempt := 1; ; attempt++ {
		if err := r.exec(j.conn, "end this scope's sessions on database "+pd.Legacy,
			`SELECT pg_catalog.pg_terminate_backend(a.pid, $3) FROM pg_catalog.pg_stat_activity a
			WHERE a.datname = $1 AND a.pid <> pg_catalog.pg_backend_pid()
			AND a.usesysid IN (SELECT o.oid FROM pg_catalog.pg_roles o WHERE o.rolname = ANY($2))`,
			pd.Legacy, roles, terminateWaitMillis); err != nil {
			return err
		}
		err := r.exec(j.conn, what, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", ident(pd.Legacy), ident(pd.Physical)))
		if err == nil {
			return nil
		}
		if sqlState(err) != "55006" { // object_in_use: other sessions
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

// ourRoles lists the physical names of the roles found or made this
// scope's in this run, sorted.
func (r *run) ourRoles() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.ours))
	for name := range r.ours {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// warnBothNames notes a legacy-named object left beside the new-named one
// pg-init uses: when its marker names this scope it may hold data of an
// earlier version, to move or drop by hand.
func (r *run) warnBothNames(kind, name, physical, legacyName string, comment *string) {
	if !r.isOurs(comment, name) {
		r.log.Debug("legacy-named "+kind+" left alone: not this scope's", "kind", kind, "name", name, "legacyName", legacyName)
		return
	}
	r.log.Warn("legacy-named "+kind+" left alone: "+physical+" exists too and is used; the legacy one may hold data of an earlier kommons version, check it and drop it by hand",
		"kind", kind, "name", name, "physicalName", physical, "legacyName", legacyName)
}
