package render_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/test/render"
)

// cnpgPooler is the part of a CloudNativePG Pooler the chart renders.
type cnpgPooler struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Cluster struct {
			Name string `json:"name"`
		} `json:"cluster"`
		Instances int    `json:"instances"`
		Type      string `json:"type"`
		PgBouncer struct {
			PoolMode   string            `json:"poolMode"`
			Parameters map[string]string `json:"parameters"`
		} `json:"pgbouncer"`
		Template corev1.PodTemplateSpec `json:"template"`
	} `json:"spec"`
}

// serverAltDNSNames is a Cluster's spec.certificates.serverAltDNSNames, and
// whether spec.certificates is rendered at all.
func serverAltDNSNames(o *render.Object) ([]string, bool) {
	spec, _ := o.Fields["spec"].(map[string]any)
	certs, ok := spec["certificates"].(map[string]any)
	if !ok {
		return nil, false
	}
	var names []string
	for _, n := range certs["serverAltDNSNames"].([]any) {
		names = append(names, n.(string))
	}
	return names, true
}

func poolerValues(pooler map[string]any, more ...map[string]any) map[string]any {
	return cnpgValues(map[string]any{"cloudnativepg": map[string]any{"pooler": merge(map[string]any{"enabled": true}, pooler)}},
		append([]map[string]any{tenants(map[string]any{"namespace": "imaging"})}, more...)...)
}

// TestCommonsPooler: with postgresql.cloudnativepg.pooler.enabled, a Pooler
// (type rw, session mode by default) for the Cluster; the Cluster's server
// certificate also names the pooler's Service (PgBouncer presents it); the
// tenant Secret hands the pooler's address, mode and auth role beside PGHOST,
// which stays -rw (pg-init and wait-for-pg unchanged).
func TestCommonsPooler(t *testing.T) {
	m := renderCommons(t, poolerValues(nil))
	o := m.MustGet(t, "Pooler", "commons", "commons-postgresql-pooler-rw")
	assert.Equal(t, "postgresql.cnpg.io/v1", o.APIVersion)
	p := render.Decode[cnpgPooler](t, o)
	assert.Equal(t, "commons-postgresql", p.Spec.Cluster.Name)
	assert.Equal(t, "rw", p.Spec.Type)
	assert.Equal(t, 2, p.Spec.Instances)
	assert.Equal(t, "session", p.Spec.PgBouncer.PoolMode, "session by default: Orthanc's plugin and pg-init keep session state")
	assert.Equal(t, map[string]string{"max_client_conn": "1000", "default_pool_size": "10", "max_prepared_statements": "200"}, p.Spec.PgBouncer.Parameters)
	assert.Equal(t, "pooler", p.Metadata.Labels["app.kubernetes.io/component"])
	require.Len(t, p.Spec.Template.Spec.Containers, 1)
	c := p.Spec.Template.Spec.Containers[0]
	assert.Equal(t, "pgbouncer", c.Name, "the operator merges the template's container of this name")
	assert.Empty(t, c.Image, "empty: the operator's default PgBouncer image")
	assert.Equal(t, "50m", c.Resources.Requests.Cpu().String())
	assert.Equal(t, "pooler", p.Spec.Template.Labels["app.kubernetes.io/component"])

	names, ok := serverAltDNSNames(m.MustGet(t, "Cluster", "commons", "commons-postgresql"))
	require.True(t, ok, "spec.certificates")
	assert.Equal(t, []string{"commons-postgresql-pooler-rw", "commons-postgresql-pooler-rw.commons", "commons-postgresql-pooler-rw.commons.svc",
		"commons-postgresql-pooler-rw.commons.svc.cluster.local"}, names)

	s := secretData(t, m.MustGet(t, "Secret", "imaging", "kommons-commons"))
	assert.Equal(t, "commons-postgresql-rw.commons.svc.cluster.local", s["PGHOST"], "PGHOST stays the primary's Service")
	assert.Equal(t, "commons-postgresql-pooler-rw.commons.svc.cluster.local", s["PGHOST_POOLER"])
	assert.Equal(t, "5432", s["PGPORT_POOLER"])
	assert.Equal(t, "session", s["PGPOOLER_MODE"])
	assert.Equal(t, "cnpg_pooler_pgbouncer", s["PGPOOLER_ROLE"])

	// The provisioner Job (a superuser) hardens the auth_query function.
	job := render.Decode[batchv1.Job](t, m.One(t, "Job", "commons-provisioner-"))
	pc := container(t, job.Spec.Template.Spec, "provisioner", false)
	assert.Contains(t, strings.Join(pc.Args, " "), " --pin-admin-search-path --pooler-role cnpg_pooler_pgbouncer")
}

// TestCommonsPoolerValues: mode, instances, parameters, image, placement and
// resources reach the Pooler; the tenant Secret names the mode.
func TestCommonsPoolerValues(t *testing.T) {
	m := renderCommons(t, poolerValues(map[string]any{
		"instances": 3, "poolMode": "transaction", "image": "registry.example/pgbouncer:1.24.1",
		"parameters":   map[string]any{"default_pool_size": 5, "max_db_connections": "40"},
		"nodeSelector": map[string]any{"pool": "db"},
		"tolerations":  []any{map[string]any{"key": "pool", "operator": "Equal", "value": "db", "effect": "NoSchedule"}},
		"resources":    map[string]any{"requests": map[string]any{"cpu": "100m"}},
	}, map[string]any{"global": map[string]any{"imagePullSecrets": []any{"regcred"}}}))
	p := render.Decode[cnpgPooler](t, m.MustGet(t, "Pooler", "commons", "commons-postgresql-pooler-rw"))
	assert.Equal(t, 3, p.Spec.Instances)
	assert.Equal(t, "transaction", p.Spec.PgBouncer.PoolMode)
	assert.Equal(t, "5", p.Spec.PgBouncer.Parameters["default_pool_size"], "numbers rendered as strings")
	assert.Equal(t, "40", p.Spec.PgBouncer.Parameters["max_db_connections"])
	assert.Equal(t, "200", p.Spec.PgBouncer.Parameters["max_prepared_statements"], "defaults kept beside the values'")
	spec := p.Spec.Template.Spec
	assert.Equal(t, "registry.example/pgbouncer:1.24.1", spec.Containers[0].Image)
	assert.Equal(t, map[string]string{"pool": "db"}, spec.NodeSelector)
	require.Len(t, spec.Tolerations, 1)
	assert.Equal(t, "pool", spec.Tolerations[0].Key)
	assert.Equal(t, []corev1.LocalObjectReference{{Name: "regcred"}}, spec.ImagePullSecrets)
	assert.Equal(t, "100m", spec.Containers[0].Resources.Requests.Cpu().String())
	assert.Equal(t, "transaction", secretData(t, m.MustGet(t, "Secret", "imaging", "kommons-commons"))["PGPOOLER_MODE"])
}

// TestCommonsPoolerOff: no Pooler, no extra certificate names and no pooler
// keys unless enabled, and never outside cloudnativepg mode.
func TestCommonsPoolerOff(t *testing.T) {
	for name, values := range map[string]map[string]any{
		"cloudnativepg, pooler disabled": cnpgValues(nil, tenants(map[string]any{"namespace": "imaging"})),
		"bundled, pooler enabled": merge(tenants(map[string]any{"namespace": "imaging"}),
			map[string]any{"postgresql": map[string]any{"cloudnativepg": map[string]any{"pooler": map[string]any{"enabled": true}}}}),
	} {
		t.Run(name, func(t *testing.T) {
			m := renderCommons(t, values)
			assert.Empty(t, m.ByKind("Pooler"))
			for _, c := range m.ByKind("Cluster") {
				_, ok := serverAltDNSNames(c)
				assert.False(t, ok, "no spec.certificates")
			}
			s := secretData(t, m.MustGet(t, "Secret", "imaging", "kommons-commons"))
			for _, k := range []string{"PGHOST_POOLER", "PGPORT_POOLER", "PGPOOLER_MODE", "PGPOOLER_ROLE"} {
				assert.NotContains(t, s, k)
			}
			job := render.Decode[batchv1.Job](t, m.One(t, "Job", "commons-provisioner-"))
			args := container(t, job.Spec.Template.Spec, "provisioner", false).Args
			assert.NotContains(t, args, "--pooler-role")
			assert.Equal(t, strings.HasPrefix(name, "cloudnativepg"), slices.Contains(args, "--pin-admin-search-path"), "the admin's search_path is pinned in cloudnativepg mode only")
		})
	}
}

// TestCommonsPoolerRefusesWrongValues: the schema names the value to fix.
func TestCommonsPoolerRefusesWrongValues(t *testing.T) {
	for name, tc := range map[string]struct {
		values map[string]any
		want   string
	}{
		"statement mode": {poolerValues(map[string]any{"poolMode": "statement"}), "/postgresql/cloudnativepg/pooler/poolMode"},
		"no instances":   {poolerValues(map[string]any{"instances": 0}), "/postgresql/cloudnativepg/pooler/instances"},
		"unknown key":    {poolerValues(map[string]any{"replicas": 2}), "additional properties 'replicas' not allowed"},
	} {
		t.Run(name, func(t *testing.T) {
			m, err := render.Chart(commonsChart, render.Options{ReleaseName: "commons", Namespace: "commons", Values: tc.values})
			require.Error(t, err, "values %v must be rejected", tc.values)
			require.Nil(t, m)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}
