// Package miniotest starts throwaway MinIO servers for tests: a real `minio
// server` on a free loopback port with a temporary data directory and random
// root credentials. It stops the server by PID when the test ends (even on
// failure; a Pdeathsig backstop covers a test binary that dies without
// cleanup), and can stop, restart and kill it mid-test for fault tests.
//
// The binary is built once by `test/cluster/build.sh minio` into
// $KOMMONS_CACHE/minio-<MINIO_VERSION>/minio (default cache ~/.cache/kommons,
// version from test/cluster/versions.env); $KOMMONS_MINIO_BIN overrides.
//
// One server per test package is the intended use (see Main and Shared);
// New gives a test its own server for fault tests.
package miniotest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/kommons/kommons/internal/testutil/toolcache"
)

// Region is the region clients use (MinIO's default).
const Region = "us-east-1"

// Options tunes a throwaway server.
type Options struct {
	// Env adds MINIO_* settings (e.g. MINIO_API_REQUESTS_MAX=10).
	Env map[string]string
	// TLS serves HTTPS with a throwaway self-signed certificate for
	// 127.0.0.1 (see CAFile).
	TLS bool
}

// Server is one throwaway MinIO server.
type Server struct {
	dir          string // root: data/, minio.log
	bin          string
	port         int
	consolePort  int
	rootUser     string
	rootPassword string
	env          map[string]string
	tls          bool
	mu           sync.Mutex
	cmd          *exec.Cmd
	exited       chan struct{}
	bucketSeq    int
}

// BinPath finds the minio binary: $KOMMONS_MINIO_BIN, else
// $KOMMONS_CACHE (default ~/.cache/kommons)/minio-<MINIO_VERSION>/minio with
// the version read from test/cluster/versions.env of the enclosing module.
func BinPath() (string, error) {
	p, err := toolcache.Binary("minio", "MINIO_VERSION", "minio", "KOMMONS_MINIO_BIN")
	if err != nil {
		return "", fmt.Errorf("miniotest: %w", err)
	}
	return p, nil
}

// Start creates and starts a new server. Call Close when done.
func Start(opts Options) (*Server, error) {
	bin, err := BinPath()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kommons-minio-")
	if err != nil {
		return nil, fmt.Errorf("miniotest: temp dir: %w", err)
	}
	s := &Server{dir: dir, bin: bin, rootUser: "root" + randomHex(4), rootPassword: randomHex(16), env: opts.Env, tls: opts.TLS}
	if err := os.Mkdir(s.DataDir(), 0o700); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if s.tls {
		if err := writeSelfSigned(filepath.Join(dir, "certs")); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
	}
	if err := s.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// New starts a server owned by one test: it is closed when the test ends.
// Under CI=true (or KOMMONS_E2E=1, KOMMONS_REQUIRE_MINIO=1) a server that
// cannot start fails the test; elsewhere a machine without the minio
// binary skips it with the reason.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		unavailable(t, err)
	}
	t.Cleanup(s.Close)
	return s
}

// EnvRequire, set to 1, makes a missing MinIO server or client fail the
// test, as CI=true and KOMMONS_E2E=1 do (make test sets it for its reruns).
const EnvRequire = "KOMMONS_REQUIRE_MINIO"

func unavailable(t testing.TB, err error) {
	t.Helper()
	toolcache.Missing(t, "MinIO", err, EnvRequire)
}

var (
	shared    *Server
	sharedErr error
)

// Main runs a test package with one shared server, stopped after the last
// test: use it as `func TestMain(m *testing.M) { miniotest.Main(m) }`.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main for a TestMain that has more to do: it starts the shared
// server, runs the tests, stops the server and returns m.Run's exit code.
func Run(m *testing.M) int {
	shared, sharedErr = Start(Options{})
	code := m.Run()
	if shared != nil {
		shared.Close()
	}
	return code
}

// Shared returns the package's shared server started by Main.
func Shared(t testing.TB) *Server {
	t.Helper()
	if shared == nil {
		if sharedErr == nil {
			sharedErr = errors.New("miniotest.Main was not called from TestMain")
		}
		unavailable(t, sharedErr)
	}
	return shared
}

// DataDir is the server's single drive.
func (s *Server) DataDir() string { return filepath.Join(s.dir, "data") }

// LogPath is the server log (appended across restarts).
func (s *Server) LogPath() string { return filepath.Join(s.dir, "minio.log") }

// Port is the S3 API port on 127.0.0.1; it stays the same across restarts.
func (s *Server) Port() int { return s.port }

// HostPort is "127.0.0.1:port", the form minio-go's New takes.
func (s *Server) HostPort() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Endpoint is the S3 API URL, http://127.0.0.1:port (https with TLS).
func (s *Server) Endpoint() string {
	if s.tls {
		return "https://" + s.HostPort()
	}
	return "http://" + s.HostPort()
}

// CAFile is the PEM certificate a TLS server presents (its own CA); "" without TLS.
func (s *Server) CAFile() string {
	if !s.tls {
		return ""
	}
	return filepath.Join(s.dir, "certs", "public.crt")
}

// RootUser is the root access key.
func (s *Server) RootUser() string { return s.rootUser }

// RootPassword is the root secret key.
func (s *Server) RootPassword() string { return s.rootPassword }

// Env is the environment (S3_ENDPOINT, AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_REGION) pointing a binary under test at this
// server as root.
func (s *Server) Env() []string {
	return []string{"S3_ENDPOINT=" + s.Endpoint(), "AWS_ACCESS_KEY_ID=" + s.rootUser,
		"AWS_SECRET_ACCESS_KEY=" + s.rootPassword, "AWS_REGION=" + Region}
}

// Client returns a root S3 client. It fails the test on error.
func (s *Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	return s.ClientFor(t, s.rootUser, s.rootPassword)
}

// ClientFor returns an S3 client with the given credentials.
func (s *Server) ClientFor(t testing.TB, accessKey, secretKey string) *minio.Client {
	t.Helper()
	c, err := s.newClient(accessKey, secretKey)
	if err != nil {
		t.Fatalf("miniotest: client: %v", err)
	}
	return c
}

func (s *Server) newClient(accessKey, secretKey string) (*minio.Client, error) {
	tr, err := s.transport()
	if err != nil {
		return nil, err
	}
	return minio.New(s.HostPort(), &minio.Options{Creds: credentials.NewStaticV4(accessKey, secretKey, ""),
		Secure: s.tls, Transport: tr, Region: Region, BucketLookup: minio.BucketLookupPath, MaxRetries: 1})
}

// transport trusts the server's certificate when it has one.
func (s *Server) transport() (*http.Transport, error) {
	tr, err := minio.DefaultTransport(s.tls)
	if err != nil || !s.tls {
		return tr, err
	}
	caPEM, err := os.ReadFile(s.CAFile())
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return tr, nil
}

// Admin returns a root MinIO admin API client. It fails the test on error.
func (s *Server) Admin(t testing.TB) *madmin.AdminClient {
	t.Helper()
	tr, err := s.transport()
	if err != nil {
		t.Fatalf("miniotest: transport: %v", err)
	}
	adm, err := madmin.NewWithOptions(s.HostPort(), &madmin.Options{Creds: credentials.NewStaticV4(s.rootUser, s.rootPassword, ""),
		Secure: s.tls, Transport: tr})
	if err != nil {
		t.Fatalf("miniotest: admin client: %v", err)
	}
	return adm
}

// NewBucketName returns a fresh bucket name starting with prefix (not created).
func (s *Server) NewBucketName(prefix string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bucketSeq++
	return fmt.Sprintf("%s-%d-%s", prefix, s.bucketSeq, randomHex(3))
}

// Start starts the server (again, after Stop or Kill) and waits until it
// serves S3 requests. The first start picks free loopback ports.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("miniotest: server already running")
	}
	if s.port == 0 {
		p, err := FreePort()
		if err != nil {
			return err
		}
		c, err := FreePort()
		for err == nil && c == p {
			c, err = FreePort()
		}
		if err != nil {
			return err
		}
		s.port, s.consolePort = p, c
	}
	logf, err := os.OpenFile(s.LogPath(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	args := []string{"server", "--quiet", "--address", s.HostPort(),
		"--console-address", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.consolePort))}
	if s.tls {
		args = append(args, "--certs-dir", filepath.Join(s.dir, "certs"))
	}
	cmd := exec.Command(s.bin, append(args, s.DataDir())...)
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+s.rootUser, "MINIO_ROOT_PASSWORD="+s.rootPassword,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1")
	for k, v := range s.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig is a backstop for a test binary that dies without cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("miniotest: start minio: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	client, err := s.newClient(s.rootUser, s.rootPassword)
	if err != nil {
		s.stopLocked(syscall.SIGKILL)
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := s.ready(client)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			s.cmd = nil
			return fmt.Errorf("miniotest: minio exited during start-up; log %s:\n%s", s.LogPath(), tail(s.LogPath(), 20))
		default:
		}
		if time.Now().After(deadline) {
			s.stopLocked(syscall.SIGKILL)
			return fmt.Errorf("miniotest: minio not ready after 60s: %v; log:\n%s", err, tail(s.LogPath(), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ready reports nil once the server answers its readiness probe and an
// authenticated ListBuckets.
func (s *Server) ready(client *minio.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint()+"/minio/health/ready", nil)
	tr, err := s.transport()
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health/ready: %s", resp.Status)
	}
	_, err = client.ListBuckets(ctx)
	return err
}

// Stop shuts the server down cleanly (SIGTERM).
func (s *Server) Stop() { s.mu.Lock(); defer s.mu.Unlock(); s.stopLocked(syscall.SIGTERM) }

// Kill ends the server with SIGKILL, as a crash would.
func (s *Server) Kill() { s.mu.Lock(); defer s.mu.Unlock(); s.stopLocked(syscall.SIGKILL) }

// Restart is Stop then Start.
func (s *Server) Restart() error { s.Stop(); return s.Start() }

// Running reports whether the server process is up.
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

// Close stops the server and removes its directory.
func (s *Server) Close() {
	s.Kill() // data is thrown away: no need for a graceful stop
	_ = os.RemoveAll(s.dir)
}

// FreePort asks the kernel for a free TCP port on 127.0.0.1.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("miniotest: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// writeSelfSigned writes public.crt and private.key (MinIO's names) for
// 127.0.0.1, valid for a day, into dir.
func writeSelfSigned(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "miniotest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("miniotest: certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "public.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "private.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
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
