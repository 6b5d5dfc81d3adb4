// Package pgready waits until a PostgreSQL server is ready for a client, at
// a chosen readiness level: tcp (port open) -> accepting (not 57P03
// "starting up") -> auth (credentials accepted) -> database (the database
// exists and may be connected to) -> query (SELECT 1 and optional checks:
// primary, required tables, required privileges).
//
// Wait retries transient failures (connection refused, timeouts, 57P03,
// 3D000, and by default authentication failures, since the role may not
// exist yet) with exponential backoff and jitter until an overall deadline,
// and returns at once on permanent ones (TLS misconfiguration, invalid
// options, authentication failures with FailFastAuth). It logs progress only
// when the level reached or the error changes. Errors and logs never contain
// the password. It is shared by wait-for-pg and pg-init.
package pgready

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kommons/kommons/internal/pgconfig"
	"github.com/kommons/kommons/internal/redact"
	"github.com/kommons/kommons/internal/retry"
)

// Options tunes Wait. The zero value waits for LevelQuery with the default
// backoff, a 5 s connect timeout per attempt and no deadline (only ctx).
type Options struct {
	// Target is the level that counts as ready; LevelNone means LevelQuery.
	Target Level
	// Primary also requires pg_is_in_recovery() = false (implies LevelQuery).
	Primary bool
	// RequireTables must exist, resolved like SQL would (to_regclass; schema-qualify
	// or rely on search_path). Implies LevelQuery.
	RequireTables []string
	// RequirePrivileges must all be held by the connecting role. Implies LevelQuery.
	RequirePrivileges []Privilege
	// FailFastAuth makes authentication failures (SQLSTATE class 28) permanent
	// instead of transient.
	FailFastAuth bool
	// Timeout is the overall deadline, measured from the call; 0 means none.
	Timeout time.Duration
	// AttemptTimeout bounds one attempt (connect and checks); 0 means the
	// config's ConnectTimeout (connect_timeout, PGCONNECT_TIMEOUT), else 5 s.
	AttemptTimeout time.Duration
	// Backoff is the pause schedule between attempts; the zero value means retry.DefaultBackoff().
	Backoff retry.Backoff
	// WatchInterval, when > 0, enables cheap probes between attempts that end
	// a pause early as soon as retrying can succeed: a TCP dial while the
	// port is closed, and a pg_database lookup over a connection to the
	// maintenance database while the target database is missing. They keep
	// detection latency near WatchInterval without full attempts (and
	// server log lines) at that rate. 0 disables them.
	WatchInterval time.Duration
	// MaintenanceDatabase is the database the watch connects to while the
	// target database is missing; "" means "postgres".
	MaintenanceDatabase string
	// Logger receives progress (Info), per-attempt detail (Debug); nil logs nothing.
	Logger *slog.Logger
	// Heartbeat, when > 0, repeats the progress line at least this often
	// while nothing changes, so a long wait is visibly alive.
	Heartbeat time.Duration
	// Clock and Rand make the schedule reproducible in tests; nil means real
	// time and a randomly seeded source.
	Clock Clock
	Rand  *rand.Rand
}

// Clock is the time source of Wait.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Result describes a Wait.
type Result struct {
	Target   Level         // the level waited for
	Level    Level         // reached by the last attempt
	Highest  Level         // highest reached by any attempt
	Attempts int           // attempts made
	Elapsed  time.Duration // since Wait began
	LastErr  error         // what stopped the last attempt (password redacted); nil when ready
}

// Ready reports whether the last attempt reached the target.
func (r Result) Ready() bool { return r.Level >= r.Target }

// Kind says why Wait gave up.
type Kind int

// The reasons Wait returns an *Error.
const (
	// Permanent: a failure retrying cannot fix (or invalid options).
	Permanent Kind = iota + 1
	// Deadline: Options.Timeout passed before the target was reached.
	Deadline
	// Canceled: ctx ended (e.g. SIGTERM); Cause holds context.Cause(ctx).
	Canceled
)

// String names the kind as the final log line does.
func (k Kind) String() string {
	switch k {
	case Permanent:
		return "permanent error"
	case Deadline:
		return "deadline reached"
	case Canceled:
		return "interrupted"
	}
	return "unknown"
}

// Sentinels matched by errors.Is against an *Error of that Kind.
var (
	ErrPermanent = errors.New("permanent error")
	ErrDeadline  = errors.New("deadline reached")
	ErrCanceled  = errors.New("interrupted")
)

// Error is returned by Wait when the target was not reached. Its message
// names the highest level reached, the last error with its SQLSTATE and the
// elapsed time: the one line an operator needs.
type Error struct {
	Kind   Kind
	Result Result
	Cause  error // for Canceled: context.Cause(ctx); for invalid options: the reason
}

// Error is one line: kind, elapsed, attempts, last and highest level, what
// was awaited and the last error (with its SQLSTATE), password redacted.
func (e *Error) Error() string {
	r := e.Result
	head := e.Kind.String()
	if e.Kind == Canceled && e.Cause != nil {
		head = e.Cause.Error()
	}
	if r.Attempts == 0 {
		if e.Kind == Canceled || e.Cause == nil {
			return head + " before the first attempt"
		}
		return fmt.Sprintf("%s: %v", head, e.Cause)
	}
	msg := fmt.Sprintf("%s after %s (%d attempts): reached %s (highest %s), waiting for %s",
		head, r.Elapsed.Round(time.Millisecond), r.Attempts, r.Level, r.Highest, r.Level.Next())
	if r.LastErr != nil {
		msg += ": " + r.LastErr.Error()
	}
	return msg
}

// Unwrap exposes the cause and the last attempt's error.
func (e *Error) Unwrap() []error {
	var out []error
	if e.Cause != nil {
		out = append(out, e.Cause)
	}
	if e.Result.LastErr != nil {
		out = append(out, e.Result.LastErr)
	}
	return out
}

// Is matches ErrPermanent, ErrDeadline or ErrCanceled by Kind.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrPermanent:
		return e.Kind == Permanent
	case ErrDeadline:
		return e.Kind == Deadline
	case ErrCanceled:
		return e.Kind == Canceled
	}
	return false
}

// attempt is the outcome of one probe.
type attempt struct {
	level Level
	err   error // nil when every check passed
}

// Wait blocks until cfg's server is ready at opts.Target, the deadline
// passes, ctx ends, or a permanent error occurs. It returns the Result and,
// unless ready, an *Error. cfg is not modified.
func Wait(ctx context.Context, cfg *pgx.ConnConfig, opts Options) (Result, error) {
	w, err := newWaiter(cfg, opts)
	if err != nil {
		return Result{Target: opts.Target}, &Error{Kind: Permanent, Result: Result{Target: opts.Target}, Cause: err}
	}
	return w.run(ctx, w.probe)
}

type waiter struct {
	cfg    *pgx.ConnConfig
	o      Options
	checks checks
	clock  Clock
	log    *slog.Logger
	// watch starts a cheap probe after an attempt that reached level; it
	// signals wake when a retry can get further. nil: no watching.
	watch func(ctx context.Context, level Level, wake chan<- struct{})
	// maint is the watch's connection to the maintenance database, kept
	// across pauses while the target database is missing.
	maint *pgx.Conn
	// maintRefused records that connecting to the maintenance database
	// failed; the database watch is then off for the rest of the Wait.
	maintRefused bool
}

func newWaiter(cfg *pgx.ConnConfig, o Options) (*waiter, error) {
	if cfg == nil {
		return nil, errors.New("no connection config")
	}
	hasChecks := o.Primary || len(o.RequireTables) > 0 || len(o.RequirePrivileges) > 0
	switch {
	case o.Target == LevelNone:
		o.Target = LevelQuery
	case o.Target < LevelNone || o.Target > LevelQuery:
		return nil, fmt.Errorf("target level %v: want tcp, accepting, auth, database or query", o.Target)
	case hasChecks && o.Target != LevelQuery:
		return nil, fmt.Errorf("primary, required tables and required privileges need target level query, not %s", o.Target)
	}
	if o.Backoff == (retry.Backoff{}) {
		o.Backoff = retry.DefaultBackoff()
	}
	if err := o.Backoff.Validate(); err != nil {
		return nil, err
	}
	if o.Timeout < 0 || o.AttemptTimeout < 0 || o.WatchInterval < 0 || o.Heartbeat < 0 {
		return nil, errors.New("timeouts and intervals must not be negative")
	}
	if o.AttemptTimeout == 0 {
		o.AttemptTimeout = cfg.ConnectTimeout
	}
	if o.AttemptTimeout == 0 {
		o.AttemptTimeout = 5 * time.Second
	}
	if o.MaintenanceDatabase == "" {
		o.MaintenanceDatabase = "postgres"
	}
	w := &waiter{cfg: cfg, o: o, checks: checks{primary: o.Primary, tables: o.RequireTables, privileges: o.RequirePrivileges},
		clock: o.Clock, log: o.Logger}
	if w.clock == nil {
		w.clock = realClock{}
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if o.WatchInterval > 0 {
		w.watch = w.watchFor
	}
	return w, nil
}

// minFinalAttempt is the least time given to an attempt made at the deadline.
const minFinalAttempt = 200 * time.Millisecond

func (w *waiter) run(ctx context.Context, probe func(context.Context) attempt) (Result, error) {
	sched, err := retry.NewSchedule(w.o.Backoff, w.o.Rand)
	if err != nil {
		return Result{Target: w.o.Target}, &Error{Kind: Permanent, Result: Result{Target: w.o.Target}, Cause: err}
	}
	start := w.clock.Now()
	var deadline time.Time
	if w.o.Timeout > 0 {
		deadline = start.Add(w.o.Timeout)
	}
	res := Result{Target: w.o.Target}
	lastKey, lastLog := "", start
	defer w.closeMaint()
	prev := LevelNone
	woken, gate := false, watchGate{}
	for {
		if ctx.Err() != nil {
			res.Elapsed = w.clock.Now().Sub(start)
			return res, &Error{Kind: Canceled, Result: res, Cause: context.Cause(ctx)}
		}
		timeout := w.o.AttemptTimeout
		if !deadline.IsZero() {
			if rem := deadline.Sub(w.clock.Now()); rem < timeout {
				timeout = max(rem, minFinalAttempt)
			}
		}
		actx, cancel := context.WithTimeout(ctx, timeout)
		a := probe(actx)
		cancel()
		now := w.clock.Now()
		res.Attempts++
		res.Elapsed = now.Sub(start)
		if ctx.Err() != nil { // the attempt failed because we were interrupted
			return res, &Error{Kind: Canceled, Result: res, Cause: context.Cause(ctx)}
		}
		res.Level, res.LastErr = a.level, redact.Error(a.err, w.cfg.Password)
		res.Highest = max(res.Highest, a.level)
		if a.level >= w.o.Target {
			res.LastErr = nil
			w.log.Info("PostgreSQL ready", "level", a.level.String(), "target", w.o.Target.String(),
				"attempts", res.Attempts, "elapsed", dur(res.Elapsed), "server", pgconfig.Describe(w.cfg))
			return res, nil
		}
		if isPermanent(a.err, w.o.FailFastAuth) {
			return res, &Error{Kind: Permanent, Result: res}
		}
		if !deadline.IsZero() && !now.Before(deadline) {
			return res, &Error{Kind: Deadline, Result: res}
		}
		if a.level > prev {
			sched.Reset() // progress: retry quickly again
		}
		prev = a.level
		pause := sched.Next()
		if !deadline.IsZero() && now.Add(pause).After(deadline) {
			pause = deadline.Sub(now) // one last attempt at the deadline
		}
		key := a.level.String() + "|" + errorKey(a.err)
		attrs := []any{"reached", a.level.String(), "waiting_for", a.level.Next().String(),
			"error", errString(res.LastErr), "sqlstate", SQLState(a.err), "attempt", res.Attempts,
			"elapsed", dur(res.Elapsed), "next_retry", dur(pause)}
		if h := Hint(a.err); h != "" {
			attrs = append(attrs, "hint", h)
		}
		switch {
		case key != lastKey:
			w.log.Info("waiting for PostgreSQL", attrs...)
			lastKey, lastLog = key, now
		case w.o.Heartbeat > 0 && now.Sub(lastLog) >= w.o.Heartbeat:
			w.log.Info("still waiting for PostgreSQL", attrs...)
			lastLog = now
		default:
			w.log.Debug("attempt failed", attrs...)
		}
		var err error
		if woken, err = w.sleep(ctx, pause, a.level, gate.allow(a.level, woken)); err != nil {
			res.Elapsed = w.clock.Now().Sub(start)
			return res, &Error{Kind: Canceled, Result: res, Cause: context.Cause(ctx)}
		}
	}
}

// watchGate stops trusting the watch once it woke Wait for an attempt that
// got no further than the one before, until the level changes: no hot loop
// when the cheap probe and the real attempt disagree.
type watchGate struct {
	level Level
	muted bool
}

// allow is told the level of the attempt just made and whether its pause
// was cut short by the watch; it says whether the next pause may be.
func (g *watchGate) allow(level Level, woken bool) bool {
	if level != g.level {
		g.muted = false
	} else if woken {
		g.muted = true
	}
	g.level = level
	return !g.muted
}

// sleep pauses for d, or less when watch is set and the watch sees that
// retrying can get further (woken); it returns ctx's error when ctx ends.
func (w *waiter) sleep(ctx context.Context, d time.Duration, level Level, watch bool) (woken bool, err error) {
	wake := make(chan struct{}, 1)
	if watch && w.watch != nil && d > w.o.WatchInterval {
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); w.watch(wctx, level, wake) }()
		defer func() { cancel(); <-done }() // one watch at a time: it owns w.maint
	}
	if level != LevelAuth {
		w.closeMaint()
	}
	select {
	case <-w.clock.After(d):
		return false, nil
	case <-wake:
		return true, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// probe makes one real attempt up to the target level.
func (w *waiter) probe(ctx context.Context) attempt {
	if w.o.Target == LevelTCP {
		if err := dialAny(ctx, &w.cfg.Config); err != nil {
			return attempt{LevelNone, err}
		}
		return attempt{LevelTCP, nil}
	}
	cfg := w.cfg.Copy()
	var dialed atomic.Bool
	dial := cfg.DialFunc
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err == nil {
			dialed.Store(true)
		}
		return c, err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec // no prepared statements: works through PgBouncer
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return attempt{levelOfConnectError(err, dialed.Load()), err}
	}
	defer closeConn(conn)
	if w.o.Target < LevelQuery {
		return attempt{LevelDatabase, nil}
	}
	if _, err := conn.Exec(ctx, "SELECT 1"); err != nil {
		return attempt{LevelDatabase, fmt.Errorf("SELECT 1: %w", err)}
	}
	if err := w.checks.run(ctx, conn); err != nil {
		return attempt{LevelDatabase, err}
	}
	return attempt{LevelQuery, nil}
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// dialAny opens (and closes) a TCP or Unix-socket connection to the first
// reachable host of cfg, trying fallbacks in order.
func dialAny(ctx context.Context, cfg *pgconn.Config) error {
	var errs []error
	for _, a := range addresses(ctx, cfg, &errs) {
		c, err := cfg.DialFunc(ctx, a.network, a.address)
		if err == nil {
			_ = c.Close()
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

type netAddr struct{ network, address string }

// addresses resolves the hosts of cfg (primary and fallbacks, deduplicated).
func addresses(ctx context.Context, cfg *pgconn.Config, errs *[]error) []netAddr {
	hosts := []*pgconn.FallbackConfig{{Host: cfg.Host, Port: cfg.Port}}
	hosts = append(hosts, cfg.Fallbacks...)
	seen := map[netAddr]bool{}
	var out []netAddr
	add := func(a netAddr) {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	for _, h := range hosts {
		if len(h.Host) > 0 && h.Host[0] == '/' {
			n, a := pgconn.NetworkAddress(h.Host, h.Port)
			add(netAddr{n, a})
			continue
		}
		ips, err := cfg.LookupFunc(ctx, h.Host)
		if err != nil {
			*errs = append(*errs, err)
			continue
		}
		for _, ip := range ips {
			n, a := pgconn.NetworkAddress(ip, h.Port)
			add(netAddr{n, a})
		}
	}
	return out
}

func dur(d time.Duration) string { return d.Round(time.Millisecond).String() }

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
