// Package badsecret gives the commands' tests the secret files every binary
// must refuse (exit 2, naming the flag or spec field) without reading them
// (see internal/secretfile), and a way to run a binary on them safely: under
// a memory cap, so that an unfixed binary reading /dev/zero dies quickly
// instead of taking the machine's memory, and with a timeout, so that one
// blocked on a FIFO fails the test instead of hanging it.
package badsecret

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Case is one file a secret flag or field must refuse.
type Case struct {
	Name string // "dev-zero", "fifo", "directory", "oversized"
	Path string
	Want string // the reason the error must give, after "PATH: "
}

// Cases creates the files (in t.TempDir) once per call.
func Cases(t *testing.T) []Case {
	t.Helper()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	big := filepath.Join(dir, "oversized")
	require.NoError(t, os.WriteFile(big, []byte(strings.Repeat("k", 64<<10+1)), 0o600))
	sub := filepath.Join(dir, "directory")
	require.NoError(t, os.Mkdir(sub, 0o700))
	return []Case{
		{"dev-zero", "/dev/zero", "not a regular file (a character device)"},
		{"fifo", fifo, "not a regular file (a FIFO)"},
		{"directory", sub, "not a regular file (a directory)"},
		{"oversized", big, "larger than 64 KiB"},
	}
}

// Result is one finished process.
type Result struct {
	Code           int
	Stdout, Stderr string
	Elapsed        time.Duration
}

// Run runs bin with args and env (the whole environment) under a 4 GiB
// address-space limit (an unfixed binary reading /dev/zero dies with a Go
// out-of-memory trace, not the machine), killing it after 30 seconds (Code -1).
func Run(t *testing.T, env []string, bin string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", append([]string{"-c", `ulimit -v 4194304 && exec "$0" "$@"`, bin}, args...)...)
	// Few glibc malloc arenas: each reserves address space, and cgo
	// binaries (pg-init, the s3-init test binary) create threads.
	cmd.Env = append(env, "MALLOC_ARENA_MAX=2")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String(), Elapsed: time.Since(start)}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.Code = exit.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", bin, err)
	}
	if ctx.Err() != nil {
		t.Errorf("%s did not finish in 30 seconds (blocked on a secret file?)", bin)
	}
	return r
}
