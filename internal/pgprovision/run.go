package pgprovision

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kommons/kommons/internal/pgready"
	"github.com/kommons/kommons/internal/retry"
)

// Retryable reports whether running the reconcile again can succeed: the
// connection was lost (server restarted, network), the server was not
// accepting connections, or a concurrent pg-init created the same object
// first. Ownership conflicts, invalid specs, missing privileges, deadlines,
// interruptions and client configuration errors (pgready.IsPermanent: a
// server certificate that fails verification, TLS refused) are not retryable. Several failures (*ObjectErrors)
// are retryable only when each one is.
func Retryable(err error) bool {
	var conflict *ConflictError
	var spec *SpecError
	var several *ObjectErrors
	if errors.As(err, &several) {
		// Objects reconciled in parallel: running again helps only if it
		// can help every one of them.
		for _, e := range several.Errs {
			if !Retryable(e) {
				return false
			}
		}
		return true
	}
	switch {
	case err == nil, errors.As(err, &conflict), errors.As(err, &spec), errors.Is(err, ErrInterrupted),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case pgready.IsPermanent(err):
		// the client's configuration (TLS verification, TLS refused,
		// invalid options): every attempt would fail the same way
		return false
	}
	code := pgready.SQLState(err)
	switch {
	case code == "":
		// Not a server error: a lost or refused connection. Errors pg-init
		// makes itself (privileges, SCRAM) are not wrapped PgErrors either,
		// but are only raised before any retry could change them; they are
		// caught by the attempt limit of the deadline.
		return isConnectionError(err)
	case strings.HasPrefix(code, "08"), // connection exception
		code == "57P01", code == "57P02", code == "57P03", // admin/crash shutdown, cannot connect now
		code == "53300",                  // too many connections
		code == "40001", code == "40P01", // serialization failure, deadlock
		code == "42710", code == "42P04", code == "23505": // duplicate object/database, unique violation: a concurrent run won
		return true
	case code == "XX000":
		return strings.Contains(err.Error(), "tuple concurrently updated")
	}
	return false
}

func isConnectionError(err error) bool {
	var pgErr interface{ SafeToRetry() bool }
	if errors.As(err, &pgErr) {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"conn closed", "connection refused", "connection reset", "broken pipe", "EOF",
		"failed to connect", "server closed the connection", "timeout", "no such host", "failed to receive message", "failed to write"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// RunOptions tunes Run.
type RunOptions struct {
	Options
	// Ready tunes the wait for the server before every attempt
	// (Options.Logger is used when Ready.Logger is nil).
	Ready pgready.Options
	// Backoff paces attempts after a retryable failure; zero means retry.DefaultBackoff().
	Backoff retry.Backoff
}

// Run reconciles, and on a retryable failure (see Retryable), including a
// server not up yet, pauses, waits until the server is ready (pgready.Wait:
// exponential backoff with jitter) and reconciles again from the top
// (retry.Do), until it succeeds, fails otherwise, or ctx ends (its deadline
// is the overall deadline).
func Run(ctx context.Context, cfg *pgx.ConnConfig, plan *Plan, o RunOptions) (*Report, error) {
	if o.Ready.Logger == nil {
		o.Ready.Logger = o.Logger
	}
	o.Ready.Primary = true
	// The first attempt connects directly (a ready server costs no extra
	// connection); after a retryable failure pg-init pauses, waits for
	// readiness with pgready and starts over.
	var rep *Report
	err := retry.Do(ctx, retry.Policy{
		Backoff:   o.Backoff,
		Transient: Retryable,
		OnRetry: func(attempt int, err error, pause time.Duration) {
			if o.Logger != nil {
				o.Logger.Warn("reconcile failed with a transient error; retrying from the top",
					"attempt", attempt, "error", err.Error(), "pause", pause.Round(time.Millisecond).String())
			}
		},
		BeforeRetry: func(ctx context.Context) error {
			if _, err := pgready.Wait(ctx, cfg, o.Ready); err != nil {
				return fmt.Errorf("waiting for the server: %w", err)
			}
			return nil
		},
	}, func(ctx context.Context, _ int) error {
		var err error
		rep, err = Reconcile(ctx, cfg, plan, o.Options)
		return err
	})
	return rep, err
}
