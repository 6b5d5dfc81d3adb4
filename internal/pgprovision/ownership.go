package pgprovision

import "strings"

// Ownership is what pg-init concludes about an existing role or database
// from what the server says: who holds membership in a role, who holds
// ADMIN OPTION on it, who owns a database. Markers (comments) only name
// the logical object and its reclaim policy; they never make an object
// "ours" on their own, since a role's comment can be written by anyone
// holding ADMIN OPTION on it and a database's by its owner.
type Ownership int

// The verdicts of decideRoleOwnership and decideDatabaseOwnership.
const (
	// Ours: this scope may manage the object.
	Ours Ownership = iota
	// Adoptable: the server lets this admin control the object, but its
	// marker names no scope or another one; --adopt takes it over.
	Adoptable
	// Foreign: another party controls the object; refused even with --adopt.
	Foreign
)

// roleControl is who, besides the connected admin, controls a role: the
// roles that are members of it (any grant), and whether the admin holds
// ADMIN OPTION on it (PostgreSQL 16+: a CREATEROLE role may alter, comment
// on, grant or drop only the roles it holds ADMIN OPTION on).
type roleControl struct {
	otherMembers []string // members other than the admin, sorted
	adminOption  bool     // the admin holds ADMIN OPTION
	// anchored: the admin holds a membership in the role granted by the
	// bootstrap superuser (grantor 10). PostgreSQL 16+ records every grant a
	// superuser makes, and the grant a CREATEROLE role gets on a role it
	// creates, as the bootstrap superuser's; a tenant cannot make one. pg-init
	// records it when it creates a role, so it tells this admin's roles from a
	// role a tenant created under the same name and then orphaned (dropping
	// its creator drops every membership, leaving a role nobody holds).
	anchored bool
}

// adminFactsForDecision is the part of the admin's identity decisions use.
type adminFactsForDecision struct {
	superuser     bool
	serverVersion int
}

// confinedCreateRole reports whether the server confines CREATEROLE to the
// roles its holder administers (PostgreSQL 16 and newer).
func confinedCreateRole(serverVersion int) bool { return serverVersion >= 160000 }

// decideRoleOwnership decides, without side effects, whether an existing
// role may be managed by this scope. markedOurs says whether its marker
// names this scope and logical name; st is what the server says.
//
//   - A superuser role is never managed.
//   - A role that any other role is a member of is Foreign: whoever holds
//     that membership (or ADMIN OPTION) can act as the role or reset its
//     password, so this scope's module must not trust it. This is how a
//     role squatted under another tenant's physical name is recognised.
//   - On PostgreSQL 16+, a non-superuser admin must hold ADMIN OPTION on
//     the role through a grant of the bootstrap superuser (it created it, or
//     was handed it by the commons migration): Foreign otherwise. A
//     superuser admin must hold the anchor it records when it creates a
//     role (see roleControl.anchored): Adoptable otherwise, refused unless
//     --adopt.
//   - Otherwise the marker decides between Ours and Adoptable.
func decideRoleOwnership(admin adminFactsForDecision, st *roleState, markedOurs bool) (Ownership, string) {
	if st.super {
		return Foreign, "role is a superuser"
	}
	if len(st.control.otherMembers) > 0 {
		return Foreign, "other roles hold membership in it (" + strings.Join(st.control.otherMembers, ", ") +
			"): whoever controls them can act as this role; not taken over, even with --adopt"
	}
	if confinedCreateRole(admin.serverVersion) {
		switch {
		case !admin.superuser && !(st.control.adminOption && st.control.anchored):
			return Foreign, "this provisioner does not hold ADMIN OPTION on it (it did not create it); not taken over, even with --adopt"
		case admin.superuser && !st.control.anchored:
			// Created by another superuser session, by hand, or squatted by a
			// tenant and orphaned: nothing on the server says which.
			return Adoptable, "role exists and " + describeOwner(st.comment) + ", and this admin did not create it " +
				"(no membership granted by the bootstrap superuser records it): check who created it and what it owns before adopting"
		}
	}
	if !markedOurs {
		return Adoptable, "role exists and " + describeOwner(st.comment)
	}
	return Ours, ""
}

// decideDatabaseOwnership decides, without side effects, whether an
// existing database may be managed by this scope: it is Ours when the
// server says its owner is the planned owner role (which this scope
// controls: decided before), whatever its comment says; a database owned
// by anyone else is Adoptable, whatever its comment says (even this
// scope's marker): --adopt runs ALTER DATABASE OWNER, which the server
// permits only to a superuser or a member of the current owner that can
// SET ROLE to the new one and has CREATEDB.
func decideDatabaseOwnership(st *databaseState, plannedOwner string) (Ownership, string) {
	if st.owner == plannedOwner {
		return Ours, ""
	}
	return Adoptable, "database exists owned by " + st.owner + ", not by this scope's role " + plannedOwner +
		" (" + describeOwner(st.comment) + ")"
}
