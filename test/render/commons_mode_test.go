package render_test

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/test/render"
)

// TestCommonsModeFromLegacyKey: postgresql.mode external renders exactly what
// the legacy postgresql.bundled: false does, mode bundled what the defaults do.
func TestCommonsModeFromLegacyKey(t *testing.T) {
	external := map[string]any{"host": "db.example.com", "existingSecret": "rds-admin"}
	legacy := renderCommons(t, merge(map[string]any{"postgresql": map[string]any{"bundled": false, "external": external}}, tenants(map[string]any{"namespace": "imaging"})))
	byMode := renderCommons(t, merge(map[string]any{"postgresql": map[string]any{"mode": "external", "external": external}}, tenants(map[string]any{"namespace": "imaging"})))
	// The provisioner Job's name hashes the passwords each offline render generates anew.
	jobHash := regexp.MustCompile(`provisioner-[0-9a-f]{8}`)
	assert.Equal(t, jobHash.ReplaceAllString(legacy.Index(), "provisioner-X"), jobHash.ReplaceAllString(byMode.Index(), "provisioner-X"))
	_, ok := byMode.Get("StatefulSet", "commons", "commons-postgresql")
	assert.False(t, ok, "external mode runs no PostgreSQL")
	assert.Equal(t, "db.example.com", secretData(t, byMode.MustGet(t, "Secret", "imaging", "kommons-commons"))["PGHOST"])

	for _, values := range []map[string]any{nil, {"postgresql": map[string]any{"mode": "bundled"}}, {"postgresql": map[string]any{"bundled": true}}} {
		m := renderCommons(t, values)
		m.MustGet(t, "StatefulSet", "commons", "commons-postgresql")
	}
}

// TestCommonsRefusesTwoModes: the schema refuses postgresql.mode together with
// the legacy postgresql.bundled, and external mode without its facts.
func TestCommonsRefusesTwoModes(t *testing.T) {
	for name, tc := range map[string]struct {
		values map[string]any
		want   []string
	}{
		"mode and bundled":        {map[string]any{"postgresql": map[string]any{"mode": "bundled", "bundled": true}}, []string{"/postgresql/mode"}},
		"mode external, bundled":  {map[string]any{"postgresql": map[string]any{"mode": "external", "bundled": false, "external": map[string]any{"host": "h", "existingSecret": "s"}}}, []string{"/postgresql/mode"}},
		"unknown mode":            {map[string]any{"postgresql": map[string]any{"mode": "crunchy"}}, []string{"/postgresql/mode", "value must be one of"}},
		"external mode, no facts": {map[string]any{"postgresql": map[string]any{"mode": "external"}}, []string{"/postgresql/external/host", "/postgresql/external/existingSecret"}},
	} {
		t.Run(name, func(t *testing.T) {
			m, err := render.Chart(commonsChart, render.Options{ReleaseName: "commons", Namespace: "commons", Values: tc.values})
			require.Error(t, err, "values %v must be rejected", tc.values)
			require.Nil(t, m)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}
