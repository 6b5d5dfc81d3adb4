package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/testutil/gobuild"
)

// tieringBinary is the static orthanc-tiering the process tests run, built once.
var tieringBinary = gobuild.New(".", "orthanc-tiering", "CGO_ENABLED=0")

func TestMain(m *testing.M) {
	code := m.Run()
	tieringBinary.Remove()
	os.Exit(code)
}

// TestContractSIGTERM runs the built binary as the CronJob's container does
// (credentials from the environment) against the replayed plugin: SIGTERM
// while a job runs exits 143, logs the job left running in Orthanc, and
// submits nothing more.
func TestContractSIGTERM(t *testing.T) {
	f := newFake(t, contractStudies())
	srv := f.serve()
	cmd := exec.Command(tieringBinary.Path(t), "--url="+srv.URL, "--age-days=30", "--batch-size=2", "--concurrency=1",
		"--poll-interval=1h", "--log-format=json")
	cmd.Env = []string{"ORTHANC_TIERING_USER=admin", "ORTHANC_TIERING_PASSWORD=secret"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	deadline := time.Now().Add(time.Minute)
	for {
		f.mu.Lock()
		polled := len(f.polls["job-01"])
		f.mu.Unlock()
		if polled > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "no job followed within a minute: %s", stderr.String())
		time.Sleep(10 * time.Millisecond)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	err := cmd.Wait()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "exit: %v", err)
	assert.Equal(t, 143, exit.ExitCode(), stderr.String())
	assert.Contains(t, stderr.String(), `"pendingJobs":["job-01"]`)
	assert.Contains(t, stderr.String(), `"signal":"terminated"`)
	f.mu.Lock()
	defer f.mu.Unlock()
	assert.Len(t, f.moves, 1, "nothing submitted after SIGTERM")
}
