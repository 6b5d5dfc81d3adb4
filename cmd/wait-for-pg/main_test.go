package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/testutil/badsecret"
	"github.com/kommons/kommons/internal/testutil/gobuild"
	"github.com/kommons/kommons/internal/testutil/pgtest"
	"github.com/kommons/kommons/internal/testutil/syncbuf"
)

// waitForPG is the real static wait-for-pg binary the tests run, built once.
var waitForPG = gobuild.New(".", "wait-for-pg", "CGO_ENABLED=0")

func TestMain(m *testing.M) { pgtest.Main(m, waitForPG.Remove) }

// binary returns the wait-for-pg binary, building it on first use.
func binary(t *testing.T) string { return waitForPG.Path(t) }

type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *syncbuf.Buffer
	stdout *syncbuf.Buffer
	done   chan struct{}
	code   int
}

// cleanEnv is the test's environment without any libpq or WAIT_FOR_PG_ variable.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "WAIT_FOR_PG_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, stderr: &syncbuf.Buffer{}, stdout: &syncbuf.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(binary(t), args...)
	p.cmd.Env = append(cleanEnv(), env...)
	p.cmd.Stderr, p.cmd.Stdout = p.stderr, p.stdout
	require.NoError(t, p.cmd.Start())
	go func() {
		defer close(p.done)
		err := p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			p.code = -int(ws.Signal())
		}
		_ = err
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// waitLog polls stderr until it contains s (generous: the machine is loaded).
func (p *proc) waitLog(s string) {
	p.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(p.stderr.String(), s) {
		select {
		case <-p.done:
			require.Contains(p.t, p.stderr.String(), s, "process exited (%d) before logging it", p.code)
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no %q in output after 60s:\n%s", s, p.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *proc) exit() int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(90 * time.Second):
		p.t.Fatalf("wait-for-pg still running after 90s:\n%s", p.stderr.String())
		return 0
	}
}

// lastLog is the final JSON log line (stderr is not a terminal: JSON).
func (p *proc) lastLog() map[string]any {
	p.t.Helper()
	lines := strings.Split(strings.TrimSpace(p.stderr.String()), "\n")
	m := map[string]any{}
	require.NoError(p.t, json.Unmarshal([]byte(lines[len(lines)-1]), &m), p.stderr.String())
	return m
}

func noPassword(t *testing.T, p *proc, pw string) {
	t.Helper()
	require.NotContains(t, p.stderr.String(), pw)
	require.NotContains(t, p.stdout.String(), pw)
}

// envFor is the libpq environment of s for user, password and database.
func envFor(s *pgtest.Server, user, pw, db string) []string {
	return []string{"PGHOST=" + s.Host(), "PGPORT=" + strconv.Itoa(s.Port()), "PGUSER=" + user,
		"PGPASSWORD=" + pw, "PGDATABASE=" + db, "PGSSLMODE=disable"}
}

func TestHelpListsEveryFlagEnvAndExitCode(t *testing.T) {
	p := start(t, nil, "--help")
	require.Equal(t, 0, p.exit())
	out := p.stderr.String()
	var c config
	fs := newFlags(&c)
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		require.Regexp(t, `\n  -`+f.Name+`[ \n]`, out, f.Name)
		if f.Name != "exec" {
			require.Contains(t, f.Usage, "(env WAIT_FOR_PG_", "flag %s has no env fallback", f.Name)
		}
	})
	require.GreaterOrEqual(t, n, 20)
	for _, code := range []string{"\n  0 ", "\n  1 ", "\n  2 ", "\n  126 ", "\n  127 ", "\n  130 ", "\n  143 "} {
		require.Contains(t, out, code)
	}
}

func TestUsageErrorsExit2AndNameTheCulprit(t *testing.T) {
	s := pgtest.Shared(t)
	pwFile := filepath.Join(t.TempDir(), "missing-secret")
	for name, tc := range map[string]struct {
		env  []string
		args []string
		want string
	}{
		"level":         {nil, []string{"--level", "ready"}, "--level: unknown level \"ready\""},
		"env duration":  {[]string{"WAIT_FOR_PG_TIMEOUT=soon"}, nil, "env WAIT_FOR_PG_TIMEOUT=\"soon\""},
		"backoff":       {nil, []string{"--multiplier", "0.5"}, "backoff flags: multiplier 0.5"},
		"privilege":     {nil, []string{"--require-privilege", "FLY ON TABLE t"}, "--require-privilege: privilege \"FLY ON TABLE t\""},
		"checks level":  {nil, []string{"--primary", "--level", "auth"}, "need --level query"},
		"exec no cmd":   {nil, []string{"--exec"}, "--exec needs a command"},
		"stray args":    {nil, []string{"echo"}, "unexpected arguments"},
		"dsn":           {nil, []string{"--dsn", "postgres://u:topsecret-dsn@h:port/db"}, "connection settings (--dsn)"},
		"password file": {nil, []string{"--password-file", pwFile}, "--password-file " + pwFile + ": no such file or directory"},
	} {
		t.Run(name, func(t *testing.T) {
			p := start(t, append(envFor(s, "postgres", "pw", "postgres"), tc.env...), tc.args...)
			require.Equal(t, 2, p.exit(), p.stderr.String())
			require.Contains(t, p.stderr.String(), tc.want)
			noPassword(t, p, "topsecret-dsn")
		})
	}
}

func TestServerStartedTwoSecondsLater(t *testing.T) {
	s := pgtest.New(t, pgtest.Options{})
	s.Stop()
	p := start(t, envFor(s, pgtest.AdminUser, s.AdminPassword(), "postgres"), "--timeout", "2m")
	p.waitLog(`"reached":"none","waiting_for":"tcp"`)
	time.Sleep(2 * time.Second) // the scenario itself: the server comes up 2 s later
	require.NoError(t, s.Start())
	require.Equal(t, 0, p.exit(), p.stderr.String())
	require.Equal(t, "PostgreSQL ready", p.lastLog()["msg"])
	noPassword(t, p, s.AdminPassword())
}

func TestDatabaseCreatedConcurrently(t *testing.T) {
	s := pgtest.Shared(t)
	db := "created_later"
	t.Cleanup(func() { s.Exec(t, "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)") })
	p := start(t, envFor(s, pgtest.AdminUser, s.AdminPassword(), db), "--timeout", "2m")
	p.waitLog(`"sqlstate":"3D000"`)
	s.Exec(t, "CREATE DATABASE "+db)
	require.Equal(t, 0, p.exit(), p.stderr.String())
	last := p.lastLog()
	require.Equal(t, "PostgreSQL ready", last["msg"])
	require.Equal(t, "query", last["level"])
	noPassword(t, p, s.AdminPassword())
}

func TestWrongPasswordWaitsUntilDeadlineOrFailsFast(t *testing.T) {
	s := pgtest.Shared(t)
	const wrong = "definitely-Wrong-pw"
	env := envFor(s, pgtest.AdminUser, wrong, "postgres")

	p := start(t, env, "--timeout", "2s")
	require.Equal(t, 1, p.exit(), p.stderr.String())
	last := p.lastLog()
	require.Equal(t, "PostgreSQL not ready: deadline reached", last["msg"])
	require.Equal(t, "accepting", last["highest"])
	require.Equal(t, "28P01", last["sqlstate"])
	require.NotEmpty(t, last["elapsed"])
	require.Contains(t, last["error"], "reached accepting (highest accepting), waiting for auth")
	require.Greater(t, last["attempts"], float64(2))
	noPassword(t, p, wrong)

	p = start(t, env, "--timeout", "2m", "--fail-fast-auth")
	require.Equal(t, 2, p.exit(), p.stderr.String())
	last = p.lastLog()
	require.Equal(t, "PostgreSQL not ready: permanent error", last["msg"])
	require.Equal(t, float64(1), last["attempts"])
	noPassword(t, p, wrong)
}

func TestPasswordFileOverridesEnvironment(t *testing.T) {
	s := pgtest.Shared(t)
	pwFile := filepath.Join(t.TempDir(), "password")
	require.NoError(t, os.WriteFile(pwFile, []byte(s.AdminPassword()+"\n"), 0o600))
	p := start(t, envFor(s, pgtest.AdminUser, "stale-env-pw", "postgres"), "--password-file", pwFile, "--timeout", "30s")
	require.Equal(t, 0, p.exit(), p.stderr.String())
	noPassword(t, p, s.AdminPassword())
}

func TestDeadlineNamesLevelNoneWhenPortClosed(t *testing.T) {
	port, err := pgtest.FreePort()
	require.NoError(t, err)
	p := start(t, []string{"PGHOST=127.0.0.1", "PGPORT=" + strconv.Itoa(port), "PGUSER=x", "PGSSLMODE=disable"}, "--timeout", "1s")
	require.Equal(t, 1, p.exit(), p.stderr.String())
	last := p.lastLog()
	require.Equal(t, "none", last["highest"])
	require.Contains(t, last["error"], "connection refused")
}

func TestServerRestartedInTheMiddle(t *testing.T) {
	s := pgtest.New(t, pgtest.Options{})
	db := "restarted_db"
	p := start(t, envFor(s, pgtest.AdminUser, s.AdminPassword(), db), "--timeout", "2m")
	p.waitLog(`"sqlstate":"3D000"`)
	s.Stop()
	p.waitLog(`"reached":"none"`)
	require.NoError(t, s.Start())
	s.Exec(t, "CREATE DATABASE "+db)
	require.Equal(t, 0, p.exit(), p.stderr.String())
	require.Equal(t, "PostgreSQL ready", p.lastLog()["msg"])
}

func TestSignalsEndTheWaitWithDistinctCodes(t *testing.T) {
	s := pgtest.Shared(t)
	for sig, code := range map[syscall.Signal]int{syscall.SIGTERM: 143, syscall.SIGINT: 130} {
		p := start(t, envFor(s, pgtest.AdminUser, s.AdminPassword(), "never_created"), "--timeout", "5m")
		p.waitLog(`"sqlstate":"3D000"`)
		require.NoError(t, p.cmd.Process.Signal(sig))
		require.Equal(t, code, p.exit(), p.stderr.String())
		last := p.lastLog()
		require.Equal(t, "PostgreSQL not ready: interrupted", last["msg"])
		require.Contains(t, last["error"], "interrupted by "+sig.String())
		require.Equal(t, "auth", last["highest"])
	}
}

func TestExecRunsCommandOnlyWhenReady(t *testing.T) {
	s := pgtest.Shared(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	script := `echo "$$ $PGDATABASE $0 $1" > ` + marker

	p := start(t, envFor(s, pgtest.AdminUser, "wrong-pw-exec", "postgres"), "--timeout", "1s", "--exec", "--", "sh", "-c", script, "zero", "one")
	require.Equal(t, 1, p.exit(), p.stderr.String())
	require.NoFileExists(t, marker, "the command must not run when not ready")

	p = start(t, envFor(s, pgtest.AdminUser, s.AdminPassword(), "postgres"), "--exec", "--", "sh", "-c", script, "zero", "one")
	require.Equal(t, 0, p.exit(), p.stderr.String())
	b, err := os.ReadFile(marker)
	require.NoError(t, err)
	// Same PID: wait-for-pg replaced itself (exec), it did not spawn a child.
	require.Equal(t, fmt.Sprintf("%d postgres zero one\n", p.cmd.Process.Pid), string(b))

	bogus := filepath.Join(dir, "not-a-program")
	require.NoError(t, os.WriteFile(bogus, []byte{0, 1, 2, 3}, 0o755))
	p = start(t, envFor(s, pgtest.AdminUser, s.AdminPassword(), "postgres"), "--exec", "--", bogus)
	require.Equal(t, 126, p.exit(), p.stderr.String())
	require.Contains(t, p.stderr.String(), "--exec failed")

	p = start(t, envFor(s, pgtest.AdminUser, s.AdminPassword(), "postgres"), "--exec", "--", "no-such-command-xyz")
	require.Equal(t, 127, p.exit(), p.stderr.String())
	require.Contains(t, p.stderr.String(), "--exec command not found")
	require.NotContains(t, p.stderr.String(), "waiting for PostgreSQL", "checked before waiting")
}

func TestQuietLogsOnlyTheFinalError(t *testing.T) {
	s := pgtest.Shared(t)
	p := start(t, envFor(s, pgtest.AdminUser, s.AdminPassword(), "postgres"), "--quiet")
	require.Equal(t, 0, p.exit())
	require.Empty(t, p.stderr.String())

	p = start(t, envFor(s, pgtest.AdminUser, s.AdminPassword(), "never_there"), "--quiet", "--timeout", "1s")
	require.Equal(t, 1, p.exit())
	lines := strings.Split(strings.TrimSpace(p.stderr.String()), "\n")
	require.Len(t, lines, 1, p.stderr.String())
	require.Contains(t, lines[0], "deadline reached")
}

// TestPasswordFileMustBeASmallRegularFile: a --password-file that is a
// device, a FIFO, a directory or larger than 64 KiB exits 2 at once naming
// the flag, without reading it (an unbounded read of /dev/zero grew the
// process until it was killed; a FIFO blocked it, SIGTERM included).
func TestPasswordFileMustBeASmallRegularFile(t *testing.T) {
	env := append(cleanEnv(), "PGHOST=127.0.0.1", "PGPORT=1", "PGUSER=app", "PGSSLMODE=disable")
	for _, c := range badsecret.Cases(t) {
		t.Run(c.Name, func(t *testing.T) {
			r := badsecret.Run(t, env, binary(t), "--timeout", "1s", "--password-file", c.Path)
			require.Equal(t, 2, r.Code, r.Stderr)
			require.Contains(t, r.Stderr, "--password-file "+c.Path+": "+c.Want)
			require.NotContains(t, r.Stderr, "waiting for PostgreSQL")
		})
	}
}

// TestExecNotExecutableIs126: an --exec command that exists but cannot be
// executed (no execute permission, a directory) exits 126 before waiting,
// by path or found on PATH; only a command that does not exist is 127.
func TestExecNotExecutableIs126(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "not-executable")
	require.NoError(t, os.WriteFile(plain, []byte("#!/bin/sh\nexit 0\n"), 0o644))
	env := []string{"PATH=" + dir + string(os.PathListSeparator) + os.Getenv("PATH"),
		"PGHOST=127.0.0.1", "PGPORT=1", "PGUSER=app", "PGSSLMODE=disable"}
	for name, tc := range map[string]struct {
		command string
		code    int
		want    string
	}{
		"path":         {plain, 126, "--exec command not executable"},
		"on PATH":      {"not-executable", 126, "--exec command not executable"},
		"directory":    {dir, 126, "--exec command not executable"},
		"missing path": {filepath.Join(dir, "missing"), 127, "--exec command not found"},
		"missing name": {"no-such-command-xyz", 127, "--exec command not found"},
	} {
		t.Run(name, func(t *testing.T) {
			p := start(t, env, "--timeout", "1s", "--exec", "--", tc.command)
			require.Equal(t, tc.code, p.exit(), p.stderr.String())
			require.Contains(t, p.stderr.String(), tc.want)
			require.NotContains(t, p.stderr.String(), "waiting for PostgreSQL", "checked before waiting")
		})
	}
}

// TestLinksNoYAMLLibrary: wait-for-pg is the init container of every module
// pod; it shares internal/cli with the provisioning tools but must not link
// their YAML decoders, nor their start and finish (provisioncli) and run
// outcomes.
func TestLinksNoYAMLLibrary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, pkg := range strings.Fields(string(out)) {
		require.NotContains(t, strings.ToLower(pkg), "yaml")
		for _, provisioning := range []string{"/internal/provisioncli", "/internal/outcome", "/internal/specfile"} {
			require.False(t, strings.HasSuffix(pkg, provisioning), "wait-for-pg links %s", pkg)
		}
	}
}

// TestShortPasswordDoesNotRewriteTheLogs: a one-character password (one
// wait-for-pg is given, not one kommons sets) used to be masked wherever
// that character occurred, garbling every error and revealing it.
func TestShortPasswordDoesNotRewriteTheLogs(t *testing.T) {
	p := start(t, []string{"PGHOST=127.0.0.1", "PGPORT=1", "PGUSER=app", "PGDATABASE=app", "PGPASSWORD=a", "PGSSLMODE=disable"}, "--timeout", "1s")
	require.Equal(t, 1, p.exit(), p.stderr.String())
	last := p.lastLog()
	require.Contains(t, last["error"], "failed to connect to `user=app database=app`")
	require.Contains(t, last["error"], "connection refused")
	require.NotContains(t, p.stderr.String(), "xxxxx")
}
