package pgprovision

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kommons/kommons/internal/redact"
)

// executor sends a run's statements: it checks for interruption before
// each one (SIGTERM stops a run between statements, never inside one),
// bounds each by the deadline, and scrubs every password the run knows from
// errors.
type executor struct {
	ctx     context.Context // interruption and deadline: checked before each statement, bounds waits
	stmtCtx context.Context // deadline only: a statement in flight completes on SIGTERM
	cfg     *pgx.ConnConfig
	secrets []string // the plan's passwords and the admin's
}

// newExecutor returns the executor of a run on cfg under ctx; cancel
// releases its statement context.
func newExecutor(ctx context.Context, cfg *pgx.ConnConfig, secrets []string) (*executor, context.CancelFunc) {
	stmtCtx, cancel := statementContext(ctx)
	return &executor{ctx: ctx, stmtCtx: stmtCtx, cfg: cfg, secrets: append(secrets, cfg.Password)}, cancel
}

// statementContext keeps ctx's deadline but not its cancellation.
func statementContext(ctx context.Context) (context.Context, context.CancelFunc) {
	base := context.WithoutCancel(ctx)
	if dl, ok := ctx.Deadline(); ok {
		return context.WithDeadline(base, dl)
	}
	return context.WithCancel(base)
}

func (x *executor) interrupted() error {
	if x.ctx.Err() == nil {
		return nil
	}
	cause := context.Cause(x.ctx)
	if errors.Is(cause, context.DeadlineExceeded) {
		return fmt.Errorf("deadline reached: %w", cause)
	}
	return fmt.Errorf("%w: stopped before the next statement: %w", ErrInterrupted, cause)
}

// redact scrubs every password the run knows from an error.
func (x *executor) redact(err error) error {
	return redact.Error(err, x.secrets...)
}

// exec runs one statement unless the run was interrupted.
func (x *executor) exec(conn *pgx.Conn, what, sql string, args ...any) error {
	if err := x.interrupted(); err != nil {
		return err
	}
	if _, err := conn.Exec(x.stmtCtx, sql, args...); err != nil {
		return x.redact(fmt.Errorf("%s: %w", what, err))
	}
	return nil
}

// execBatch sends statements as one multi-statement simple-protocol query:
// one round trip, and PostgreSQL runs it as one implicit transaction (all
// or nothing). Each statement takes at most one literal ($1), renumbered
// here; statement texts hold only quoted [a-z0-9_] identifiers, so "$1"
// cannot occur elsewhere in them.
func (x *executor) execBatch(conn *pgx.Conn, what string, stmts []stmt) error {
	if err := x.interrupted(); err != nil {
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
	if _, err := conn.Exec(x.stmtCtx, strings.Join(parts, ";\n"), args...); err != nil {
		return x.redact(fmt.Errorf("%s: %w", what, err))
	}
	return nil
}

// stmt is one statement of a batch, with its optional literal parameter $1.
type stmt struct {
	sql string
	arg *string
}

// literal passes v as a string literal in a utility statement (CREATE ROLE,
// COMMENT, which take no bind parameters): pgx's simple protocol quotes it
// client-side (and refuses to unless standard_conforming_strings is on).
func literal(v string) []any { return []any{pgx.QueryExecModeSimpleProtocol, v} }
