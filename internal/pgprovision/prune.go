package pgprovision

import (
	"errors"
	"fmt"

	"github.com/kommons/kommons/internal/outcome"
)

// readMarked lists roles or databases whose comment is a pg-init marker.
func (r *run) readMarked(kind string) ([]markedObject, error) {
	q := `SELECT ` + roleColumns + `, '', c.description FROM pg_catalog.pg_roles r
		JOIN pg_catalog.pg_shdescription c ON c.objoid = r.oid AND c.classoid = 'pg_catalog.pg_authid'::pg_catalog.regclass
		WHERE c.description LIKE '{"managedBy":"kommons/pg-init",%'`
	if kind == KindDatabase {
		q = `SELECT d.datname, 0::oid, false, false, false, false, false, false, 0, NULL::text, '{}'::text[], false, false,
		pg_catalog.pg_get_userbyid(d.datdba), c.description FROM pg_catalog.pg_database d
		JOIN pg_catalog.pg_shdescription c ON c.objoid = d.oid AND c.classoid = 'pg_catalog.pg_database'::pg_catalog.regclass
		WHERE c.description LIKE '{"managedBy":"kommons/pg-init",%'`
	}
	rows, err := r.admin.Query(r.stmtCtx, q)
	if err != nil {
		return nil, r.redact(fmt.Errorf("list marked %ss: %w", kind, err))
	}
	defer rows.Close()
	var out []markedObject
	for rows.Next() {
		var o markedObject
		var comment string
		st := &o.role
		if err := rows.Scan(&o.name, &st.oid, &st.super, &st.createRole, &st.createDB, &st.canLogin, &st.replication,
			&st.bypass, &st.connLimit, &st.comment, &st.control.otherMembers, &st.control.adminOption, &st.control.anchored, &o.owner, &comment); err != nil {
			return nil, fmt.Errorf("list marked %ss: %w", kind, err)
		}
		if m, ok := ParseMarker(comment); ok {
			o.marker = m
			out = append(out, o)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, r.redact(fmt.Errorf("list marked %ss: %w", kind, err))
	}
	return out, nil
}

// prune observes every role and database carrying a pg-init marker,
// decides (decidePrune) which of this scope's unlisted ones to drop and
// drops them, over the coordinating session. Failures to drop (in use,
// dependent objects) are reported together after trying every object.
func (r *run) prune() error {
	roles, err := r.readMarked(KindRole)
	if err != nil {
		return err
	}
	dbs, err := r.readMarked(KindDatabase)
	if err != nil {
		return err
	}
	var failures []error
	for _, p := range decidePrune(pruneInput{admin: r.decisionFacts(), scope: r.plan.Scope, plan: r.plan, roles: roles, dbs: dbs}) {
		if p.drop != "" {
			if err := r.exec(r.admin, "drop "+p.result.Kind+" "+p.result.Physical, p.drop); err != nil {
				failures = append(failures, err)
				p.result.Action, p.result.Reason = outcome.Retained, "drop failed: "+err.Error()
			}
		}
		r.recordPruned(p.result)
	}
	if len(failures) > 0 {
		return fmt.Errorf("prune: %w", errors.Join(failures...))
	}
	return nil
}
