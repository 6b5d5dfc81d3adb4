package pgprovision

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kommons/kommons/internal/outcome"
)

// The decisions, tested without a server: what the server says and the
// plan in, outcome and statements out.

var (
	decideScope = Scope{Namespace: "team-a", Release: "web"}
	super15     = adminFactsForDecision{superuser: true, serverVersion: 150000}
	super16     = adminFactsForDecision{superuser: true, serverVersion: 160000}
	prov16      = adminFactsForDecision{superuser: false, serverVersion: 160000}
)

func plannedRole() *PlannedRole {
	limit := -1
	return &PlannedRole{Role: Role{Name: "app", ConnectionLimit: &limit, ReclaimPolicy: ReclaimRetain},
		Physical: "team_a_web_app__0123456789abcdef", Legacy: "team_a_web_app__01234567"}
}

func markerOf(scope Scope, name string) *string {
	m := NewMarker(scope, name, ReclaimRetain).String()
	return &m
}

// managedRole is a role as pg-init left it: LOGIN only, this scope's
// marker, created by this admin (anchored, ADMIN OPTION).
func managedRole() *roleState {
	return &roleState{oid: 42, canLogin: true, connLimit: -1, comment: markerOf(decideScope, "app"),
		control: roleControl{adminOption: true, anchored: true}}
}

func with(st *roleState, edit func(*roleState)) *roleState { edit(st); return st }

func sqls(steps []step) []string {
	var out []string
	for _, s := range steps {
		out = append(out, s.sql)
	}
	return out
}

func TestDecideRoleName(t *testing.T) {
	foreign := with(managedRole(), func(s *roleState) { s.control.otherMembers = []string{"tenant_b"} })
	unanchored := with(managedRole(), func(s *roleState) { s.control.anchored = false })
	unmarked := with(managedRole(), func(s *roleState) { s.comment = nil })
	cases := []struct {
		name       string
		admin      adminFactsForDecision
		adopt      bool
		st, legacy *roleState
		want       existing
		warn       bool
		reason     string
		notOurs    string // a part of the reason a legacy-named role is left alone ("": none)
	}{
		{name: "no legacy", admin: super15, want: useNew},
		{name: "legacy this scope's: rename", admin: super15, legacy: managedRole(), want: renameLegacy},
		{name: "legacy this scope's, provisioner 16+", admin: prov16, legacy: managedRole(), want: renameLegacy},
		{name: "both names, legacy marked: warn", admin: super15, st: managedRole(), legacy: managedRole(), want: useNew, warn: true},
		{name: "both names, legacy unmarked: not ours", admin: super15, st: managedRole(), legacy: unmarked, want: useNew,
			notOurs: "role exists and it has no kommons ownership marker"},
		{name: "both names, legacy marked with other members: not ours, not the both-names warning", admin: super15, st: managedRole(), legacy: foreign, want: useNew,
			notOurs: "other roles hold membership in it (tenant_b)"},
		{name: "legacy with other members: never touched", admin: super15, legacy: foreign, want: useNew,
			notOurs: "other roles hold membership in it (tenant_b)"},
		{name: "legacy with other members, --adopt: never touched", admin: super16, adopt: true, legacy: foreign, want: useNew,
			notOurs: "not taken over, even with --adopt"},
		{name: "legacy without marker: never touched", admin: super15, legacy: unmarked, want: useNew, notOurs: "has no kommons ownership marker"},
		{name: "legacy without marker, --adopt: never touched", admin: super15, adopt: true, legacy: unmarked, want: useNew, notOurs: "has no kommons ownership marker"},
		{name: "legacy another scope's: never touched", admin: super15,
			legacy: with(managedRole(), func(s *roleState) { s.comment = markerOf(Scope{Namespace: "team", Release: "a-web"}, "app") }), want: useNew,
			notOurs: "team/a-web"},
		{name: "legacy not created by this provisioner: never touched", admin: prov16, legacy: unanchored, want: useNew,
			notOurs: "this provisioner does not hold ADMIN OPTION on it"},
		{name: "legacy marked, superuser 16+ without anchor: refused", admin: super16, legacy: unanchored, want: refuseLegacy,
			reason: "legacy-named role team_a_web_app__01234567: role exists and its marker names scope team-a/web object app, and this admin did not create it"},
		{name: "legacy marked, superuser 16+ without anchor, --adopt: rename", admin: super16, adopt: true, legacy: unanchored, want: renameLegacy},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := decideRoleName(roleInput{admin: c.admin, adopt: c.adopt, scope: decideScope, role: plannedRole(), st: c.st, legacy: c.legacy})
			assert.Equal(t, c.want, n.use)
			assert.Equal(t, c.warn, n.warn)
			if c.notOurs == "" {
				assert.Empty(t, n.notOurs)
			} else {
				assert.Contains(t, n.notOurs, c.notOurs)
			}
			if c.reason != "" {
				assert.Contains(t, n.reason, c.reason)
				assert.Contains(t, n.reason, "rerun with --adopt to rename")
			}
		})
	}
}

func TestDecideRoleCreate(t *testing.T) {
	create := `CREATE ROLE "team_a_web_app__0123456789abcdef" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT -1 PASSWORD $1`
	comment := `COMMENT ON ROLE "team_a_web_app__0123456789abcdef" IS $1`
	grant := `GRANT "team_a_web_app__0123456789abcdef" TO CURRENT_USER`
	for _, c := range []struct {
		name  string
		admin adminFactsForDecision
		want  []string
	}{
		{"superuser 15: no grant", super15, []string{create, comment}},
		{"superuser 16+: the anchor", super16, []string{create, comment, grant}},
		{"provisioner: membership", prov16, []string{create, comment, grant}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := decideRoleCreate(roleInput{admin: c.admin, scope: decideScope, role: plannedRole()})
			assert.Equal(t, outcome.Created, d.action)
			assert.Equal(t, c.want, sqls(d.steps))
			assert.True(t, d.steps[0].verifier, "the verifier is computed when sent")
			assert.Equal(t, *markerOf(decideScope, "app"), *d.steps[1].arg)
			assert.Empty(t, d.notes())
		})
	}
}

func TestDecideRoleChanges(t *testing.T) {
	same := passwordFact{same: true}
	alter := func(clauses string) string { return `ALTER ROLE "team_a_web_app__0123456789abcdef" WITH ` + clauses }
	comment := `COMMENT ON ROLE "team_a_web_app__0123456789abcdef" IS $1`
	grant := `GRANT "team_a_web_app__0123456789abcdef" TO CURRENT_USER`
	cases := []struct {
		name        string
		admin       adminFactsForDecision
		adopt       bool
		st          *roleState
		renamedFrom string
		pw          passwordFact
		member      bool
		action      outcome.Action
		changes     []string
		sql         []string
		reason      string
	}{
		{name: "in line: unchanged", admin: super15, st: managedRole(), pw: same, member: true, action: outcome.Unchanged},
		{name: "attributes and limit", admin: super15, pw: same, member: true,
			st:     with(managedRole(), func(s *roleState) { s.canLogin, s.createDB, s.bypass, s.connLimit = false, true, true, 5 }),
			action: outcome.Updated, changes: []string{"LOGIN", "NOCREATEDB", "NOBYPASSRLS", "CONNECTION LIMIT -1"},
			sql: []string{alter("LOGIN NOCREATEDB NOBYPASSRLS CONNECTION LIMIT -1")}},
		{name: "password changed", admin: super15, st: managedRole(), pw: passwordFact{how: "changed"}, member: true,
			action: outcome.Updated, changes: []string{"password (changed)"}, sql: []string{alter("PASSWORD $1")}},
		{name: "marker rewritten", admin: super15, pw: same, member: true,
			st: with(managedRole(), func(s *roleState) {
				s.comment = lit(`{"managedBy":"kommons/pg-init","namespace":"team-a","release":"web","name":"app","reclaimPolicy":"delete"}`)
			}),
			action: outcome.Updated, changes: []string{"marker"}, sql: []string{comment}},
		{name: "renamed, nothing else", admin: super15, st: managedRole(), renamedFrom: "team_a_web_app__01234567", pw: same, member: true,
			action: outcome.Updated, changes: []string{"renamed from team_a_web_app__01234567"}},
		{name: "other members: refused even with --adopt", admin: super15, adopt: true, pw: same,
			st:     with(managedRole(), func(s *roleState) { s.control.otherMembers = []string{"intruder"} }),
			action: outcome.Refused, reason: "other roles hold membership in it (intruder)"},
		{name: "superuser role: refused", admin: super15, st: with(managedRole(), func(s *roleState) { s.super = true }),
			action: outcome.Refused, reason: "role is a superuser"},
		{name: "no marker: refused without --adopt", admin: super15, st: with(managedRole(), func(s *roleState) { s.comment = nil }),
			action: outcome.Refused, reason: "role exists and it has no kommons ownership marker; rerun with --adopt to take it over"},
		{name: "no marker, --adopt: adopted", admin: super15, adopt: true, pw: same, member: true,
			st:     with(managedRole(), func(s *roleState) { s.comment = nil }),
			action: outcome.Updated, changes: []string{"adopted (it has no kommons ownership marker)"}, sql: []string{comment}},
		{name: "superuser 16+ without anchor, --adopt: anchored", admin: super16, adopt: true, pw: same, member: true,
			st:     with(managedRole(), func(s *roleState) { s.control.anchored = false }),
			action: outcome.Updated, changes: []string{"adopted (its marker names scope team-a/web object app)", "admin anchor"}, sql: []string{grant}},
		{name: "provisioner without ADMIN OPTION: refused", admin: prov16, adopt: true,
			st:     with(managedRole(), func(s *roleState) { s.control.adminOption = false }),
			action: outcome.Refused, reason: "does not hold ADMIN OPTION"},
		{name: "provisioner lost its membership", admin: prov16, st: managedRole(), pw: same, member: false,
			action: outcome.Updated, changes: []string{"admin membership"}, sql: []string{grant}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := roleInput{admin: c.admin, adopt: c.adopt, scope: decideScope, role: plannedRole(), st: c.st, renamedFrom: c.renamedFrom}
			d := decideRoleAccess(in)
			if d.action != outcome.Refused {
				d = decideRoleChanges(in, d, c.pw, c.member)
			}
			assert.Equal(t, c.action, d.action)
			assert.Equal(t, c.changes, d.notes())
			assert.Equal(t, c.sql, sqls(d.steps))
			assert.Contains(t, d.reason, c.reason)
			for _, s := range d.steps {
				assert.Equal(t, s.sql == alter("PASSWORD $1"), s.verifier, "only a new password takes a verifier")
			}
		})
	}
}

func TestPasswordFacts(t *testing.T) {
	yes, no := true, false
	scram, none := "SCRAM-SHA-256$4096:...", ""
	assert.Equal(t, passwordFact{same: true}, passwordFromVerifier(&roleState{verifier: &scram, verifierMatches: &yes}))
	assert.Equal(t, passwordFact{how: "changed"}, passwordFromVerifier(&roleState{verifier: &scram, verifierMatches: &no}))
	assert.Equal(t, passwordFact{how: "none set"}, passwordFromVerifier(&roleState{verifier: &none}))
	assert.Equal(t, passwordFact{how: "none set"}, passwordFromVerifier(&roleState{}))

	f, ok := passwordFromLogin("", nil)
	assert.Equal(t, passwordFact{same: true}, f)
	assert.True(t, ok)
	f, ok = passwordFromLogin("28P01", errors.New("password authentication failed"))
	assert.Equal(t, passwordFact{how: "changed"}, f)
	assert.True(t, ok)
	for _, code := range []string{"3D000", "42501"} {
		_, ok = passwordFromLogin(code, errors.New("cannot connect there"))
		assert.False(t, ok, "%s: try the next database", code)
	}
	f, ok = passwordFromLogin("", errors.New("connection refused"))
	assert.Equal(t, passwordFact{how: "could not be verified by logging in"}, f)
	assert.True(t, ok)
}

func plannedDatabase() *PlannedDatabase {
	return &PlannedDatabase{Database: Database{Name: "app", Owner: "app", ReclaimPolicy: ReclaimRetain},
		Physical: "team_a_web_app__0123456789abcdef", Legacy: "team_a_web_app__01234567", OwnerPhysical: "team_a_web_app__0123456789abcdef"}
}

// managedDatabase is a database as pg-init left it.
func managedDatabase() *databaseState {
	return &databaseState{owner: "team_a_web_app__0123456789abcdef", comment: markerOf(decideScope, "app"), ownerConnect: true}
}

func TestDecideDatabaseName(t *testing.T) {
	otherOwner := &databaseState{owner: "someone", comment: markerOf(decideScope, "app")}
	for _, c := range []struct {
		name       string
		ownerOurs  bool
		st, legacy *databaseState
		want       existing
		warn       bool
		notOurs    string // a part of the reason a legacy-named database is left alone ("": none)
	}{
		{"no legacy", true, nil, nil, useNew, false, ""},
		{"legacy owned by this scope's role: rename", true, nil, managedDatabase(), renameLegacy, false, ""},
		{"legacy owned by another role, marked: never touched", true, nil, otherOwner, useNew, false,
			"database exists owned by someone, not by this scope's role team_a_web_app__0123456789abcdef"},
		{"owner role refused: never touched (the role's refusal says why)", false, nil, managedDatabase(), useNew, false, ""},
		{"both names, legacy marked: warn", true, managedDatabase(), managedDatabase(), useNew, true, ""},
		{"both names, legacy owned by another role: not ours, not the both-names warning", true, managedDatabase(), otherOwner, useNew, false, "owned by someone"},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := decideDatabaseName(databaseInput{scope: decideScope, db: plannedDatabase(), ownerOurs: c.ownerOurs, st: c.st, legacy: c.legacy})
			assert.Equal(t, c.want, n.use)
			assert.Equal(t, c.warn, n.warn)
			if c.notOurs == "" {
				assert.Empty(t, n.notOurs)
			} else {
				assert.Contains(t, n.notOurs, c.notOurs)
			}
		})
	}
}

func TestDecideDatabase(t *testing.T) {
	db := `"team_a_web_app__0123456789abcdef"`
	create := `CREATE DATABASE ` + db + ` OWNER ` + db
	comment := `COMMENT ON DATABASE ` + db + ` IS $1`
	revoke := `REVOKE CONNECT, TEMPORARY ON DATABASE ` + db + ` FROM PUBLIC`
	grant := `GRANT CONNECT ON DATABASE ` + db + ` TO ` + db
	owner := `ALTER DATABASE ` + db + ` OWNER TO ` + db
	for _, c := range []struct {
		name        string
		adopt       bool
		ownerOurs   bool
		st          *databaseState
		renamedFrom string
		action      outcome.Action
		changes     []string
		sql         []string
		reason      string
	}{
		{name: "owner role refused", st: nil, action: outcome.Refused, reason: "its owner role team_a_web_app__0123456789abcdef was refused"},
		{name: "missing: created, locked down", ownerOurs: true, action: outcome.Created, sql: []string{create, comment, revoke, grant}},
		{name: "in line: unchanged", ownerOurs: true, st: managedDatabase(), action: outcome.Unchanged},
		{name: "renamed", ownerOurs: true, st: managedDatabase(), renamedFrom: "team_a_web_app__01234567",
			action: outcome.Updated, changes: []string{"renamed from team_a_web_app__01234567"}},
		{name: "created by an interrupted run: marker restored, locked down", ownerOurs: true,
			st:     &databaseState{owner: "team_a_web_app__0123456789abcdef", publicConnect: true, publicTemp: true, ownerConnect: true},
			action: outcome.Updated, changes: []string{"marker restored (owned by this scope's role; it has no kommons ownership marker)", "REVOKE CONNECT, TEMPORARY FROM PUBLIC"},
			sql: []string{comment, revoke}},
		{name: "forged marker, another owner: refused", ownerOurs: true,
			st:     &databaseState{owner: "intruder", comment: markerOf(decideScope, "app")},
			action: outcome.Refused, reason: "database exists owned by intruder, not by this scope's role team_a_web_app__0123456789abcdef (its marker names scope team-a/web object app); rerun with --adopt to take it over"},
		{name: "another owner, --adopt: owner and CONNECT", ownerOurs: true, adopt: true,
			st:     &databaseState{owner: "intruder", comment: markerOf(decideScope, "app"), ownerConnect: true},
			action: outcome.Updated, changes: []string{"adopted (its marker names scope team-a/web object app, owner intruder)",
				"owner intruder -> team_a_web_app__0123456789abcdef", "GRANT CONNECT to owner"}, sql: []string{owner, grant}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := decideDatabase(databaseInput{adopt: c.adopt, scope: decideScope, db: plannedDatabase(), ownerOurs: c.ownerOurs, st: c.st, renamedFrom: c.renamedFrom})
			assert.Equal(t, c.action, d.action)
			assert.Equal(t, c.changes, d.notes())
			assert.Equal(t, c.sql, sqls(d.steps))
			assert.Equal(t, c.reason, d.reason)
		})
	}
}

func TestDecideInside(t *testing.T) {
	pd := plannedDatabase()
	pd.Extensions = []string{"pg_trgm", "plpgsql", "postgis"}
	pd.Schemas = []string{"s1", "s2", "s3", "pg_evil"}
	st := insideState{extensions: map[string]bool{"plpgsql": true}, fixedSchema: map[string]bool{"postgis": true},
		schemaOwner: map[string]string{"s2": pd.OwnerPhysical, "s3": "intruder"}}
	type got struct {
		name    string
		action  outcome.Action
		sql     string
		reason  string
		changes []string
	}
	summarize := func(ds []insideDecision) []got {
		var out []got
		for _, d := range ds {
			out = append(out, got{d.result.Kind + ":" + d.result.Name, d.result.Action, d.sql, d.result.Reason, d.result.Changes})
		}
		return out
	}
	owner := `"team_a_web_app__0123456789abcdef"`
	assert.Equal(t, []got{
		{"extension:pg_trgm", outcome.Created, `CREATE EXTENSION IF NOT EXISTS "pg_trgm" SCHEMA public`, "", nil},
		{"extension:plpgsql", outcome.Unchanged, "", "", nil},
		{"extension:postgis", outcome.Created, `CREATE EXTENSION IF NOT EXISTS "postgis"`, "", nil},
		{"schema:s1", outcome.Created, `CREATE SCHEMA IF NOT EXISTS "s1" AUTHORIZATION ` + owner, "", nil},
		{"schema:s2", outcome.Unchanged, "", "", nil},
		{"schema:s3", outcome.Refused, "", "schema exists owned by intruder; rerun with --adopt to take it over", nil},
		{"schema:pg_evil", outcome.Refused, "", "system schema: never created or taken over", nil},
	}, summarize(decideInside(pd, st, false)))
	adopted := summarize(decideInside(pd, st, true))
	assert.Equal(t, got{"schema:s3", outcome.Updated, `ALTER SCHEMA "s3" OWNER TO ` + owner, "", []string{"adopted (owner intruder)"}}, adopted[5])
	assert.Equal(t, outcome.Refused, adopted[6].action, "a system schema even with --adopt")
}

func TestDecidePrune(t *testing.T) {
	plan := &Plan{Scope: decideScope, Roles: []PlannedRole{*plannedRole()}, Databases: []PlannedDatabase{*plannedDatabase()}}
	marked := func(name, logical, policy string, scope Scope, st roleState) markedObject {
		return markedObject{name: name, marker: NewMarker(scope, logical, policy), role: st}
	}
	ours := *managedRole()
	forged := *with(managedRole(), func(s *roleState) { s.control.otherMembers = []string{"intruder"} })
	roles := []markedObject{
		marked("team_a_web_app__0123456789abcdef", "app", ReclaimDelete, decideScope, ours), // listed
		marked("team_a_web_app__01234567", "app", ReclaimDelete, decideScope, ours),         // its legacy name: listed
		marked("r_gone", "gone", ReclaimDelete, decideScope, ours),
		marked("r_kept", "kept", ReclaimRetain, decideScope, ours),
		marked("r_forged", "forged", ReclaimDelete, decideScope, forged),
		marked("r_other", "gone", ReclaimDelete, Scope{Namespace: "other", Release: "web"}, ours),
	}
	dbs := []markedObject{
		{name: "team_a_web_app__01234567", owner: "r_gone", marker: NewMarker(decideScope, "app", ReclaimDelete)},
		{name: "d_gone", owner: "r_gone", marker: NewMarker(decideScope, "gone", ReclaimDelete)},
		{name: "d_kept", owner: "r_gone", marker: NewMarker(decideScope, "kept", ReclaimRetain)},
		{name: "d_forged", owner: "r_forged", marker: NewMarker(decideScope, "forged", ReclaimDelete)},
		{name: "d_other", owner: "r_other", marker: NewMarker(Scope{Namespace: "other", Release: "web"}, "gone", ReclaimDelete)},
	}
	var got []string
	for _, p := range decidePrune(pruneInput{admin: super15, scope: decideScope, plan: plan, roles: roles, dbs: dbs}) {
		got = append(got, p.result.Kind+" "+p.result.Physical+" "+string(p.result.Action)+" ["+p.drop+"] "+p.result.Reason)
	}
	assert.Equal(t, []string{
		`database d_gone deleted [DROP DATABASE "d_gone"] `,
		`database d_kept retained [] reclaimPolicy retain`,
		`database d_forged retained [] its marker names this scope, but its owner r_forged is not a role this scope controls; not dropped`,
		`role r_gone deleted [DROP ROLE "r_gone"] `,
		`role r_kept retained [] reclaimPolicy retain`,
		`role r_forged retained [] its marker names this scope, but other roles hold membership in it (intruder): whoever controls them can act as this role; not taken over, even with --adopt`,
	}, got)
}
