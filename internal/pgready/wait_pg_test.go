package pgready

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/retry"
	"github.com/kommons/kommons/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func parse(t *testing.T, dsn string) *pgx.ConnConfig {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	require.NoError(t, err)
	return cfg
}

// signalHandler is a slog handler that reports the first record whose
// message matches, so a test can act once Wait is known to be waiting.
type signalHandler struct {
	msg  string
	once sync.Once
	ch   chan struct{}
	mu   sync.Mutex
	all  []string
}

func newSignalHandler(msg string) *signalHandler {
	return &signalHandler{msg: msg, ch: make(chan struct{})}
}

func (h *signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *signalHandler) Handle(_ context.Context, r slog.Record) error {
	line := r.Message
	r.Attrs(func(a slog.Attr) bool { line += " " + a.String(); return true })
	h.mu.Lock()
	h.all = append(h.all, line)
	h.mu.Unlock()
	if r.Message == h.msg {
		h.once.Do(func() { close(h.ch) })
	}
	return nil
}
func (h *signalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *signalHandler) WithGroup(string) slog.Handler      { return h }
func (h *signalHandler) text() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.all, "\n")
}

func fast() retry.Backoff {
	return retry.Backoff{Initial: 20 * time.Millisecond, Multiplier: 1.5, Max: 200 * time.Millisecond, Jitter: 0.2}
}

func TestReadyServerIsReadyAtOnce(t *testing.T) {
	s := pgtest.Shared(t)
	res, err := Wait(context.Background(), parse(t, s.AdminDSN()), Options{Primary: true,
		RequirePrivileges: []Privilege{{Privileges: []string{"CONNECT", "TEMPORARY"}, Kind: "DATABASE"}}})
	require.NoError(t, err)
	require.Equal(t, LevelQuery, res.Level)
	require.Equal(t, 1, res.Attempts)
}

func TestDatabaseCreatedWhileWaiting(t *testing.T) {
	for _, watch := range []time.Duration{0, 20 * time.Millisecond} {
		t.Run("watch="+watch.String(), func(t *testing.T) {
			s := pgtest.Shared(t)
			name := "late_db_" + strings.ReplaceAll(watch.String(), "ms", "")
			h := newSignalHandler("waiting for PostgreSQL")
			done := make(chan struct{})
			var res Result
			var err error
			go func() {
				defer close(done)
				res, err = Wait(context.Background(), parse(t, s.DSN(pgtest.AdminUser, s.AdminPassword(), name)),
					Options{Timeout: time.Minute, Backoff: retry.Backoff{Initial: 50 * time.Millisecond, Multiplier: 2, Max: 2 * time.Second},
						WatchInterval: watch, Logger: slog.New(h)})
			}()
			<-h.ch
			s.Exec(t, "CREATE DATABASE "+name)
			t.Cleanup(func() { s.Exec(t, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
			<-done
			require.NoError(t, err, h.text())
			require.Equal(t, LevelQuery, res.Level)
			require.GreaterOrEqual(t, res.Attempts, 2)
			require.Contains(t, h.text(), "reached=auth waiting_for=database")
			require.Contains(t, h.text(), "sqlstate=3D000")
		})
	}
}

func TestWrongPasswordWaitsUntilDeadlineOrFailsFast(t *testing.T) {
	s := pgtest.Shared(t)
	cfg := parse(t, s.DSN(pgtest.AdminUser, "not-the-password", "postgres"))
	res, err := Wait(context.Background(), cfg, deadlineDuringAttempt(cfg, 3, Options{Backoff: fast()}))
	require.ErrorIs(t, err, ErrDeadline)
	require.Equal(t, LevelAccepting, res.Highest)
	require.Equal(t, 3, res.Attempts, "retried until the deadline")
	require.Contains(t, err.Error(), "reached accepting (highest accepting), waiting for auth")
	require.Contains(t, err.Error(), "SQLSTATE 28P01")
	require.NotContains(t, err.Error(), "not-the-password")

	cfg = parse(t, s.DSN(pgtest.AdminUser, "not-the-password", "postgres"))
	res, err = Wait(context.Background(), cfg, Options{Timeout: time.Minute, FailFastAuth: true})
	require.ErrorIs(t, err, ErrPermanent)
	require.Equal(t, 1, res.Attempts)
}

func TestServerStartedLateAndRestarted(t *testing.T) {
	s := pgtest.New(t, pgtest.Options{})
	cfg := parse(t, s.AdminDSN())
	s.Stop()
	h := newSignalHandler("waiting for PostgreSQL")
	done := make(chan error, 1)
	go func() {
		_, err := Wait(context.Background(), cfg, Options{Timeout: time.Minute, Backoff: fast(), WatchInterval: 20 * time.Millisecond, Logger: slog.New(h)})
		done <- err
	}()
	<-h.ch
	require.Contains(t, h.text(), "reached=none waiting_for=tcp")
	require.NoError(t, s.Start())
	require.NoError(t, <-done, h.text())

	// A restart in the middle of a wait for a table that appears afterwards.
	h = newSignalHandler("waiting for PostgreSQL")
	go func() {
		_, err := Wait(context.Background(), cfg, Options{Timeout: time.Minute, Backoff: fast(), RequireTables: []string{"public.late"}, Logger: slog.New(h)})
		done <- err
	}()
	<-h.ch
	require.NoError(t, s.Restart())
	s.Exec(t, "CREATE TABLE public.late (id int)")
	require.NoError(t, <-done, h.text())
	require.Contains(t, h.text(), "check table public.late: does not exist")
}

func TestTargetLevels(t *testing.T) {
	s := pgtest.Shared(t)
	// accepting: a wrong password proves the server answers.
	_, err := Wait(context.Background(), parse(t, s.DSN(pgtest.AdminUser, "wrong", "postgres")), Options{Target: LevelAccepting, Timeout: 10 * time.Second})
	require.NoError(t, err)
	// auth: a missing database is fine.
	_, err = Wait(context.Background(), parse(t, s.DSN(pgtest.AdminUser, s.AdminPassword(), "missing")), Options{Target: LevelAuth, Timeout: 10 * time.Second})
	require.NoError(t, err)
	// database: but not a missing one. The deadline passes during the
	// third attempt, however long attempts take on this machine.
	cfg := parse(t, s.DSN(pgtest.AdminUser, s.AdminPassword(), "missing"))
	res, err := Wait(context.Background(), cfg, deadlineDuringAttempt(cfg, 3, Options{Target: LevelDatabase, Backoff: fast()}))
	require.ErrorIs(t, err, ErrDeadline)
	require.Equal(t, 3, res.Attempts, err.Error())
	require.Equal(t, LevelAuth, res.Level, err.Error())
	require.Equal(t, LevelAuth, res.Highest, err.Error())
	require.Contains(t, err.Error(), "SQLSTATE 3D000")
	// tcp: a closed port never counts.
	port, perr := pgtest.FreePort()
	require.NoError(t, perr)
	cfg = parse(t, strings.Replace(s.AdminDSN(), ":"+itoa(s.Port()), ":"+itoa(port), 1))
	res, err = Wait(context.Background(), cfg, deadlineDuringAttempt(cfg, 3, Options{Target: LevelTCP, Backoff: fast()}))
	require.ErrorIs(t, err, ErrDeadline)
	require.Equal(t, 3, res.Attempts, err.Error())
	require.Equal(t, LevelNone, res.Highest)
	require.Contains(t, err.Error(), "connection refused")
}

// attemptClock is Wait's clock in tests that reach the deadline without
// depending on how fast this machine is: pauses return at once (advancing
// the clock by the pause), and the deadline passes when the test says so.
type attemptClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *attemptClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *attemptClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

// deadlineDuringAttempt returns o with a one-hour deadline on an
// attemptClock that jumps past it when attempt n dials the server (cfg's
// DialFunc is wrapped; one dial per attempt to a single address), so Wait
// makes exactly n real attempts, each with a generous attempt timeout, and
// then reports the deadline.
func deadlineDuringAttempt(cfg *pgx.ConnConfig, n int, o Options) Options {
	clock := &attemptClock{now: time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC)}
	o.Clock, o.Timeout, o.AttemptTimeout = clock, time.Hour, 2*time.Minute
	dial, dials := cfg.DialFunc, 0
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		clock.mu.Lock()
		if dials++; dials == n {
			clock.now = clock.now.Add(o.Timeout)
		}
		clock.mu.Unlock()
		return dial(ctx, network, addr)
	}
	return o
}

func TestPrivilegeGrantedWhileWaiting(t *testing.T) {
	s := pgtest.Shared(t)
	s.Exec(t, "CREATE ROLE priv_user LOGIN PASSWORD 'pw-priv'")
	t.Cleanup(func() { s.Exec(t, "DROP ROLE IF EXISTS priv_user") }) // after the database is dropped
	db := s.NewDatabase(t, "priv")
	admin := pgtest.Connect(t, s.DSN(pgtest.AdminUser, s.AdminPassword(), db))
	_, err := admin.Exec(context.Background(), "CREATE SCHEMA app; CREATE TABLE app.orders (id int); GRANT USAGE ON SCHEMA app TO priv_user")
	require.NoError(t, err)
	p, err := ParsePrivilege("select,insert ON table app.orders")
	require.NoError(t, err)
	h := newSignalHandler("waiting for PostgreSQL")
	done := make(chan error, 1)
	go func() {
		_, err := Wait(context.Background(), parse(t, s.DSN("priv_user", "pw-priv", db)),
			Options{Timeout: time.Minute, Backoff: fast(), RequirePrivileges: []Privilege{p}, Logger: slog.New(h)})
		done <- err
	}()
	<-h.ch
	_, err = admin.Exec(context.Background(), "GRANT SELECT, INSERT ON app.orders TO priv_user")
	require.NoError(t, err)
	require.NoError(t, <-done, h.text())
	require.Contains(t, h.text(), "user priv_user lacks SELECT")
}

func TestTLSRequiredButRefusedIsPermanent(t *testing.T) {
	s := pgtest.Shared(t)
	cfg := parse(t, strings.Replace(s.AdminDSN(), "sslmode=disable", "sslmode=require", 1))
	res, err := Wait(context.Background(), cfg, Options{Timeout: time.Minute})
	require.ErrorIs(t, err, ErrPermanent)
	require.Equal(t, 1, res.Attempts)
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestDatabaseWatchWithoutMaintenanceAccessTriesOnce(t *testing.T) {
	s := pgtest.New(t, pgtest.Options{})
	s.Exec(t, "CREATE ROLE watch_user LOGIN PASSWORD 'pw-watch'")
	s.Exec(t, "REVOKE CONNECT ON DATABASE postgres FROM PUBLIC")
	h := newSignalHandler("waiting for PostgreSQL")
	done := make(chan error, 1)
	go func() {
		_, err := Wait(context.Background(), parse(t, s.DSN("watch_user", "pw-watch", "watch_db")),
			Options{Timeout: time.Minute, Backoff: fast(), WatchInterval: 10 * time.Millisecond, Logger: slog.New(h)})
		done <- err
	}()
	<-h.ch
	// Let several pauses pass (each would have retried the maintenance connection).
	for deadline := time.Now().Add(30 * time.Second); strings.Count(h.text(), "attempt failed") < 5; {
		require.True(t, time.Now().Before(deadline), h.text())
		time.Sleep(10 * time.Millisecond)
	}
	s.Exec(t, "CREATE DATABASE watch_db OWNER watch_user")
	require.NoError(t, <-done, h.text())
	log, err := os.ReadFile(s.LogPath())
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(string(log), `permission denied for database "postgres"`), string(log))
}
