// Package orthanctest runs real Orthanc processes for tests: Debian's
// `orthanc` and `orthanc-postgresql` packages (Orthanc 1.10.1, PostgreSQL
// plugins 4.0), started from an orthanc.json such as the one charts/orthanc
// renders, with the plugin paths mapped to Debian's layout and Orthanc's own
// `${VAR}` substitution fed from a given environment. Processes are stopped by
// PID when the test ends.
//
// Orthanc listens on 0.0.0.0 (it has no bind-address option), so tests that
// start it must run inside the private network namespace EnterPrivateNetwork
// creates; Require checks that and that the packages are installed. Under
// CI=true or KOMMONS_E2E=1 a missing package or namespace fails the test, elsewhere it skips.
//
// The package also generates small valid DICOM Part-10 files (see DicomFile).
package orthanctest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

	"github.com/kommons/kommons/internal/testutil/toolcache"
)

// DebianPluginDir is where Debian's packages install the Orthanc plugins.
const DebianPluginDir = "/usr/share/orthanc/plugins"

// Binary is the Orthanc executable: $KOMMONS_ORTHANC, else Debian's /usr/sbin/Orthanc, else Orthanc on PATH.
func Binary() (string, error) {
	if p := os.Getenv("KOMMONS_ORTHANC"); p != "" {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/Orthanc"); err == nil {
		return "/usr/sbin/Orthanc", nil
	}
	if p, err := exec.LookPath("Orthanc"); err == nil {
		return p, nil
	}
	return "", errors.New("orthanctest: Orthanc not found (apt-get install orthanc orthanc-postgresql, or set KOMMONS_ORTHANC)")
}

// PluginDir is the directory holding the plugin libraries: $KOMMONS_ORTHANC_PLUGINS, else Debian's.
func PluginDir() string {
	if d := os.Getenv("KOMMONS_ORTHANC_PLUGINS"); d != "" {
		return d
	}
	return DebianPluginDir
}

// Require fails (CI=true, KOMMONS_E2E=1) or skips the test unless Orthanc, its PostgreSQL
// plugins and the private network namespace are available.
func Require(t testing.TB) {
	t.Helper()
	var problems []string
	if _, err := Binary(); err != nil {
		problems = append(problems, err.Error())
	}
	for _, lib := range []string{"libOrthancPostgreSQLIndex.so", "libOrthancPostgreSQLStorage.so"} {
		if _, err := os.Stat(filepath.Join(PluginDir(), lib)); err != nil {
			problems = append(problems, fmt.Sprintf("plugin %s missing in %s (apt-get install orthanc-postgresql)", lib, PluginDir()))
		}
	}
	if !InPrivateNetwork() {
		reason := "not running in a private network namespace: call orthanctest.EnterPrivateNetwork() first in TestMain"
		if netnsErr != nil {
			reason = netnsErr.Error()
		}
		problems = append(problems, reason)
	}
	if len(problems) == 0 {
		return
	}
	toolcache.Missing(t, "real Orthanc", errors.New(strings.Join(problems, "; ")))
}

// MapPlugins rewrites the "Plugins" entries of an Orthanc configuration to
// the libraries of the same file name in dir (e.g. the chart's
// /usr/share/orthanc/plugins-available/libOrthancPostgreSQLIndex.so becomes
// Debian's /usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so). A plugin
// missing from dir is an error naming it: a silently dropped storage plugin
// would put files where the test does not look.
func MapPlugins(config map[string]any, dir string) error {
	raw, ok := config["Plugins"]
	if !ok {
		return nil
	}
	list, ok := raw.([]any)
	if !ok {
		return fmt.Errorf("orthanc.json: Plugins is %T, want a list", raw)
	}
	mapped := make([]any, 0, len(list))
	for i, p := range list {
		s, ok := p.(string)
		if !ok {
			return fmt.Errorf("orthanc.json: Plugins[%d] is %T, want a string", i, p)
		}
		target := filepath.Join(dir, filepath.Base(s))
		if _, err := os.Stat(target); err != nil {
			return fmt.Errorf("orthanc.json: Plugins[%d] %s: no %s in %s", i, s, filepath.Base(s), dir)
		}
		mapped = append(mapped, target)
	}
	config["Plugins"] = mapped
	return nil
}

// Options describe one Orthanc process.
type Options struct {
	// Config is the orthanc.json content (a decoded JSON object); Start
	// overrides HttpPort, DicomPort, IndexDirectory and TemporaryDirectory
	// (and StorageDirectory when StorageDir is set), and maps the plugins.
	Config map[string]any
	// Env is the whole environment of the process: the values of the
	// configuration's ${VAR} references (Orthanc substitutes them) and libpq's PG* variables.
	Env []string
	// Dir holds the process's configuration file, logs, index and temporary directories.
	Dir string
	// StorageDir, when set, is the StorageDirectory (share it between processes to emulate a ReadWriteMany volume).
	StorageDir string
	// User and Password authenticate the readiness poll of /system.
	User, Password string
	// StartTimeout bounds the wait for /system (default 3 minutes: a loaded 2-core machine, schema creation).
	StartTimeout time.Duration
}

// Instance is one running Orthanc process.
type Instance struct {
	// URL is the base URL of its REST API (http://127.0.0.1:PORT).
	URL string
	// HTTPPort and DicomPort are the ports it listens on.
	HTTPPort, DicomPort int
	// Name is its configured Name.
	Name string
	// ConfigPath is the orthanc.json it was started with.
	ConfigPath string
	// Dir is its working directory (logs in Dir/logs).
	Dir string

	user, password string
	cmd            *exec.Cmd
	exited         chan struct{}
	stopOnce       sync.Once
	client         *http.Client
}

// FreePort returns a TCP port free on 127.0.0.1 right now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start starts Orthanc and waits until it answers /system; it is stopped
// (SIGTERM, then SIGKILL after 30 s) when the test ends. On failure the
// test fails with the tail of Orthanc's log.
func Start(t testing.TB, o Options) *Instance {
	t.Helper()
	in, err := start(o)
	if err != nil {
		t.Fatalf("start Orthanc: %v", err)
	}
	t.Cleanup(in.Stop)
	return in
}

// TryStart is Start returning the error (with the log tail) instead of
// failing the test, for tests that expect Orthanc to refuse to start.
func TryStart(t testing.TB, o Options) (*Instance, error) {
	t.Helper()
	in, err := start(o)
	if err != nil {
		return nil, err
	}
	t.Cleanup(in.Stop)
	return in, nil
}

func start(o Options) (*Instance, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 3 * time.Minute
	}
	cfg, err := cloneJSON(o.Config)
	if err != nil {
		return nil, err
	}
	if err := MapPlugins(cfg, PluginDir()); err != nil {
		return nil, err
	}
	httpPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	dicomPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"logs", "index", "tmp"} {
		if err := os.MkdirAll(filepath.Join(o.Dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("orthanc dir: %w", err)
		}
	}
	cfg["HttpPort"] = httpPort
	cfg["DicomPort"] = dicomPort
	cfg["IndexDirectory"] = filepath.Join(o.Dir, "index")
	cfg["TemporaryDirectory"] = filepath.Join(o.Dir, "tmp")
	if o.StorageDir != "" {
		cfg["StorageDirectory"] = o.StorageDir
	}
	name, _ := cfg["Name"].(string)
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode orthanc.json: %w", err)
	}
	cfgPath := filepath.Join(o.Dir, "orthanc.json")
	if err := os.WriteFile(cfgPath, data, 0o600); err != nil {
		return nil, fmt.Errorf("write orthanc.json: %w", err)
	}
	logDir := filepath.Join(o.Dir, "logs")
	stdout, err := os.Create(filepath.Join(logDir, "stdout.log"))
	if err != nil {
		return nil, fmt.Errorf("orthanc stdout: %w", err)
	}
	cmd := exec.Command(bin, "--logdir="+logDir, cfgPath)
	cmd.Env = o.Env
	cmd.Dir = o.Dir
	cmd.Stdout, cmd.Stderr = stdout, stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		stdout.Close()
		return nil, fmt.Errorf("exec %s: %w", bin, err)
	}
	in := &Instance{
		URL: "http://127.0.0.1:" + strconv.Itoa(httpPort), HTTPPort: httpPort, DicomPort: dicomPort,
		Name: name, ConfigPath: cfgPath, Dir: o.Dir, user: o.User, password: o.Password,
		cmd: cmd, exited: make(chan struct{}),
		client: &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 16}},
	}
	go func() { _ = cmd.Wait(); stdout.Close(); close(in.exited) }()
	if err := in.waitReady(o.StartTimeout); err != nil {
		in.Stop()
		return nil, fmt.Errorf("%w\n%s", err, in.LogTail(30))
	}
	return in, nil
}

func (in *Instance) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-in.exited:
			return fmt.Errorf("orthanc %q exited during startup (%v)", in.Name, in.cmd.ProcessState)
		default:
		}
		var sys struct{ Name string }
		if code, err := in.GetJSON("/system", &sys); err == nil && code == http.StatusOK && sys.Name == in.Name {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("orthanc %q did not answer /system within %s", in.Name, timeout)
}

// PID is the process id.
func (in *Instance) PID() int { return in.cmd.Process.Pid }

// Running reports whether the process is still alive.
func (in *Instance) Running() bool {
	select {
	case <-in.exited:
		return false
	default:
		return true
	}
}

// Stop terminates the process by PID: SIGTERM, SIGKILL after 30 s.
func (in *Instance) Stop() {
	in.stopOnce.Do(func() {
		if !in.Running() {
			return
		}
		_ = in.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-in.exited:
		case <-time.After(30 * time.Second):
			_ = in.cmd.Process.Kill()
			<-in.exited
		}
	})
}

// Do sends an authenticated request and returns the status and body.
func (in *Instance) Do(method, path, contentType string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(method, in.URL+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in.user != "" {
		req.SetBasicAuth(in.user, in.password)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := in.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	return resp.StatusCode, data, nil
}

// GetJSON GETs path and decodes a 200 answer into into.
func (in *Instance) GetJSON(path string, into any) (int, error) {
	code, body, err := in.Do(http.MethodGet, path, "", nil)
	if err != nil {
		return code, err
	}
	if code != http.StatusOK {
		return code, fmt.Errorf("GET %s: HTTP %d: %.200s", path, code, body)
	}
	if err := json.Unmarshal(body, into); err != nil {
		return code, fmt.Errorf("GET %s: decode: %w", path, err)
	}
	return code, nil
}

// UploadResult is Orthanc's answer to POST /instances.
type UploadResult struct {
	ID     string
	Status string // Success or AlreadyStored
	Path   string
}

// Upload POSTs one DICOM file to /instances.
func (in *Instance) Upload(dicom []byte) (UploadResult, error) {
	var r UploadResult
	code, body, err := in.Do(http.MethodPost, "/instances", "application/dicom", dicom)
	if err != nil {
		return r, err
	}
	if code != http.StatusOK {
		return r, fmt.Errorf("POST /instances on %s: HTTP %d: %.300s", in.Name, code, body)
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("POST /instances on %s: decode %q: %w", in.Name, body, err)
	}
	return r, nil
}

// UploadRetrying is Upload retrying, up to attempts times in all, the answer
// Orthanc gives when PostgreSQL aborts a transaction under concurrent writes
// (HTTP 503 "could not serialize access ..., the transaction should be
// retried"): a client's documented duty (observed with Orthanc 1.10.1 and the
// PostgreSQL plugin 4.0 at 8 concurrent uploads into one series). It returns
// how many retries were needed. Any other failure is returned at once.
func (in *Instance) UploadRetrying(dicom []byte, attempts int) (UploadResult, int, error) {
	var r UploadResult
	for retry := 0; ; retry++ {
		code, body, err := in.Do(http.MethodPost, "/instances", "application/dicom", dicom)
		if err != nil {
			return r, retry, err
		}
		if code == http.StatusServiceUnavailable && bytes.Contains(body, []byte("serialize")) && retry+1 < attempts {
			time.Sleep(time.Duration(retry+1) * 20 * time.Millisecond)
			continue
		}
		if code != http.StatusOK {
			return r, retry, fmt.Errorf("POST /instances on %s: HTTP %d after %d retries: %.300s", in.Name, code, retry, body)
		}
		if err := json.Unmarshal(body, &r); err != nil {
			return r, retry, fmt.Errorf("POST /instances on %s: decode %q: %w", in.Name, body, err)
		}
		return r, retry, nil
	}
}

// Statistics is the part of /statistics the tests compare.
type Statistics struct {
	CountPatients, CountStudies, CountSeries, CountInstances int
}

// Stats GETs /statistics.
func (in *Instance) Stats() (Statistics, error) {
	var s Statistics
	_, err := in.GetJSON("/statistics", &s)
	return s, err
}

// LogTail returns the last n lines of the process's logs (for failure messages).
func (in *Instance) LogTail(n int) string {
	var b strings.Builder
	files, _ := filepath.Glob(filepath.Join(in.Dir, "logs", "*"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil || len(data) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", f, strings.Join(lines, "\n"))
	}
	return b.String()
}

// ErrorLines returns the E-level lines of the Orthanc log (glog format: "E1122 ...").
func (in *Instance) ErrorLines() []string {
	var out []string
	files, _ := filepath.Glob(filepath.Join(in.Dir, "logs", "Orthanc*.log*"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "E") {
				out = append(out, l)
			}
		}
	}
	return out
}

func cloneJSON(in map[string]any) (map[string]any, error) {
	data, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("orthanc.json: %w", err)
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("orthanc.json: %w", err)
	}
	return out, nil
}
