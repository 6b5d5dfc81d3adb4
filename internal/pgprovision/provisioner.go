package pgprovision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kommons/kommons/internal/outcome"
	"github.com/kommons/kommons/internal/pgconfig"
	"github.com/kommons/kommons/internal/redact"
)

// KindProvisioner is the report kind of a tenant's provisioner role.
const KindProvisioner = "provisioner"

// ProvisionerManagedBy is the managedBy value of a provisioner role's marker.
const ProvisionerManagedBy = "kommons/commons"

// TenantProvisioner is the provisioner identity of one tenant namespace:
// the LOGIN NOSUPERUSER CREATEDB CREATEROLE role that the tenant's pg-init
// runs as. On PostgreSQL 16 and newer the server confines it to the roles
// it creates (it holds ADMIN OPTION on those only), so one tenant's
// credentials give no access to another tenant's roles or databases.
type TenantProvisioner struct {
	// Namespace is the tenant's Kubernetes namespace (marker, logs, and the
	// legacy migration, which hands each module role to the provisioner of
	// the namespace its marker names).
	Namespace string
	// Role is the physical role name.
	Role string
	// Password is the role's password (never logged).
	Password string
}

// ProvisionerOptions tunes EnsureProvisioners.
type ProvisionerOptions struct {
	// Legacy is the one shared provisioner role of kommons before scoped
	// provisioners (kommons_provisioner), whose password every tenant
	// namespace held. When it exists, every module role it administers is
	// handed to the provisioner of the tenant its marker names, and the
	// legacy role loses LOGIN, CREATEDB and CREATEROLE. Empty: no migration.
	Legacy string
	// Logger receives one line per object; nil discards.
	Logger *slog.Logger
}

// ErrUnconfinedCreateRole is returned for more than one tenant on a server
// older than PostgreSQL 16, where CREATEROLE lets a role alter every
// non-superuser role: per-tenant provisioners could take over each other's
// roles, so kommons refuses rather than run a silently weaker mode.
var ErrUnconfinedCreateRole = errors.New("more than one tenant on a server older than PostgreSQL 16: " +
	"there CREATEROLE lets every tenant's provisioner alter every other tenant's roles (reset their passwords, become them), " +
	"so tenants cannot be isolated; onboard one tenant per server, or upgrade the server to PostgreSQL 16 or newer")

var roleName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// provisionerMarker is the comment of a tenant's provisioner role.
type provisionerMarker struct {
	ManagedBy string `json:"managedBy"`
	Tenant    string `json:"tenant"`
}

func (m provisionerMarker) String() string {
	b, _ := json.Marshal(m) // cannot fail: strings only
	return string(b)
}

// ValidateProvisioners checks names and passwords before any connection:
// role names are lower-case identifiers of at most 63 bytes outside the
// reserved pg_ prefix, each used once, and passwords pass CheckPassword.
func ValidateProvisioners(provs []TenantProvisioner) error {
	if len(provs) == 0 {
		return errors.New("no provisioner role given")
	}
	seenRole, seenNS := map[string]bool{}, map[string]bool{}
	for _, p := range provs {
		switch {
		case !roleName.MatchString(p.Role) || strings.HasPrefix(p.Role, "pg_"):
			return fmt.Errorf("provisioner role %q of tenant %q: want [a-z_][a-z0-9_]*, at most 63 bytes, not starting with pg_", p.Role, p.Namespace)
		case seenRole[p.Role]:
			return fmt.Errorf("provisioner role %q is given twice", p.Role)
		case p.Namespace != "" && seenNS[p.Namespace]:
			return fmt.Errorf("tenant %q is given twice", p.Namespace)
		}
		seenRole[p.Role], seenNS[p.Namespace] = true, true
		if err := CheckPassword(p.Password); err != nil {
			return fmt.Errorf("password of provisioner role %s: %w", p.Role, err)
		}
	}
	return nil
}

// EnsureProvisioners creates, or repairs, one provisioner role per tenant:
// LOGIN NOSUPERUSER CREATEDB CREATEROLE NOREPLICATION NOBYPASSRLS with its
// password (a SCRAM verifier computed here), marked with its tenant. The
// admin of cfg is a superuser, or (managed services) a role with CREATEDB
// and CREATEROLE; its credentials never leave the commons namespace.
//
// A role that exists but that another role holds membership in (a squatter
// created it under this name) or that is a superuser is refused: the
// result is a *ConflictError. On a server older than PostgreSQL 16 more
// than one tenant is ErrUnconfinedCreateRole. With o.Legacy set, the
// shared provisioner of earlier versions is migrated away (see
// ProvisionerOptions.Legacy).
func EnsureProvisioners(ctx context.Context, cfg *pgx.ConnConfig, provs []TenantProvisioner, o ProvisionerOptions) (*Report, error) {
	if err := ValidateProvisioners(provs); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	secrets := []string{cfg.Password}
	for _, p := range provs {
		secrets = append(secrets, p.Password)
	}
	redact := func(err error) error { return redact.Error(err, secrets...) }
	cfg = pinSearchPath(cfg)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, redact(fmt.Errorf("connect as admin (%s): %w", pgconfig.Describe(cfg), err))
	}
	defer conn.Close(context.Background())
	var admin struct {
		name                        string
		super, createRole, createDB bool
		version                     int
	}
	if err := conn.QueryRow(ctx, `SELECT CURRENT_USER, r.rolsuper, r.rolcreaterole, r.rolcreatedb,
		pg_catalog.current_setting('server_version_num')::int FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER`).
		Scan(&admin.name, &admin.super, &admin.createRole, &admin.createDB, &admin.version); err != nil {
		return nil, redact(fmt.Errorf("read admin role: %w", err))
	}
	if !admin.super && !(admin.createRole && admin.createDB) {
		return nil, fmt.Errorf("admin role %s needs SUPERUSER, or CREATEROLE and CREATEDB, to create tenant provisioners", admin.name)
	}
	if !confinedCreateRole(admin.version) && len(provs) > 1 {
		return nil, fmt.Errorf("%d tenants, server_version_num %d: %w", len(provs), admin.version, ErrUnconfinedCreateRole)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_catalog.pg_advisory_lock($1)", LockKey()); err != nil {
		return nil, redact(fmt.Errorf("advisory lock: %w", err))
	}
	facts := adminFactsForDecision{superuser: admin.super, serverVersion: admin.version}
	states, err := readProvisionerRoles(ctx, conn, admin.super, provs)
	if err != nil {
		return nil, redact(err)
	}
	rep := &Report{}
	var refused []ObjectResult
	record := func(res ObjectResult) {
		rep.Record(res)
		outcome.Log(log, res)
		if res.Action == outcome.Refused {
			refused = append(refused, res)
		}
	}
	for _, p := range provs {
		res, stmts, err := decideProvisioner(facts, admin.name, p, states[p.Role], func(st *roleState) bool {
			return passwordWorks(ctx, cfg, p.Role, p.Password, st)
		})
		if err != nil {
			return rep, err
		}
		if err := execAll(ctx, conn, stmts); err != nil {
			return rep, redact(fmt.Errorf("provisioner role %s: %w", p.Role, err))
		}
		record(res)
	}
	if o.Legacy != "" {
		if err := migrateLegacy(ctx, conn, admin.super, admin.version, o.Legacy, provs, record); err != nil {
			return rep, redact(err)
		}
	}
	if len(refused) > 0 {
		return rep, &ConflictError{Refused: refused}
	}
	return rep, nil
}

// readProvisionerRoles reads the provisioner roles that exist.
func readProvisionerRoles(ctx context.Context, conn *pgx.Conn, super bool, provs []TenantProvisioner) (map[string]*roleState, error) {
	names := make([]string, len(provs))
	for i, p := range provs {
		names[i] = p.Role
	}
	rows, err := conn.Query(ctx, roleStatesQuery(super), names)
	if err != nil {
		return nil, fmt.Errorf("read provisioner roles: %w", err)
	}
	out, err := scanRoleStates(rows)
	if err != nil {
		return nil, fmt.Errorf("read provisioner roles: %w", err)
	}
	return out, nil
}

// decideProvisioner decides what to do with tenant provisioner p, given its
// state st (nil: missing), without touching the server except through
// samePassword (a login attempt when the admin cannot read verifiers). It
// returns the result to report and the statements to run.
func decideProvisioner(facts adminFactsForDecision, adminName string, p TenantProvisioner, st *roleState, samePassword func(*roleState) bool) (ObjectResult, []stmt, error) {
	res := ObjectResult{Kind: KindProvisioner, Name: p.Namespace, Physical: p.Role}
	if p.Role == adminName {
		return res, nil, fmt.Errorf("provisioner role %s is the admin itself: choose another name", p.Role)
	}
	role := ident(p.Role)
	marker := provisionerMarker{ManagedBy: ProvisionerManagedBy, Tenant: p.Namespace}.String()
	verifier := func() (*string, error) {
		v, err := NewSCRAMVerifier(p.Password)
		return &v, err
	}
	if st == nil {
		v, err := verifier()
		if err != nil {
			return res, nil, err
		}
		res.Action = outcome.Created
		stmts := []stmt{
			{fmt.Sprintf("CREATE ROLE %s WITH LOGIN NOSUPERUSER CREATEDB CREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD $1", role), v},
			{fmt.Sprintf("COMMENT ON ROLE %s IS $1", role), lit(marker)},
		}
		if facts.superuser && confinedCreateRole(facts.serverVersion) {
			// The anchor (roleControl.anchored); a CREATEROLE admin gets it from the server.
			stmts = append(stmts, stmt{fmt.Sprintf("GRANT %s TO CURRENT_USER", role), nil})
		}
		return res, stmts, nil
	}
	// A provisioner role is the admin's own creation: whatever its comment
	// says, only who controls it matters (a marker-less role the admin
	// controls is taken over and marked).
	if verdict, reason := decideRoleOwnership(facts, st, true); verdict != Ours {
		// Never adopted: a provisioner role this admin did not create could
		// be a tenant's squat (see roleControl.anchored).
		res.Action, res.Reason = outcome.Refused, reason
		return res, nil, nil
	}
	var attrs string
	for _, a := range []struct {
		wrong  bool
		clause string
	}{{!st.canLogin, "LOGIN"}, {!st.createDB, "CREATEDB"}, {!st.createRole, "CREATEROLE"},
		{st.replication, "NOREPLICATION"}, {st.bypass, "NOBYPASSRLS"}} {
		if a.wrong {
			attrs += " " + a.clause
			res.Changes = append(res.Changes, a.clause)
		}
	}
	var pw *string
	if !samePassword(st) {
		v, err := verifier()
		if err != nil {
			return res, nil, err
		}
		attrs += " PASSWORD $1"
		pw = v
		res.Changes = append(res.Changes, "password")
	}
	var stmts []stmt
	if attrs != "" {
		stmts = append(stmts, stmt{fmt.Sprintf("ALTER ROLE %s WITH%s", role, attrs), pw})
	}
	if deref(st.comment) != marker {
		stmts = append(stmts, stmt{fmt.Sprintf("COMMENT ON ROLE %s IS $1", role), lit(marker)})
		res.Changes = append(res.Changes, "marker")
	}
	res.Action = outcome.Unchanged
	if len(stmts) > 0 {
		res.Action = outcome.Updated
	}
	return res, stmts, nil
}

// passwordWorks tells whether role's password is already password: from
// the stored verifier when the admin could read it, else by logging in.
func passwordWorks(ctx context.Context, cfg *pgx.ConnConfig, role, password string, st *roleState) bool {
	if st.verifier != nil {
		return SCRAMMatches(*st.verifier, password)
	}
	return tryLogin(ctx, cfg, role, password, cfg.Database) == nil
}

// execAll runs statements one by one (each takes at most one literal, $1,
// sent client-side quoted: utility statements take no bind parameters).
func execAll(ctx context.Context, conn *pgx.Conn, stmts []stmt) error {
	for _, s := range stmts {
		args := []any{}
		if s.arg != nil {
			args = literal(*s.arg)
		}
		if _, err := conn.Exec(ctx, s.sql, args...); err != nil {
			return err
		}
	}
	return nil
}

// migrateLegacy hands every module role the legacy shared provisioner
// holds membership in to the provisioner of the tenant its pg-init marker
// names (GRANT ... WITH ADMIN OPTION, then REVOKE from the legacy role), so
// that existing databases, roles and passwords keep working under scoped
// provisioners; roles of namespaces that are not tenants stay with the
// legacy role and are reported retained. The legacy role then loses LOGIN,
// CREATEDB and CREATEROLE (its password was in every tenant namespace). It
// needs a superuser admin (the legacy role was always created by one).
func migrateLegacy(ctx context.Context, conn *pgx.Conn, super bool, version int, legacy string, provs []TenantProvisioner, record func(ObjectResult)) error {
	var exists, canLogin bool
	if err := conn.QueryRow(ctx, `SELECT count(*) > 0, COALESCE(bool_or(r.rolcanlogin), false) FROM pg_catalog.pg_roles r WHERE r.rolname = $1`, legacy).
		Scan(&exists, &canLogin); err != nil {
		return fmt.Errorf("read legacy provisioner %s: %w", legacy, err)
	}
	if !exists {
		return nil
	}
	for _, p := range provs {
		if p.Role == legacy {
			return fmt.Errorf("legacy provisioner %s is also tenant %s's provisioner: give the tenant another role name", legacy, p.Namespace)
		}
	}
	if !super {
		return fmt.Errorf("migrating from the shared provisioner %s needs a superuser admin", legacy)
	}
	byNamespace := map[string]string{}
	for _, p := range provs {
		byNamespace[p.Namespace] = p.Role
	}
	rows, err := conn.Query(ctx, `SELECT DISTINCT r.rolname::text, COALESCE(pg_catalog.shobj_description(r.oid, 'pg_authid'), '')
		FROM pg_catalog.pg_auth_members a JOIN pg_catalog.pg_roles r ON r.oid = a.roleid
		JOIN pg_catalog.pg_roles l ON l.oid = a.member WHERE l.rolname = $1 ORDER BY 1`, legacy)
	if err != nil {
		return fmt.Errorf("list roles of legacy provisioner %s: %w", legacy, err)
	}
	type held struct{ name, comment string }
	var roles []held
	for rows.Next() {
		var h held
		if err := rows.Scan(&h.name, &h.comment); err != nil {
			rows.Close()
			return fmt.Errorf("list roles of legacy provisioner %s: %w", legacy, err)
		}
		roles = append(roles, h)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list roles of legacy provisioner %s: %w", legacy, err)
	}
	revoke := "REVOKE %s FROM %s CASCADE"
	if !confinedCreateRole(version) {
		revoke = "REVOKE %s FROM %s"
	}
	for _, h := range roles {
		res := ObjectResult{Kind: KindRole, Name: h.name, Physical: h.name}
		m, ok := ParseMarker(h.comment)
		target := byNamespace[m.Namespace]
		if !ok || target == "" {
			res.Action, res.Reason = outcome.Retained, "left with the legacy provisioner "+legacy+": "+describeOwner(&h.comment)+", not a tenant's"
			record(res)
			continue
		}
		stmts := []stmt{
			{fmt.Sprintf("GRANT %s TO %s WITH ADMIN OPTION", ident(h.name), ident(target)), nil},
			{fmt.Sprintf(revoke, ident(h.name), ident(legacy)), nil},
		}
		if err := execAll(ctx, conn, stmts); err != nil {
			return fmt.Errorf("hand role %s to %s: %w", h.name, target, err)
		}
		res.Action, res.Changes = outcome.Updated, []string{"handed from " + legacy + " to " + target}
		record(res)
	}
	if canLogin {
		if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER ROLE %s WITH NOLOGIN NOCREATEDB NOCREATEROLE PASSWORD NULL", ident(legacy))); err != nil {
			return fmt.Errorf("disable legacy provisioner %s: %w", legacy, err)
		}
		record(ObjectResult{Kind: KindProvisioner, Name: "legacy", Physical: legacy, Action: outcome.Updated,
			Changes: []string{"NOLOGIN NOCREATEDB NOCREATEROLE, password removed (it was held by every tenant)"}})
	}
	return nil
}
