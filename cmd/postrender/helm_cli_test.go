package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/kommons/kommons/internal/testutil/toolcache"
)

// helmEnv isolates Helm's config, data and cache directories.
func helmEnv(t *testing.T) []string {
	d := t.TempDir()
	return []string{"HELM_DATA_HOME=" + d + "/data", "HELM_CONFIG_HOME=" + d + "/config", "HELM_CACHE_HOME=" + d + "/cache", "XDG_CACHE_HOME=" + d + "/xdg"}
}

func helm(t *testing.T, bin string, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

const chartPath = "../../pkg/postrender/testdata/chart"

// TestHelm3Executable runs the real Helm 3 CLI with postrender as an
// executable post-renderer: hooks are not post-rendered.
func TestHelm3Executable(t *testing.T) {
	h := toolcache.Require(t, "helm3", "HELM3_VERSION", "helm", "KOMMONS_HELM3")
	bin := buildBinary(t)
	policy, _ := filepath.Abs(policyPath)
	out, err := helm(t, h, helmEnv(t), "template", "demo", chartPath, "--post-renderer", bin, "--post-renderer-args", "--config="+policy)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	docs := splitBySource(out)
	if !strings.Contains(docs["placement-demo/templates/db.yaml"], "kommons.io/pool: db") || !strings.Contains(docs["placement-demo/templates/app.yaml"], "kommons.io/pool: app") {
		t.Errorf("placement missing:\n%s", out)
	}
	if strings.Contains(docs["placement-demo/templates/hook.yaml"], "nodeSelector") {
		t.Errorf("Helm 3 post-rendered a hook:\n%s", docs["placement-demo/templates/hook.yaml"])
	}
	out, err = helm(t, h, helmEnv(t), "template", "demo", chartPath, "--post-renderer", bin, "--post-renderer-args", "--config=/nonexistent.yaml")
	if err == nil || !strings.Contains(out, "/nonexistent.yaml") {
		t.Errorf("Helm 3 should show postrender's stderr: %v\n%s", err, out)
	}
}

// TestHelm4Plugin installs plugins/kommons-postrender into an isolated Helm 4
// home, renders the test chart through it (hooks included), and checks that a
// failure's cause, which Helm 4 drops, is in the error log.
func TestHelm4Plugin(t *testing.T) {
	h := toolcache.Require(t, "helm4", "HELM4_VERSION", "helm", "KOMMONS_HELM4")
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
		t.Skip("plugin ships linux and darwin binaries only")
	}
	plugin := filepath.Join(t.TempDir(), "kommons-postrender")
	if err := os.MkdirAll(filepath.Join(plugin, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	meta, err := os.ReadFile("../../plugins/kommons-postrender/plugin.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(plugin, "plugin.yaml"), meta, 0o644); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(plugin, "bin", "postrender-"+runtime.GOOS+"-"+runtime.GOARCH)
	if out, err := exec.Command("go", "build", "-o", target, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	env := helmEnv(t)
	if out, err := helm(t, h, env, "plugin", "install", plugin); err != nil {
		t.Fatalf("helm plugin install: %v\n%s", err, out)
	}
	policy, _ := filepath.Abs(policyPath)
	out, err := helm(t, h, env, "template", "demo", chartPath, "--post-renderer", "kommons-postrender", "--post-renderer-args", "--config="+policy)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	docs := splitBySource(out)
	if !strings.Contains(docs["placement-demo/templates/db.yaml"], "kommons.io/pool: db") {
		t.Errorf("placement missing:\n%s", out)
	}
	if !strings.Contains(docs["placement-demo/templates/hook.yaml"], "kommons.io/pool: app") {
		t.Errorf("Helm 4 should post-render hooks (combined strategy):\n%s", docs["placement-demo/templates/hook.yaml"])
	}
	out, err = helm(t, h, env, "template", "demo", chartPath, "--post-renderer", "kommons-postrender", "--post-renderer-args", "--config=/nonexistent.yaml", "--debug")
	if err == nil || !strings.Contains(out, "exited with error") || !strings.Contains(out, "exitCode=2") {
		t.Fatalf("expected Helm 4's opaque plugin error with the exit code under --debug: %v\n%s", err, out)
	}
	var xdg string
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "XDG_CACHE_HOME="); ok {
			xdg = v
		}
	}
	data, err := os.ReadFile(filepath.Join(xdg, "kommons-postrender", "last-error.log"))
	if err != nil || !strings.Contains(string(data), "/nonexistent.yaml") {
		t.Fatalf("error log: %v %q", err, data)
	}
}

// splitBySource groups helm template output by "# Source:" file.
func splitBySource(out string) map[string]string {
	docs := map[string]string{}
	for _, d := range strings.Split(out, "\n---\n") {
		for _, line := range strings.Split(d, "\n") {
			if src, ok := strings.CutPrefix(line, "# Source: "); ok {
				docs[src] += d
				break
			}
		}
	}
	return docs
}
