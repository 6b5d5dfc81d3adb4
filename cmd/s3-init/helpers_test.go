package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/s3provision"
	"github.com/kommons/kommons/internal/testutil/miniotest"
	"github.com/kommons/kommons/internal/testutil/syncbuf"
)

// The test binary doubles as s3-init: with this variable set it runs main()
// (exec os.Args[0]), so every test drives a real s3-init process.
const asBinaryEnv = "S3_INIT_TEST_AS_BINARY"

func TestMain(m *testing.M) {
	if os.Getenv(asBinaryEnv) == "1" {
		main()
		return
	}
	os.Exit(miniotest.Run(m))
}

// result is one finished s3-init process.
type result struct {
	code           int
	stdout, stderr string
}

// proc is a running s3-init process.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr *syncbuf.Buffer
	done           chan struct{}
	res            result
}

// start launches s3-init against srv (admin credentials through the AWS_*
// environment) with args; env adds variables.
func start(t *testing.T, srv *miniotest.Server, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(append(os.Environ(), asBinaryEnv+"=1", "S3_INIT_LOG_FORMAT=json"), srv.Env()...), env...)
	p := &proc{cmd: cmd, stdout: &syncbuf.Buffer{}, stderr: &syncbuf.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	require.NoError(t, cmd.Start())
	go func() {
		_ = cmd.Wait()
		p.res = result{code: cmd.ProcessState.ExitCode(), stdout: p.stdout.String(), stderr: p.stderr.String()}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits for the process (at most 4 minutes: a loaded 2-core machine).
func (p *proc) wait(t *testing.T) result {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(4 * time.Minute):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("s3-init did not finish in 4 minutes; stderr:\n%s", p.res.stderr)
	}
	return p.res
}

// runS3Init runs s3-init to completion.
func runS3Init(t *testing.T, srv *miniotest.Server, env []string, args ...string) result {
	t.Helper()
	return start(t, srv, env, args...).wait(t)
}

// waitFor polls cond until it holds (at most 3 minutes).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scope returns a fresh scope (namespace, release) so tests sharing the
// server never meet each other's buckets.
func scope(t *testing.T) (string, string) {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "ns" + hex.EncodeToString(b), "rel"
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// secretKey returns a fresh 32-character secret key.
func secretKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// output parses --output json.
func output(t *testing.T, r result) s3provision.Output {
	t.Helper()
	var o s3provision.Output
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &o), "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	return o
}

// logLines parses the JSON log lines of stderr.
func logLines(t *testing.T, r result) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), "not a JSON log line: %s", line)
		out = append(out, m)
	}
	return out
}

// requireNoSecrets fails when any secret appears in the process's output.
func requireNoSecrets(t *testing.T, r result, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		require.NotContains(t, r.stdout, s, "a secret leaked to stdout")
		require.NotContains(t, r.stderr, s, "a secret leaked to stderr")
	}
}

func requireExit(t *testing.T, r result, code int) {
	t.Helper()
	require.Equal(t, code, r.code, "exit code; stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
