package render_test

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/kommons/kommons/test/render"
)

var update = flag.Bool("update", false, "rewrite the golden renders in testdata/golden")

// masked replaces a value that differs between two renders of the same
// chart and values (a generated password, and what embeds it).
const masked = "<differs between renders>"

// goldenCase is one chart rendered with one values file (or its defaults).
type goldenCase struct {
	chart  string // directory, relative to the repository root
	values string // ci/*-values.yaml, "" for the defaults
}

func (c goldenCase) golden() string {
	label := "defaults"
	if c.values != "" {
		label = strings.TrimSuffix(filepath.Base(c.values), ".yaml")
	}
	return filepath.Join("testdata", "golden", filepath.Base(c.chart), label+".yaml")
}

// goldenCases lists every application chart of the repository (library
// charts render nothing) with its default values, each ci/*-values.yaml and
// each testdata/values/<chart>/*-values.yaml (overrides no ci file sets).
func goldenCases(t *testing.T) []goldenCase {
	t.Helper()
	var cases []goldenCase
	for _, pattern := range []string{"charts/*/Chart.yaml", "examples/charts/*/Chart.yaml", "test/charts/*/Chart.yaml"} {
		files, err := filepath.Glob(filepath.Join("..", "..", pattern))
		require.NoError(t, err)
		for _, f := range files {
			var meta struct {
				Type string `json:"type"`
			}
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			require.NoError(t, yaml.Unmarshal(b, &meta), f)
			if meta.Type == "library" {
				continue
			}
			dir := filepath.Dir(f)
			cases = append(cases, goldenCase{chart: dir})
			values, err := filepath.Glob(filepath.Join(dir, "ci", "*-values.yaml"))
			require.NoError(t, err)
			extra, err := filepath.Glob(filepath.Join("testdata", "values", filepath.Base(dir), "*-values.yaml"))
			require.NoError(t, err)
			values = append(values, extra...)
			sort.Strings(values)
			for _, v := range values {
				cases = append(cases, goldenCase{chart: dir, values: v})
			}
		}
	}
	require.NotEmpty(t, cases)
	return cases
}

// TestGoldenRenders renders every application chart (release "golden" in
// namespace "checks": plain physical names, so that a change of the hashed
// form does not touch the goldens) with its default values, with each
// ci/*-values.yaml and with each testdata/values/<chart>/*-values.yaml, and
// compares the result with testdata/golden: every
// object in manifest order with its template, keys sorted, and NOTES.txt.
// A value that differs between two renders (a generated password) is
// masked. A chart change that alters what a chart renders shows up here;
// rewrite the goldens with `go test ./test/render/ -run TestGoldenRenders
// -update` and review their diff with the change.
func TestGoldenRenders(t *testing.T) {
	want := map[string]bool{}
	for _, c := range goldenCases(t) {
		want[c.golden()] = true
		t.Run(strings.TrimSuffix(strings.TrimPrefix(c.golden(), filepath.Join("testdata", "golden")+"/"), ".yaml"), func(t *testing.T) {
			got := goldenRender(t, c)
			if *update {
				require.NoError(t, os.MkdirAll(filepath.Dir(c.golden()), 0o755))
				require.NoError(t, os.WriteFile(c.golden(), []byte(got), 0o644))
				return
			}
			b, err := os.ReadFile(c.golden())
			require.NoError(t, err, "no golden render: run go test ./test/render/ -run TestGoldenRenders -update and review it")
			if string(b) != got {
				t.Errorf("%s renders differently from %s (-update rewrites it; review the diff):\n%s", c.chart, c.golden(), lineDiff(t, string(b), got))
			}
		})
	}
	goldens, err := filepath.Glob(filepath.Join("testdata", "golden", "*", "*.yaml"))
	require.NoError(t, err)
	for _, g := range goldens {
		if !want[g] {
			if *update {
				require.NoError(t, os.Remove(g))
				continue
			}
			t.Errorf("%s: no chart and values file renders it any more: remove it (or run -update)", g)
		}
	}
}

// goldenRender renders the case twice and returns its canonical text with
// the values that differ between the two renders masked.
func goldenRender(t *testing.T, c goldenCase) string {
	t.Helper()
	// What the chart renders: no Secret that secret-init writes in a cluster.
	o := render.Options{ReleaseName: "golden", Namespace: "checks", NoSecretInit: true}
	if c.values != "" {
		o.ValuesFiles = []string{c.values}
	}
	a := render.MustChart(t, c.chart, o)
	b := render.MustChart(t, c.chart, o)
	// The same objects from the same templates; a name may differ (a Job
	// named after a hash of the passwords it sets) and is masked like any value.
	require.Equal(t, sourcesAndKinds(a), sourcesAndKinds(b), "two renders of %s list different objects", c.chart)
	var out strings.Builder
	for i, obj := range a.Objects {
		fields := maskDiff(obj.Fields, b.Objects[i].Fields)
		y, err := yaml.Marshal(fields)
		require.NoError(t, err)
		fmt.Fprintf(&out, "---\n# Source: %s\n%s", obj.Source, y)
	}
	notesA, notesB := strings.Split(a.Notes, "\n"), strings.Split(b.Notes, "\n")
	require.Equal(t, len(notesA), len(notesB), "two renders of %s NOTES.txt", c.chart)
	out.WriteString("---\n# NOTES.txt\n")
	for i, l := range notesA {
		if l != notesB[i] {
			l = masked
		}
		out.WriteString("# " + strings.TrimRight(l, " ") + "\n")
	}
	return out.String()
}

// maskDiff returns a copy of a with every scalar that differs in b masked.
func maskDiff(a, b any) any {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			return masked
		}
		out := make(map[string]any, len(av))
		for k, v := range av {
			out[k] = maskDiff(v, bv[k])
		}
		return out
	case []any:
		bv, ok := b.([]any)
		if !ok || len(bv) != len(av) {
			return masked
		}
		out := make([]any, len(av))
		for i, v := range av {
			out[i] = maskDiff(v, bv[i])
		}
		return out
	default:
		if !reflect.DeepEqual(a, b) {
			return masked
		}
		return a
	}
}

// lineDiff is `diff -u` of the golden and the render.
func lineDiff(t *testing.T, want, got string) string {
	t.Helper()
	dir := t.TempDir()
	w, g := filepath.Join(dir, "golden"), filepath.Join(dir, "render")
	require.NoError(t, os.WriteFile(w, []byte(want), 0o644))
	require.NoError(t, os.WriteFile(g, []byte(got), 0o644))
	out, _ := exec.Command("diff", "-u", w, g).CombinedOutput() // exit 1: they differ
	return string(out)
}

// sourcesAndKinds lists each object's template and kind, in manifest order.
func sourcesAndKinds(m *render.Manifest) []string {
	out := make([]string, len(m.Objects))
	for i, o := range m.Objects {
		out[i] = o.Source + " " + o.Kind + " " + o.Namespace
	}
	return out
}
