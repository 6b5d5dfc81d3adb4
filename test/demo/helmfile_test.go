package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/kommons/kommons/internal/testutil/testcluster"
)

// helmfile is the part of examples/helmfile.yaml this test reads.
type helmfile struct {
	HelmDefaults struct {
		PostRenderer     string   `json:"postRenderer"`
		PostRendererArgs []string `json:"postRendererArgs"`
		WaitForJobs      bool     `json:"waitForJobs"`
	} `json:"helmDefaults"`
	Releases []struct {
		Name, Namespace, Chart string
		Needs                  []string         `json:"needs"`
		Values                 []map[string]any `json:"values"`
	} `json:"releases"`
}

// TestExampleHelmfile runs what `helmfile apply` runs for each release of
// examples/helmfile.yaml, in its order, as `helm template` with the same
// chart, values, post-renderer and arguments (from the repository root, as
// the file says), and checks that commons comes first, the modules need it,
// and the post-renderer placed the workloads. helmfile itself is not
// packaged for Debian; its field names are checked against its documentation.
func TestExampleHelmfile(t *testing.T) {
	tools, err := testcluster.FindTools()
	if err != nil {
		if os.Getenv("CI") == "true" || os.Getenv(testcluster.EnvRequire) == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	b, err := os.ReadFile(filepath.Join(tools.RepoRoot, "examples", "helmfile.yaml"))
	require.NoError(t, err)
	var hf helmfile
	require.NoError(t, yaml.Unmarshal(b, &hf), "examples/helmfile.yaml")
	require.GreaterOrEqual(t, len(hf.Releases), 2)
	assert.Equal(t, "commons", hf.Releases[0].Name, "commons is installed first")
	for _, r := range hf.Releases[1:] {
		assert.Contains(t, r.Needs, "commons/commons", "module %s needs commons", r.Name)
	}
	assert.True(t, hf.HelmDefaults.WaitForJobs)
	require.Equal(t, "postrender", hf.HelmDefaults.PostRenderer)

	// The post-renderer as `go install` / `make build` provides it.
	binDir := t.TempDir()
	build := exec.Command("go", "build", "-o", binDir+"/", "./cmd/postrender")
	build.Dir = tools.RepoRoot
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	// Chart copies: helm dependency build writes there, never into the repository.
	r := &demoRun{cfg: &config{stateDir: t.TempDir()}, tools: tools}
	require.NoError(t, r.copyCharts())
	for _, rel := range hf.Releases {
		chart := filepath.Join(r.charts, "examples", rel.Chart)
		_, err := os.Stat(filepath.Join(chart, "Chart.yaml"))
		require.NoError(t, err, "release %s: chart %s (relative to examples/)", rel.Name, rel.Chart)
		dep := exec.Command(tools.Helm3, "dependency", "build", chart)
		out, err := dep.CombinedOutput()
		require.NoError(t, err, "%s", out)
		args := []string{"template", rel.Name, chart, "-n", rel.Namespace, "--post-renderer", "postrender"}
		for _, a := range hf.HelmDefaults.PostRendererArgs {
			args = append(args, "--post-renderer-args", a)
		}
		for i, v := range rel.Values {
			f := filepath.Join(t.TempDir(), rel.Name+"-values.yaml")
			vb, err := yaml.Marshal(v)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(f, vb, 0o600), "values %d", i)
			args = append(args, "-f", f)
		}
		cmd := exec.Command(tools.Helm3, args...)
		cmd.Dir = tools.RepoRoot
		cmd.Env = append(os.Environ(), "PATH="+binDir+":"+os.Getenv("PATH"))
		manifest, err := cmd.CombinedOutput()
		require.NoError(t, err, "helm %s:\n%s", strings.Join(args, " "), manifest)
		assert.Contains(t, string(manifest), "kommons.io/pool: app", "release %s: the post-renderer placed its apps", rel.Name)
	}
}
