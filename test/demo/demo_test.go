package main

// The demo runs in `make test`: these tests build the demo and run it as a
// user does (a separate process, its own run directory), on the local
// control plane. Only the Debian Orthanc part may be skipped, when its
// packages are missing and cannot be installed; the test then says so.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/testutil/testcluster"
	"github.com/kommons/kommons/internal/testutil/toolcache"
)

// demoBinary builds the demo and returns it with a fresh (empty) binary
// directory: the demo builds pg-init, wait-for-pg and postrender into it.
func demoBinary(t *testing.T) (string, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("the demo starts a control plane: skipped with -short")
	}
	if _, err := testcluster.FindTools(); err != nil {
		toolcache.Missing(t, "the demo's harness tools", err)
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "kommons-demo-test-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(buildDir, "demo"), ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build test/demo: %w\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	// A fresh binary directory per test: the demo builds what is missing.
	binDir := filepath.Join(t.TempDir(), "bin")
	require.NoError(t, os.MkdirAll(binDir, 0o755))
	return filepath.Join(buildDir, "demo"), binDir
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// runDemo runs the demo with args and returns its exit code and output.
func runDemo(t *testing.T, bin string, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "demo did not finish within 20 minutes:\n%s", out.String())
	t.Logf("demo %s: %s", strings.Join(args, " "), time.Since(start).Round(time.Second))
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		require.True(t, ok, "run demo: %v", err)
		code = ee.ExitCode()
	}
	return code, out.String()
}

// orthancFlags lets the demo install the Debian packages only under CI
// (never apt-get on a developer's machine from `go test`).
func orthancFlags() []string {
	return []string{"--apt-install=" + strconv.FormatBool(os.Getenv("CI") == "true")}
}

// processesMentioning lists the live processes whose command line mentions
// dir (etcd, the API server, kwok, the provisioner, the data-path process
// and Orthanc all name the run directory).
func processesMentioning(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || !pidAlive(pid) {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if args := strings.ReplaceAll(string(cmdline), "\x00", " "); strings.Contains(args, dir) {
			out = append(out, fmt.Sprintf("%d: %s", pid, args))
		}
	}
	return out
}

// assertNothingRunning checks that the demo left no process behind.
func assertNothingRunning(t *testing.T, state string) {
	t.Helper()
	assert.Empty(t, processesMentioning(t, state), "processes still running")
}

var (
	rowDeployment = regexp.MustCompile(`(?m)^\s+imaging\s+Deployment\s+orthanc\s+app\s+orthanc-storage=standard\s+imaging_orthanc_orthanc\s*$`)
	rowPgInit     = regexp.MustCompile(`(?m)^\s+imaging\s+Job\s+orthanc-pg-init-[0-9a-f]+\s+app\s+-\s+creates imaging_orthanc_orthanc\s*$`)
	rowCommonsPG  = regexp.MustCompile(`(?m)^\s+commons\s+StatefulSet\s+commons-postgresql\s+(\S+)\s+data-commons-postgresql-0=(\S+)\s`)
	replicaRow    = regexp.MustCompile(`(?m)^\s+([12]) orthanc\s+3\s+3\s+3\s+12\s+KOMMONS-demo-1 KOMMONS-demo-2 KOMMONS-demo-3\s*$`)
	skipped       = regexp.MustCompile(`SKIPPED the Orthanc replicas: (.*)`)
)

// checkOutput asserts what every successful run prints and reports whether
// the Orthanc part ran.
func checkOutput(t *testing.T, out string) bool {
	t.Helper()
	for i := 1; i <= 7; i++ {
		assert.Regexp(t, fmt.Sprintf(`(?m)^==> \[%d/7\] `, i), out, "phase %d has a progress line", i)
	}
	assert.Regexp(t, rowDeployment, out, "Orthanc's Deployment on the app pool, its claim's class, its physical database")
	assert.Regexp(t, rowPgInit, out, "the pg-init Job row names the database it creates")
	m := rowCommonsPG.FindStringSubmatch(out)
	require.NotNil(t, m, "commons' PostgreSQL row")
	assert.Equal(t, []string{"db", "fast-ssd"}, m[1:3], "commons' PostgreSQL: pool and storage class")
	assert.Regexp(t, `(?m)^\s+commons\s+StatefulSet\s+commons-minio\s+db\s+data-commons-minio-0=fast-ssd\s`, out)
	assert.Contains(t, out, "database orthanc    -> imaging_orthanc_orthanc owned by imaging_orthanc_orthanc (created)")
	assert.Contains(t, out, "chart helper and pg-init agree")
	assert.Equal(t, 2, strings.Count(out, "init container wait-for-pg of orthanc-"), "wait-for-pg ran for both pods")
	if s := skipped.FindStringSubmatch(out); s != nil {
		t.Logf("SKIPPED the Debian Orthanc part only: %s", s[1])
		return false
	}
	assert.Len(t, replicaRow.FindAllString(out, -1), 2, "both replicas see the 12 instances uploaded to replica 1")
	return true
}

func TestDemo(t *testing.T) {
	bin, binDir := demoBinary(t)
	state := filepath.Join(t.TempDir(), "state")
	code, out := runDemo(t, bin, nil, append([]string{"--state-dir=" + state, "--bin=" + binDir}, orthancFlags()...)...)
	require.Equal(t, 0, code, "demo failed:\n%s", out)
	t.Log("\n" + out)
	checkOutput(t, out)
	assert.Contains(t, out, "==> stopping everything")
	for _, b := range []string{"pg-init", "wait-for-pg", "postrender"} {
		assert.FileExists(t, filepath.Join(binDir, b), "the demo builds missing binaries")
	}
	_, err := os.Stat(state)
	assert.True(t, os.IsNotExist(err), "a successful run removes its run directory")
	assertNothingRunning(t, state)
}

// TestDemoKeep runs the demo with KEEP=1, reaches an Orthanc replica from
// this network namespace through the printed URL, then stops everything
// with `demo down`.
func TestDemoKeep(t *testing.T) {
	bin, binDir := demoBinary(t)
	state := filepath.Join(t.TempDir(), "state")
	t.Cleanup(func() { _, _ = runDemo(t, bin, nil, "down", "--state-dir="+state) })
	code, out := runDemo(t, bin, []string{"KEEP=1"}, append([]string{"--state-dir=" + state, "--bin=" + binDir}, orthancFlags()...)...)
	require.Equal(t, 0, code, "demo failed:\n%s", out)
	ranOrthanc := checkOutput(t, out)
	assert.Contains(t, out, "Left running (KEEP=1)")
	assert.Contains(t, out, "test/demo/run.sh down")
	assert.NotContains(t, out, "==> stopping everything")

	kubeconfig := filepath.Join(state, "cluster", "kubeconfig")
	tools, err := testcluster.FindTools()
	require.NoError(t, err)
	c, err := testcluster.Attach(filepath.Dir(kubeconfig), tools)
	require.NoError(t, err, "the cluster keeps running")
	kubectl := exec.Command(filepath.Join(tools.KubeBin, "kubectl"), "--kubeconfig", kubeconfig, "get", "deploy", "orthanc", "-n", "imaging", "-o", "jsonpath={.status.readyReplicas}")
	b, err := kubectl.CombinedOutput()
	require.NoError(t, err, "%s", b)
	assert.Equal(t, "2", string(b))
	_ = c

	if ranOrthanc {
		url := regexp.MustCompile(`Orthanc 1\s+(http://127\.0\.0\.1:\d+)/`).FindStringSubmatch(out)
		require.NotNil(t, url, "the URL of replica 1 is printed")
		cred, err := os.ReadFile(filepath.Join(state, "datapath", "orthanc-credentials"))
		require.NoError(t, err)
		user, pass, _ := strings.Cut(strings.TrimSpace(string(cred)), ":")
		req, err := http.NewRequest(http.MethodGet, url[1]+"/statistics", nil)
		require.NoError(t, err)
		req.SetBasicAuth(user, pass)
		resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
		require.NoError(t, err, "replica 1 reachable from the host through the printed URL")
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var stats struct{ CountInstances int }
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&stats))
		assert.Equal(t, 12, stats.CountInstances)
		assert.NotContains(t, out, pass, "the Orthanc password is never printed")
	}

	running := strings.Join(processesMentioning(t, state), "\n")
	for _, p := range []string{"kube-apiserver", "etcd", "fakeprov"} {
		assert.Contains(t, running, p, "KEEP=1 leaves %s running", p)
	}
	if ranOrthanc {
		assert.Contains(t, running, "datapath")
		assert.Contains(t, running, "Orthanc")
	}

	code, down := runDemo(t, bin, nil, "down", "--state-dir="+state)
	require.Equal(t, 0, code, down)
	assert.Contains(t, down, "stopped kube-apiserver")
	if ranOrthanc {
		assert.Contains(t, down, "stopped data path")
	}
	assertNothingRunning(t, state)
	_, err = os.Stat(state)
	assert.True(t, os.IsNotExist(err), "down removes the run directory")
}

// TestDemoFailure: a policy the post-renderer rejects fails the commons
// install; the demo names the phase and the post-renderer's message, exits
// 1 and stops everything it started.
func TestDemoFailure(t *testing.T) {
	bin, binDir := demoBinary(t)
	state := filepath.Join(t.TempDir(), "state")
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	require.NoError(t, os.WriteFile(policy, []byte(`apiVersion: postrender.kommons.io/v1alpha1
kind: PlacementPolicy
pools:
- name: db
  nodeSelector: {kommons.io/pool: db}
  nodeSelectr: {typo: true}
`), 0o600))
	code, out := runDemo(t, bin, nil, "--state-dir="+state, "--bin="+binDir, "--orthanc=skip", "--policy="+policy)
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, "demo: FAILED: phase 3 (helm install commons")
	assert.Contains(t, out, "nodeSelectr", "the post-renderer's message names the bad field")
	assert.NotContains(t, out, "==> [4/", "nothing runs after the failed phase")
	assert.Contains(t, out, "logs kept in "+state)
	assertNothingRunning(t, state)
}
