package pgready

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/retry"
)

// fakeClock advances only when Wait pauses: every pause is recorded and
// returns at once, so a schedule of minutes runs in microseconds.
type fakeClock struct {
	now    time.Time
	pauses []time.Duration
}

func ms(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }

func (c *fakeClock) Now() time.Time { return c.now }
func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.pauses = append(c.pauses, d)
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func pgErr(code, msg string) error {
	return fmt.Errorf("failed to connect: server error: %w", &pgconn.PgError{Severity: "FATAL", Code: code, Message: msg})
}

func testConfig(t *testing.T, password string) *pgx.ConnConfig {
	cfg, err := pgx.ParseConfig("postgres://app@127.0.0.1:1/app?sslmode=disable")
	require.NoError(t, err)
	cfg.Password = password
	return cfg
}

// script returns the given attempts in order, repeating the last.
func script(as ...attempt) func(context.Context) attempt {
	i := 0
	return func(context.Context) attempt {
		a := as[min(i, len(as)-1)]
		i++
		return a
	}
}

func newTestWaiter(t *testing.T, o Options) (*waiter, *fakeClock, *bytes.Buffer) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC)}
	var logs bytes.Buffer
	o.Clock = clock
	o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	if o.Backoff == (retry.Backoff{}) {
		o.Backoff = retry.Backoff{Initial: 100 * time.Millisecond, Multiplier: 1.5, Max: time.Second}
	}
	w, err := newWaiter(testConfig(t, "s3cret-pw"), o)
	require.NoError(t, err)
	return w, clock, &logs
}

func logLines(t *testing.T, b *bytes.Buffer) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		m := map[string]any{}
		require.NoError(t, json.Unmarshal([]byte(l), &m), l)
		out = append(out, m)
	}
	return out
}

func TestDeadlineFollowsScheduleAndNamesLevel(t *testing.T) {
	w, clock, _ := newTestWaiter(t, Options{Timeout: 2 * time.Second})
	res, err := w.run(context.Background(), script(attempt{LevelAuth, pgErr("3D000", `database "app" does not exist`)}))
	require.ErrorIs(t, err, ErrDeadline)
	// 0, .1, .25, .475, .8125, 1.31875, then 2.078 would pass the deadline: the
	// last pause is cut so that one final attempt happens at the deadline.
	require.Equal(t, []time.Duration{ms(100), ms(150), ms(225), ms(337.5), ms(506.25), ms(681.25)}, clock.pauses)
	require.Equal(t, 7, res.Attempts)
	require.Equal(t, 2*time.Second, res.Elapsed)
	require.Equal(t, LevelAuth, res.Level)
	require.Contains(t, err.Error(), "deadline reached after 2s (7 attempts): reached auth (highest auth), waiting for database")
	require.Contains(t, err.Error(), "SQLSTATE 3D000")
}

func TestProgressResetsScheduleAndLogsOnlyChanges(t *testing.T) {
	w, clock, logs := newTestWaiter(t, Options{})
	refused := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	starting := pgErr("57P03", "the database system is starting up")
	res, err := w.run(context.Background(), script(
		attempt{LevelNone, refused}, attempt{LevelNone, refused}, attempt{LevelNone, refused},
		attempt{LevelTCP, starting}, attempt{LevelTCP, starting},
		attempt{LevelQuery, nil}))
	require.NoError(t, err)
	require.Equal(t, 6, res.Attempts)
	require.Equal(t, LevelQuery, res.Highest)
	require.Equal(t, []time.Duration{ms(100), ms(150), ms(225), ms(100), ms(150)}, clock.pauses,
		"reaching tcp restarts the schedule")
	lines := logLines(t, logs)
	require.Len(t, lines, 3, "one line per change (refused, starting up) and one for ready: %s", logs)
	require.Equal(t, "waiting for PostgreSQL", lines[0]["msg"])
	require.Equal(t, "none", lines[0]["reached"])
	require.Equal(t, "tcp", lines[0]["waiting_for"])
	require.Equal(t, "100ms", lines[0]["next_retry"])
	require.Equal(t, "tcp", lines[1]["reached"])
	require.Equal(t, "57P03", lines[1]["sqlstate"])
	require.Equal(t, "PostgreSQL ready", lines[2]["msg"])
	require.Equal(t, "6", fmt.Sprint(lines[2]["attempts"]))
}

func TestHeartbeatRepeatsUnchangedState(t *testing.T) {
	w, _, logs := newTestWaiter(t, Options{Timeout: 10 * time.Second, Heartbeat: 3 * time.Second})
	_, err := w.run(context.Background(), script(attempt{LevelAccepting, pgErr("28P01", "password authentication failed")}))
	require.ErrorIs(t, err, ErrDeadline)
	var still int
	for _, l := range logLines(t, logs) {
		if l["msg"] == "still waiting for PostgreSQL" {
			still++
		}
	}
	require.Equal(t, 3, still, "10 s with a 3 s heartbeat: lines at >=3, >=6, >=9 s:\n%s", logs)
}

func TestAuthFailureTransientByDefaultPermanentWithFailFast(t *testing.T) {
	auth := attempt{LevelAccepting, pgErr("28P01", `password authentication failed for user "app"`)}
	ok := attempt{LevelQuery, nil}

	w, _, _ := newTestWaiter(t, Options{})
	res, err := w.run(context.Background(), script(auth, auth, ok))
	require.NoError(t, err, "the role may not exist yet: keep waiting")
	require.Equal(t, 3, res.Attempts)

	w, clock, _ := newTestWaiter(t, Options{FailFastAuth: true})
	res, err = w.run(context.Background(), script(auth, ok))
	require.ErrorIs(t, err, ErrPermanent)
	require.Equal(t, 1, res.Attempts)
	require.Empty(t, clock.pauses)
	require.Contains(t, err.Error(), "SQLSTATE 28P01")
}

func TestPermanentErrorsStopAtOnce(t *testing.T) {
	for name, a := range map[string]attempt{
		"tls refused": {LevelTCP, errors.New("failed to connect: tls error: server refused TLS connection")},
		"bad name":    {LevelDatabase, fmt.Errorf("check table a b: %w", &pgconn.PgError{Code: "42602", Message: "invalid name syntax"})},
	} {
		w, _, _ := newTestWaiter(t, Options{})
		res, err := w.run(context.Background(), script(a, attempt{LevelQuery, nil}))
		require.ErrorIs(t, err, ErrPermanent, name)
		require.Equal(t, 1, res.Attempts, name)
	}
}

func TestTargetLevelCountsAsReady(t *testing.T) {
	w, _, _ := newTestWaiter(t, Options{Target: LevelAccepting})
	res, err := w.run(context.Background(), script(attempt{LevelAccepting, pgErr("28P01", "password authentication failed")}))
	require.NoError(t, err)
	require.True(t, res.Ready())
	require.NoError(t, res.LastErr)
}

func TestCanceledKeepsCause(t *testing.T) {
	w, _, _ := newTestWaiter(t, Options{})
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("interrupted by terminated")
	n := 0
	res, err := w.run(ctx, func(context.Context) attempt {
		n++
		if n == 3 {
			cancel(cause)
		}
		return attempt{LevelNone, errors.New("connection refused")}
	})
	require.ErrorIs(t, err, ErrCanceled)
	require.ErrorIs(t, err, cause)
	require.Equal(t, 3, res.Attempts)
	require.True(t, strings.HasPrefix(err.Error(), "interrupted by terminated after"), err.Error())
}

func TestPasswordNeverInErrorOrLogs(t *testing.T) {
	w, _, logs := newTestWaiter(t, Options{Timeout: time.Second})
	echo := pgErr("28000", `role "app" with password "s3cret-pw" is not permitted`)
	res, err := w.run(context.Background(), script(attempt{LevelAccepting, echo}))
	require.ErrorIs(t, err, ErrDeadline)
	require.NotContains(t, err.Error(), "s3cret-pw")
	require.NotContains(t, res.LastErr.Error(), "s3cret-pw")
	require.NotContains(t, logs.String(), "s3cret-pw")
	require.Contains(t, err.Error(), `with password "xxxxx"`)
}

func TestInvalidOptionsArePermanent(t *testing.T) {
	cfg := testConfig(t, "")
	for name, o := range map[string]Options{
		"checks need query": {Target: LevelAuth, Primary: true},
		"bad backoff":       {Backoff: retry.Backoff{Initial: -1}},
		"negative timeout":  {Timeout: -time.Second},
	} {
		_, err := Wait(context.Background(), cfg, o)
		require.ErrorIs(t, err, ErrPermanent, name)
	}
}

func TestHintNamesTheLikelyCause(t *testing.T) {
	require.Contains(t, Hint(pgErr("3D000", "database does not exist")), "pg-init")
	require.Contains(t, Hint(pgErr("28P01", "password authentication failed")), "password Secret")
	require.Contains(t, Hint(fmt.Errorf("dial: %w", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED})), "nothing listens")
	require.Contains(t, Hint(fmt.Errorf("x: %w", &net.DNSError{Err: "no such host", Name: "pg", IsNotFound: true})), "does not resolve")
	require.Empty(t, Hint(nil))
}

func TestCanceledBeforeFirstAttempt(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("interrupted by terminated"))
	res, err := Wait(ctx, testConfig(t, ""), Options{})
	require.ErrorIs(t, err, ErrCanceled)
	require.Equal(t, 0, res.Attempts)
	require.Equal(t, "interrupted by terminated before the first attempt", err.Error())
}
