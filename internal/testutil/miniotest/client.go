package miniotest

import (
	"fmt"
	"testing"

	"github.com/kommons/kommons/internal/testutil/toolcache"
)

// ClientBinary finds the MinIO client (mc) the backup tests run: $KOMMONS_MC_BIN,
// else $KOMMONS_CACHE (default ~/.cache/kommons)/mc-<MC_VERSION>/mc with
// the version read from test/cluster/versions.env of the enclosing module.
// `test/cluster/build.sh mc` builds it there. The error of a missing binary
// says how to build it.
func ClientBinary() (string, error) {
	p, err := toolcache.Binary("mc", "MC_VERSION", "mc", "KOMMONS_MC_BIN")
	if err != nil {
		return "", fmt.Errorf("miniotest: %w", err)
	}
	return p, nil
}

// RequireClient returns ClientBinary's path. Like New, under CI=true (or
// KOMMONS_E2E=1, KOMMONS_REQUIRE_MINIO=1) a missing client fails the test;
// elsewhere it skips the test with the reason.
func RequireClient(t testing.TB) string {
	t.Helper()
	p, err := ClientBinary()
	if err != nil {
		toolcache.Missing(t, "the MinIO client", err, EnvRequire)
	}
	return p
}
