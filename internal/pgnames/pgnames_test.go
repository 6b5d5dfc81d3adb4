package pgnames

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
)

type input struct {
	Namespace string `json:"namespace"`
	Release   string `json:"release"`
	Name      string `json:"name"`
}

var long200 = strings.Repeat("abcdefghij", 20)

// cases is the table both implementations must agree on.
var cases = []input{
	{"imaging", "orthanc", "orthanc"},
	{"imaging", "orthanc", "orthanc_index"},
	{"imaging-dev", "orthanc", "orthanc"},
	{"imaging", "orthanc-2", "orthanc"},
	{"imaging", "orthanc", "Orthanc"},
	{"imaging", "orthanc", "ORTHANC"},
	{"imaging", "orthanc", "o'rthanc"},
	{"imaging", "orthanc", `o"rthanc`},
	{"imaging", "orthanc", "x'; DROP TABLE sentinel; --"},
	{"imaging", "orthanc", `x"; DROP TABLE sentinel; --`},
	{"imaging", "orthanc", "a--b"},
	{"imaging", "orthanc", "a;b"},
	{"imaging", "orthanc", "select"},
	{"imaging", "orthanc", "user"},
	{"imaging", "orthanc", "public"},
	{"imaging", "orthanc", "données"},
	{"imaging", "orthanc", "ÉCOLE"},
	{"imaging", "orthanc", "İstanbul"},
	{"imaging", "orthanc", "日本語"},
	{"imaging", "orthanc", "emoji😀x"},
	{"imaging", "orthanc", "tab\tnew\nline"},
	{"imaging", "orthanc", "a__b"},
	{"imaging", "orthanc", "_lead"},
	{"imaging", "orthanc", "trail_"},
	{"imaging", "orthanc", "$1"},
	{"imaging", "orthanc", "{{ .Values }}"},
	{"imaging", "orthanc", "%s%d"},
	{"imaging", "orthanc", ";;;"},
	{"imaging", "orthanc", long200},
	{"imaging", "orthanc", long200 + "x"},
	{"imaging", "orthanc", long200 + "y"},
	{"pg", "orthanc", "orthanc"},
	{"PG", "orthanc", "orthanc"},
	{"sandbox-" + strings.Repeat("a", 50) + "-1", "orthanc", "orthanc"},
	{"sandbox-" + strings.Repeat("a", 50) + "-2", "orthanc", "orthanc"},
	{"imaging", strings.Repeat("r", 60), "db"},
	{"imaging", strings.Repeat("r", 60), "db2"},
	{"a", "b", strings.Repeat("c", 59)},
	{"a", "b", strings.Repeat("c", 60)},
	{"a", "b_c", "d"},
	{"a_b", "c", "d"},
	{"a", "b", "c_d"},
	{"team-a", "web", "db"},
	{"team", "a-web", "db"},
	collisionA,
	collisionB,
	{"team-a-" + strings.Repeat("n", 56), strings.Repeat("r", 53), long200},
	{"team-" + strings.Repeat("n", 58), "a-" + strings.Repeat("r", 51), long200},
}

// collisionA and collisionB are two Kubernetes-valid scopes (the
// team-a/web, team/a-web shape) whose version 1 names collide: found once by
// a birthday search over db_<48 x>_<i> in both scopes (18,147 and 17,781
// names), as anyone can.
var (
	collisionA = input{"team-a", "web", "db_" + strings.Repeat("x", 48) + "_18146"}
	collisionB = input{"team", "a-web", "db_" + strings.Repeat("x", 48) + "_17780"}
)

func TestPlainNames(t *testing.T) {
	got, err := Physical("imaging", "orthanc", "orthanc")
	require.NoError(t, err)
	assert.Equal(t, "imaging_orthanc_orthanc", got)
	got, err = Physical("a", "b", strings.Repeat("c", 59))
	require.NoError(t, err)
	assert.Equal(t, 63, len(got))
	assert.Equal(t, "a_b_"+strings.Repeat("c", 59), got)
}

func TestHashedNames(t *testing.T) {
	got, err := Physical("imaging-dev", "orthanc", "orthanc")
	require.NoError(t, err)
	assert.Regexp(t, `^imaging_dev_orthanc_orthanc__[0-9a-f]{16}$`, got)
	got, err = Physical("pg", "x", "y")
	require.NoError(t, err)
	assert.Regexp(t, `^_pg_x_y__[0-9a-f]{16}$`, got)
	got, err = Physical("imaging", "orthanc", "x'; DROP TABLE sentinel; --")
	require.NoError(t, err)
	assert.Regexp(t, `^imaging_orthanc_x_drop_table_sentinel__[0-9a-f]{16}$`, got)
}

// TestVersion1CollisionIsGone: two scopes whose version 1 (32-bit) names
// collide get different names now.
func TestVersion1CollisionIsGone(t *testing.T) {
	a, okA := Legacy(collisionA.Namespace, collisionA.Release, collisionA.Name)
	b, okB := Legacy(collisionB.Namespace, collisionB.Release, collisionB.Name)
	require.True(t, okA && okB)
	require.Equal(t, a, b, "the pair collides under version 1")
	assert.Len(t, a, MaxLen)
	newA, err := Physical(collisionA.Namespace, collisionA.Release, collisionA.Name)
	require.NoError(t, err)
	newB, err := Physical(collisionB.Namespace, collisionB.Release, collisionB.Name)
	require.NoError(t, err)
	assert.NotEqual(t, newA, newB)
	assert.Regexp(t, `^team_a_web_db_x{31}__[0-9a-f]{16}$`, newA)
}

// TestLegacyIsVersion1: Legacy keeps version 1's 53-byte base and 8 hex
// digits (names earlier releases created), and plain names have no legacy
// name.
func TestLegacyIsVersion1(t *testing.T) {
	old, ok := Legacy("imaging-dev", "orthanc", "orthanc")
	require.True(t, ok)
	assert.Regexp(t, `^imaging_dev_orthanc_orthanc__[0-9a-f]{8}$`, old)
	cur, _ := Physical("imaging-dev", "orthanc", "orthanc")
	assert.Equal(t, cur[:len(cur)-HashLen+LegacyHashLen], old, "same base, shorter hash")
	old, ok = Legacy("imaging", "orthanc", long200)
	require.True(t, ok)
	assert.Equal(t, "imaging_orthanc_"+long200[:53-16]+"__"+Hash("imaging", "orthanc", long200)[:LegacyHashLen], old)
	_, ok = Legacy("imaging", "orthanc", "orthanc")
	assert.False(t, ok, "plain names are the same in both versions")
	_, ok = Legacy("", "orthanc", "orthanc")
	assert.False(t, ok)
}

func TestEmptyRefused(t *testing.T) {
	for _, in := range []input{{"", "r", "n"}, {"n", "", "n"}, {"n", "r", ""}} {
		_, err := Physical(in.Namespace, in.Release, in.Name)
		assert.ErrorIs(t, err, ErrEmpty, "%+v", in)
	}
}

func TestPropertiesOnTable(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
	seen := map[string]input{}
	for _, in := range cases {
		got, err := Physical(in.Namespace, in.Release, in.Name)
		require.NoError(t, err)
		assert.Regexp(t, valid, got, "%+v", in)
		assert.False(t, strings.HasPrefix(got, "pg_"), "%+v -> %s", in, got)
		if prev, dup := seen[got]; dup {
			t.Errorf("%+v and %+v both map to %s", prev, in, got)
		}
		seen[got] = in
		again, _ := Physical(in.Namespace, in.Release, in.Name)
		assert.Equal(t, got, again, "stable")
		if IsPlain(in.Namespace, in.Release, in.Name) {
			assert.NotContains(t, got, "__")
		} else {
			assert.Contains(t, got, "__"+Hash(in.Namespace, in.Release, in.Name))
		}
	}
}

// TestHelmTemplateMatches renders charts/postgres-init/templates/_names.tpl
// through the Helm SDK engine, in a throwaway chart, for every input of the
// table and compares with Physical.
func TestHelmTemplateMatches(t *testing.T) {
	out := renderNames(t, cases)
	var got []string
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	require.Len(t, got, len(cases))
	for i, in := range cases {
		want, err := Physical(in.Namespace, in.Release, in.Name)
		require.NoError(t, err)
		assert.Equal(t, want, got[i], "input %+v", in)
	}
}

func TestHelmTemplateRefusesEmpty(t *testing.T) {
	for _, in := range []input{{"", "r", "n"}, {"n", "", "n"}, {"n", "r", ""}} {
		_, err := tryRender(t, []input{in})
		require.Error(t, err, "%+v", in)
		assert.Contains(t, err.Error(), "is required")
	}
}

func renderNames(t *testing.T, ins []input) string {
	t.Helper()
	out, err := tryRender(t, ins)
	require.NoError(t, err)
	return out
}

func tryRender(t *testing.T, ins []input) (string, error) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "names-test")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "templates"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Chart.yaml"),
		[]byte("apiVersion: v2\nname: names-test\nversion: 0.1.0\n"), 0o644))
	tpl, err := os.ReadFile(templatePath(t))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "templates", "_names.tpl"), tpl, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "templates", "names.json"), []byte(
		`{{- $out := list -}}
{{- range .Values.cases -}}
{{- $out = append $out (include "postgres-init.physicalName" .) -}}
{{- end -}}
{{- toJson $out -}}
`), 0o644))
	chrt, err := loader.Load(dir)
	require.NoError(t, err)
	raw := make([]any, len(ins))
	for i, in := range ins {
		raw[i] = map[string]any{"namespace": in.Namespace, "release": in.Release, "name": in.Name}
	}
	vals, err := chartutil.ToRenderValues(chrt, map[string]any{"cases": raw},
		chartutil.ReleaseOptions{Name: "names-test", Namespace: "default"}, chartutil.DefaultCapabilities)
	require.NoError(t, err)
	rendered, err := engine.Render(chrt, vals)
	if err != nil {
		return "", err
	}
	return rendered["names-test/templates/names.json"], nil
}

func templatePath(t *testing.T) string {
	_, file, _, ok := runtime.Caller(0)
	require.True(t, ok)
	return filepath.Join(filepath.Dir(file), "..", "..", "charts", "postgres-init", "templates", "_names.tpl")
}
