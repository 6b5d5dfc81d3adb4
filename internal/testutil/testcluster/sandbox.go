package testcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kommons/kommons/internal/testutil/nodeimages"

	"golang.org/x/sys/unix"

	"github.com/kommons/kommons/internal/testutil/netns"
)

// The real-node mode runs the whole cluster (etcd, the control plane,
// containerd, the kubelet, kube-proxy, CoreDNS, the image registry) and the
// tests themselves inside a sandbox of namespaces the test binary creates by
// re-executing itself:
//
//	outer process (host namespaces)     records and restores global sysctls,
//	  │                                 removes the node's cgroups afterwards
//	  └─ init, PID 1 of new PID+net+mount namespaces: private mounts, fresh
//	       │  /proc and /run, loopback up; reaps orphans (containerd shims)
//	       └─ the test binary again: starts the cluster, runs the tests
//
// When init exits the kernel kills every process left in the PID namespace
// (shims, containers, a hung kubelet), and the network namespace with its
// interfaces, routes, iptables rules and pod addresses disappears with them:
// teardown happens even when a test panics or is killed. No node, pod or
// Service address exists outside the sandbox and no packet can leave it
// (its only interfaces are loopback, a veth pair and the CNI bridge, with no
// route out).

const (
	sandboxEnv       = "KOMMONS_NODE_SANDBOX" // "init" in PID 1, "run" in the test process
	sandboxCgroupEnv = "KOMMONS_NODE_CGROUP"  // cgroup root name of the node's pods
	imagesErrEnv     = "KOMMONS_NODE_IMAGES_ERROR"
)

// sandboxErr says why the sandbox could not be entered; StartNode reports it.
var sandboxErr error

// InSandbox reports whether this process is the test process inside the
// real-node sandbox.
func InSandbox() bool { return os.Getenv(sandboxEnv) == "run" && sandboxErr == nil }

// kubeletSysctls are the global (not per-namespace) kernel settings the
// kubelet changes on start; the outer process restores them.
var kubeletSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

// MainInSandbox is TestMain for packages that need a real node: it
// re-executes the test binary inside the sandbox (see above), runs the tests
// there, stops the package's cluster, and exits with their status.
//
//	func TestMain(m *testing.M) { testcluster.MainInSandbox(m) }
//
// Without root (or with -short, where nothing needs a node) the tests run
// in place and StartNode skips or fails them with the reason.
func MainInSandbox(m *testing.M) {
	switch os.Getenv(sandboxEnv) {
	case "init":
		os.Exit(sandboxInit())
	case "run":
		Main(m)
		return
	}
	if isShort() {
		sandboxErr = errors.New("-short")
		Main(m)
		return
	}
	if os.Geteuid() != 0 {
		sandboxErr = errors.New("the real-node sandbox needs root (network, mount and PID namespaces, cgroups, containerd)")
		Main(m)
		return
	}
	os.Exit(sandboxOuter())
}

func isShort() bool {
	for _, a := range os.Args[1:] {
		if a == "-test.short" || a == "-test.short=true" {
			return true
		}
	}
	return false
}

// sandboxOuter starts init in new namespaces, waits for it, then undoes
// what the kubelet did outside them.
func sandboxOuter() int {
	// Images are built out here: the sandbox has no network, and debootstrap
	// needs the Debian mirror. Inside, nodeimages.Build finds them cached.
	imagesErr := ""
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	if _, err := nodeimages.Build(ctx, func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }); err != nil {
		imagesErr = err.Error()
	}
	cancel()
	saved := readSysctls()
	cgroup := fmt.Sprintf("kommons-node-%d", os.Getpid())
	defer func() {
		restoreSysctls(saved)
		removeCgroups(cgroup)
	}()
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testcluster: find the test binary: %v\n", err)
		return 1
	}
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), sandboxEnv+"=init", sandboxCgroupEnv+"="+cgroup, imagesErrEnv+"="+imagesErr)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID,
		Pdeathsig:  syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "testcluster: enter the real-node sandbox: %v\n", err)
		return 1
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	signal.Stop(sigs)
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return exit.ExitCode()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "testcluster: real-node sandbox: %v\n", err)
		return 1
	}
	return 0
}

// sandboxInit is PID 1 inside the namespaces: it prepares the mounts and
// loopback, runs the test binary once more as its only child, reaps every
// orphan, forwards termination signals, and returns the child's status.
func sandboxInit() int {
	if err := prepareSandbox(); err != nil {
		fmt.Fprintf(os.Stderr, "testcluster: prepare the real-node sandbox: %v\n", err)
		return 1
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testcluster: find the test binary: %v\n", err)
		return 1
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGCHLD)
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), sandboxEnv+"=run")
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "testcluster: start the test binary in the sandbox: %v\n", err)
		return 1
	}
	child := cmd.Process.Pid
	for s := range sigs {
		if s != syscall.SIGCHLD {
			_ = cmd.Process.Signal(s)
			continue
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
			if pid == child {
				if ws.Signaled() {
					return 128 + int(ws.Signal())
				}
				return ws.ExitStatus()
			}
		}
	}
	return 1
}

// prepareSandbox makes every mount private (nothing mounted inside
// propagates to the host), mounts a /proc for the new PID namespace and a
// tmpfs on /run (containerd shim sockets, the iptables lock and CNI state
// stay inside), and brings loopback up.
func prepareSandbox() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	if err := unix.Mount("tmpfs", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=755,size=256m"); err != nil {
		return fmt.Errorf("mount /run: %w", err)
	}
	return netns.LoopbackUp()
}

func readSysctls() map[string]string {
	saved := map[string]string{}
	for _, k := range kubeletSysctls {
		if b, err := os.ReadFile("/proc/sys/" + k); err == nil {
			saved[k] = strings.TrimSpace(string(b))
		}
	}
	return saved
}

func restoreSysctls(saved map[string]string) {
	for k, v := range saved {
		if b, err := os.ReadFile("/proc/sys/" + k); err == nil && strings.TrimSpace(string(b)) != v {
			if err := os.WriteFile("/proc/sys/"+k, []byte(v), 0o644); err != nil {
				fmt.Fprintf(os.Stderr, "testcluster: restore sysctl %s=%s: %v\n", k, v, err)
			}
		}
	}
}

// removeCgroups removes the node's cgroup trees (cgroup v1: one per
// controller hierarchy), deepest first. Their processes are gone by then:
// the PID namespace died with init.
func removeCgroups(name string) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/" + name)
	if d := "/sys/fs/cgroup/" + name; dirExists(d) {
		roots = append(roots, d)
	}
	for _, root := range roots {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
				fmt.Fprintf(os.Stderr, "testcluster: remove cgroup %s: %v\n", d, err)
			}
		}
	}
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// sandboxCgroup is the cgroup root of the node's pods (kubelet cgroupRoot).
func sandboxCgroup() string {
	if v := os.Getenv(sandboxCgroupEnv); v != "" {
		return v
	}
	return "kommons-node-" + strconv.Itoa(os.Getpid())
}
