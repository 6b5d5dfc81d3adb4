// Package chartcheck runs the static checks every chart in the repository
// must pass: helm lint --strict (Helm 3 and Helm 4), ct lint (offline),
// kubeconform -strict against schemas generated from the test cluster's
// apiserver, on `helm template` output with default values and with every
// ci/*-values.yaml (library charts are linted only), and kube-score (kubescore_test.go, no cluster needed) with
// exactly the findings kube-score.yaml accepts, each with its reason.
package chartcheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/kommons/kommons/internal/testutil/testcluster"
)

func TestMain(m *testing.M) { testcluster.Main(m) }

// chartDirs lists every chart the checks cover, relative to the repo root.
func chartDirs(t *testing.T, root string) []string {
	var dirs []string
	for _, pattern := range []string{"charts/*/Chart.yaml", "test/charts/*/Chart.yaml", "examples/charts/*/Chart.yaml"} {
		m, err := filepath.Glob(filepath.Join(root, pattern))
		require.NoError(t, err)
		for _, f := range m {
			rel, _ := filepath.Rel(root, filepath.Dir(f))
			dirs = append(dirs, rel)
		}
	}
	sort.Strings(dirs)
	require.NotEmpty(t, dirs)
	return dirs
}

// stage copies the repository's chart trees into a temp dir (so file://
// dependencies resolve and `helm dependency build` does not write into the
// work tree) and returns the staged path of chart; helm3 builds its dependencies.
func stage(t *testing.T, helm3, root, chart string) string {
	tmp := t.TempDir()
	for _, d := range []string{"charts", "test/charts", "examples/charts"} {
		src := filepath.Join(root, d)
		if _, err := os.Stat(src); err != nil {
			continue
		}
		dst := filepath.Join(tmp, d)
		require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
		require.NoError(t, exec.Command("cp", "-r", src, dst).Run())
	}
	staged := filepath.Join(tmp, chart)
	if b, _ := os.ReadFile(filepath.Join(staged, "Chart.yaml")); strings.Contains(string(b), "dependencies:") {
		out, err := exec.Command(helm3, "dependency", "build", staged).CombinedOutput()
		require.NoError(t, err, "helm dependency build %s:\n%s", chart, out)
	}
	return staged
}

// isLibrary reports whether the chart in dir is a library chart (type:
// library): it is linted, but renders nothing to check.
func isLibrary(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	require.NoError(t, err)
	var meta struct {
		Type string `json:"type"`
	}
	require.NoError(t, yaml.Unmarshal(b, &meta), "%s/Chart.yaml", dir)
	return meta.Type == "library"
}

func valuesFiles(chartDir string) []string {
	files := []string{""} // default values
	m, _ := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	sort.Strings(m)
	return append(files, m...)
}

func TestCharts(t *testing.T) {
	c := testcluster.Start(t)
	root := c.Tools.RepoRoot
	schemas, err := c.EnsureSchemas(t.Context())
	require.NoError(t, err)
	kubeVersion := c.Tools.Versions["KUBE_VERSION"]

	for _, chart := range chartDirs(t, root) {
		name := filepath.Base(chart)
		t.Run(chart, func(t *testing.T) {
			staged := stage(t, c.Tools.Helm3, root, chart)
			t.Run("helm3-lint-strict", func(t *testing.T) {
				for _, vf := range valuesFiles(staged) {
					args := []string{"lint", "--strict", staged}
					if vf != "" {
						args = append(args, "-f", vf)
					}
					c.Run(t, c.Tools.Helm3, args...)
				}
			})
			t.Run("helm4-lint-strict", func(t *testing.T) {
				c.Run(t, c.Tools.Helm4, "lint", "--strict", staged)
			})
			t.Run("ct-lint", func(t *testing.T) {
				if _, err := exec.LookPath("yamllint"); err != nil {
					t.Fatal("ct lint needs yamllint (apt-get install yamllint; .ci/run installs it)")
				}
				cmd := exec.Command(c.Tools.CT, "lint", "--charts", staged, "--chart-dirs", filepath.Dir(staged),
					"--validate-maintainers=false", "--validate-chart-schema=false", "--check-version-increment=false",
					"--lint-conf", filepath.Join(c.Tools.CTConfigDir, "lintconf.yaml"))
				cmd.Dir = staged
				cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(c.Tools.Helm3)+":"+os.Getenv("PATH"))
				out, err := cmd.CombinedOutput()
				require.NoError(t, err, "ct lint:\n%s", out)
			})
			if isLibrary(t, staged) {
				return // `helm template` refuses a library chart: its charts render it
			}
			for _, vf := range valuesFiles(staged) {
				label := "defaults"
				if vf != "" {
					label = filepath.Base(vf)
				}
				t.Run("render/"+label, func(t *testing.T) {
					args := []string{"template", "release-" + name, staged, "--namespace", "checks"}
					if vf != "" {
						args = append(args, "-f", vf)
					}
					manifest := c.Run(t, c.Tools.Helm3, args...)
					path := filepath.Join(t.TempDir(), "manifest.yaml")
					require.NoError(t, os.WriteFile(path, []byte(manifest), 0o644))

					out, err := exec.Command(c.Tools.Kubeconform, "-strict", "-summary", "-schema-location", schemas,
						"-kubernetes-version", kubeVersion, path).CombinedOutput()
					require.NoError(t, err, "kubeconform -strict:\n%s", out)
				})
			}
		})
	}
}
