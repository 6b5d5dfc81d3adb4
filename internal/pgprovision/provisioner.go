package pgprovision

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"

	"github.com/kommons/kommons/internal/outcome"
	"github.com/kommons/kommons/internal/pgconfig"
)

// EnsureProvisioner creates, or repairs, the role pg-init itself should run
// as: LOGIN NOSUPERUSER CREATEDB CREATEROLE with password (sent as a SCRAM
// verifier, changed only when it differs). The admin of cfg must be a
// superuser. It refuses to touch a superuser role or the admin itself.
func EnsureProvisioner(ctx context.Context, cfg *pgx.ConnConfig, name, password string, log *slog.Logger) (Action, error) {
	if err := CheckPassword(password); err != nil {
		return "", err
	}
	redact := func(err error) error { return pgconfig.Redact(err, password, cfg.Password) }
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return "", redact(fmt.Errorf("connect as admin (%s): %w", pgconfig.Describe(cfg), err))
	}
	defer conn.Close(context.Background())
	var super bool
	var me string
	if err := conn.QueryRow(ctx, "SELECT rolsuper, rolname FROM pg_roles WHERE rolname = current_user").Scan(&super, &me); err != nil {
		return "", redact(fmt.Errorf("read admin role: %w", err))
	}
	if !super {
		return "", fmt.Errorf("bootstrap-provisioner needs a superuser admin; %s is not one", me)
	}
	if name == me {
		return "", fmt.Errorf("role %s is the admin itself: choose another provisioner name", name)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", LockKey()); err != nil {
		return "", redact(fmt.Errorf("advisory lock: %w", err))
	}
	role := ident(name)
	var st struct {
		super, createDB, createRole, login bool
		verifier                           *string
	}
	err = conn.QueryRow(ctx, "SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin, rolpassword FROM pg_authid WHERE rolname = $1", name).
		Scan(&st.super, &st.createDB, &st.createRole, &st.login, &st.verifier)
	if err == pgx.ErrNoRows {
		verifier, err := NewSCRAMVerifier(password)
		if err != nil {
			return "", err
		}
		if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE ROLE %s WITH LOGIN NOSUPERUSER CREATEDB CREATEROLE PASSWORD $1", role), literal(verifier)...); err != nil {
			return "", redact(fmt.Errorf("create provisioner role %s: %w", name, err))
		}
		log.Info("role created", "kind", KindRole, "action", string(outcome.Created), "physicalName", name)
		return outcome.Created, nil
	}
	if err != nil {
		return "", redact(fmt.Errorf("read role %s: %w", name, err))
	}
	if st.super {
		return "", fmt.Errorf("role %s is a superuser: refusing to use or change it as the provisioner", name)
	}
	var attrs string
	var changes []string
	for _, a := range []struct {
		ok     bool
		clause string
	}{{st.login, "LOGIN"}, {st.createDB, "CREATEDB"}, {st.createRole, "CREATEROLE"}} {
		if !a.ok {
			attrs += " " + a.clause
			changes = append(changes, a.clause)
		}
	}
	var args []any
	if st.verifier == nil || !SCRAMMatches(*st.verifier, password) {
		verifier, err := NewSCRAMVerifier(password)
		if err != nil {
			return "", err
		}
		attrs += " PASSWORD $1"
		args = literal(verifier)
		changes = append(changes, "password")
	}
	if attrs == "" {
		log.Info("role unchanged", "kind", KindRole, "action", string(outcome.Unchanged), "physicalName", name)
		return outcome.Unchanged, nil
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER ROLE %s WITH%s", role, attrs), args...); err != nil {
		return "", redact(fmt.Errorf("update provisioner role %s: %w", name, err))
	}
	log.Info("role updated", "kind", KindRole, "action", string(outcome.Updated), "physicalName", name, "changes", fmt.Sprint(changes))
	return outcome.Updated, nil
}
