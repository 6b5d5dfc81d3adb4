package render_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/test/render"
)

// TestCommonsPoolerReadOnly: pooler.ro.enabled adds a second Pooler, type
// ro (the Cluster's -ro Service: replicas only), with the rw one's
// settings; the Cluster's certificate names both Services; tenant Secrets
// get PGHOST_POOLER_RO and PGPORT_POOLER_RO beside the rw pooler's keys.
func TestCommonsPoolerReadOnly(t *testing.T) {
	m := renderCommons(t, poolerValues(map[string]any{"ro": map[string]any{"enabled": true}, "instances": 3, "poolMode": "transaction",
		"parameters": map[string]any{"default_pool_size": 5}}))
	rw := render.Decode[cnpgPooler](t, m.MustGet(t, "Pooler", "commons", "commons-postgresql-pooler-rw"))
	ro := render.Decode[cnpgPooler](t, m.MustGet(t, "Pooler", "commons", "commons-postgresql-pooler-ro"))
	assert.Len(t, m.ByKind("Pooler"), 2)
	assert.Equal(t, "rw", rw.Spec.Type)
	assert.Equal(t, "ro", ro.Spec.Type)
	assert.Equal(t, "commons-postgresql", ro.Spec.Cluster.Name)
	assert.Equal(t, rw.Spec.Instances, ro.Spec.Instances)
	assert.Equal(t, 3, ro.Spec.Instances)
	assert.Equal(t, "transaction", ro.Spec.PgBouncer.PoolMode)
	assert.Equal(t, rw.Spec.PgBouncer.Parameters, ro.Spec.PgBouncer.Parameters)
	assert.Equal(t, "5", ro.Spec.PgBouncer.Parameters["default_pool_size"])
	assert.Equal(t, rw.Spec.Template, ro.Spec.Template, "same pod template (image, resources, placement)")
	assert.Equal(t, "pooler", ro.Metadata.Labels["app.kubernetes.io/component"])

	names, ok := serverAltDNSNames(m.MustGet(t, "Cluster", "commons", "commons-postgresql"))
	require.True(t, ok)
	assert.Equal(t, []string{
		"commons-postgresql-pooler-rw", "commons-postgresql-pooler-rw.commons", "commons-postgresql-pooler-rw.commons.svc", "commons-postgresql-pooler-rw.commons.svc.cluster.local",
		"commons-postgresql-pooler-ro", "commons-postgresql-pooler-ro.commons", "commons-postgresql-pooler-ro.commons.svc", "commons-postgresql-pooler-ro.commons.svc.cluster.local",
	}, names, "PgBouncer presents the Cluster's certificate on both")

	s := secretData(t, m.MustGet(t, "Secret", "imaging", "kommons-commons"))
	assert.Equal(t, "commons-postgresql-pooler-ro.commons.svc.cluster.local", s["PGHOST_POOLER_RO"])
	assert.Equal(t, "5432", s["PGPORT_POOLER_RO"])
	assert.Equal(t, "commons-postgresql-pooler-rw.commons.svc.cluster.local", s["PGHOST_POOLER"])
	assert.Equal(t, "commons-postgresql-rw.commons.svc.cluster.local", s["PGHOST"])

	// Off by default: no ro Pooler, no ro keys.
	m = renderCommons(t, poolerValues(nil))
	assert.Len(t, m.ByKind("Pooler"), 1)
	s = secretData(t, m.MustGet(t, "Secret", "imaging", "kommons-commons"))
	assert.NotContains(t, s, "PGHOST_POOLER_RO")
	assert.NotContains(t, s, "PGPORT_POOLER_RO")
}

// TestCommonsPoolerReadOnlyRefused: the ro Pooler needs the rw one and
// replicas; the message names the value.
func TestCommonsPoolerReadOnlyRefused(t *testing.T) {
	for name, tc := range map[string]struct {
		values map[string]any
		want   string
	}{
		"without pooler.enabled": {cnpgValues(map[string]any{"cloudnativepg": map[string]any{"pooler": map[string]any{"ro": map[string]any{"enabled": true}}}}),
			"postgresql.cloudnativepg.pooler.ro.enabled needs postgresql.cloudnativepg.pooler.enabled"},
		"one instance": {cnpgValues(map[string]any{"cloudnativepg": map[string]any{"instances": 1, "pooler": map[string]any{"enabled": true, "ro": map[string]any{"enabled": true}}}}),
			"postgresql.cloudnativepg.pooler.ro.enabled needs postgresql.cloudnativepg.instances of 2 or more (got 1)"},
		"unknown key": {poolerValues(map[string]any{"ro": map[string]any{"instances": 1}}), "additional properties 'instances' not allowed"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := render.Chart(commonsChart, render.Options{ReleaseName: "commons", Namespace: "commons", Values: tc.values})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
