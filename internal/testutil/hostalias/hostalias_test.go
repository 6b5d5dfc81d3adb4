package hostalias_test

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/testutil/hostalias"
)

// TestCommand: the alias resolves inside the command (getent, through the
// system's resolver) and not outside it.
func TestCommand(t *testing.T) {
	const name = "db.hostalias-test.svc.cluster.local"
	out, err := hostalias.Command(t, context.Background(), map[string]string{name: "127.0.0.9"}, "getent", "hosts", name).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Equal(t, "127.0.0.9", strings.Fields(string(out))[0])
	_, err = net.LookupHost(name)
	require.Error(t, err, "the alias stays inside the command's mount namespace")
}
