package pgprovision

import (
	"errors"
	"fmt"

	"github.com/kommons/kommons/internal/outcome"
)

// markedObject is a role or database carrying some pg-init marker.
type markedObject struct {
	name, owner string // owner: for databases, the owning role
	marker      Marker
}

// readMarked lists roles or databases whose comment is a pg-init marker.
func (r *run) readMarked(kind string) ([]markedObject, error) {
	q := `SELECT a.rolname, '', c.description FROM pg_roles a
		JOIN pg_shdescription c ON c.objoid = a.oid AND c.classoid = 'pg_authid'::regclass
		WHERE c.description LIKE '{"managedBy":"kommons/pg-init",%'`
	if kind == KindDatabase {
		q = `SELECT d.datname, pg_get_userbyid(d.datdba), c.description FROM pg_database d
		JOIN pg_shdescription c ON c.objoid = d.oid AND c.classoid = 'pg_database'::regclass
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
		if err := rows.Scan(&o.name, &o.owner, &comment); err != nil {
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

// prune drops this scope's databases, then roles, that the plan no longer
// lists and whose marker says reclaimPolicy delete; others are logged as
// retained. A database is dropped only when its owner role also carries
// this scope's marker (database comments are writable by their owner, role
// comments are not). Failures to drop (in use, dependent objects) are
// reported together after trying every object.
func (r *run) prune() error {
	inPlan := map[string]bool{}
	for _, d := range r.plan.Databases {
		inPlan["d:"+d.Physical] = true
	}
	for _, ro := range r.plan.Roles {
		inPlan["r:"+ro.Physical] = true
	}
	roles, err := r.readMarked(KindRole)
	if err != nil {
		return err
	}
	ourRoles := map[string]bool{}
	for _, ro := range roles {
		if ro.marker.InScope(r.plan.Scope) {
			ourRoles[ro.name] = true
		}
	}
	dbs, err := r.readMarked(KindDatabase)
	if err != nil {
		return err
	}
	var failures []error
	for _, d := range dbs {
		if !d.marker.InScope(r.plan.Scope) || inPlan["d:"+d.name] {
			continue
		}
		res := ObjectResult{Kind: KindDatabase, Name: d.marker.Name, Physical: d.name}
		switch {
		case d.marker.ReclaimPolicy != ReclaimDelete:
			res.Action, res.Reason = outcome.Retained, "reclaimPolicy "+d.marker.ReclaimPolicy
		case !ourRoles[d.owner]:
			res.Action, res.Reason = outcome.Refused, "its owner "+d.owner+" is not a role of this scope; not dropped"
		default:
			if err := r.exec(r.admin, "drop database "+d.name, "DROP DATABASE "+ident(d.name)); err != nil {
				failures = append(failures, err)
				res.Action, res.Reason = outcome.Retained, "drop failed: "+err.Error()
			} else {
				res.Action = outcome.Deleted
			}
		}
		r.recordPruned(res)
	}
	for _, ro := range roles {
		if !ro.marker.InScope(r.plan.Scope) || inPlan["r:"+ro.name] {
			continue
		}
		res := ObjectResult{Kind: KindRole, Name: ro.marker.Name, Physical: ro.name}
		if ro.marker.ReclaimPolicy != ReclaimDelete {
			res.Action, res.Reason = outcome.Retained, "reclaimPolicy "+ro.marker.ReclaimPolicy
		} else if err := r.exec(r.admin, "drop role "+ro.name, "DROP ROLE "+ident(ro.name)); err != nil {
			failures = append(failures, err)
			res.Action, res.Reason = outcome.Retained, "drop failed: "+err.Error()
		} else {
			res.Action = outcome.Deleted
		}
		r.recordPruned(res)
	}
	if len(failures) > 0 {
		return fmt.Errorf("prune: %w", errors.Join(failures...))
	}
	return nil
}

func (r *run) recordPruned(o ObjectResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.report.Record(o)
	outcome.Log(r.log, o)
}
