// Package hostalias runs a process that resolves chosen host names to
// chosen addresses, as a cluster's DNS would resolve a Service name: the
// process gets its own mount namespace (unshare --mount) in which
// /etc/hosts is a copy of the host's with the aliases appended. The
// process itself is unchanged: a client that verifies a server certificate
// against the name it dialled (libpq's verify-full) then connects by the
// Service name to a server on loopback.
//
// It needs root (a mount namespace) and util-linux's unshare; without them
// Command fails the test, naming what is missing.
package hostalias

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Command returns a command that runs name with args where every key of
// hosts resolves to its value (an IP address). The hosts file lives in a
// temporary directory of t.
func Command(t testing.TB, ctx context.Context, hosts map[string]string, name string, args ...string) *exec.Cmd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("hostalias: a mount namespace for %s needs root (euid %d)", filepath.Base(name), os.Geteuid())
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatalf("hostalias: util-linux unshare is required: %v", err)
	}
	orig, err := os.ReadFile("/etc/hosts")
	if err != nil {
		t.Fatalf("hostalias: read /etc/hosts: %v", err)
	}
	var b strings.Builder
	b.Write(orig)
	if len(orig) > 0 && orig[len(orig)-1] != '\n' {
		b.WriteByte('\n')
	}
	names := make([]string, 0, len(hosts))
	for n := range hosts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "%s\t%s\n", hosts[n], n)
	}
	file := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatalf("hostalias: %v", err)
	}
	// The namespace's mounts are private (unshare's default propagation):
	// the bind mount never reaches the host.
	script := `mount --bind "$0" /etc/hosts && exec "$@"`
	return exec.CommandContext(ctx, unshare, append([]string{"--mount", "--", "/bin/sh", "-c", script, file, name}, args...)...)
}
