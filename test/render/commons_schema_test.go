package render_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/test/render"
)

// TestCommonsRejectsWrongValues: values.schema.json and the chart's own checks
// refuse wrong values with a message naming the value to fix, and render nothing.
func TestCommonsRejectsWrongValues(t *testing.T) {
	cases := []struct {
		name   string
		values map[string]any
		want   []string // substrings of the error
	}{
		{"unknown top-level key", map[string]any{"postgres": map[string]any{}},
			[]string{"additional properties 'postgres' not allowed"}},
		{"unknown nested key", map[string]any{"postgresql": map[string]any{"replicas": 3}},
			[]string{"/postgresql", "additional properties 'replicas' not allowed"}},
		{"bad sslmode", map[string]any{"postgresql": map[string]any{"external": map[string]any{"sslmode": "on"}}},
			[]string{"/postgresql/external/sslmode", "value must be one of"}},
		{"bundled false without host or secret", map[string]any{"postgresql": map[string]any{"bundled": false}},
			[]string{"/postgresql/external/host", "/postgresql/external/existingSecret"}},
		{"tenant namespace not a DNS label", map[string]any{"tenants": []any{map[string]any{"namespace": "Imaging_NS"}}},
			[]string{"/tenants/0/namespace", "does not match pattern"}},
		{"tenant without namespace", map[string]any{"tenants": []any{map[string]any{"buckets": []any{"x"}}}},
			[]string{"/tenants/0", "missing property 'namespace'"}},
		{"duplicate bucket", map[string]any{"tenants": []any{map[string]any{"namespace": "a", "buckets": []any{"x", "x"}}}},
			[]string{"/tenants/0/buckets", "items at 0 and 1 are equal"}},
		{"bucket with upper case", map[string]any{"tenants": []any{map[string]any{"namespace": "a", "buckets": []any{"Dicom"}}}},
			[]string{"/tenants/0/buckets/0"}},
		{"image digest not sha256", map[string]any{"postgresql": map[string]any{"image": map[string]any{"digest": "latest"}}},
			[]string{"/postgresql/image/digest", "does not match pattern"}},
		{"storage size without unit", map[string]any{"postgresql": map[string]any{"persistence": map[string]any{"size": "10"}}},
			[]string{"/postgresql/persistence/size"}},
		{"root pods refused", map[string]any{"postgresql": map[string]any{"podSecurityContext": map[string]any{"runAsNonRoot": false}}},
			[]string{"/postgresql/podSecurityContext/runAsNonRoot"}},
		{"provisioner role pg_ prefix", map[string]any{"provisioner": map[string]any{"rolePrefix": "pg_"}},
			[]string{"/provisioner/rolePrefix"}},
		{"legacy provisioner role pg_ prefix", map[string]any{"provisioner": map[string]any{"legacyRoleName": "pg_admin"}},
			[]string{"/provisioner/legacyRoleName"}},
		{"the shared provisioner's keys are gone", map[string]any{"provisioner": map[string]any{"roleName": "kommons_provisioner"}},
			[]string{"roleName"}},
		{"addressing", map[string]any{"objectStorage": map[string]any{"external": map[string]any{"addressing": "dns"}}},
			[]string{"/objectStorage/external/addressing", "value must be one of 'path', 'virtual'"}},
		{"endpoint with a path", map[string]any{"objectStorage": map[string]any{"external": map[string]any{"endpoint": "https://s3.example.com/bucket"}}},
			[]string{"/objectStorage/external/endpoint"}},
		{"pdb string", map[string]any{"postgresql": map[string]any{"pdb": map[string]any{"maxUnavailable": "1"}}},
			[]string{"/postgresql/pdb/maxUnavailable", "got string, want integer"}},
		{"cron schedule", map[string]any{"backups": map[string]any{"schedule": "daily"}},
			[]string{"/backups/schedule", "does not match pattern"}},
		// Checks in templates (cross-field rules the schema cannot express).
		{"tenant is the commons namespace", map[string]any{"tenants": []any{map[string]any{"namespace": "commons"}}},
			[]string{`tenants[0].namespace "commons" is the commons namespace itself`}},
		{"tenant listed twice", map[string]any{"tenants": []any{map[string]any{"namespace": "a"}, map[string]any{"namespace": "a"}}},
			[]string{`tenants[1].namespace "a" is listed twice`}},
		{"external S3 without credentials", map[string]any{"objectStorage": map[string]any{"bundled": false, "external": map[string]any{"endpoint": "https://s3.example.com"}}},
			[]string{"objectStorage.external.existingSecret is required"}},
		{"backups without object store", map[string]any{"objectStorage": map[string]any{"bundled": false}, "backups": map[string]any{"enabled": true}},
			[]string{"backups.enabled needs an object store"}},
		{"buckets without object store", map[string]any{"objectStorage": map[string]any{"bundled": false}, "tenants": []any{map[string]any{"namespace": "a", "buckets": []any{"x"}}}},
			[]string{"tenants[0].buckets needs an object store"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := render.Chart(commonsChart, render.Options{ReleaseName: "commons", Namespace: "commons", Values: tc.values})
			require.Error(t, err, "values %v must be rejected", tc.values)
			require.Nil(t, m, "nothing is rendered")
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

// TestCommonsAcceptsDocumentedValues: the values README.md shows are valid.
func TestCommonsAcceptsDocumentedValues(t *testing.T) {
	render.MustChart(t, commonsChart, render.Options{ReleaseName: "commons", Namespace: "commons", Values: map[string]any{
		"postgresql": map[string]any{
			"parameters":  map[string]any{"max_connections": 500, "shared_buffers": "1GB", "jit": "off"},
			"persistence": map[string]any{"size": "50Gi", "storageClass": "ssd"},
			"pdb":         map[string]any{"maxUnavailable": 0},
		},
		"objectStorage": map[string]any{"minio": map[string]any{"image": map[string]any{"registry": "quay.io", "repository": "minio/minio", "tag": "RELEASE.2025-09-07T16-13-09Z"}}},
		"tenants":       []any{map[string]any{"namespace": "imaging", "buckets": []any{"dicom"}}},
		"backups":       map[string]any{"enabled": true, "schedule": "@daily"},
	}})
}
