package pgprovision

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kommons/kommons/internal/outcome"
)

// roleState is a role as the server has it.
type roleState struct {
	oid                                                        uint32
	super, createRole, createDB, canLogin, replication, bypass bool
	connLimit                                                  int
	comment                                                    *string
	verifier                                                   *string // rolpassword; read only by a superuser admin
	verifierMatches                                            *bool   // verifier checked against the planned password
	control                                                    roleControl
}

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
// CPU. Roles without a readable verifier are left to passwordUnchanged.
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
		var legacy *roleState
		if pr.Legacy != "" {
			legacy = states[pr.Legacy]
		}
		return r.reconcileRole(j, pr, states[pr.Physical], legacy)
	})
}

// membershipPrivilege is what the admin needs on a module role to create
// its database and schemas: PostgreSQL 16 separates SET from membership.
func (r *run) membershipPrivilege() string {
	if r.facts.serverVersion >= 160000 {
		return "SET"
	}
	return "MEMBER"
}

// selfGrant is the statement that makes a non-superuser admin a member
// of a module role it created: CREATE DATABASE ... OWNER and SET ROLE need
// SET, and setting up the database (comment, privileges) needs the owner's
// privileges, so the membership also inherits. It stays inside the tenant:
// the admin is that tenant's own provisioner.
func (r *run) selfGrant(role string) string {
	return fmt.Sprintf("GRANT %s TO CURRENT_USER", role)
}

// reconcileRole reconciles pr over the job's session, given its state st
// (nil: missing) and the state of its legacy name (nil: none, see
// renameLegacyRole).
func (r *run) reconcileRole(j *job, pr *PlannedRole, st, legacy *roleState) error {
	res := ObjectResult{Kind: KindRole, Name: pr.Name, Physical: pr.Physical}
	marker := NewMarker(r.plan.Scope, pr.Name, pr.ReclaimPolicy).String()
	role := ident(pr.Physical)
	limit := *pr.ConnectionLimit
	switch {
	case st == nil && legacy != nil:
		renamed, refusal, err := r.renameLegacyRole(j, pr, legacy)
		switch {
		case err != nil:
			return err
		case refusal != "":
			res.Action, res.Reason = outcome.Refused, refusal
			j.record(res)
			return nil
		case renamed:
			st = legacy
			res.Changes = append(res.Changes, "renamed from "+pr.Legacy)
		}
	case legacy != nil:
		r.warnBothNames(KindRole, pr.Name, pr.Physical, pr.Legacy, legacy.comment)
	}
	if st == nil {
		verifier, err := NewSCRAMVerifier(pr.password)
		if err != nil {
			return err
		}
		stmts := []stmt{
			{fmt.Sprintf("CREATE ROLE %s WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "+
				"NOREPLICATION NOBYPASSRLS CONNECTION LIMIT %d PASSWORD $1", role, limit), lit(verifier)},
			{fmt.Sprintf("COMMENT ON ROLE %s IS $1", role), lit(marker)},
		}
		if !r.facts.superuser || confinedCreateRole(r.facts.serverVersion) {
			// A superuser's grant is recorded as the bootstrap superuser's:
			// the anchor that tells this admin's roles from squatted ones.
			stmts = append(stmts, stmt{r.selfGrant(role), nil})
		}
		if err := r.execBatch(j.conn, "create role "+pr.Physical, stmts); err != nil {
			return err
		}
		res.Action = outcome.Created
		r.markOurs(pr.Physical)
		j.record(res)
		return nil
	}
	switch verdict, reason := decideRoleOwnership(r.decisionFacts(), st, r.isOurs(st.comment, pr.Name)); verdict {
	case Foreign:
		res.Action, res.Reason = outcome.Refused, reason
		j.record(res)
		return nil
	case Adoptable:
		if !r.opts.Adopt {
			res.Action, res.Reason = outcome.Refused, reason+"; rerun with --adopt to take it over"
			j.record(res)
			return nil
		}
		res.Changes = append(res.Changes, "adopted ("+describeOwner(st.comment)+")")
	}
	var attrs string
	flag := func(wrong bool, clause string) {
		if wrong {
			attrs += " " + clause
			res.Changes = append(res.Changes, clause)
		}
	}
	flag(!st.canLogin, "LOGIN")
	flag(st.super, "NOSUPERUSER")
	flag(st.createDB, "NOCREATEDB")
	flag(st.createRole, "NOCREATEROLE")
	flag(st.replication, "NOREPLICATION")
	flag(st.bypass, "NOBYPASSRLS")
	if st.connLimit != limit {
		clause := fmt.Sprintf("CONNECTION LIMIT %d", limit)
		attrs += " " + clause
		res.Changes = append(res.Changes, clause)
	}
	var password *string
	same, how := r.passwordUnchanged(pr, st)
	if !same {
		verifier, err := NewSCRAMVerifier(pr.password)
		if err != nil {
			return err
		}
		attrs += " PASSWORD $1"
		password = lit(verifier)
		res.Changes = append(res.Changes, "password ("+how+")")
	}
	var stmts []stmt
	if attrs != "" {
		stmts = append(stmts, stmt{fmt.Sprintf("ALTER ROLE %s WITH%s", role, attrs), password})
	}
	if deref(st.comment) != marker {
		stmts = append(stmts, stmt{fmt.Sprintf("COMMENT ON ROLE %s IS $1", role), lit(marker)})
		if r.isOurs(st.comment, pr.Name) {
			res.Changes = append(res.Changes, "marker")
		}
	}
	if r.facts.superuser && confinedCreateRole(r.facts.serverVersion) && !st.control.anchored {
		stmts = append(stmts, stmt{r.selfGrant(role), nil})
		res.Changes = append(res.Changes, "admin anchor")
	}
	if !r.facts.superuser {
		var member bool
		if err := j.conn.QueryRow(r.stmtCtx, "SELECT pg_catalog.pg_has_role(CURRENT_USER, $1::oid, $2)", st.oid, r.membershipPrivilege()).Scan(&member); err != nil {
			return r.redact(fmt.Errorf("check admin membership in %s: %w", pr.Physical, err))
		}
		if !member {
			stmts = append(stmts, stmt{r.selfGrant(role), nil})
			res.Changes = append(res.Changes, "admin membership")
		}
	}
	if len(stmts) > 0 {
		if err := r.execBatch(j.conn, "update role "+pr.Physical, stmts); err != nil {
			return err
		}
	}
	res.Action = outcome.Unchanged
	if len(stmts) > 0 || len(res.Changes) > 0 {
		res.Action = outcome.Updated
	}
	r.markOurs(pr.Physical)
	j.record(res)
	return nil
}

// passwordUnchanged tells whether the role's password is already pr's: a
// superuser admin compares the stored SCRAM verifier (recomputed with its
// salt and iterations); any other admin tries to log in as the role. When
// neither can tell, the password is set again (same value, new salt).
func (r *run) passwordUnchanged(pr *PlannedRole, st *roleState) (bool, string) {
	if r.facts.superuser {
		if st.verifierMatches != nil && *st.verifierMatches {
			return true, ""
		}
		if st.verifier == nil || *st.verifier == "" {
			return false, "none set"
		}
		return false, "changed"
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
		if err == nil {
			return true, ""
		}
		switch sqlState(err) {
		case "28P01":
			return false, "changed"
		case "3D000", "42501": // database missing, or no CONNECT: try the next
			continue
		}
		return false, "could not be verified by logging in"
	}
	return false, "could not be verified by logging in"
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
