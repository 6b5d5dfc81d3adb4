package pgprovision

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kommons/kommons/internal/pgconfig"
)

// Options tunes a reconcile.
type Options struct {
	// Adopt takes over existing roles, databases and schemas that carry no
	// marker or another scope's marker, instead of refusing them.
	Adopt bool
	// Prune drops objects of this scope that the spec no longer lists and
	// whose marker says reclaimPolicy delete.
	Prune bool
	// Logger receives one line per object and a summary; nil discards.
	Logger *slog.Logger
	// LockKey is the advisory lock serializing pg-init runs; 0 means LockKey().
	LockKey int64
	// Parallel bounds how many roles, then databases, are reconciled at
	// once, each over its own session on the admin database (plus, for a
	// database, a connection to it for its extensions and schemas): at most
	// 2*Parallel connections. 0 means DefaultParallel(); 1 reconciles one
	// object at a time over the coordinating session only.
	Parallel int
	// PoolerRole, when set, is a role granted CONNECT on every database of
	// the plan, beside its owner: the role a connection pooler runs its
	// auth_query as in the database a client asks for (CloudNativePG's
	// PgBouncer: cnpg_pooler_pgbouncer), which pg-init's REVOKE CONNECT
	// FROM PUBLIC would otherwise shut out. A role that does not exist
	// (no pooler yet) is skipped; a later run grants it.
	PoolerRole string
}

// LockKey is the default advisory lock key: the first 8 bytes of
// sha256("kommons/pg-init"). Advisory locks are per database, so every
// pg-init must connect to the same admin database (normally postgres).
func LockKey() int64 {
	sum := sha256.Sum256([]byte("kommons/pg-init"))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// ErrInterrupted is returned when the context ended between statements
// (SIGTERM); the statement in flight had completed.
var ErrInterrupted = errors.New("interrupted")

// run is one reconcile: its executor (statements, interruption,
// redaction), its ledger (results, shared by the parallel jobs), the admin
// sessions, the plan and options, and the admin's facts.
type run struct {
	*executor
	*ledger
	admin    *pgx.Conn   // the coordinating session: holds the advisory lock; also worker 0's session
	sessions []*pgx.Conn // one per worker (see session); [0] is admin
	plan     *Plan
	opts     Options
	facts    adminFacts
}

// Reconcile makes the server match plan once: it connects as the admin,
// takes the advisory lock, reconciles roles, then databases (each with its
// extensions and schemas), up to opts.Parallel objects at a time, then
// prunes when asked, logging one line per object (in plan order) and a
// summary. Each phase observes the server in one query, decides without
// side effects (decide.go) and sends the statements decided. Refused
// objects do not stop the others; they make the result a *ConflictError.
// Any other error stops the run once the objects in flight are done
// (Retryable tells whether running again can help: reconciling is
// idempotent).
func Reconcile(ctx context.Context, cfg *pgx.ConnConfig, plan *Plan, opts Options) (*Report, error) {
	start := time.Now()
	cfg = pinSearchPath(cfg)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ex, cancel := newExecutor(ctx, cfg, plan.Secrets())
	defer cancel()
	r := &run{executor: ex, ledger: newLedger(log), plan: plan, opts: opts}
	if err := r.interrupted(); err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, r.redact(fmt.Errorf("connect as admin (%s): %w", pgconfig.Describe(cfg), err))
	}
	defer conn.Close(context.Background())
	r.admin = conn
	if err := r.readAdminFacts(); err != nil {
		return nil, err
	}
	key := opts.LockKey
	if key == 0 {
		key = LockKey()
	}
	if err := r.interrupted(); err != nil {
		return nil, err
	}
	// Waiting for the lock is interruptible: no statement of ours is in flight.
	if _, err := conn.Exec(ctx, "SELECT pg_catalog.pg_advisory_lock($1)", key); err != nil {
		if e := r.interrupted(); e != nil {
			return nil, e
		}
		return nil, r.redact(fmt.Errorf("advisory lock %d: %w", key, err))
	}
	parallel := opts.Parallel
	if parallel <= 0 {
		parallel = DefaultParallel()
	}
	r.sessions = make([]*pgx.Conn, parallel)
	r.sessions[0] = conn
	defer r.closeSessions()
	if err := r.reconcileRoles(); err != nil {
		return nil, err
	}
	if err := r.reconcileDatabases(); err != nil {
		return nil, err
	}
	if opts.Prune {
		if err := r.prune(); err != nil {
			return nil, err
		}
	}
	return r.finish(plan.Scope, time.Since(start))
}

// IsTemplateDatabase reports whether name is one of PostgreSQL's template
// databases, which pg-init never connects to as its admin database.
func IsTemplateDatabase(name string) bool { return name == "template0" || name == "template1" }

func (r *run) readAdminFacts() error {
	f := &r.facts
	err := r.admin.QueryRow(r.stmtCtx, `SELECT CURRENT_USER, r.rolsuper, r.rolcreaterole, r.rolcreatedb,
		pg_catalog.current_setting('server_version_num')::int, pg_catalog.current_database()
		FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER`).Scan(&f.user, &f.superuser, &f.createRole, &f.createDB, &f.serverVersion, &f.database)
	if err != nil {
		return r.redact(fmt.Errorf("read admin role attributes: %w", err))
	}
	if IsTemplateDatabase(f.database) {
		return fmt.Errorf("admin database %s is a template: connect to another one (normally postgres); "+
			"CREATE DATABASE copies template1 and fails while another session is connected to it", f.database)
	}
	if !f.superuser && len(r.plan.Roles) > 0 && !f.createRole {
		return fmt.Errorf("admin role %s has neither SUPERUSER nor CREATEROLE: it cannot create or alter roles", f.user)
	}
	if !f.superuser && len(r.plan.Databases) > 0 && !f.createDB {
		return fmt.Errorf("admin role %s has neither SUPERUSER nor CREATEDB: it cannot create databases", f.user)
	}
	r.log.Debug("admin connection", "user", f.user, "superuser", f.superuser, "serverVersion", f.serverVersion, "database", f.database)
	return nil
}

// decisionFacts is the admin's identity as the pure decisions see it.
func (r *run) decisionFacts() adminFactsForDecision {
	return adminFactsForDecision{superuser: r.facts.superuser, serverVersion: r.facts.serverVersion}
}

func contains(list []string, v string) bool { return slices.Contains(list, v) }
