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
	role        roleState // for roles: attributes and control, as read by roleColumns
}

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

// prune drops this scope's databases, then roles, that the plan no longer
// lists and whose marker says reclaimPolicy delete; others are logged as
// retained. A marker alone never makes an object this scope's: a role is
// pruned only when decideRoleOwnership says Ours (no other role holds
// membership in it; on PostgreSQL 16+ this provisioner holds ADMIN OPTION
// on it), and a database only when its owner is such a role. Objects whose
// marker names this scope but that the server says another party controls
// (a forged marker) are reported retained and left alone. Failures to drop
// (in use, dependent objects) are reported together after trying every
// object.
func (r *run) prune() error {
	inPlan := map[string]bool{}
	// A legacy-named object left beside its new-named one (see
	// warnBothNames) is never pruned: it may hold an earlier copy of the data.
	for _, d := range r.plan.Databases {
		inPlan["d:"+d.Physical], inPlan["d:"+d.Legacy] = true, true
	}
	for _, ro := range r.plan.Roles {
		inPlan["r:"+ro.Physical], inPlan["r:"+ro.Legacy] = true, true
	}
	roles, err := r.readMarked(KindRole)
	if err != nil {
		return err
	}
	ourRoles, foreign := map[string]bool{}, map[string]string{}
	for _, ro := range roles {
		if !ro.marker.InScope(r.plan.Scope) {
			continue
		}
		if verdict, reason := decideRoleOwnership(r.decisionFacts(), &ro.role, true); verdict == Ours {
			ourRoles[ro.name] = true
		} else {
			foreign[ro.name] = reason
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
			res.Action, res.Reason = outcome.Retained, "its marker names this scope, but its owner "+d.owner+" is not a role this scope controls; not dropped"
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
		if why, ok := foreign[ro.name]; ok {
			res.Action, res.Reason = outcome.Retained, "its marker names this scope, but "+why
		} else if ro.marker.ReclaimPolicy != ReclaimDelete {
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
