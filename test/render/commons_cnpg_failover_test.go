package render_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/test/render"
)

// cnpgFailoverSpec is the Cluster's spec, loosely: the strict decoder of
// cnpgCluster knows only the fields its tests read.
type cnpgFailoverSpec struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            map[string]any    `json:"spec"`
}

func clusterSpec(t *testing.T, m *render.Manifest) map[string]any {
	t.Helper()
	return render.Decode[cnpgFailoverSpec](t, m.MustGet(t, "Cluster", "commons", "commons-postgresql")).Spec
}

func pgSection(spec map[string]any) map[string]any {
	pg, _ := spec["postgresql"].(map[string]any)
	return pg
}

// podMonitor is the part of a Prometheus Operator PodMonitor the chart renders.
type podMonitor struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Selector            metav1.LabelSelector `json:"selector"`
		PodMetricsEndpoints []map[string]any     `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

// TestCommonsCloudNativePGFailoverDefaults: by default no synchronous
// stanza, no smartShutdownTimeout (the operator's 180 s) and no PodMonitor.
func TestCommonsCloudNativePGFailoverDefaults(t *testing.T) {
	m := renderCommons(t, cnpgValues(nil))
	spec := clusterSpec(t, m)
	assert.NotContains(t, spec, "smartShutdownTimeout", "the operator's default unless set")
	assert.NotContains(t, pgSection(spec), "synchronous", "asynchronous by default")
	assert.Equal(t, "300", pgSection(spec)["parameters"].(map[string]any)["max_connections"])
	assert.NotContains(t, spec, "monitoring")
	assert.Empty(t, m.ByKind("PodMonitor"), "monitoring is off by default")
}

// TestCommonsCloudNativePGSynchronous: postgresql.cloudnativepg.synchronous
// becomes spec.postgresql.synchronous next to the parameters, and
// smartShutdownTimeout is rendered when set (0 included).
func TestCommonsCloudNativePGSynchronous(t *testing.T) {
	for _, timeout := range []int{0, 10} {
		m := renderCommons(t, cnpgValues(map[string]any{"cloudnativepg": map[string]any{
			"instances":            2,
			"smartShutdownTimeout": timeout,
			"synchronous":          map[string]any{"method": "any", "number": 1, "dataDurability": "required"},
		}}))
		spec := clusterSpec(t, m)
		assert.Equal(t, float64(timeout), spec["smartShutdownTimeout"])
		assert.Equal(t, map[string]any{"method": "any", "number": float64(1), "dataDurability": "required"}, pgSection(spec)["synchronous"])
		assert.Equal(t, "256MB", pgSection(spec)["parameters"].(map[string]any)["shared_buffers"], "parameters kept beside synchronous")
	}
	// Without parameters the postgresql stanza still carries synchronous.
	m := renderCommons(t, cnpgValues(map[string]any{"cloudnativepg": map[string]any{
		"parameters":  nil,
		"synchronous": map[string]any{"method": "first", "number": 2},
	}}))
	pg := pgSection(clusterSpec(t, m))
	assert.Equal(t, map[string]any{"method": "first", "number": float64(2)}, pg["synchronous"])
	assert.NotContains(t, pg, "parameters")
}

// TestCommonsCloudNativePGPodMonitor: the PodMonitor option renders the
// chart's own PodMonitor (not the operator's deprecated enablePodMonitor)
// selecting the Cluster's instance pods' metrics port.
func TestCommonsCloudNativePGPodMonitor(t *testing.T) {
	m := renderCommons(t, cnpgValues(map[string]any{"cloudnativepg": map[string]any{"monitoring": map[string]any{"podMonitor": map[string]any{
		"enabled": true, "labels": map[string]any{"release": "prometheus"}, "interval": "30s", "scrapeTimeout": "10s",
	}}}}))
	o := m.MustGet(t, "PodMonitor", "commons", "commons-postgresql")
	assert.Equal(t, "monitoring.coreos.com/v1", o.APIVersion)
	pm := render.Decode[podMonitor](t, o)
	assert.Equal(t, "prometheus", pm.Metadata.Labels["release"], "extra labels, for Prometheus' podMonitorSelector")
	assert.Equal(t, "database", pm.Metadata.Labels["app.kubernetes.io/component"])
	assert.Equal(t, map[string]string{"cnpg.io/cluster": "commons-postgresql", "cnpg.io/podRole": "instance"}, pm.Spec.Selector.MatchLabels)
	require.Len(t, pm.Spec.PodMetricsEndpoints, 1)
	assert.Equal(t, map[string]any{"port": "metrics", "interval": "30s", "scrapeTimeout": "10s"}, pm.Spec.PodMetricsEndpoints[0])
	c := m.MustGet(t, "Cluster", "commons", "commons-postgresql")
	assert.NotContains(t, string(c.YAML), "enablePodMonitor", "the operator's deprecated PodMonitor stays off")

	// Only in cloudnativepg mode.
	bundled := renderCommons(t, map[string]any{"postgresql": map[string]any{"cloudnativepg": map[string]any{"monitoring": map[string]any{"podMonitor": map[string]any{"enabled": true}}}}})
	assert.Empty(t, bundled.ByKind("PodMonitor"), "no PodMonitor for the bundled StatefulSet")
}

// TestCommonsCloudNativePGFailoverValuesRefused: wrong synchronous values
// are refused naming the value.
func TestCommonsCloudNativePGFailoverValuesRefused(t *testing.T) {
	sync := func(s map[string]any, more map[string]any) map[string]any {
		return cnpgValues(map[string]any{"cloudnativepg": merge(map[string]any{"instances": 3, "synchronous": s}, more)})
	}
	for name, tc := range map[string]struct {
		values map[string]any
		want   string
	}{
		"synchronous and min/max":   {sync(map[string]any{"method": "any", "number": 1}, map[string]any{"minSyncReplicas": 1, "maxSyncReplicas": 1}), "synchronous and min/maxSyncReplicas both set"},
		"number not below instance": {sync(map[string]any{"method": "any", "number": 3}, nil), "synchronous.number (3) must be below instances (3)"},
		"method without number":     {sync(map[string]any{"method": "any"}, nil), "number"},
		"bad method":                {sync(map[string]any{"method": "all", "number": 1}, nil), "/postgresql/cloudnativepg/synchronous/method"},
		"bad durability":            {sync(map[string]any{"method": "any", "number": 1, "dataDurability": "strict"}, nil), "/postgresql/cloudnativepg/synchronous/dataDurability"},
		"number zero":               {sync(map[string]any{"method": "any", "number": 0}, nil), "/postgresql/cloudnativepg/synchronous/number"},
		"negative smart shutdown":   {cnpgValues(map[string]any{"cloudnativepg": map[string]any{"smartShutdownTimeout": -1}}), "/postgresql/cloudnativepg/smartShutdownTimeout"},
		"bad scrape interval":       {cnpgValues(map[string]any{"cloudnativepg": map[string]any{"monitoring": map[string]any{"podMonitor": map[string]any{"interval": "30"}}}}), "/postgresql/cloudnativepg/monitoring/podMonitor/interval"},
	} {
		t.Run(name, func(t *testing.T) {
			m, err := render.Chart(commonsChart, render.Options{ReleaseName: "commons", Namespace: "commons", Values: tc.values})
			require.Error(t, err, "values %v must be rejected", tc.values)
			require.Nil(t, m)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}
