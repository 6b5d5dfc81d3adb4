// Package registrytest starts a throwaway OCI registry for tests: the real
// CNCF distribution registry (`registry serve`) on a free loopback port,
// plain HTTP, storing into a temporary directory. It is stopped by PID when
// the test ends (a Pdeathsig backstop covers a test binary that dies first).
//
// The binary is built once by `test/cluster/build.sh distribution` into
// $KOMMONS_CACHE/distribution-<DISTRIBUTION_VERSION>/registry;
// $KOMMONS_REGISTRY_BIN overrides. Under CI=true or KOMMONS_E2E=1 a missing
// binary fails the test; otherwise it skips.
package registrytest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/kommons/kommons/internal/testutil/toolcache"
)

// Registry is one running registry.
type Registry struct {
	Host string // 127.0.0.1:<port>
	Dir  string // its storage and log
}

// BinPath is the registry binary, or an error saying how to build it.
func BinPath() (string, error) {
	return toolcache.Binary("distribution", "DISTRIBUTION_VERSION", "registry", "KOMMONS_REGISTRY_BIN")
}

// Start starts a registry for t and waits until it answers /v2/.
func Start(t testing.TB) *Registry {
	t.Helper()
	bin, err := BinPath()
	if err != nil {
		toolcache.Missing(t, "registrytest: the OCI registry", err)
	}
	dir := t.TempDir()
	port, err := freePort()
	if err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	host := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "data"), host)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	// No telemetry export: the registry's OpenTelemetry SDK stays off.
	cmd.Env = append(os.Environ(), "OTEL_SDK_DISABLED=true", "OTEL_TRACES_EXPORTER=none")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("registrytest: start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		logf.Close()
	})
	r := &Registry{Host: host, Dir: dir}
	// Wait for /v2/ (bounded; the registry starts in well under a second).
	for i := 0; i < 200; i++ {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("registrytest: the registry exited: %v\n%s", err, log)
		default:
		}
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(logf.Name())
	t.Fatalf("registrytest: %s does not answer /v2/\n%s", host, log)
	return nil
}

// freePort is a loopback TCP port nothing listens on right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
