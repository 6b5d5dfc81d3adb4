package pgprovision

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kommons/kommons/internal/outcome"
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

// adminFacts describes the admin connection.
type adminFacts struct {
	user          string
	superuser     bool
	createRole    bool
	createDB      bool
	serverVersion int // server_version_num
	database      string
}

type run struct {
	ctx      context.Context // interruption and deadline: checked before each statement, bounds waits
	stmtCtx  context.Context // deadline only: a statement in flight completes on SIGTERM
	cfg      *pgx.ConnConfig
	admin    *pgx.Conn   // the coordinating session: holds the advisory lock; also worker 0's session
	sessions []*pgx.Conn // one per worker (see session); [0] is admin
	plan     *Plan
	opts     Options
	log      *slog.Logger
	facts    adminFacts
	mu       sync.Mutex // guards report, refused and ours: objects are reconciled in parallel
	report   *Report
	ours     map[string]bool // physical role names owned by this scope after reconcile
	refused  []ObjectResult
}

// Reconcile makes the server match plan once: it connects as the admin,
// takes the advisory lock, reconciles roles, then databases (each with its
// extensions and schemas), up to opts.Parallel objects at a time, then
// prunes when asked, logging one line per object (in plan order) and a
// summary. Refused objects do not stop the others; they make the result a
// *ConflictError. Any other error stops the run once the objects in flight
// are done (Retryable tells whether running again can help: reconciling is
// idempotent).
func Reconcile(ctx context.Context, cfg *pgx.ConnConfig, plan *Plan, opts Options) (*Report, error) {
	start := time.Now()
	cfg = pinSearchPath(cfg)
	r := &run{ctx: ctx, cfg: cfg, plan: plan, opts: opts, log: opts.Logger, report: &Report{}, ours: map[string]bool{}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	var cancel context.CancelFunc
	r.stmtCtx, cancel = statementContext(ctx)
	defer cancel()
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
	r.log.Info("summary", "scope", plan.Scope.String(), "created", r.report.Count(outcome.Created),
		"updated", r.report.Count(outcome.Updated), "unchanged", r.report.Count(outcome.Unchanged),
		"refused", r.report.Count(outcome.Refused), "deleted", r.report.Count(outcome.Deleted),
		"retained", r.report.Count(outcome.Retained), "duration", time.Since(start).Round(time.Millisecond).String())
	if len(r.refused) > 0 {
		return r.report, &ConflictError{Refused: r.refused}
	}
	return r.report, nil
}

// statementContext keeps ctx's deadline but not its cancellation.
func statementContext(ctx context.Context) (context.Context, context.CancelFunc) {
	base := context.WithoutCancel(ctx)
	if dl, ok := ctx.Deadline(); ok {
		return context.WithDeadline(base, dl)
	}
	return context.WithCancel(base)
}

func (r *run) interrupted() error {
	if r.ctx.Err() == nil {
		return nil
	}
	cause := context.Cause(r.ctx)
	if errors.Is(cause, context.DeadlineExceeded) {
		return fmt.Errorf("deadline reached: %w", cause)
	}
	return fmt.Errorf("%w: stopped before the next statement: %w", ErrInterrupted, cause)
}

// redact scrubs every password the run knows from an error.
func (r *run) redact(err error) error {
	return pgconfig.Redact(err, append(r.plan.Secrets(), r.cfg.Password)...)
}

// exec runs one statement unless the run was interrupted.
func (r *run) exec(conn *pgx.Conn, what, sql string, args ...any) error {
	if err := r.interrupted(); err != nil {
		return err
	}
	if _, err := conn.Exec(r.stmtCtx, sql, args...); err != nil {
		return r.redact(fmt.Errorf("%s: %w", what, err))
	}
	return nil
}

// execBatch sends statements as one multi-statement simple-protocol query:
// one round trip, and PostgreSQL runs it as one implicit transaction (all
// or nothing). Each statement takes at most one literal ($1), renumbered
// here; statement texts hold only quoted [a-z0-9_] identifiers, so "$1"
// cannot occur elsewhere in them.
func (r *run) execBatch(conn *pgx.Conn, what string, stmts []stmt) error {
	if err := r.interrupted(); err != nil {
		return err
	}
	parts := make([]string, 0, len(stmts))
	args := []any{pgx.QueryExecModeSimpleProtocol}
	for _, st := range stmts {
		sql := st.sql
		if st.arg != nil {
			args = append(args, *st.arg)
			sql = strings.Replace(sql, "$1", fmt.Sprintf("$%d", len(args)-1), 1)
		}
		parts = append(parts, sql)
	}
	if _, err := conn.Exec(r.stmtCtx, strings.Join(parts, ";\n"), args...); err != nil {
		return r.redact(fmt.Errorf("%s: %w", what, err))
	}
	return nil
}

// stmt is one statement of a batch, with its optional literal parameter $1.
type stmt struct {
	sql string
	arg *string
}

// lit passes v as the $1 literal of a stmt.
func lit(v string) *string { return &v }

// literal passes v as a string literal in a utility statement (CREATE ROLE,
// COMMENT, which take no bind parameters): pgx's simple protocol quotes it
// client-side (and refuses to unless standard_conforming_strings is on).
func literal(v string) []any { return []any{pgx.QueryExecModeSimpleProtocol, v} }

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

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

// markOurs notes that the role with physical name phys belongs to this scope.
func (r *run) markOurs(phys string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ours[phys] = true
}

// roleIsOurs reports whether the role with physical name phys was found or
// made this scope's in this run.
func (r *run) roleIsOurs(phys string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ours[phys]
}

// isOurs reports whether comment is this scope's marker for logical name.
func (r *run) isOurs(comment *string, name string) bool {
	if comment == nil {
		return false
	}
	m, ok := ParseMarker(*comment)
	return ok && m.InScope(r.plan.Scope) && m.Name == name
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func contains(list []string, v string) bool { return slices.Contains(list, v) }
