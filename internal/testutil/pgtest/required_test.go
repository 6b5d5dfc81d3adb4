package pgtest_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/testutil/pgtest"
)

// childMode makes this test binary, run again by
// TestMissingPostgreSQLFailsWhenRequired, ask for a server.
const childMode = "KOMMONS_PGTEST_CHILD"

// TestMissingPostgreSQLFailsWhenRequired runs this test binary again with
// the server binaries pointed at an empty directory: a test asking for a
// server (New, or a version of EachVersion) skips, naming the reason, unless
// CI=true, KOMMONS_E2E=1 (make test, make e2e) or KOMMONS_REQUIRE_PG=1 is
// set; then it fails, naming the variables.
func TestMissingPostgreSQLFailsWhenRequired(t *testing.T) {
	switch os.Getenv(childMode) {
	case "new":
		pgtest.New(t, pgtest.Options{})
		return
	case "version":
		pgtest.EachVersion(t, func(t *testing.T, s *pgtest.Server) { t.Error("a server started from an empty directory") })
		return
	}
	empty := t.TempDir()
	var clean []string
	for _, kv := range os.Environ() {
		switch name, _, _ := strings.Cut(kv, "="); name {
		case "CI", "KOMMONS_E2E", "KOMMONS_REQUIRE_PG", pgtest.DefaultMajorEnv, "KOMMONS_PG_BIN", "KOMMONS_PG_MAJORS", "KOMMONS_PG18_BIN":
		default:
			clean = append(clean, kv)
		}
	}
	for _, mode := range []string{"new", "version"} {
		for _, required := range []string{"", "CI=true", "KOMMONS_E2E=1", "KOMMONS_REQUIRE_PG=1"} {
			t.Run(mode+"/"+required, func(t *testing.T) {
				cmd := exec.Command(os.Args[0], "-test.run=^TestMissingPostgreSQLFailsWhenRequired$", "-test.v", "-test.count=1")
				cmd.Env = append(clean, childMode+"="+mode, "KOMMONS_PG_BIN="+empty,
					"KOMMONS_PG_MAJORS=18", "KOMMONS_PG18_BIN="+empty)
				if required != "" {
					cmd.Env = append(cmd.Env, required)
				}
				out, err := cmd.CombinedOutput()
				if required == "" {
					require.NoError(t, err, "%s", out)
					assert.Contains(t, string(out), "--- SKIP", "nothing required: the test skips")
					return
				}
				require.Error(t, err, "%s: a missing PostgreSQL must fail, not skip\n%s", required, out)
				assert.Contains(t, string(out), "--- FAIL")
				assert.Contains(t, string(out), "KOMMONS_E2E=1", "the failure names the variables")
			})
		}
	}
}
