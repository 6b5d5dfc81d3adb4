package nodeimages

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/kommons/kommons/internal/testutil/syncbuf"
)

// These tests run the images' programs without Kubernetes: the image's file
// system unpacked as the container runtime would (GNU tar, numeric owners),
// chroot as the chart's uid, in private mount, PID and network namespaces.

// extractRootfs unpacks an image's flattened file system into a temporary
// directory.
func extractRootfs(t *testing.T, img Image) string {
	t.Helper()
	dir := t.TempDir()
	i, err := tarball.ImageFromPath(img.Path, nil)
	require.NoError(t, err)
	rc := mutate.Extract(i)
	defer rc.Close()
	cmd := exec.Command("tar", "--extract", "--numeric-owner", "--same-permissions", "--directory", dir, "--file", "-")
	cmd.Stdin = rc
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "extract %s: %s", img.Name, out)
	require.NoError(t, os.Chmod(dir, 0o755))
	return dir
}

// imageEnv is the image's environment with overrides (KEY=value).
func imageEnv(t *testing.T, img Image, overrides ...string) []string {
	t.Helper()
	i, err := tarball.ImageFromPath(img.Path, nil)
	require.NoError(t, err)
	cf, err := i.ConfigFile()
	require.NoError(t, err)
	var keys []string
	vals := map[string]string{}
	for _, kv := range append(append([]string{}, cf.Config.Env...), overrides...) {
		k, v, _ := strings.Cut(kv, "=")
		if _, ok := vals[k]; !ok {
			keys = append(keys, k)
		}
		vals[k] = v
	}
	env := make([]string, 0, len(keys))
	for _, k := range keys {
		env = append(env, k+"="+vals[k])
	}
	return env
}

func TestOrthancImage(t *testing.T) {
	set := buildSet(t)
	root := extractRootfs(t, set.Orthanc)
	env := imageEnv(t, set.Orthanc)
	run := func(args ...string) string {
		t.Helper()
		// As the chart runs it: uid 10001 without a passwd entry.
		cmd := exec.Command("chroot", append([]string{"--userspec=10001:10001", "--groups=10001", root}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%v: %s", args, out)
		return string(out)
	}
	assert.Contains(t, run(OrthancCommand, "--version"), "1.10.")
	// The plugins the chart loads from OrthancPluginDir resolve every
	// library they need; python3 has what probe.py imports.
	run("python3", "-c", "import ctypes, json, os, sys, urllib.request\nfor p in sys.argv[1:]: ctypes.CDLL(p)",
		OrthancPluginDir+"/libOrthancPostgreSQLIndex.so", OrthancPluginDir+"/libOrthancPostgreSQLStorage.so")
}

// TestMinIOImage runs the MinIO image as charts/commons does: uid 10001,
// read-only root, the data volume at /data, an emptyDir at /tmp, the
// chart's arguments after the image's entrypoint.
func TestMinIOImage(t *testing.T) {
	set := buildSet(t)
	root := extractRootfs(t, set.MinIO)
	data := t.TempDir()
	require.NoError(t, os.Chown(data, 0, 10001))
	require.NoError(t, os.Chmod(data, os.ModeSetgid|0o775))
	i, err := tarball.ImageFromPath(set.MinIO.Path, nil)
	require.NoError(t, err)
	cf, err := i.ConfigFile()
	require.NoError(t, err)
	args := append(append([]string{}, cf.Config.Entrypoint...),
		"server", "/data", "--address", ":9000", "--console-address", ":9001", "--certs-dir", "/tmp/certs")
	minio := startContainer(t, runSpec{root: root, uid: 10001, args: args,
		volumes: []volume{{src: data, dst: "/data"}, {dst: "/tmp", mode: "1777"}},
		env: imageEnv(t, set.MinIO, "MINIO_ROOT_USER=kommons", "MINIO_ROOT_PASSWORD="+randomHex(t),
			"MINIO_BROWSER=off", "HOME=/tmp", "MC_CONFIG_DIR=/tmp/.mc")})

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: minio.dial}}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		// The chart's probes use /minio/health/live and /ready; cluster
		// health also needs the drive on /data to be writable.
		resp, err := client.Get("http://127.0.0.1:9000/minio/health/cluster")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		select {
		case <-minio.exited:
			t.Fatalf("minio exited (%v): %v\n%s", minio.err, err, minio.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("minio not healthy within 2 minutes: %v\n%s", err, minio.out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	_, err = os.Stat(filepath.Join(data, ".minio.sys"))
	assert.NoError(t, err, "MinIO formatted the data volume")
}

// TestPostgresContract runs the PostgreSQL image as charts/commons does:
// uid 999, read-only root, the data volume at /var/lib/postgresql (PGDATA a
// subdirectory), emptyDirs at /var/run/postgresql, /tmp and /dev/shm, the
// admin password from a file, `postgres -c ...` arguments; then restarts it.
func TestPostgresContract(t *testing.T) {
	set := buildSet(t)
	for _, tool := range []string{"ip", "nsenter", "chroot", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required: %v", tool, err)
		}
	}
	root := extractRootfs(t, set.Postgres)

	// The data volume with fsGroup 999: group-owned, setgid, group-writable.
	data := t.TempDir()
	require.NoError(t, os.Chown(data, 0, PostgresUID))
	require.NoError(t, os.Chmod(data, os.ModeSetgid|0o775))
	secrets := t.TempDir()
	require.NoError(t, os.Chmod(secrets, 0o755))
	password := randomHex(t)
	writeSecret := func(pw string) {
		p := filepath.Join(secrets, "password")
		require.NoError(t, os.WriteFile(p, []byte(pw), 0o440))
		require.NoError(t, os.Chown(p, 0, PostgresUID))
	}
	writeSecret(password)
	initdb := t.TempDir()
	require.NoError(t, os.Chmod(initdb, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(initdb, "01-table.sql"),
		[]byte("CREATE TABLE kept (v text);\nINSERT INTO kept VALUES ('from initdb.d');\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(initdb, "02-script.sh"),
		[]byte("#!/bin/sh\nset -e\npsql -v ON_ERROR_STOP=1 --username \"$POSTGRES_USER\" --dbname \"$POSTGRES_DB\" -c 'CREATE TABLE from_script ()'\n"), 0o755))

	env := imageEnv(t, set.Postgres,
		"POSTGRES_USER=kommons", "POSTGRES_PASSWORD_FILE=/secrets/admin/password", "POSTGRES_DB=appdb",
		"PGDATA=/var/lib/postgresql/18/docker", "PGPORT=5432")
	// The chart's volumes.
	volumes := []volume{
		{src: data, dst: "/var/lib/postgresql"},
		{dst: "/run/postgresql", mode: "0777"}, // /var/run is a link to /run
		{dst: "/tmp", mode: "1777"},
		{src: secrets, dst: "/secrets/admin", ro: true},
		{src: initdb, dst: "/docker-entrypoint-initdb.d", ro: true},
	}
	run := func(args ...string) *container {
		return startContainer(t, runSpec{root: root, uid: PostgresUID, volumes: volumes, env: env,
			args: append([]string{PostgresEntrypoint}, args...)})
	}

	// First start: initialization, then the real server.
	pg := run("postgres", "-c", "max_connections=50", "-c", "shared_buffers=32MB")
	conn := pg.connect(t, "kommons", password, "appdb")
	var maxConn, listen string
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT current_setting('max_connections'), current_setting('listen_addresses')").Scan(&maxConn, &listen))
	assert.Equal(t, "50", maxConn, "-c arguments reach the server")
	assert.Equal(t, "*", listen)
	var version int
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT current_setting('server_version_num')::int").Scan(&version))
	assert.Equal(t, PostgresMajor, version/10000, "server_version_num %d", version)
	_, err := conn.Exec(context.Background(), "CREATE EXTENSION pg_trgm")
	require.NoError(t, err, "contrib is in the image")
	var kept string
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT v FROM kept").Scan(&kept))
	assert.Equal(t, "from initdb.d", kept, "*.sql of /docker-entrypoint-initdb.d ran in POSTGRES_DB")
	_, err = conn.Exec(context.Background(), "SELECT FROM from_script")
	assert.NoError(t, err, "an executable *.sh of /docker-entrypoint-initdb.d ran")
	_, err = conn.Exec(context.Background(), "INSERT INTO kept VALUES ('written by the test')")
	require.NoError(t, err)
	require.NoError(t, conn.Close(context.Background()))

	_, err = pg.tryConnect("kommons", "wrong-"+password, "postgres")
	requireAuthFailure(t, err)
	// The chart's probe, run the way the kubelet execs it.
	pg.exec(t, "pg_isready", "-h", "127.0.0.1", "-p", "5432", "-U", "kommons", "-d", "postgres", "-t", "4")
	pg.stop(t, func() { require.NoError(t, syscall.Kill(pg.cmd.Process.Pid, syscall.SIGINT)) })

	log1 := pg.out.String()
	assert.NotContains(t, log1, password, "the password never reaches the log")
	assert.Contains(t, log1, "initializing /var/lib/postgresql/18/docker")
	assert.Contains(t, log1, "created database appdb")
	st, err := os.Stat(filepath.Join(data, "18", "docker", "PG_VERSION"))
	require.NoError(t, err)
	assert.EqualValues(t, PostgresUID, st.Sys().(*syscall.Stat_t).Uid)
	st, err = os.Stat(filepath.Join(data, "18", "docker"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm())

	// Second start on the same volume, with a changed secret and arguments
	// starting with "-": no new initialization, the data and the password
	// set at initialization stay.
	writeSecret("changed-" + password)
	pg = run("-c", "max_connections=60")
	conn = pg.connect(t, "kommons", password, "appdb")
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT current_setting('max_connections')").Scan(&maxConn))
	assert.Equal(t, "60", maxConn, "arguments starting with - are the server's")
	var rows int
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT count(*) FROM kept").Scan(&rows))
	assert.Equal(t, 2, rows, "data kept across restarts")
	require.NoError(t, conn.Close(context.Background()))
	_, err = pg.tryConnect("kommons", "changed-"+password, "appdb")
	requireAuthFailure(t, err)
	// The chart's preStop hook stops it. The hook runs in the container's PID
	// namespace, so the kernel kills it when the server (PID 1) exits, before
	// pg_ctl sees the shutdown complete: as with the kubelet, that is fine.
	var hookOut []byte
	var hookErr error
	pg.stop(t, func() {
		hookOut, hookErr = pg.execCommand("/bin/sh", "-c", `pg_ctl stop -D "$PGDATA" -m fast -w -t 20 || true`).CombinedOutput()
	})
	if hookErr != nil {
		var exit *exec.ExitError
		require.True(t, errors.As(hookErr, &exit), "%v: %s", hookErr, hookOut)
		ws, _ := exit.Sys().(syscall.WaitStatus)
		assert.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "preStop hook: %v: %s", hookErr, hookOut)
	}
	log2 := pg.out.String()
	assert.Contains(t, log2, "skipping initialization")
	assert.NotContains(t, log2, "initializing")
}

func requireAuthFailure(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err, "a wrong password must be refused")
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "%v", err)
	assert.Equal(t, "28P01", pgErr.Code, "invalid_password")
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 12)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// volume is one mount of a container: a host directory bound at dst
// (read-only when ro), or a tmpfs (src empty) of the given mode.
type volume struct {
	src, dst string
	ro       bool
	mode     string // tmpfs mode, e.g. "1777"
}

// spec of a container run.
type runSpec struct {
	root    string   // unpacked image (bound read-only at itself)
	uid     int      // user and group, as the chart's securityContext
	volumes []volume // mounted in order; mount points must exist in root
	env     []string
	args    []string // entrypoint and arguments
}

// container is one run of an image's program.
type container struct {
	spec   runSpec
	cmd    *exec.Cmd
	out    *syncbuf.Buffer
	exited chan struct{}
	err    error // of Wait, after exited
}

// script sets up the mounts in the new mount namespace (made private first,
// so nothing reaches the host), brings loopback up in the new network
// namespace, and execs the command chrooted as the uid, on a read-only root
// with /proc, /dev and a tmpfs /dev/shm, as a container runtime does.
func (s runSpec) script() string {
	q := func(p string) string { return "'" + strings.ReplaceAll(p, "'", `'\''`) + "'" }
	r := q(s.root)
	lines := []string{
		"set -eu",
		"mount --make-rprivate /",
		"mount --bind " + r + " " + r,
		"mount -o remount,bind,ro " + r,
		"mount -t proc proc " + q(s.root+"/proc"),
		"mount --bind /dev " + q(s.root+"/dev"),
		"mount -t tmpfs -o mode=1777,size=64m shm " + q(s.root+"/dev/shm"),
	}
	for _, v := range s.volumes {
		dst := q(s.root + v.dst)
		if v.src == "" {
			lines = append(lines, "mount -t tmpfs -o mode="+v.mode+",size=64m tmpfs "+dst)
			continue
		}
		lines = append(lines, "mount --bind "+q(v.src)+" "+dst)
		if v.ro {
			lines = append(lines, "mount -o remount,bind,ro "+dst)
		}
	}
	ids := fmt.Sprint(s.uid)
	lines = append(lines, "ip link set lo up",
		`exec chroot --userspec=`+ids+":"+ids+" --groups="+ids+" "+r+` "$@"`)
	return strings.Join(lines, "\n") + "\n"
}

func startContainer(t *testing.T, spec runSpec) *container {
	t.Helper()
	// Mount points, as the runtime creates them before it makes the root
	// read-only (scratch images have no /proc or /dev).
	for _, d := range []string{"/proc", "/dev"} {
		require.NoError(t, os.MkdirAll(spec.root+d, 0o755))
	}
	for _, v := range spec.volumes {
		require.NoError(t, os.MkdirAll(spec.root+v.dst, 0o755))
	}
	c := &container{spec: spec, out: &syncbuf.Buffer{}, exited: make(chan struct{})}
	c.cmd = exec.Command("/bin/sh", append([]string{"-c", spec.script(), "sh"}, spec.args...)...)
	c.cmd.Env = spec.env
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	c.cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWNET | syscall.CLONE_NEWPID,
		Pdeathsig:  syscall.SIGKILL,
	}
	// Started and waited for on one locked thread: Pdeathsig is tied to the
	// thread that starts the child, and dial ends the threads it uses.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(c.exited)
		if c.err = c.cmd.Start(); c.err != nil {
			started <- c.err
			return
		}
		started <- nil
		c.err = c.cmd.Wait()
	}()
	require.NoError(t, <-started)
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			// PID 1 of its namespace: SIGKILL ends every process in it.
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
		if t.Failed() {
			t.Logf("container output:\n%s", c.out.String())
		}
	})
	return c
}

// dial connects from inside the container's network namespace: a locked OS
// thread switches to it, creates the socket there and then dies with the
// goroutine (never unlocked, so no other goroutine runs in that namespace).
func (c *container) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", c.cmd.Process.Pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			res <- result{err: fmt.Errorf("open network namespace: %w", err)}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			res <- result{err: fmt.Errorf("setns: %w", err)}
			return
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, network, addr)
		res <- result{conn, err}
	}()
	r := <-res
	return r.conn, r.err
}

func (c *container) tryConnect(user, password, db string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig("host=127.0.0.1 port=5432 sslmode=disable connect_timeout=5")
	if err != nil {
		return nil, err
	}
	cfg.User, cfg.Password, cfg.Database = user, password, db
	cfg.DialFunc = c.dial
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return pgx.ConnectConfig(ctx, cfg)
}

// connect waits for the server to accept TCP connections with the
// password (it fails when the container exits first, or after 3 minutes).
func (c *container) connect(t *testing.T, user, password, db string) *pgx.Conn {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		conn, err := c.tryConnect(user, password, db)
		if err == nil {
			return conn
		}
		select {
		case <-c.exited:
			t.Fatalf("the container exited (%v) before accepting connections: last error %v\n%s", c.err, err, c.out.String())
		default:
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code != "57P03" { // not "the database system is starting up"
			t.Fatalf("connect: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection within 3 minutes: %v\n%s", err, c.out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// exec runs a command inside the container (its mount, network and PID
// namespaces, chrooted as its uid, the container's environment), as the
// kubelet runs exec probes and hooks.
func (c *container) exec(t *testing.T, args ...string) {
	t.Helper()
	out, err := c.execCommand(args...).CombinedOutput()
	require.NoError(t, err, "%v: %s", args, out)
}

func (c *container) execCommand(args ...string) *exec.Cmd {
	ids := fmt.Sprint(c.spec.uid)
	nsArgs := append([]string{"--target", fmt.Sprint(c.cmd.Process.Pid), "--mount", "--net", "--pid", "--",
		"chroot", "--userspec=" + ids + ":" + ids, "--groups=" + ids, c.spec.root}, args...)
	cmd := exec.Command("nsenter", nsArgs...)
	cmd.Env = c.spec.env
	return cmd
}

// stop runs how and waits for the container to exit with status 0.
func (c *container) stop(t *testing.T, how func()) {
	t.Helper()
	how()
	select {
	case <-c.exited:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the container did not stop\n%s", c.out.String())
	}
	require.NoError(t, c.err, "exit status\n%s", c.out.String())
}
