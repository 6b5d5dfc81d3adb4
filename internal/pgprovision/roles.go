package pgprovision

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kommons/kommons/internal/outcome"
	"github.com/kommons/kommons/internal/pgready"
)

// roleColumns reads a role's attributes, comment and control (see
// roleControl) from pg_catalog.pg_roles (or pg_authid) aliased r; every
// name is schema-qualified and the session's search_path is pinned (see
// pinSearchPath), so no object a tenant creates is ever resolved.
const roleColumns = `r.rolname, r.oid, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin, r.rolreplication,
		r.rolbypassrls, r.rolconnlimit, pg_catalog.shobj_description(r.oid, 'pg_authid'),
		COALESCE((SELECT pg_catalog.array_agg(DISTINCT m.rolname::text ORDER BY m.rolname::text)
			FROM pg_catalog.pg_auth_members a JOIN pg_catalog.pg_roles m ON m.oid = a.member
			WHERE a.roleid = r.oid AND m.rolname <> CURRENT_USER AND NOT m.rolsuper), '{}'::text[]),
		EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members a JOIN pg_catalog.pg_roles m ON m.oid = a.member
			WHERE a.roleid = r.oid AND m.rolname = CURRENT_USER AND a.admin_option),
		EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members a JOIN pg_catalog.pg_roles m ON m.oid = a.member
			WHERE a.roleid = r.oid AND m.rolname = CURRENT_USER AND a.grantor = 10)`

// roleStatesQuery selects roleColumns and the stored verifier (readable by
// superusers only; NULL otherwise) of the roles named in $1.
func roleStatesQuery(superuser bool) string {
	if superuser {
		return `SELECT ` + roleColumns + `, r.rolpassword FROM pg_catalog.pg_authid r WHERE r.rolname = ANY($1)`
	}
	return `SELECT ` + roleColumns + `, NULL::text FROM pg_catalog.pg_roles r WHERE r.rolname = ANY($1)`
}

// scanRoleStates reads the rows of roleStatesQuery by role name, closing rows.
func scanRoleStates(rows pgx.Rows) (map[string]*roleState, error) {
	defer rows.Close()
	out := map[string]*roleState{}
	for rows.Next() {
		var name string
		s := &roleState{}
		if err := rows.Scan(&name, &s.oid, &s.super, &s.createRole, &s.createDB, &s.canLogin, &s.replication,
			&s.bypass, &s.connLimit, &s.comment, &s.control.otherMembers, &s.control.adminOption, &s.control.anchored, &s.verifier); err != nil {
			return nil, err
		}
		out[name] = s
	}
	return out, rows.Err()
}

// readRoles observes the plan's roles, under their names and their legacy
// names, in one query, and checks the stored verifiers a superuser reads.
func (r *run) readRoles() (map[string]*roleState, error) {
	names := make([]string, 0, len(r.plan.Roles))
	for _, pr := range r.plan.Roles {
		names = append(names, pr.Physical)
		if pr.Legacy != "" {
			names = append(names, pr.Legacy)
		}
	}
	rows, err := r.admin.Query(r.stmtCtx, roleStatesQuery(r.facts.superuser), names)
	if err != nil {
		return nil, r.redact(fmt.Errorf("read roles: %w", err))
	}
	out, err := scanRoleStates(rows)
	if err != nil {
		return nil, r.redact(fmt.Errorf("read roles: %w", err))
	}
	r.checkVerifiers(out)
	return out, nil
}

// checkVerifiers compares every stored SCRAM verifier with its planned
// password, on all cores at once: each check derives a key (PBKDF2 with the
// stored iteration count, about 0.7 ms), the bulk of an unchanged rerun's
// CPU. Roles without a readable verifier are left to observePassword.
func (r *run) checkVerifiers(states map[string]*roleState) {
	var wg sync.WaitGroup
	slots := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i := range r.plan.Roles {
		pr := &r.plan.Roles[i]
		for _, st := range []*roleState{states[pr.Physical], states[pr.Legacy]} {
			if st == nil || st.verifier == nil || *st.verifier == "" {
				continue
			}
			wg.Add(1)
			slots <- struct{}{}
			go func() {
				defer wg.Done()
				matches := SCRAMMatches(*st.verifier, pr.password)
				st.verifierMatches = &matches
				<-slots
			}()
		}
	}
	wg.Wait()
}

// reconcileRoles observes the plan's roles, then decides and acts on each,
// in parallel (see run.each).
func (r *run) reconcileRoles() error {
	if len(r.plan.Roles) == 0 {
		return nil
	}
	states, err := r.readRoles()
	if err != nil {
		return err
	}
	subjects := make([]ObjectResult, len(r.plan.Roles))
	for i, pr := range r.plan.Roles {
		subjects[i] = ObjectResult{Kind: KindRole, Name: pr.Name, Physical: pr.Physical}
	}
	return r.each(subjects, func(i int, j *job) error {
		pr := &r.plan.Roles[i]
		in := roleInput{admin: r.decisionFacts(), adopt: r.opts.Adopt, scope: r.plan.Scope, role: pr, st: states[pr.Physical]}
		if pr.Legacy != "" {
			in.legacy = states[pr.Legacy]
		}
		return r.reconcileRole(j, in)
	})
}

// reconcileRole decides and acts on one role over the job's session:
// rename a legacy-named one, create a missing one, or, once the server
// says it may be managed, observe its password and the admin's membership
// and bring it in line.
func (r *run) reconcileRole(j *job, in roleInput) error {
	pr := in.role
	res := ObjectResult{Kind: KindRole, Name: pr.Name, Physical: pr.Physical}
	switch n := decideRoleName(in); {
	case n.use == refuseLegacy:
		return j.decided(res, decision{action: outcome.Refused, reason: n.reason})
	case n.use == renameLegacy:
		if err := r.exec(j.conn, "rename role "+pr.Legacy+" to "+pr.Physical, renameSQL(KindRole, pr.Legacy, pr.Physical)); err != nil {
			return err
		}
		in.st, in.renamedFrom = in.legacy, pr.Legacy
		if v := in.st.verifier; v != nil && !strings.HasPrefix(*v, "SCRAM-SHA-256$") {
			// PostgreSQL clears an MD5 verifier on rename (its salt is the
			// name): the password is set again below.
			in.st.verifier, in.st.verifierMatches = nil, nil
		}
	case n.warn:
		r.warnBothNames(KindRole, pr.Name, pr.Physical, pr.Legacy)
	case n.notOurs != "":
		r.warnNotOurs(KindRole, pr.Name, pr.Physical, pr.Legacy, n.notOurs)
	}
	if in.st == nil {
		d := decideRoleCreate(in)
		if err := r.apply(j.conn, "create role "+pr.Physical, pr, d.steps); err != nil {
			return err
		}
		r.markOurs(pr.Physical)
		return j.decided(res, d)
	}
	d := decideRoleAccess(in)
	if d.action == outcome.Refused {
		return j.decided(res, d)
	}
	member, err := r.adminIsMember(j, in.st, pr)
	if err != nil {
		return err
	}
	d = decideRoleChanges(in, d, r.observePassword(pr, in.st), member)
	if err := r.apply(j.conn, "update role "+pr.Physical, pr, d.steps); err != nil {
		return err
	}
	r.markOurs(pr.Physical)
	return j.decided(res, d)
}

// apply sends steps as one batch (see execBatch), filling a fresh SCRAM
// verifier of pr's password into the steps that ask for one.
func (r *run) apply(conn *pgx.Conn, what string, pr *PlannedRole, steps []step) error {
	if len(steps) == 0 {
		return nil
	}
	stmts := make([]stmt, len(steps))
	for i, s := range steps {
		stmts[i] = stmt{sql: s.sql, arg: s.arg}
		if s.verifier {
			v, err := NewSCRAMVerifier(pr.password)
			if err != nil {
				return err
			}
			stmts[i].arg = &v
		}
	}
	return r.execBatch(conn, what, stmts)
}

// membershipPrivilege is what the admin needs on a module role to create
// its database and schemas: PostgreSQL 16 separates SET from membership.
func (r *run) membershipPrivilege() string {
	if r.facts.serverVersion >= 160000 {
		return "SET"
	}
	return "MEMBER"
}

// adminIsMember observes whether a non-superuser admin holds the privilege
// it needs on the role (a superuser needs none: true).
func (r *run) adminIsMember(j *job, st *roleState, pr *PlannedRole) (bool, error) {
	if r.facts.superuser {
		return true, nil
	}
	var member bool
	if err := j.conn.QueryRow(r.stmtCtx, "SELECT pg_catalog.pg_has_role(CURRENT_USER, $1::oid, $2)", st.oid, r.membershipPrivilege()).Scan(&member); err != nil {
		return false, r.redact(fmt.Errorf("check admin membership in %s: %w", pr.Physical, err))
	}
	return member, nil
}

// observePassword tells whether the role's password is already pr's: a
// superuser admin compares the stored SCRAM verifier (recomputed with its
// salt and iterations); any other admin tries to log in as the role, to its
// databases, then to the admin database. When neither can tell, the
// password is set again (same value, new salt).
func (r *run) observePassword(pr *PlannedRole, st *roleState) passwordFact {
	if r.facts.superuser {
		return passwordFromVerifier(st)
	}
	var candidates []string
	for _, d := range r.plan.Databases {
		if d.OwnerPhysical == pr.Physical {
			candidates = append(candidates, d.Physical)
		}
	}
	candidates = append(candidates, r.facts.database)
	for _, db := range candidates {
		err := tryLogin(r.stmtCtx, r.cfg, pr.Physical, pr.password, db)
		if fact, ok := passwordFromLogin(pgready.SQLState(err), err); ok {
			return fact
		}
	}
	return passwordFact{how: "could not be verified by logging in"}
}

// tryLogin connects to database as user with password, over cfg's server
// and settings, and disconnects: nil when the password is right (and the
// role may connect there).
func tryLogin(ctx context.Context, cfg *pgx.ConnConfig, user, password, database string) error {
	c := cfg.Copy()
	c.User, c.Password, c.Database = user, password, database
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, c)
	if err != nil {
		return err
	}
	return conn.Close(context.Background())
}
