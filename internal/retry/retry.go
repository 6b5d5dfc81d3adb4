// Package retry is the one retry loop of the provisioning tools: run an
// idempotent attempt again after a transient failure, pausing on an
// exponential schedule with jitter (Backoff, Schedule), until it succeeds,
// fails for good, or the context (the tool's deadline or a signal) ends.
// pgready's readiness wait paces its attempts with the same Schedule.
package retry

import (
	"context"
	"fmt"
	"time"
)

// Policy says when and how Do tries again.
type Policy struct {
	// Backoff paces the attempts; the zero value means DefaultBackoff().
	Backoff Backoff
	// Transient reports whether running the attempt again can help; an
	// error it rejects ends Do at once. Required.
	Transient func(error) bool
	// OnRetry, when set, is told about each failed attempt that will be
	// retried, and the pause before the next one (e.g. to log it).
	OnRetry func(attempt int, err error, pause time.Duration)
	// BeforeRetry, when set, runs after the pause and before the next
	// attempt (e.g. to wait until a server accepts connections); its error
	// ends Do.
	BeforeRetry func(ctx context.Context) error
}

// Do calls attempt (with its number, from 1) until it returns nil, returns
// an error p.Transient rejects (returned as is), or ctx ends: then the error
// names ctx's cause (context.Cause: e.g. "--deadline 5m0s reached"), the
// number of attempts and the last error, wrapping both.
func Do(ctx context.Context, p Policy, attempt func(ctx context.Context, n int) error) error {
	b := p.Backoff
	if b == (Backoff{}) {
		b = DefaultBackoff()
	}
	sched, err := NewSchedule(b, nil)
	if err != nil {
		return fmt.Errorf("backoff: %w", err)
	}
	for n := 1; ; n++ {
		err := attempt(ctx, n)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return giveUp(ctx, n, err)
		case !p.Transient(err):
			return err
		}
		pause := sched.Next()
		if p.OnRetry != nil {
			p.OnRetry(n, err, pause)
		}
		timer := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			timer.Stop()
			return giveUp(ctx, n, err)
		case <-timer.C:
		}
		if p.BeforeRetry != nil {
			if err := p.BeforeRetry(ctx); err != nil {
				return err
			}
		}
	}
}

func giveUp(ctx context.Context, attempts int, last error) error {
	return fmt.Errorf("giving up after %d attempt(s) (%w): last error: %w", attempts, context.Cause(ctx), last)
}
