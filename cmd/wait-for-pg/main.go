// Command wait-for-pg blocks until PostgreSQL is ready for this client, at a
// chosen level (tcp, accepting, auth, database, query), then exits 0 or, with
// --exec, replaces itself with a command. It is the init container of every
// kommons module pod. See docs/wait-for-pg.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kommons/kommons/internal/cli"
	"github.com/kommons/kommons/internal/pgconfig"
	"github.com/kommons/kommons/internal/pgready"
	"github.com/kommons/kommons/internal/retry"
)

// Exit codes: documented in --help and docs/wait-for-pg.md.
const (
	exitReady      = 0
	exitDeadline   = 1
	exitPermanent  = 2 // also invalid flags, DSN or environment
	exitCannotExec = 126
	exitNotFound   = 127
	exitSignalBase = 128 // + signal number: 130 SIGINT, 143 SIGTERM
)

func main() {
	ctx, stop := cli.SignalContext(context.Background())
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

// config is everything the flags and environment select.
type config struct {
	dsn, passwordFile, database string
	level                       string
	primary, failFastAuth       bool
	tables, privileges          listFlag
	timeout, connectTimeout     time.Duration
	backoff                     retry.Backoff
	watch, heartbeat            time.Duration
	exec, quiet                 bool
	logOpts                     cli.LogOptions
}

func newFlags(c *config) *cli.FlagSet {
	fs := cli.NewFlagSet("wait-for-pg")
	def := retry.DefaultBackoff()
	fs.String(&c.dsn, "dsn", "WAIT_FOR_PG_DSN", "", "connection string, URL or keyword/value; the libpq environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGPASSFILE, PGDATABASE, PGSSLMODE, PGCONNECT_TIMEOUT) fills in the rest")
	fs.String(&c.passwordFile, "password-file", "WAIT_FOR_PG_PASSWORD_FILE", "", "file holding the password (a mounted Secret); one trailing newline is removed; overrides other passwords")
	fs.String(&c.database, "database", "WAIT_FOR_PG_DATABASE", "", "database to wait for; overrides the DSN and PGDATABASE")
	fs.String(&c.level, "level", "WAIT_FOR_PG_LEVEL", "query", "readiness level to wait for: tcp, accepting, auth, database or query")
	fs.Bool(&c.primary, "primary", "WAIT_FOR_PG_PRIMARY", false, "also require a primary: pg_is_in_recovery() = false")
	c.tables = listFlag{env: "WAIT_FOR_PG_REQUIRE_TABLE", sep: ","}
	c.tables.loadEnv()
	fs.Var(&c.tables, "require-table", "table (or view) that must exist, e.g. app.orders; repeatable (env WAIT_FOR_PG_REQUIRE_TABLE, comma-separated)")
	c.privileges = listFlag{env: "WAIT_FOR_PG_REQUIRE_PRIVILEGE", sep: ";"}
	c.privileges.loadEnv()
	fs.Var(&c.privileges, "require-privilege", "privilege the user must hold: 'PRIV[,PRIV] ON TABLE|SEQUENCE|SCHEMA|DATABASE [NAME]', e.g. 'SELECT,INSERT ON TABLE app.orders'; repeatable (env WAIT_FOR_PG_REQUIRE_PRIVILEGE, semicolon-separated)")
	fs.Bool(&c.failFastAuth, "fail-fast-auth", "WAIT_FOR_PG_FAIL_FAST_AUTH", false, "treat authentication failures (SQLSTATE 28xxx) as permanent: exit 2 at once instead of waiting for the role to appear")
	fs.Duration(&c.timeout, "timeout", "WAIT_FOR_PG_TIMEOUT", 5*time.Minute, "overall deadline; 0 waits until ready or signalled")
	fs.Duration(&c.connectTimeout, "connect-timeout", "WAIT_FOR_PG_CONNECT_TIMEOUT", 0, "timeout of one attempt; 0 uses connect_timeout / PGCONNECT_TIMEOUT, else 5s")
	fs.Duration(&c.backoff.Initial, "initial-interval", "WAIT_FOR_PG_INITIAL_INTERVAL", def.Initial, "first pause between attempts")
	fs.Float(&c.backoff.Multiplier, "multiplier", "WAIT_FOR_PG_MULTIPLIER", def.Multiplier, "growth of the pause after each failed attempt (>= 1)")
	fs.Duration(&c.backoff.Max, "max-interval", "WAIT_FOR_PG_MAX_INTERVAL", def.Max, "longest pause between attempts, before jitter")
	fs.Float(&c.backoff.Jitter, "jitter", "WAIT_FOR_PG_JITTER", def.Jitter, "randomization of each pause, in [0,1): pause*(1±jitter)")
	fs.Duration(&c.watch, "watch-interval", "WAIT_FOR_PG_WATCH_INTERVAL", 100*time.Millisecond, "interval of the cheap probes between attempts (TCP dial while the port is closed, pg_database lookup while the database is missing); 0 disables them")
	fs.Duration(&c.heartbeat, "heartbeat", "WAIT_FOR_PG_HEARTBEAT", 30*time.Second, "repeat the progress line at least this often while nothing changes; 0 disables")
	fs.BoolVar(&c.exec, "exec", false, "when ready, replace this process with the command after --; it is never run if not ready")
	fs.Bool(&c.quiet, "quiet", "WAIT_FOR_PG_QUIET", false, "log only the final error, if any")
	fs.LogFlags(&c.logOpts, "WAIT_FOR_PG")
	return fs
}

const usageHead = `Usage: wait-for-pg [flags] [--exec -- COMMAND [ARGS...]]

Waits until PostgreSQL is ready for this client, then exits 0 (or, with
--exec, replaces itself with COMMAND). Readiness levels, checked in order up
to --level:
  tcp        the port accepts TCP connections
  accepting  the server answers and is not starting up (SQLSTATE 57P03)
  auth       the credentials are accepted
  database   the database exists and may be connected to (3D000 while missing)
  query      SELECT 1 succeeds, plus --primary / --require-table / --require-privilege

Transient failures (refused, reset, timeouts, 57P03, 3D000, 28P01/28000
unless --fail-fast-auth) are retried with exponential backoff and jitter
until --timeout. Progress is logged to stderr when the level or the error
changes; the password is never logged.

Exit codes:
  0    ready (the target level was reached)
  1    deadline reached; the last line names the highest level, last error and elapsed time
  2    permanent error (TLS misconfiguration, --fail-fast-auth and bad credentials) or invalid flags/DSN/environment
  126  --exec command exists but is not executable (checked before waiting), or exec failed
  127  --exec command not found (checked before waiting)
  130  interrupted by SIGINT
  143  terminated by SIGTERM

Flags (the environment variable in parentheses is the fallback; --exec has none):
`

// run parses args, waits, and returns the exit code (or execs).
func run(ctx context.Context, args []string, stderr io.Writer) int {
	var c config
	fs := newFlags(&c)
	fs.SetOutput(stderr)
	if help, err := fs.ParseArgs(args, stderr, usageHead); help {
		return exitReady
	} else if err != nil {
		fmt.Fprintf(stderr, "wait-for-pg: %v (see --help)\n", err)
		return exitPermanent
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "wait-for-pg: "+format+" (see --help)\n", a...)
		return exitPermanent
	}
	command := fs.Args()
	switch {
	case c.exec && len(command) == 0:
		return usageErr("--exec needs a command after --")
	case !c.exec && len(command) > 0:
		return usageErr("unexpected arguments %q (to run a command when ready use --exec -- COMMAND)", command)
	}
	logOpts := c.logOpts
	if c.quiet {
		logOpts.Level = "error"
	}
	log, err := cli.NewLogger(stderr, logOpts)
	if err != nil {
		return usageErr("%v", err)
	}
	opts, err := c.options(log)
	if err != nil {
		return usageErr("%v", err)
	}
	var path string
	if c.exec {
		if path, err = exec.LookPath(command[0]); err != nil {
			if notExecutable(command[0]) {
				log.Error("--exec command not executable", "command", command[0], "error", err.Error())
				return exitCannotExec
			}
			log.Error("--exec command not found", "command", command[0], "error", err.Error())
			return exitNotFound
		}
	}
	cfg, err := pgconfig.Load(pgconfig.Source{DSN: c.dsn, PasswordFile: c.passwordFile, PasswordFileFlag: "--password-file", Database: c.database})
	if err != nil {
		return usageErr("%v", err)
	}
	server := pgconfig.Describe(cfg)
	log.Info("wait-for-pg starting", "server", server, "target", opts.Target.String(), "timeout", c.timeout.String())
	res, err := pgready.Wait(ctx, cfg, opts)
	if err == nil {
		if c.exec {
			log.Info("exec", "command", path)
			if err := syscall.Exec(path, command, os.Environ()); err != nil {
				log.Error("--exec failed", "command", path, "error", err.Error())
				return exitCannotExec
			}
		}
		return exitReady
	}
	attrs := []any{"server", server, "target", res.Target.String(), "reached", res.Level.String(), "highest", res.Highest.String(),
		"sqlstate", pgready.SQLState(res.LastErr), "attempts", res.Attempts, "elapsed", res.Elapsed.Round(time.Millisecond).String(),
		"error", err.Error()}
	if h := pgready.Hint(res.LastErr); h != "" {
		attrs = append(attrs, "hint", h)
	}
	var sig *cli.SignalError
	switch {
	case errors.As(err, &sig):
		log.Error("PostgreSQL not ready: interrupted", attrs...)
		if s, ok := sig.Signal.(syscall.Signal); ok {
			return exitSignalBase + int(s)
		}
		return exitSignalBase + int(syscall.SIGTERM)
	case errors.Is(err, pgready.ErrDeadline):
		log.Error("PostgreSQL not ready: deadline reached", attrs...)
		return exitDeadline
	default:
		log.Error("PostgreSQL not ready: permanent error", attrs...)
		return exitPermanent
	}
}

// notExecutable reports whether name, which exec.LookPath did not accept,
// exists but cannot be executed (no execute permission, a directory, a path
// it may not search): 126 like a shell, not 127 (not found). A name without
// a slash is looked for in each $PATH directory, as LookPath does, where
// directories do not count (a shell skips them too).
func notExecutable(name string) bool {
	if strings.Contains(name, "/") {
		_, err := os.Stat(name)
		return err == nil || errors.Is(err, fs.ErrPermission)
	}
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if dir == "" {
			dir = "."
		}
		fi, err := os.Stat(filepath.Join(dir, name))
		if (err == nil && !fi.IsDir()) || errors.Is(err, fs.ErrPermission) {
			return true
		}
	}
	return false
}

// options validates the flags into pgready.Options.
func (c *config) options(log *slog.Logger) (pgready.Options, error) {
	level, err := pgready.ParseLevel(c.level)
	if err != nil {
		return pgready.Options{}, fmt.Errorf("--level: %w", err)
	}
	if err := c.backoff.Validate(); err != nil {
		return pgready.Options{}, fmt.Errorf("backoff flags: %w", err)
	}
	for name, d := range map[string]time.Duration{"--timeout": c.timeout, "--connect-timeout": c.connectTimeout,
		"--watch-interval": c.watch, "--heartbeat": c.heartbeat} {
		if d < 0 {
			return pgready.Options{}, fmt.Errorf("%s %v: must not be negative", name, d)
		}
	}
	o := pgready.Options{Target: level, Primary: c.primary, RequireTables: c.tables.values, FailFastAuth: c.failFastAuth,
		Timeout: c.timeout, AttemptTimeout: c.connectTimeout, Backoff: c.backoff, WatchInterval: c.watch,
		Heartbeat: c.heartbeat, Logger: log}
	for _, s := range c.privileges.values {
		p, err := pgready.ParsePrivilege(s)
		if err != nil {
			return pgready.Options{}, fmt.Errorf("--require-privilege: %w", err)
		}
		o.RequirePrivileges = append(o.RequirePrivileges, p)
	}
	if (o.Primary || len(o.RequireTables) > 0 || len(o.RequirePrivileges) > 0) && level != pgready.LevelQuery {
		return pgready.Options{}, fmt.Errorf("--primary, --require-table and --require-privilege need --level query, not %s", level)
	}
	return o, nil
}

// listFlag is a repeatable flag whose default comes from a separated env var;
// the first use on the command line replaces the env values.
type listFlag struct {
	env, sep string
	values   []string
	fromFlag bool
}

func (l *listFlag) loadEnv() {
	for _, v := range strings.Split(os.Getenv(l.env), l.sep) {
		if v = strings.TrimSpace(v); v != "" {
			l.values = append(l.values, v)
		}
	}
}

func (l *listFlag) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(l.values, l.sep)
}

func (l *listFlag) Set(v string) error {
	if !l.fromFlag {
		l.values, l.fromFlag = nil, true
	}
	if strings.TrimSpace(v) == "" {
		return errors.New("empty value")
	}
	l.values = append(l.values, strings.TrimSpace(v))
	return nil
}
