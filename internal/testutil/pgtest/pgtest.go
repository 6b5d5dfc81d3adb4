// Package pgtest starts throwaway PostgreSQL clusters for tests: initdb into a
// temporary directory, a postmaster bound to a free loopback port with
// scram-sha-256 authentication, and an admin DSN. It runs the server as an
// unprivileged OS user when the tests run as root (postgres refuses root),
// stops it by PID when the test ends (even on failure), and can stop, restart
// and kill it mid-test for fault tests.
//
// One server per test package is the intended use (see Main and Shared): a
// cluster costs ~0.3 s to start, so tests share it and each creates its own
// databases with NewDatabase.
//
// The default server is the newest Debian package's (BinDir). Every major
// version users run (Majors: 15, 16, 17, 18) can be started by Options.Major,
// and EachVersion runs a test once per version (see versions.go).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"
)

// AdminUser is the bootstrap superuser of every throwaway cluster.
const AdminUser = "postgres"

// Options tunes a throwaway cluster.
type Options struct {
	// Settings are extra server parameters (-c name=value), e.g. log_statement=ddl.
	Settings map[string]string
	// Major is the PostgreSQL major version to start (one of Majors, with
	// binaries found by BinDirFor); 0 is the default server of BinDir.
	Major int
	// TLS, when set, starts the server with ssl=on and this certificate
	// (see package testca). Plain connections stay allowed, so AdminDSN
	// (sslmode=disable) keeps working.
	TLS *TLS
}

// TLS is a server certificate and its private key, PEM.
type TLS struct {
	CertPEM []byte
	KeyPEM  []byte
}

// Server is one throwaway PostgreSQL cluster.
type Server struct {
	dir       string // root: data/, sock/, postgres.log
	bin       string // directory with initdb and postgres
	libDir    string // LD_LIBRARY_PATH of a self-contained installation (npm), else ""
	version   string // server_version, read at the first start
	versionN  int    // server_version_num
	port      int
	password  string
	cred      *syscall.Credential
	settings  map[string]string
	mu        sync.Mutex
	cmd       *exec.Cmd
	exited    chan struct{}
	dbCounter int
}

// BinDir finds the PostgreSQL server binaries: $KOMMONS_PG_BIN, else the newest
// /usr/lib/postgresql/N/bin (Debian's layout), else the directory of initdb on PATH.
func BinDir() (string, error) {
	if d := os.Getenv("KOMMONS_PG_BIN"); d != "" {
		return d, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	sort.Slice(matches, func(i, j int) bool { return versionOf(matches[i]) > versionOf(matches[j]) })
	if len(matches) > 0 {
		return filepath.Dir(matches[0]), nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(r), nil
		}
	}
	return "", errors.New("pgtest: PostgreSQL server binaries not found (apt-get install postgresql, or set KOMMONS_PG_BIN)")
}

func versionOf(postgresPath string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(postgresPath))))
	return v
}

// Start creates and starts a new cluster of opts.Major (default: BinDir's).
// Call Close when done. Binaries of opts.Major that are not installed are an
// error wrapping ErrNotInstalled that says how to install them.
func Start(opts Options) (*Server, error) {
	var bin string
	var err error
	if opts.Major == 0 {
		opts.Major, err = defaultMajor()
		if err != nil {
			return nil, err
		}
	}
	if opts.Major == 0 {
		bin, err = BinDir()
	} else {
		bin, err = BinDirFor(opts.Major)
	}
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kommons-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: temp dir: %w", err)
	}
	s := &Server{dir: dir, bin: bin, password: randomHex(16), settings: opts.Settings}
	if err := s.init(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if opts.TLS != nil {
		if err := s.installTLS(*opts.TLS); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
	}
	if err := s.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if opts.Major != 0 && s.Major() != opts.Major {
		s.Close()
		return nil, fmt.Errorf("pgtest: asked for PostgreSQL %d, but %s is %s", opts.Major, filepath.Join(bin, "postgres"), s.Version())
	}
	return s, nil
}

// New starts a cluster owned by one test: it is closed when the test ends.
// Under CI=true, KOMMONS_E2E=1 or KOMMONS_REQUIRE_PG=1 a cluster that cannot
// start fails the test; elsewhere a machine without PostgreSQL skips it
// with the reason.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		unavailable(t, err)
	}
	t.Cleanup(s.Close)
	return s
}

func unavailable(t testing.TB, err error) {
	t.Helper()
	if required() {
		t.Fatalf("PostgreSQL is required here (CI=true, KOMMONS_E2E=1 or KOMMONS_REQUIRE_PG=1): %v", err)
	}
	t.Skipf("PostgreSQL unavailable: %v", err)
}

var (
	shared    *Server
	sharedErr error
)

// Main runs a test package with one shared cluster, stopped after the last
// test (with the clusters SharedVersion started), then runs cleanups (e.g.
// removing binaries the tests built): use it as
// `func TestMain(m *testing.M) { pgtest.Main(m) }`.
func Main(m *testing.M, cleanups ...func()) {
	shared, sharedErr = Start(Options{})
	mainCalled.Store(true)
	code := m.Run()
	if shared != nil {
		shared.Close()
	}
	closeSharedVersions()
	for _, c := range cleanups {
		c()
	}
	os.Exit(code)
}

// Shared returns the package's shared cluster started by Main.
func Shared(t testing.TB) *Server {
	t.Helper()
	if shared == nil {
		if sharedErr == nil {
			sharedErr = errors.New("pgtest.Main was not called from TestMain")
		}
		unavailable(t, sharedErr)
	}
	return shared
}

func (s *Server) init() error {
	if os.Geteuid() == 0 {
		uid, gid, err := unprivilegedUser()
		if err != nil {
			return err
		}
		s.cred = &syscall.Credential{Uid: uid, Gid: gid}
		if err := os.Chown(s.dir, int(uid), int(gid)); err != nil {
			return fmt.Errorf("pgtest: chown %s: %w", s.dir, err)
		}
		// An installation under root's home (the tool cache) is out of the
		// unprivileged user's reach: run a world-readable copy.
		if s.bin, err = reachableBinDir(s.bin, uid, gid); err != nil {
			return err
		}
	}
	s.libDir = bundledLibDir(s.bin)
	if err := os.Chmod(s.dir, 0o700); err != nil {
		return err
	}
	pwfile := filepath.Join(s.dir, "pwfile")
	if err := s.writeOwned(pwfile, s.password+"\n"); err != nil {
		return err
	}
	defer os.Remove(pwfile)
	if err := s.mkdirOwned(filepath.Join(s.dir, "sock")); err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(s.bin, "initdb"), "-D", s.DataDir(), "-U", AdminUser,
		"--pwfile", pwfile, "-A", "scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
	cmd.Env = s.processEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	return nil
}

// installTLS writes the server certificate and key into the data directory,
// owned by the server's user (PostgreSQL refuses a key others can read),
// and turns ssl on.
func (s *Server) installTLS(c TLS) error {
	crt, key := filepath.Join(s.DataDir(), "server.crt"), filepath.Join(s.DataDir(), "server.key")
	if err := s.writeOwned(crt, string(c.CertPEM)); err != nil {
		return fmt.Errorf("pgtest: TLS certificate: %w", err)
	}
	if err := s.writeOwned(key, string(c.KeyPEM)); err != nil {
		return fmt.Errorf("pgtest: TLS key: %w", err)
	}
	settings := map[string]string{"ssl": "on", "ssl_cert_file": crt, "ssl_key_file": key}
	for k, v := range s.settings {
		settings[k] = v
	}
	s.settings = settings
	return nil
}

// unprivilegedUser picks the OS user the server runs as under root:
// postgres (Debian's package creates it), else nobody.
func unprivilegedUser() (uint32, uint32, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return uint32(uid), uint32(gid), nil
	}
	return 0, 0, errors.New("pgtest: running as root and neither user postgres nor nobody exists")
}

func (s *Server) writeOwned(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return err
	}
	return s.chown(path)
}

func (s *Server) mkdirOwned(path string) error {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return err
	}
	return s.chown(path)
}

func (s *Server) chown(path string) error {
	if s.cred == nil {
		return nil
	}
	return os.Chown(path, int(s.cred.Uid), int(s.cred.Gid))
}

// processEnv is the environment of initdb and postgres: the test's, plus
// LD_LIBRARY_PATH for an installation that brings its own libraries.
func (s *Server) processEnv() []string {
	env := os.Environ()
	if s.libDir != "" {
		ld := s.libDir
		if old := os.Getenv("LD_LIBRARY_PATH"); old != "" {
			ld += ":" + old
		}
		env = append(env, "LD_LIBRARY_PATH="+ld)
	}
	return env
}

func (s *Server) readVersion(conn *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var v, n string
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version'), current_setting('server_version_num')").Scan(&v, &n); err != nil {
		return fmt.Errorf("pgtest: read server_version: %w", err)
	}
	num, err := strconv.Atoi(n)
	if err != nil {
		return fmt.Errorf("pgtest: server_version_num %q: %w", n, err)
	}
	s.version, s.versionN = v, num
	return nil
}

// Version is the server's version as "PostgreSQL " + server_version, e.g.
// "PostgreSQL 18.4" or "PostgreSQL 15.18 (Debian 15.18-0+deb12u1)".
func (s *Server) Version() string { return "PostgreSQL " + s.version }

// VersionNum is the server's server_version_num, e.g. 180004.
func (s *Server) VersionNum() int { return s.versionN }

// Major is the server's major version, e.g. 18.
func (s *Server) Major() int { return s.versionN / 10000 }

// BinDir is the directory of the server's binaries (initdb, postgres; the
// npm installations of 16 to 18 have no client tools such as pg_dump).
func (s *Server) BinDir() string { return s.bin }

// DataDir is the cluster's PGDATA.
func (s *Server) DataDir() string { return filepath.Join(s.dir, "data") }

// LogPath is the server log (appended across restarts).
func (s *Server) LogPath() string { return filepath.Join(s.dir, "postgres.log") }

// Port is the loopback TCP port; it stays the same across restarts.
func (s *Server) Port() int { return s.port }

// Host is the address the server listens on.
func (s *Server) Host() string { return "127.0.0.1" }

// AdminPassword is the bootstrap superuser's password.
func (s *Server) AdminPassword() string { return s.password }

// AdminDSN is a URL connection string for the superuser on database postgres.
func (s *Server) AdminDSN() string { return s.DSN(AdminUser, s.password, "postgres") }

// DSN builds a URL connection string for any user and database on this server.
func (s *Server) DSN(user, password, database string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password),
		Host: net.JoinHostPort(s.Host(), strconv.Itoa(s.port)), Path: "/" + database, RawQuery: "sslmode=disable"}
	return u.String()
}

// Env is the libpq environment (PGHOST, PGPORT, PGUSER, PGPASSWORD,
// PGDATABASE, PGSSLMODE) for the superuser, for running binaries under test.
func (s *Server) Env() []string {
	return []string{"PGHOST=" + s.Host(), "PGPORT=" + strconv.Itoa(s.port), "PGUSER=" + AdminUser,
		"PGPASSWORD=" + s.password, "PGDATABASE=postgres", "PGSSLMODE=disable"}
}

// Start starts the postmaster (again, after Stop or Kill) and waits until it
// accepts connections. The first start picks a free loopback port.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("pgtest: server already running")
	}
	if s.port == 0 {
		p, err := FreePort()
		if err != nil {
			return err
		}
		s.port = p
	}
	logf, err := os.OpenFile(s.LogPath(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	args := []string{"-D", s.DataDir(), "-p", strconv.Itoa(s.port), "-k", filepath.Join(s.dir, "sock"),
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
		"-c", "full_page_writes=off", "-c", "max_connections=300", "-c", "shared_buffers=32MB",
		"-c", "log_line_prefix=%m [%p] %q%u@%d ", "-c", "log_min_messages=warning"}
	keys := make([]string, 0, len(s.settings))
	for k := range s.settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+s.settings[k])
	}
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), args...)
	cmd.Env = s.processEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig is a backstop for a test binary that dies without cleanup:
	// SIGQUIT is PostgreSQL's immediate shutdown.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Setpgid: true, Pdeathsig: syscall.SIGQUIT}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, s.AdminDSN())
		cancel()
		if err == nil {
			if s.versionN == 0 {
				err = s.readVersion(conn)
			}
			conn.Close(context.Background())
			if err != nil {
				s.stopLocked(syscall.SIGQUIT)
				return err
			}
			return nil
		}
		select {
		case <-exited:
			s.cmd = nil
			return fmt.Errorf("pgtest: postgres exited during start-up; log %s:\n%s", s.LogPath(), tail(s.LogPath(), 20))
		default:
		}
		if time.Now().After(deadline) {
			s.stopLocked(syscall.SIGQUIT)
			return fmt.Errorf("pgtest: postgres not ready after 30s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop shuts the server down cleanly (fast shutdown: SIGINT to the postmaster).
func (s *Server) Stop() { s.mu.Lock(); defer s.mu.Unlock(); s.stopLocked(syscall.SIGINT) }

// Kill ends the postmaster with SIGKILL, as a crash would; the next Start
// runs crash recovery.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked(syscall.SIGKILL)
	// Orphaned backends notice the postmaster's death and exit on their own,
	// but Start fails ("pre-existing shared memory block is still in use")
	// while one is still attached to the old shared memory: wait until none
	// is. (Each backend calls setsid(), so the postmaster's process group
	// does not contain them.)
	for i := 0; i < 100 && s.backendsAlive(); i++ {
		time.Sleep(50 * time.Millisecond)
	}
}

// Restart is Stop then Start.
func (s *Server) Restart() error { s.Stop(); return s.Start() }

// Running reports whether the postmaster is up.
func (s *Server) Running() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.cmd != nil }

func (s *Server) stopLocked(sig syscall.Signal) {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
	s.cmd = nil
}

func (s *Server) backendsAlive() bool {
	b, err := os.ReadFile(filepath.Join(s.DataDir(), "postmaster.pid"))
	if err != nil {
		return false
	}
	// Line 7 of postmaster.pid holds the System V shared memory key and ID;
	// the segment's attach count is the number of processes still using it.
	lines := strings.Split(string(b), "\n")
	if len(lines) < 7 {
		return false
	}
	f := strings.Fields(lines[6])
	if len(f) < 2 {
		return false
	}
	id, err := strconv.Atoi(f[1])
	if err != nil {
		return false
	}
	var desc unix.SysvShmDesc
	if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &desc); err != nil {
		return false // removed
	}
	return desc.Nattch > 0
}

// Close stops the server and removes its directory.
func (s *Server) Close() {
	s.Stop()
	_ = os.RemoveAll(s.dir)
}

// NewDatabase creates a fresh database (owned by the superuser) whose name
// starts with prefix, dropped when the test ends, and returns its name.
func (s *Server) NewDatabase(t testing.TB, prefix string) string {
	t.Helper()
	s.mu.Lock()
	s.dbCounter++
	name := fmt.Sprintf("%s_%d_%s", prefix, s.dbCounter, randomHex(3))
	s.mu.Unlock()
	s.Exec(t, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	t.Cleanup(func() {
		if s.Running() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if conn, err := pgx.Connect(ctx, s.AdminDSN()); err == nil {
				_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
				conn.Close(ctx)
			}
		}
	})
	return name
}

// Exec runs SQL as the superuser on database postgres and fails the test on error.
func (s *Server) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.AdminDSN())
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// Connect opens a connection with the given DSN, closed when the test ends.
func Connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// FreePort asks the kernel for a free TCP port on 127.0.0.1.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// DefaultMajorEnv names the environment variable that makes Start, New,
// Main and Shared (a server without Options.Major) run that major version
// instead of BinDir's: `make test` reruns the provisioning packages with
// it set to each version, so their whole suites run on every server.
const DefaultMajorEnv = "KOMMONS_PG_DEFAULT_MAJOR"

func defaultMajor() (int, error) {
	v := os.Getenv(DefaultMajorEnv)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || !slices.Contains(Majors(), n) {
		return 0, fmt.Errorf("pgtest: %s=%q: want one of %v", DefaultMajorEnv, v, Majors())
	}
	return n, nil
}
