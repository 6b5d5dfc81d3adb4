package chartcheck

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/kommons/kommons/internal/testutil/toolcache"
)

// accepted is one entry of kube-score.yaml: a finding a chart keeps, and why.
type accepted struct {
	Test    string   `json:"test"`
	Charts  []string `json:"charts,omitempty"`
	Objects []string `json:"objects,omitempty"`
	Reason  string   `json:"reason"`
}

func (a accepted) covers(chart, object string) bool {
	return (len(a.Charts) == 0 || contains(a.Charts, chart)) && (len(a.Objects) == 0 || contains(a.Objects, object))
}

func loadAccepted(t *testing.T) []accepted {
	t.Helper()
	b, err := os.ReadFile("kube-score.yaml")
	require.NoError(t, err)
	var f struct {
		Accepted []accepted `json:"accepted"`
	}
	require.NoError(t, yaml.UnmarshalStrict(b, &f))
	for _, a := range f.Accepted {
		require.NotEmpty(t, strings.TrimSpace(a.Reason), "kube-score.yaml: accepted check %s needs a reason", a.Test)
	}
	return f.Accepted
}

// finding is one kube-score check graded critical or warning on one object.
type finding struct {
	Chart, Values, Test, Object, Grade, Summary string
}

func (f finding) String() string {
	return fmt.Sprintf("%s (%s): [%s] %s on %s: %s", f.Chart, f.Values, f.Grade, f.Test, f.Object, f.Summary)
}

// kubeScore runs kube-score (every default check, none ignored) on a manifest
// and returns its critical and warning findings.
func kubeScore(t *testing.T, bin, manifest string) []finding {
	t.Helper()
	out, err := exec.Command(bin, "score", "--output-format", "json", manifest).Output()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
		err = nil // findings: exit 1, the JSON is complete
	}
	require.NoError(t, err, "kube-score")
	var objects []struct {
		ObjectName string `json:"object_name"`
		ObjectMeta struct {
			Name string `json:"name"`
		} `json:"object_meta"`
		Checks []struct {
			Check struct {
				ID string `json:"id"`
			} `json:"check"`
			Grade    int  `json:"grade"`
			Skipped  bool `json:"skipped"`
			Comments []struct {
				Path    string `json:"path"`
				Summary string `json:"summary"`
			} `json:"comments"`
		} `json:"checks"`
	}
	require.NoError(t, json.Unmarshal(out, &objects), "kube-score JSON")
	var found []finding
	for _, o := range objects {
		for _, c := range o.Checks {
			grade := map[int]string{1: "CRITICAL", 5: "WARNING"}[c.Grade]
			if c.Skipped || grade == "" {
				continue
			}
			var summaries []string
			for _, cm := range c.Comments {
				summaries = append(summaries, strings.TrimPrefix(cm.Path+": ", ": ")+cm.Summary)
			}
			found = append(found, finding{Test: c.Check.ID, Object: o.ObjectMeta.Name, Grade: grade, Summary: strings.Join(summaries, "; ")})
		}
	}
	return found
}

// kubeScoreTools returns Helm 3 and kube-score from the tool cache; a missing
// one skips the test (fails under CI=true or KOMMONS_E2E=1).
func kubeScoreTools(t *testing.T) (helm3, kubeScore string) {
	t.Helper()
	return toolcache.Require(t, "helm3", "HELM3_VERSION", "helm", ""),
		toolcache.Require(t, "kube-score", "KUBE_SCORE_VERSION", "kube-score", "")
}

// TestKubeScore: kube-score on every application chart, with default values and every
// ci/*-values.yaml, finds exactly what kube-score.yaml accepts for that chart
// (no unexplained finding, no stale acceptance), and every chart README lists
// its accepted checks in a "kube-score" section.
func TestKubeScore(t *testing.T) {
	helm3, bin := kubeScoreTools(t)
	root, err := toolcache.RepoRoot()
	require.NoError(t, err)
	acceptedChecks := loadAccepted(t)
	used := make([]bool, len(acceptedChecks))

	for _, chart := range chartDirs(t, root) {
		name := filepath.Base(chart)
		if isLibrary(t, filepath.Join(root, chart)) {
			continue // renders nothing
		}
		t.Run(chart, func(t *testing.T) {
			staged := stage(t, helm3, root, chart)
			var unexplained []string
			for _, vf := range valuesFiles(staged) {
				label := "defaults"
				args := []string{"template", "release-" + name, staged, "--namespace", "checks"}
				if vf != "" {
					label = filepath.Base(vf)
					args = append(args, "-f", vf)
				}
				manifest, err := exec.Command(helm3, args...).Output()
				require.NoError(t, err, "helm template %s (%s)", chart, label)
				path := filepath.Join(t.TempDir(), "manifest.yaml")
				require.NoError(t, os.WriteFile(path, manifest, 0o644))
				for _, f := range kubeScore(t, bin, path) {
					f.Chart, f.Values = name, label
					ok := false
					for i, a := range acceptedChecks {
						if a.Test == f.Test && a.covers(name, f.Object) {
							ok, used[i] = true, true
						}
					}
					if !ok {
						unexplained = append(unexplained, f.String())
					}
				}
			}
			sort.Strings(unexplained)
			assert.Empty(t, unexplained, "kube-score findings neither fixed nor accepted (with a reason) in test/chartcheck/kube-score.yaml")

			var mine []string
			for _, a := range acceptedChecks {
				if len(a.Charts) == 0 || contains(a.Charts, name) {
					mine = append(mine, a.Test)
				}
			}
			readme, err := os.ReadFile(filepath.Join(root, chart, "README.md"))
			if os.IsNotExist(err) && strings.HasPrefix(chart, "test/") {
				return // harness charts have no README: kube-score.yaml holds their reasons
			}
			require.NoError(t, err, "every chart has a README")
			section := regexp.MustCompile(`(?ms)^## kube-score\n(.*?)(?:^## |\z)`).FindSubmatch(readme)
			require.NotNil(t, section, "%s/README.md has no \"## kube-score\" section", chart)
			for _, test := range mine {
				assert.Contains(t, string(section[1]), "`"+test+"`", "%s/README.md, kube-score section: the accepted check %s and its reason", chart, test)
			}
		})
	}
	if !t.Failed() {
		for i, a := range acceptedChecks {
			assert.True(t, used[i], "kube-score.yaml accepts %s for %v %v, but no chart has that finding any more: remove the entry (and its README lines)", a.Test, a.Charts, a.Objects)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
