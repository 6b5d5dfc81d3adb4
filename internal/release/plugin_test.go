package release

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/kommons/kommons/internal/testutil/toolcache"
)

// TestPluginArchive installs this machine's Helm 4 plugin archive from the
// release with `helm plugin install <archive>` into an empty Helm data home
// and renders the release's commons chart through it as the post-renderer:
// the db-app-split policy must send the database to the db pool, which the
// same render without the post-renderer does not.
func TestPluginArchive(t *testing.T) {
	requireRelease(t)
	helm4 := requireTool(t, "helm4", "HELM4_VERSION", "helm", "KOMMONS_HELM4")
	p := Platform{runtime.GOOS, runtime.GOARCH}
	archive := filepath.Join(builtA, PluginArchiveName(testVersion, p))
	if _, err := os.Stat(archive); err != nil {
		t.Fatalf("no plugin archive for %s: %v", p, err)
	}
	data := t.TempDir()
	env := append(os.Environ(), "HELM_DATA_HOME="+data, "HELM_PLUGINS="+filepath.Join(data, "plugins"),
		"HELM_CONFIG_HOME="+filepath.Join(data, "config"), "HELM_CACHE_HOME="+filepath.Join(data, "cache"))
	helm := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(helm4, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	// No .prov (Helm 4 verifies a PGP provenance by default): --verify=false.
	helm("plugin", "install", archive, "--verify=false")
	if list := helm("plugin", "list"); !strings.Contains(list, PluginName) || !strings.Contains(list, testVersion) {
		t.Fatalf("helm plugin list does not show %s %s:\n%s", PluginName, testVersion, list)
	}
	repo, _ := toolcache.RepoRoot()
	chart := filepath.Join(builtA, "charts", "commons-"+testVersion+".tgz")
	values := filepath.Join(repo, "charts/commons/ci/tenants-backups-values.yaml")
	policy := filepath.Join(repo, "examples/policies/db-app-split.yaml")
	const placed = "kommons.io/pool: db"
	if plain := helm("template", "r", chart, "-f", values); strings.Contains(plain, placed) {
		t.Fatalf("the chart alone already renders %q", placed)
	}
	out := helm("template", "r", chart, "-f", values, "--post-renderer", PluginName, "--post-renderer-args", "--config="+policy)
	if !strings.Contains(out, placed) {
		t.Fatalf("rendered through the installed plugin, nothing is placed on the db pool:\n%.3000s", out)
	}
}
