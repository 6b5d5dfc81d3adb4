package orthanctest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/kommons/kommons/internal/testutil/netns"
)

// netnsEnv marks the child re-executed inside the private network namespace.
const netnsEnv = "KOMMONS_ORTHANC_NETNS"

// netnsErr records why the private network namespace could not be entered;
// Require reports it (fails under CI=true, skips elsewhere).
var netnsErr error

// InPrivateNetwork reports whether this process runs in the loopback-only
// network namespace EnterPrivateNetwork created.
func InPrivateNetwork() bool { return os.Getenv(netnsEnv) == "1" && netnsErr == nil }

// EnterPrivateNetwork re-executes the test binary inside a new network
// namespace whose only interface is loopback, and exits with the child's
// status; in the child it brings loopback up and returns. Call it first in
// TestMain, before starting any server:
//
//	func TestMain(m *testing.M) { orthanctest.EnterPrivateNetwork(); pgtest.Main(m) }
//
// Why: Orthanc has no bind-address option, its HTTP and DICOM servers listen
// on 0.0.0.0. In a private namespace (the equivalent of `unshare --net`)
// those listeners, PostgreSQL and every test port are reachable from this
// process tree only, never from another interface, and ports cannot collide
// with other test binaries running in parallel. Creating a network namespace
// needs root (CAP_SYS_ADMIN); without it EnterPrivateNetwork returns and
// Require skips (or fails under CI=true) the tests that start Orthanc.
func EnterPrivateNetwork() {
	if os.Getenv(netnsEnv) == "1" {
		if err := netns.LoopbackUp(); err != nil {
			netnsErr = fmt.Errorf("bring loopback up in the private network namespace: %w", err)
		}
		return
	}
	if os.Geteuid() != 0 {
		netnsErr = errors.New("a private network namespace needs root (Orthanc listens on 0.0.0.0 and is only started inside one)")
		return
	}
	self, err := os.Executable()
	if err != nil {
		netnsErr = fmt.Errorf("find the test binary: %w", err)
		return
	}
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), netnsEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		netnsErr = fmt.Errorf("re-execute the test binary in a new network namespace: %w", err)
		return
	}
	// Forward SIGTERM/SIGINT is unnecessary: the child shares our process
	// group and receives terminal signals itself; Pdeathsig covers the rest.
	err = cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		os.Exit(exit.ExitCode())
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "orthanctest: test binary in the private network namespace: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}
