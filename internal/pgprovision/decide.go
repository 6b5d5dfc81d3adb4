package pgprovision

import (
	"fmt"

	"github.com/kommons/kommons/internal/outcome"
)

// Deciding, without side effects: each function below turns what the
// server says (observed by roles.go, databases.go, inside.go and prune.go)
// and the plan into a decision (the outcome, and the statements that reach
// it), which the callers then send. They never read the server, the clock
// or a random source; decide_test.go tests them with tables.

// verb is the family of a statement a decision asks for.
type verb string

// The verbs of steps.
const (
	verbCreate  verb = "create"
	verbAlter   verb = "alter"
	verbComment verb = "comment"
	verbGrant   verb = "grant"
	verbRevoke  verb = "revoke"
	verbRename  verb = "rename"
	verbDrop    verb = "drop"
)

// step is one statement of a decision: its verb, its SQL (with at most one
// literal, $1), and the change it makes, for the report ("" for none).
type step struct {
	verb verb
	sql  string
	arg  *string // the $1 literal, if any
	// verifier: $1 is a fresh SCRAM verifier of the role's planned
	// password, computed when the step is sent (it is salted at random).
	verifier bool
	note     string
}

// decision is what to do with one object: the outcome once its steps have
// run, why (refused, retained), and the changes to report.
type decision struct {
	action  outcome.Action
	reason  string
	changes []string
	steps   []step
}

// notes returns the decision's changes followed by its steps' notes.
func (d *decision) notes() []string {
	out := append([]string(nil), d.changes...)
	for _, s := range d.steps {
		if s.note != "" {
			out = append(out, s.note)
		}
	}
	return out
}

// add appends a step.
func (d *decision) add(v verb, sql string, arg *string, note string) {
	d.steps = append(d.steps, step{verb: v, sql: sql, arg: arg, note: note})
}

// settle sets the outcome of a decision that was not created, refused or
// retained: updated when it changes anything, else unchanged.
func (d *decision) settle() {
	if d.action != "" {
		return
	}
	d.action = outcome.Unchanged
	if len(d.steps) > 0 || len(d.notes()) > 0 {
		d.action = outcome.Updated
	}
}

// lit passes v as the $1 literal of a step.
func lit(v string) *string { return &v }

// existing is which existing object a planned role or database is
// reconciled against, as decided by decideRoleName or decideDatabaseName.
type existing int

const (
	// useNew: the object exists under its planned name, or not at all.
	useNew existing = iota
	// renameLegacy: only the legacy-named object exists and it is this
	// scope's: rename it, then reconcile it.
	renameLegacy
	// refuseLegacy: only the legacy-named object exists, it carries this
	// scope's marker, but only --adopt may take it over.
	refuseLegacy
)

// naming is the decision about an object's name: which object, whether
// both names exist with the legacy one this scope's (warn), and why a
// legacy-named object that is not this scope's is left alone (notOurs, ""
// when there is none): it may have been planted under this scope's legacy
// name by another tenant.
type naming struct {
	use     existing
	reason  string // refuseLegacy
	warn    bool
	notOurs string
}

// roleInput is what deciding about one planned role needs.
type roleInput struct {
	admin  adminFactsForDecision
	adopt  bool
	scope  Scope
	role   *PlannedRole
	st     *roleState // under its planned name; nil: missing
	legacy *roleState // under its legacy name; nil: missing (or no legacy name)
	// renamedFrom: st was just renamed from this legacy name (see decideRoleName).
	renamedFrom string
}

// decideRoleName decides whether a legacy-named role is renamed: when the
// planned name is missing and the server says the legacy-named role is this
// scope's. One whose marker names this scope but that the server facts make
// only Adoptable is refused without --adopt (creating an empty namesake
// would hide the module's data); any other is not this scope's and never
// touched (notOurs says why), whatever its marker says.
func decideRoleName(in roleInput) naming {
	if in.legacy == nil {
		return naming{}
	}
	markedOurs := markedFor(in.legacy.comment, in.scope, in.role.Name)
	verdict, reason := decideRoleOwnership(in.admin, in.legacy, markedOurs)
	switch {
	case verdict == Foreign, verdict == Adoptable && !markedOurs:
		return naming{notOurs: reason}
	case in.st != nil:
		return naming{warn: true}
	case verdict == Ours, in.adopt:
		return naming{use: renameLegacy}
	}
	return naming{use: refuseLegacy, reason: "legacy-named role " + in.role.Legacy + ": " + reason + "; rerun with --adopt to rename and take it over"}
}

// decideRoleCreate creates a missing role with its marker; a non-superuser
// admin (and a superuser on 16+, for the anchor) also grants itself the role.
func decideRoleCreate(in roleInput) decision {
	pr := in.role
	d := decision{action: outcome.Created}
	d.steps = append(d.steps, step{verb: verbCreate, sql: createRoleSQL(pr.Physical, *pr.ConnectionLimit), verifier: true})
	d.add(verbComment, commentSQL(KindRole, pr.Physical), lit(NewMarker(in.scope, pr.Name, pr.ReclaimPolicy).String()), "")
	if !in.admin.superuser || confinedCreateRole(in.admin.serverVersion) {
		d.add(verbGrant, selfGrantSQL(pr.Physical), nil, "")
	}
	return d
}

// decideRoleAccess decides whether the existing role st may be managed:
// refused (Foreign, or Adoptable without --adopt), or managed, noting an
// adoption.
func decideRoleAccess(in roleInput) decision {
	var d decision
	if in.renamedFrom != "" {
		d.changes = append(d.changes, "renamed from "+in.renamedFrom)
	}
	switch verdict, reason := decideRoleOwnership(in.admin, in.st, markedFor(in.st.comment, in.scope, in.role.Name)); verdict {
	case Foreign:
		return decision{action: outcome.Refused, reason: reason}
	case Adoptable:
		if !in.adopt {
			return decision{action: outcome.Refused, reason: reason + "; rerun with --adopt to take it over"}
		}
		d.changes = append(d.changes, "adopted ("+describeOwner(in.st.comment)+")")
	}
	return d
}

// decideRoleChanges brings the managed role st in line with the plan:
// attributes, connection limit and password (one ALTER ROLE), marker, and
// the admin's membership (member: a non-superuser admin holds the SET or
// MEMBER privilege it needs). d is decideRoleAccess's decision.
func decideRoleChanges(in roleInput, d decision, pw passwordFact, member bool) decision {
	st, pr := in.st, in.role
	var clauses, notes []string
	set := func(wrong bool, clause string) {
		if wrong {
			clauses = append(clauses, clause)
			notes = append(notes, clause)
		}
	}
	set(!st.canLogin, "LOGIN")
	set(st.super, "NOSUPERUSER")
	set(st.createDB, "NOCREATEDB")
	set(st.createRole, "NOCREATEROLE")
	set(st.replication, "NOREPLICATION")
	set(st.bypass, "NOBYPASSRLS")
	set(st.connLimit != *pr.ConnectionLimit, fmt.Sprintf("CONNECTION LIMIT %d", *pr.ConnectionLimit))
	if !pw.same {
		clauses = append(clauses, "PASSWORD $1")
		notes = append(notes, "password ("+pw.how+")")
	}
	if len(clauses) > 0 {
		d.steps = append(d.steps, step{verb: verbAlter, sql: alterRoleSQL(pr.Physical, clauses), verifier: !pw.same})
		d.changes = append(d.changes, notes...)
	}
	if marker := NewMarker(in.scope, pr.Name, pr.ReclaimPolicy).String(); deref(st.comment) != marker {
		note := ""
		if markedFor(st.comment, in.scope, pr.Name) {
			note = "marker"
		}
		d.add(verbComment, commentSQL(KindRole, pr.Physical), lit(marker), note)
	}
	switch {
	case in.admin.superuser && confinedCreateRole(in.admin.serverVersion) && !st.control.anchored:
		d.add(verbGrant, selfGrantSQL(pr.Physical), nil, "admin anchor")
	case !in.admin.superuser && !member:
		d.add(verbGrant, selfGrantSQL(pr.Physical), nil, "admin membership")
	}
	d.settle()
	return d
}

// passwordFromVerifier is the password fact a superuser admin reads from
// the stored verifier (checked against the planned password beforehand).
func passwordFromVerifier(st *roleState) passwordFact {
	switch {
	case st.verifierMatches != nil && *st.verifierMatches:
		return passwordFact{same: true}
	case st.verifier == nil || *st.verifier == "":
		return passwordFact{how: "none set"}
	}
	return passwordFact{how: "changed"}
}

// passwordFromLogin is the password fact from trying to log in as the role
// (SQLSTATE of the attempt: "" for success); ok false: try the next database.
func passwordFromLogin(code string, err error) (fact passwordFact, ok bool) {
	switch {
	case err == nil:
		return passwordFact{same: true}, true
	case code == "28P01":
		return passwordFact{how: "changed"}, true
	case code == "3D000", code == "42501": // database missing, or no CONNECT: try the next
		return passwordFact{}, false
	}
	return passwordFact{how: "could not be verified by logging in"}, true
}

// databaseInput is what deciding about one planned database needs.
type databaseInput struct {
	adopt     bool
	scope     Scope
	db        *PlannedDatabase
	ownerOurs bool           // its owner role was found or made this scope's
	st        *databaseState // under its planned name; nil: missing
	legacy    *databaseState // under its legacy name; nil: missing
	// renamedFrom: st was just renamed from this legacy name (see decideDatabaseName).
	renamedFrom string
	// pooler: an existing role to grant CONNECT (Options.PoolerRole); "" for none.
	pooler string
}

// decideDatabaseName decides whether a legacy-named database is renamed:
// when the planned name is missing and its owner is this scope's role (the
// same decision as for any database). Any other is never touched.
func decideDatabaseName(in databaseInput) naming {
	if in.legacy == nil || !in.ownerOurs {
		return naming{}
	}
	verdict, reason := decideDatabaseOwnership(in.legacy, in.db.OwnerPhysical)
	switch {
	case verdict != Ours:
		return naming{notOurs: reason}
	case in.st != nil:
		return naming{warn: markedFor(in.legacy.comment, in.scope, in.db.Name)}
	}
	return naming{use: renameLegacy}
}

// decideDatabase reconciles a database at the cluster level: refused when
// its owner role was refused or it is not this scope's (without --adopt);
// otherwise created when missing (CREATE DATABASE cannot run in a
// transaction: its first step is sent alone), then owner, marker and
// privileges set (one batch): PUBLIC loses CONNECT and TEMPORARY, the owner
// gets CONNECT.
func decideDatabase(in databaseInput) decision {
	pd := in.db
	if !in.ownerOurs {
		return decision{action: outcome.Refused, reason: "its owner role " + pd.OwnerPhysical + " was refused"}
	}
	var d decision
	if in.renamedFrom != "" {
		d.changes = append(d.changes, "renamed from "+in.renamedFrom)
	}
	st := in.st
	if st == nil {
		d.action = outcome.Created
		d.add(verbCreate, createDatabaseSQL(pd.Physical, pd.OwnerPhysical), nil, "")
		st = &databaseState{owner: pd.OwnerPhysical, publicConnect: true, publicTemp: true, ownerConnect: false}
	} else {
		switch verdict, reason := decideDatabaseOwnership(st, pd.OwnerPhysical); {
		case verdict == Ours && !markedFor(st.comment, in.scope, pd.Name):
			d.changes = append(d.changes, "marker restored (owned by this scope's role; "+describeOwner(st.comment)+")")
		case verdict == Ours:
		case in.adopt:
			d.changes = append(d.changes, "adopted ("+describeOwner(st.comment)+", owner "+st.owner+")")
		default:
			return decision{action: outcome.Refused, reason: reason + "; rerun with --adopt to take it over"}
		}
	}
	created := d.action == outcome.Created
	note := func(s string) string {
		if created {
			return ""
		}
		return s
	}
	ownerConnect := st.ownerConnect
	if st.owner != pd.OwnerPhysical {
		d.add(verbAlter, alterDatabaseOwnerSQL(pd.Physical, pd.OwnerPhysical), nil, note("owner "+st.owner+" -> "+pd.OwnerPhysical))
		ownerConnect = false // the ACL is rewritten for the new owner: grant again
	}
	if marker := NewMarker(in.scope, pd.Name, pd.ReclaimPolicy).String(); deref(st.comment) != marker {
		n := "marker"
		if !markedFor(st.comment, in.scope, pd.Name) {
			n = "" // already explained: created, restored or adopted
		}
		d.add(verbComment, commentSQL(KindDatabase, pd.Physical), lit(marker), note(n))
	}
	if st.publicConnect || st.publicTemp {
		d.add(verbRevoke, revokePublicSQL(pd.Physical), nil, note("REVOKE CONNECT, TEMPORARY FROM PUBLIC"))
	}
	if !ownerConnect {
		d.add(verbGrant, grantConnectSQL(pd.Physical, pd.OwnerPhysical), nil, note("GRANT CONNECT to owner"))
	}
	if in.pooler != "" && (created || !st.poolerConnect) {
		d.add(verbGrant, grantConnectSQL(pd.Physical, in.pooler), nil, note("GRANT CONNECT to pooler role "+in.pooler))
	}
	d.settle()
	return d
}

// insideDecision is one extension or schema: its result and its statement
// ("" for none), sent as the database owner unless the admin is a superuser.
type insideDecision struct {
	result ObjectResult
	sql    string
}

// decideInside decides the extensions, then the schemas, of pd: missing
// ones are created (schemas owned by the module role), schemas owned by
// another role are refused unless --adopt (then given to the module role),
// system schemas are refused (Validate refuses them already; checked again
// before acting).
func decideInside(pd *PlannedDatabase, st insideState, adopt bool) []insideDecision {
	var out []insideDecision
	for _, ext := range pd.Extensions {
		d := insideDecision{result: ObjectResult{Kind: KindExtension, Name: ext, Physical: ext, Database: pd.Physical, Action: outcome.Unchanged}}
		if !st.extensions[ext] {
			d.result.Action, d.sql = outcome.Created, createExtension(ext, st.fixedSchema[ext])
		}
		out = append(out, d)
	}
	for _, sc := range pd.Schemas {
		d := insideDecision{result: ObjectResult{Kind: KindSchema, Name: sc, Physical: sc, Database: pd.Physical, Action: outcome.Unchanged}}
		owner, exists := st.schemaOwner[sc]
		switch {
		case IsSystemSchema(sc):
			d.result.Action, d.result.Reason = outcome.Refused, "system schema: never created or taken over"
		case !exists:
			d.result.Action, d.sql = outcome.Created, createSchemaSQL(sc, pd.OwnerPhysical)
		case owner != pd.OwnerPhysical && !adopt:
			d.result.Action, d.result.Reason = outcome.Refused, "schema exists owned by "+owner+"; rerun with --adopt to take it over"
		case owner != pd.OwnerPhysical:
			d.result.Action, d.sql = outcome.Updated, alterSchemaOwnerSQL(sc, pd.OwnerPhysical)
			d.result.Changes = []string{"adopted (owner " + owner + ")"}
		}
		out = append(out, d)
	}
	return out
}

// pruneInput is what deciding about the scope's unlisted objects needs.
type pruneInput struct {
	admin adminFactsForDecision
	scope Scope
	plan  *Plan
	roles []markedObject // every role carrying a pg-init marker
	dbs   []markedObject // every database carrying a pg-init marker
}

// pruneDecision is one unlisted object: its result, and the DROP to send
// (its result becomes Deleted when it succeeds, Retained when it fails).
type pruneDecision struct {
	result ObjectResult
	drop   string
}

// decidePrune decides, databases first, then roles, what happens to this
// scope's objects that the plan no longer lists (legacy names of planned
// objects count as listed: a legacy object left beside its new-named one
// may hold an earlier copy of the data). A marker alone never makes an
// object this scope's: a role is dropped only when decideRoleOwnership
// says Ours and its marker says reclaimPolicy delete, a database only when
// its owner is such a role. Objects whose marker names this scope but that
// the server says another party controls (a forged marker) are retained.
func decidePrune(in pruneInput) []pruneDecision {
	listed := map[string]bool{}
	for _, d := range in.plan.Databases {
		listed[KindDatabase+":"+d.Physical], listed[KindDatabase+":"+d.Legacy] = true, true
	}
	for _, ro := range in.plan.Roles {
		listed[KindRole+":"+ro.Physical], listed[KindRole+":"+ro.Legacy] = true, true
	}
	ourRoles, foreign := map[string]bool{}, map[string]string{}
	for _, ro := range in.roles {
		if !ro.marker.InScope(in.scope) {
			continue
		}
		if verdict, reason := decideRoleOwnership(in.admin, &ro.role, true); verdict == Ours {
			ourRoles[ro.name] = true
		} else {
			foreign[ro.name] = reason
		}
	}
	var out []pruneDecision
	for _, d := range in.dbs {
		if !d.marker.InScope(in.scope) || listed[KindDatabase+":"+d.name] {
			continue
		}
		p := pruneDecision{result: ObjectResult{Kind: KindDatabase, Name: d.marker.Name, Physical: d.name, Action: outcome.Retained}}
		switch {
		case d.marker.ReclaimPolicy != ReclaimDelete:
			p.result.Reason = "reclaimPolicy " + d.marker.ReclaimPolicy
		case !ourRoles[d.owner]:
			p.result.Reason = "its marker names this scope, but its owner " + d.owner + " is not a role this scope controls; not dropped"
		default:
			p.result.Action, p.drop = outcome.Deleted, dropSQL(KindDatabase, d.name)
		}
		out = append(out, p)
	}
	for _, ro := range in.roles {
		if !ro.marker.InScope(in.scope) || listed[KindRole+":"+ro.name] {
			continue
		}
		p := pruneDecision{result: ObjectResult{Kind: KindRole, Name: ro.marker.Name, Physical: ro.name, Action: outcome.Retained}}
		if why, ok := foreign[ro.name]; ok {
			p.result.Reason = "its marker names this scope, but " + why
		} else if ro.marker.ReclaimPolicy != ReclaimDelete {
			p.result.Reason = "reclaimPolicy " + ro.marker.ReclaimPolicy
		} else {
			p.result.Action, p.drop = outcome.Deleted, dropSQL(KindRole, ro.name)
		}
		out = append(out, p)
	}
	return out
}
