// Package helmplugin stages kommons' Helm 4 post-renderer plugin for tests:
// plugins/kommons-postrender with the postrender binary built for this
// machine where its plugin.yaml expects it, ready for `helm plugin install`.
package helmplugin

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Name is the plugin's name, as `--post-renderer` takes it under Helm 4.
const Name = "kommons-postrender"

// StagePostrender builds cmd/postrender and returns a plugin directory
// (plugin.yaml + bin/postrender-GOOS-GOARCH) in a temp dir.
func StagePostrender(t testing.TB, repoRoot string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), Name)
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	meta, err := os.ReadFile(filepath.Join(repoRoot, "plugins", Name, "plugin.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "plugin.yaml"), meta, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "bin", "postrender-"+runtime.GOOS+"-"+runtime.GOARCH), "./cmd/postrender")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/postrender: %v\n%s", err, out)
	}
	return dir
}
