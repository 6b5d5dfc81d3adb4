package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/outcome"
	"github.com/kommons/kommons/internal/pgnames"
	"github.com/kommons/kommons/internal/pgprovision"
	"github.com/kommons/kommons/internal/testutil/badsecret"
	"github.com/kommons/kommons/internal/testutil/gobuild"
	"github.com/kommons/kommons/internal/testutil/pgtest"
	"github.com/kommons/kommons/internal/testutil/syncbuf"
)

// pgInit is the pg-init binary the tests run, built once.
var pgInit = gobuild.New(".", "pg-init")

func TestMain(m *testing.M) { pgtest.Main(m, pgInit.Remove) }

// binary returns the pg-init binary, building it on first use.
func binary(t *testing.T) string { return pgInit.Path(t) }

// harness holds one test's files and the secrets that must never be printed.
type harness struct {
	t       *testing.T
	srv     *pgtest.Server
	dir     string
	mu      sync.Mutex
	secrets []string
}

func newHarness(t *testing.T, srv *pgtest.Server) *harness {
	return &harness{t: t, srv: srv, dir: t.TempDir(), secrets: []string{srv.AdminPassword()}}
}

func (h *harness) password(name string) (string, string) {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	pw := "S3cret'\";--" + hex.EncodeToString(b)
	path := filepath.Join(h.dir, name+".pw")
	require.NoError(h.t, os.WriteFile(path, []byte(pw+"\n"), 0o600))
	h.mu.Lock()
	h.secrets = append(h.secrets, pw)
	h.mu.Unlock()
	return path, pw
}

// moduleSpec writes a spec file: one role owning one database with pg_trgm.
func (h *harness) moduleSpec(file, module string) string {
	pwPath, _ := h.password(file)
	spec := fmt.Sprintf("roles:\n  - name: %s\n    passwordFile: %s\n    connectionLimit: 20\ndatabases:\n  - name: %s\n    owner: %s\n    extensions: [pg_trgm]\n",
		module, pwPath, module, module)
	path := filepath.Join(h.dir, file+".yaml")
	require.NoError(h.t, os.WriteFile(path, []byte(spec), 0o644))
	return path
}

type result struct {
	stdout, stderr string
	code           int
}

func (h *harness) env(extra ...string) []string {
	return append(append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + h.dir}, h.srv.Env()...), extra...)
}

func (h *harness) command(ctx context.Context, env []string, args ...string) (*exec.Cmd, *syncbuf.Buffer, *syncbuf.Buffer) {
	cmd := exec.CommandContext(ctx, binary(h.t), args...)
	cmd.Env = env
	var stdout, stderr syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return cmd, &stdout, &stderr
}

// run runs pg-init to completion and checks that no secret was printed.
func (h *harness) run(env []string, args ...string) result {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd, stdout, stderr := h.command(ctx, env, args...)
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else {
		require.NoError(h.t, err)
	}
	r := result{stdout.String(), stderr.String(), code}
	h.noSecrets(r)
	return r
}

func (h *harness) noSecrets(r result) {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.secrets {
		if strings.Contains(r.stdout, s) || strings.Contains(r.stderr, s) {
			h.t.Errorf("a password appears in pg-init's output")
		}
	}
}

// waitFor polls cond every 20 ms until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func physical(t *testing.T, ns, rel, name string) string {
	n, err := pgnames.Physical(ns, rel, name)
	require.NoError(t, err)
	return n
}

func scalar[T any](t *testing.T, dsn, sql string, args ...any) T {
	t.Helper()
	var v T
	conn := pgtest.Connect(t, dsn)
	require.NoError(t, conn.QueryRow(context.Background(), sql, args...).Scan(&v), sql)
	return v
}

func TestHelpDocumentsExitCodes(t *testing.T) {
	h := newHarness(t, pgtest.Shared(t))
	r := h.run(h.env(), "--help")
	assert.Equal(t, 0, r.code)
	for _, want := range []string{"0  done", "1  runtime failure", "2  invalid spec or usage", "3  ownership conflict",
		"-spec", "-namespace", "-release", "-dsn", "-admin-password-file", "-adopt", "-prune", "-output", "-parallel", "-deadline", "PG_INIT_SPEC"} {
		assert.Contains(t, r.stderr, want)
	}
}

func TestUsageAndSpecErrorsExit2(t *testing.T) {
	h := newHarness(t, pgtest.Shared(t))
	good := h.moduleSpec("good", "app")
	bad := filepath.Join(h.dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("roles:\n  - name: app\n    pasword: x\n"), 0o644))
	pwPath, _ := h.password("limit")
	limit := filepath.Join(h.dir, "limit.yaml")
	require.NoError(t, os.WriteFile(limit, []byte("roles:\n  - name: app\n    passwordFile: "+pwPath+"\n    connectionLimit: 2147483648\n"), 0o644))
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"unknown flag":     {[]string{"--nope"}, "flag provided but not defined: -nope"},
		"no spec":          {[]string{"--namespace", "n", "--release", "r"}, "--spec"},
		"unknown field":    {[]string{"--spec", bad, "--namespace", "n", "--release", "r"}, `roles[0].pasword: unknown field \"pasword\"`},
		"no scope":         {[]string{"--spec", good}, "scope.namespace: required"},
		"bad output":       {[]string{"--spec", good, "--namespace", "n", "--release", "r", "--output", "yaml"}, "--output"},
		"missing spec":     {[]string{"--spec", filepath.Join(h.dir, "missing.yaml"), "--namespace", "n", "--release", "r"}, "missing.yaml"},
		"bad dsn":          {[]string{"--spec", good, "--namespace", "n", "--release", "r", "--dsn", "postgres://u:" + h.srv.AdminPassword() + "@h:notaport/db"}, "--dsn"},
		"negative timeout": {[]string{"--spec", good, "--deadline", "-1s"}, "--deadline"},
		"zero parallel":    {[]string{"--spec", good, "--namespace", "n", "--release", "r", "--parallel", "0"}, "--parallel"},
		"connection limit": {[]string{"--spec", limit, "--namespace", "n", "--release", "r"}, "roles[0].connectionLimit: 2147483648: want -1 (no limit) to 262143"},
		"template admin db": {[]string{"--spec", good, "--namespace", "n", "--release", "r", "--dsn", "dbname=template1"},
			"admin database template1 is a template"},
	} {
		t.Run(name, func(t *testing.T) {
			r := h.run(h.env(), tc.args...)
			assert.Equal(t, 2, r.code, r.stderr)
			assert.Contains(t, r.stderr, tc.want)
			assert.Empty(t, r.stdout)
		})
	}
}

func TestProvisionOutputsJSONAndRerunIsUnchanged(t *testing.T) {
	srv := pgtest.Shared(t)
	h := newHarness(t, srv)
	spec := h.moduleSpec("orthanc", "orthanc")
	r := h.run(h.env("PG_INIT_NAMESPACE=imaging", "PG_INIT_RELEASE=orthanc"), "--spec", spec, "--output", "json")
	require.Equal(t, 0, r.code, r.stderr)
	var out pgprovision.Output
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
	assert.Equal(t, pgprovision.Scope{Namespace: "imaging", Release: "orthanc"}, out.Scope)
	assert.Equal(t, "127.0.0.1", out.Server.Host)
	assert.Equal(t, uint16(srv.Port()), out.Server.Port)
	require.Len(t, out.Databases, 1)
	assert.Equal(t, "imaging_orthanc_orthanc", out.Databases[0].PhysicalName)
	assert.Equal(t, "imaging_orthanc_orthanc", out.Databases[0].OwnerPhysical)
	assert.Equal(t, outcome.Created, out.Databases[0].Action)
	assert.Equal(t, outcome.Created, out.Roles[0].Action)
	assert.Contains(t, r.stderr, `"msg":"database created"`)
	assert.Contains(t, r.stderr, `"msg":"summary"`)

	r = h.run(h.env(), "--spec", spec, "--namespace", "imaging", "--release", "orthanc", "--output", "json")
	require.Equal(t, 0, r.code, r.stderr)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out))
	assert.Equal(t, outcome.Unchanged, out.Databases[0].Action)
	assert.Equal(t, outcome.Unchanged, out.Roles[0].Action)
}

func TestForeignObjectExit3ThenAdopt(t *testing.T) {
	srv := pgtest.Shared(t)
	h := newHarness(t, srv)
	spec := h.moduleSpec("legacy", "legacy")
	name := physical(t, "imaging", "legacy", "legacy")
	srv.Exec(t, "CREATE DATABASE "+name)
	args := []string{"--spec", spec, "--namespace", "imaging", "--release", "legacy", "--output", "json"}
	r := h.run(h.env(), args...)
	assert.Equal(t, 3, r.code, r.stderr)
	assert.Contains(t, r.stderr, "database exists owned by postgres, not by this scope's role")
	assert.Contains(t, r.stderr, "--adopt")
	assert.Empty(t, r.stdout, "no output on failure")
	assert.Equal(t, "postgres", scalar[string](t, srv.AdminDSN(), "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", name))

	r = h.run(h.env(), append(args, "--adopt")...)
	assert.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, name, scalar[string](t, srv.AdminDSN(), "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", name))
	r = h.run(h.env(), args...)
	assert.Equal(t, 0, r.code, "adopted objects are ours from now on: %s", r.stderr)
}

// TestSixteenConcurrentProcesses runs 16 pg-init processes at once: 8 for
// distinct modules and 8 for the same module, half of those through another
// admin database (not serialized by the advisory lock, so they race for
// the same objects).
func TestSixteenConcurrentProcesses(t *testing.T) {
	srv := pgtest.Shared(t)
	h := newHarness(t, srv)
	altAdmin := srv.NewDatabase(t, "pginit_alt_admin") // unique: the test passes under -count=N
	type job struct{ spec, module, adminDB string }
	var jobs []job
	for i := 0; i < 8; i++ {
		m := fmt.Sprintf("mod%d", i)
		jobs = append(jobs, job{h.moduleSpec("conc-"+m, m), m, "postgres"})
	}
	shared := h.moduleSpec("conc-shared", "shared")
	for i := 0; i < 8; i++ {
		db := "postgres"
		if i%2 == 1 {
			db = altAdmin
		}
		jobs = append(jobs, job{shared, "shared", db})
	}
	results := make([]result, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = h.run(h.env("PGDATABASE="+j.adminDB), "--spec", j.spec, "--namespace", "conc", "--release", "r1")
		}()
	}
	wg.Wait()
	retries := 0
	for _, r := range results {
		retries += strings.Count(r.stderr, "retrying from the top")
	}
	t.Logf("transient races retried: %d", retries)
	for i, r := range results {
		assert.Equal(t, 0, r.code, "job %d (%s): %s", i, jobs[i].module, r.stderr)
		assert.NotContains(t, r.stderr, `"level":"ERROR"`, "job %d", i)
	}
	modules := []string{"shared"}
	for i := 0; i < 8; i++ {
		modules = append(modules, fmt.Sprintf("mod%d", i))
	}
	for _, m := range modules {
		name := physical(t, "conc", "r1", m)
		marker := scalar[string](t, srv.AdminDSN(), `SELECT shobj_description(d.oid, 'pg_database') || shobj_description(r.oid, 'pg_authid')
			FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = $1 AND r.rolname = $1`, name)
		assert.Equal(t, 2, strings.Count(marker, `"namespace":"conc","release":"r1","name":"`+m+`"`), m)
		assert.Equal(t, 1, scalar[int](t, srv.DSN(pgtest.AdminUser, srv.AdminPassword(), name), "SELECT count(*)::int FROM pg_extension WHERE extname = 'pg_trgm'"))
	}
	assert.Equal(t, 9, scalar[int](t, srv.AdminDSN(), `SELECT count(*)::int FROM pg_database WHERE datname LIKE 'conc\_r1\_%'`))
	assert.Equal(t, 9, scalar[int](t, srv.AdminDSN(), `SELECT count(*)::int FROM pg_roles WHERE rolname LIKE 'conc\_r1\_%'`))
}

func TestServerStoppedMidRunConverges(t *testing.T) {
	for _, mode := range []string{"stop", "kill"} {
		t.Run(mode, func(t *testing.T) {
			srv := pgtest.New(t, pgtest.Options{})
			h := newHarness(t, srv)
			const n = 30
			var spec strings.Builder
			spec.WriteString("roles:\n")
			for i := 0; i < n; i++ {
				pw, _ := h.password(fmt.Sprintf("m%d", i))
				fmt.Fprintf(&spec, "  - {name: m%d, passwordFile: %s}\n", i, pw)
			}
			spec.WriteString("databases:\n")
			for i := 0; i < n; i++ {
				fmt.Fprintf(&spec, "  - {name: m%d, owner: m%d, extensions: [pg_trgm], schemas: [app]}\n", i, i)
			}
			specPath := filepath.Join(h.dir, "fault.yaml")
			require.NoError(t, os.WriteFile(specPath, []byte(spec.String()), 0o644))
			args := []string{"--spec", specPath, "--namespace", "fault", "--release", "r", "--deadline", "3m"}

			// Make the run stop deterministically in the middle: an
			// uncommitted CREATE ROLE of module m10's role blocks pg-init's
			// own CREATE ROLE of m10; the other sessions go on with the
			// other roles, and no database is created before every role is
			// done.
			blocker := pgtest.Connect(t, srv.AdminDSN())
			bctx := context.Background()
			_, err := blocker.Exec(bctx, "BEGIN")
			require.NoError(t, err)
			_, err = blocker.Exec(bctx, "CREATE ROLE "+physical(t, "fault", "r", "m10"))
			require.NoError(t, err)
			watcher := pgtest.Connect(t, srv.AdminDSN())

			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			cmd, stdout, stderr := h.command(ctx, h.env(), args...)
			require.NoError(t, cmd.Start())
			waitFor(t, time.Minute, "pg-init to block in the middle of its run", func() bool {
				var waiting int
				_ = watcher.QueryRow(bctx, "SELECT count(*)::int FROM pg_locks WHERE NOT granted").Scan(&waiting)
				return waiting > 0
			})
			roles := scalar[int](t, srv.AdminDSN(), `SELECT count(*)::int FROM pg_roles WHERE rolname LIKE 'fault\_r\_%'`)
			assert.Less(t, roles, n, "partial state: m10's role cannot exist yet")
			assert.Equal(t, 0, scalar[int](t, srv.AdminDSN(), `SELECT count(*)::int FROM pg_database WHERE datname LIKE 'fault\_r\_%'`),
				"partial state: databases come after all roles")
			if mode == "stop" {
				srv.Stop()
			} else {
				srv.Kill()
			}
			waitFor(t, time.Minute, "pg-init to notice", func() bool { return strings.Contains(stderr.String(), "retrying from the top") })
			require.NoError(t, srv.Start())
			err = cmd.Wait()
			r := result{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
			h.noSecrets(r)
			require.NoError(t, err, r.stderr)
			for _, l := range strings.Split(r.stderr, "\n") {
				if strings.Contains(l, "retrying from the top") {
					t.Logf("pg-init: %s", l)
				}
			}

			dbs := scalar[int](t, srv.AdminDSN(), `SELECT count(*)::int FROM pg_database d WHERE datname LIKE 'fault\_r\_%'
				AND shobj_description(oid, 'pg_database') LIKE '%"namespace":"fault"%' AND NOT has_database_privilege('public', oid, 'CONNECT')`)
			assert.Equal(t, n, dbs)
			rerun := h.run(h.env(), append(args, "--output", "json")...)
			require.Equal(t, 0, rerun.code, rerun.stderr)
			var out pgprovision.Output
			require.NoError(t, json.Unmarshal([]byte(rerun.stdout), &out))
			for _, d := range out.Databases {
				assert.Equal(t, outcome.Unchanged, d.Action, d.PhysicalName)
				assert.Equal(t, 1, scalar[int](t, srv.DSN(pgtest.AdminUser, srv.AdminPassword(), d.PhysicalName),
					"SELECT count(*)::int FROM pg_extension WHERE extname = 'pg_trgm'"), d.PhysicalName)
			}
			assert.Contains(t, rerun.stderr, `"unchanged":`+fmt.Sprint(4*n))
		})
	}
}

func TestServerDownAtStartIsWaitedFor(t *testing.T) {
	srv := pgtest.New(t, pgtest.Options{})
	h := newHarness(t, srv)
	spec := h.moduleSpec("late", "app")
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd, stdout, stderr := h.command(ctx, h.env(), "--spec", spec, "--namespace", "late", "--release", "r", "--deadline", "2m")
	require.NoError(t, cmd.Start())
	waitFor(t, time.Minute, "pg-init to find the server down", func() bool { return strings.Contains(stderr.String(), "retrying from the top") })
	require.NoError(t, srv.Start())
	err := cmd.Wait()
	r := result{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
	h.noSecrets(r)
	require.NoError(t, err, r.stderr)
	assert.Equal(t, 1, scalar[int](t, srv.AdminDSN(), "SELECT count(*)::int FROM pg_database WHERE datname = $1", physical(t, "late", "r", "app")))
}

func TestWrongAdminPasswordFailsAtOnceWithoutEchoingIt(t *testing.T) {
	srv := pgtest.Shared(t)
	h := newHarness(t, srv)
	spec := h.moduleSpec("wrongpw", "app")
	wrong := "Wr0ng'pass;word"
	h.secrets = append(h.secrets, wrong)
	pwFile := filepath.Join(h.dir, "admin.pw")
	require.NoError(t, os.WriteFile(pwFile, []byte(wrong), 0o600))
	r := h.run(h.env(), "--spec", spec, "--namespace", "w", "--release", "r", "--admin-password-file", pwFile, "--deadline", "2m")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "28P01")
	assert.NotContains(t, r.stderr, "retrying", "an authentication failure is not retried")
	r = h.run(h.env(), "--spec", spec, "--namespace", "w", "--release", "r", "--dsn", "postgres://postgres:"+strings.ReplaceAll(wrong, ";", "%3B")+"@127.0.0.1:"+fmt.Sprint(srv.Port())+"/postgres?sslmode=disable", "--deadline", "2m")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "28P01")
}

func TestSIGTERMWhileWaitingForTheLock(t *testing.T) {
	srv := pgtest.Shared(t)
	h := newHarness(t, srv)
	spec := h.moduleSpec("sigterm", "app")
	holder := pgtest.Connect(t, srv.AdminDSN())
	_, err := holder.Exec(context.Background(), "SELECT pg_advisory_lock($1)", pgprovision.LockKey())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd, stdout, stderr := h.command(ctx, h.env(), "--spec", spec, "--namespace", "sig", "--release", "term")
	require.NoError(t, cmd.Start())
	waitFor(t, time.Minute, "pg-init to wait for the advisory lock", func() bool {
		var waiting int
		_ = holder.QueryRow(context.Background(), "SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").Scan(&waiting)
		return waiting > 0
	})
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	_ = cmd.Wait()
	r := result{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
	h.noSecrets(r)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "interrupted by terminated")
	assert.Equal(t, 0, scalar[int](t, srv.AdminDSN(), "SELECT count(*)::int FROM pg_roles WHERE rolname = $1", physical(t, "sig", "term", "app")))
}

func TestBootstrapProvisionerThenProvisionAsIt(t *testing.T) {
	srv := pgtest.Shared(t)
	h := newHarness(t, srv)
	pwPath, pw := h.password("provisioner")
	r := h.run(h.env(), "bootstrap-provisioner", "--role", "bin_provisioner", "--password-file", pwPath)
	require.Equal(t, 0, r.code, r.stderr)
	r = h.run(h.env(), "bootstrap-provisioner", "--role", "bin_provisioner", "--password-file", pwPath)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, `"action":"unchanged"`)
	assert.False(t, scalar[bool](t, srv.AdminDSN(), "SELECT rolsuper FROM pg_roles WHERE rolname = 'bin_provisioner'"))

	spec := h.moduleSpec("asprov", "app")
	env := h.env("PGUSER=bin_provisioner", "PGPASSWORD=", "PG_INIT_ADMIN_PASSWORD_FILE="+pwPath)
	r = h.run(env, "--spec", spec, "--namespace", "prov", "--release", "r", "--output", "json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.NotContains(t, r.stdout, pw)
	r = h.run(env, "--spec", spec, "--namespace", "prov", "--release", "r")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, `"created":0,"updated":0`)
}

// TestSecretFilesMustBeSmallRegularFiles: a password file (spec
// passwordFile, --admin-password-file, bootstrap-provisioner
// --password-file) that is a device, a FIFO, a directory or larger than
// 64 KiB exits 2 at once naming the field or flag, without reading it.
func TestSecretFilesMustBeSmallRegularFiles(t *testing.T) {
	dir := t.TempDir()
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "PGHOST=127.0.0.1", "PGPORT=1", "PGUSER=admin", "PGSSLMODE=disable"}
	for i, c := range badsecret.Cases(t) {
		spec := filepath.Join(dir, fmt.Sprintf("spec%d.yaml", i))
		require.NoError(t, os.WriteFile(spec, []byte("roles: [{name: app, passwordFile: "+c.Path+"}]\n"), 0o644))
		for name, tc := range map[string]struct {
			args []string
			want string
		}{
			"spec":      {[]string{"--spec", spec, "--namespace", "n", "--release", "r"}, "roles[0].passwordFile: " + c.Path + ": " + c.Want},
			"admin":     {[]string{"--spec", spec, "--namespace", "n", "--release", "r", "--admin-password-file", c.Path}, "--admin-password-file " + c.Path + ": " + c.Want},
			"bootstrap": {[]string{"bootstrap-provisioner", "--role", "prov", "--password-file", c.Path}, "--password-file " + c.Path + ": " + c.Want},
		} {
			t.Run(c.Name+"/"+name, func(t *testing.T) {
				r := badsecret.Run(t, env, binary(t), append(tc.args, "--deadline", "2s")...)
				require.Equal(t, 2, r.Code, r.Stderr)
				require.Contains(t, r.Stderr, tc.want)
			})
		}
	}
}

// TestPasswordsShorterThanTheMinimumAreRefused: pg-init sets role and
// provisioner passwords, so it refuses ones shorter than 12 characters
// (redaction relies on it), before contacting the server, without quoting
// them.
func TestPasswordsShorterThanTheMinimumAreRefused(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short.pw")
	require.NoError(t, os.WriteFile(short, []byte("elevenchars\n"), 0o600))
	spec := filepath.Join(dir, "spec.yaml")
	require.NoError(t, os.WriteFile(spec, []byte("roles: [{name: app, passwordFile: "+short+"}]\n"), 0o644))
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "PGHOST=127.0.0.1", "PGPORT=1", "PGUSER=admin", "PGSSLMODE=disable"}
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"spec":      {[]string{"--spec", spec, "--namespace", "n", "--release", "r"}, "roles[0].passwordFile: " + short + ": password is shorter than 12 characters"},
		"bootstrap": {[]string{"bootstrap-provisioner", "--role", "prov", "--password-file", short}, "--password-file " + short + ": password is shorter than 12 characters"},
	} {
		t.Run(name, func(t *testing.T) {
			r := badsecret.Run(t, env, binary(t), append(tc.args, "--deadline", "2s")...)
			require.Equal(t, 2, r.Code, r.Stderr)
			require.Contains(t, r.Stderr, tc.want)
			require.NotContains(t, r.Stderr, "elevenchars")
		})
	}
}

// TestUpgradeFromEightDigitNames: objects the previous release created
// under 8-digit-hash names (by hand here, as it did: marker, owner,
// privileges, no admin anchor) are renamed by the binary, with the module's
// password and data kept. On PostgreSQL 16+ a superuser admin finds no
// anchor on a role of the previous release: exit 3 naming the legacy role,
// then one --adopt run renames it.
func TestUpgradeFromEightDigitNames(t *testing.T) {
	srv := pgtest.Shared(t)
	h := newHarness(t, srv)
	ns, rel := "team-a", "web-upgrade"
	pwPath, pw := h.password("upgrade")
	spec := filepath.Join(h.dir, "upgrade.yaml")
	require.NoError(t, os.WriteFile(spec, []byte(fmt.Sprintf(
		"roles:\n  - name: app\n    passwordFile: %s\n    connectionLimit: 20\ndatabases:\n  - name: app\n    owner: app\n", pwPath)), 0o644))
	name := physical(t, ns, rel, "app")
	old, ok := pgnames.Legacy(ns, rel, "app")
	require.True(t, ok)
	marker := pgprovision.NewMarker(pgprovision.Scope{Namespace: ns, Release: rel}, "app", pgprovision.ReclaimRetain).String()
	srv.Exec(t, fmt.Sprintf("CREATE ROLE %s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE CONNECTION LIMIT 20 PASSWORD '%s'", old, strings.ReplaceAll(pw, "'", "''")))
	srv.Exec(t, fmt.Sprintf("COMMENT ON ROLE %s IS '%s'", old, marker))
	srv.Exec(t, fmt.Sprintf("CREATE DATABASE %s OWNER %s", old, old))
	srv.Exec(t, fmt.Sprintf("COMMENT ON DATABASE %s IS '%s'; REVOKE CONNECT, TEMPORARY ON DATABASE %s FROM PUBLIC; GRANT CONNECT ON DATABASE %s TO %s",
		old, marker, old, old, old))
	conn := pgtest.Connect(t, srv.DSN(old, pw, old))
	_, err := conn.Exec(context.Background(), "CREATE TABLE studies (id int); INSERT INTO studies VALUES (42)")
	require.NoError(t, err)
	require.NoError(t, conn.Close(context.Background()))

	args := []string{"--spec", spec, "--namespace", ns, "--release", rel, "--output", "json"}
	r := h.run(h.env(), args...)
	if srv.Major() >= 16 {
		require.Equal(t, 3, r.code, r.stderr)
		assert.Contains(t, r.stderr, "legacy-named role "+old)
		assert.Contains(t, r.stderr, "rerun with --adopt to rename and take it over")
		assert.Equal(t, 1, scalar[int](t, srv.AdminDSN(), "SELECT count(*)::int FROM pg_roles WHERE rolname = $1", old), "refused: not renamed")
		r = h.run(h.env(), append(args, "--adopt")...)
	}
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "renamed from "+old)
	var out pgprovision.Output
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
	assert.Equal(t, name, out.Roles[0].PhysicalName)
	assert.Equal(t, name, out.Databases[0].PhysicalName)
	assert.Equal(t, outcome.Updated, out.Databases[0].Action)
	assert.Equal(t, 42, scalar[int](t, srv.DSN(name, pw, name), "SELECT id FROM studies"), "password and data kept under the new names")

	r = h.run(h.env(), args...)
	require.Equal(t, 0, r.code, r.stderr)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out))
	assert.Equal(t, outcome.Unchanged, out.Roles[0].Action)
	assert.Equal(t, outcome.Unchanged, out.Databases[0].Action)
}
