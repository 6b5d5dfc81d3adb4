package retry

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	errTransient = errors.New("connection refused")
	errPermanent = errors.New("password authentication failed")
)

func quick() Policy {
	return Policy{Backoff: Backoff{Initial: time.Millisecond, Multiplier: 2, Max: 4 * time.Millisecond},
		Transient: func(err error) bool { return errors.Is(err, errTransient) }}
}

func TestDoRetriesTransientFailuresUntilSuccess(t *testing.T) {
	p := quick()
	var retried []int
	var ready int
	p.OnRetry = func(n int, err error, pause time.Duration) {
		require.ErrorIs(t, err, errTransient)
		require.Positive(t, pause)
		retried = append(retried, n)
	}
	p.BeforeRetry = func(context.Context) error { ready++; return nil }
	var calls []int
	err := Do(context.Background(), p, func(_ context.Context, n int) error {
		calls = append(calls, n)
		if n < 3 {
			return fmt.Errorf("attempt: %w", errTransient)
		}
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, []int{1, 2, 3}, calls)
	assert.Equal(t, []int{1, 2}, retried)
	assert.Equal(t, 2, ready, "BeforeRetry runs before every retry")
}

func TestDoStopsAtAPermanentFailure(t *testing.T) {
	calls := 0
	err := Do(context.Background(), quick(), func(context.Context, int) error { calls++; return errPermanent })
	require.Same(t, errPermanent, err, "returned as is")
	assert.Equal(t, 1, calls)
}

func TestDoStopsWhenBeforeRetryFails(t *testing.T) {
	p := quick()
	p.BeforeRetry = func(context.Context) error { return errPermanent }
	calls := 0
	err := Do(context.Background(), p, func(context.Context, int) error { calls++; return errTransient })
	require.ErrorIs(t, err, errPermanent)
	assert.Equal(t, 1, calls)
}

// TestDoGivesUpWhenTheContextEnds: the error names the context's cause,
// the attempts and the last error, and wraps both; also when the attempt
// that failed was ended by the context itself (whatever Transient says).
func TestDoGivesUpWhenTheContextEnds(t *testing.T) {
	deadline := errors.New("--deadline 3s reached")
	for name, fail := range map[string]error{"transient": errTransient, "permanent": errPermanent} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancelCause(context.Background())
			stop := 2 // a permanent failure ends the first attempt
			if fail == errPermanent {
				stop = 1
			}
			err := Do(ctx, quick(), func(_ context.Context, n int) error {
				if n == stop {
					cancel(deadline)
				}
				return fail
			})
			require.ErrorIs(t, err, deadline)
			require.ErrorIs(t, err, fail)
			if name == "transient" {
				assert.EqualError(t, err, "giving up after 2 attempt(s) (--deadline 3s reached): last error: connection refused")
			}
		})
	}
	t.Run("during the pause", func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(context.Background())
		p := quick()
		p.Backoff = Backoff{Initial: time.Hour, Multiplier: 1, Max: time.Hour}
		p.OnRetry = func(int, error, time.Duration) { cancel(deadline) }
		err := Do(ctx, p, func(context.Context, int) error { return errTransient })
		assert.EqualError(t, err, "giving up after 1 attempt(s) (--deadline 3s reached): last error: connection refused")
	})
}

func TestDoRefusesAnInvalidBackoff(t *testing.T) {
	p := quick()
	p.Backoff = Backoff{Initial: -1}
	err := Do(context.Background(), p, func(context.Context, int) error { t.Fatal("no attempt"); return nil })
	require.ErrorContains(t, err, "backoff: initial interval")
}
