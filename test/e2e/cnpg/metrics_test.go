package cnpg

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// instanceMetrics scrapes, as the PodMonitor of
// postgresql.cloudnativepg.monitoring.podMonitor would have Prometheus do
// (its selector: cnpg.io/cluster and cnpg.io/podRole=instance, port
// "metrics"), every instance of commons' Cluster: the port exists on each
// pod and answers with the exporter's metrics. No Prometheus Operator runs
// here (its CRDs are not installed), so the PodMonitor object itself is
// render-tested only (test/render).
func (s *scenario) instanceMetrics(t *testing.T) {
	ctx := context.Background()
	pods, err := s.c.Client().CoreV1().Pods(s.cm.ns).List(ctx, metav1.ListOptions{
		LabelSelector: "cnpg.io/cluster=" + commonsCluster + ",cnpg.io/podRole=instance"})
	require.NoError(t, err)
	require.Len(t, pods.Items, 2)
	client := &http.Client{Timeout: 30 * time.Second}
	for _, p := range pods.Items {
		port := 0
		for _, c := range p.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name == "metrics" {
					port = int(cp.ContainerPort)
				}
			}
		}
		require.NotZero(t, port, "%s has a container port named metrics", p.Name)
		url := "http://" + net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port)) + "/metrics"
		resp, err := client.Get(url)
		require.NoError(t, err, "GET %s", url)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s", url)
		metrics := string(body)
		assert.Contains(t, metrics, "cnpg_collector_up", "%s: the exporter reports PostgreSQL up", p.Name)
		var up string
		for _, l := range strings.Split(metrics, "\n") {
			if strings.HasPrefix(l, "cnpg_collector_up") {
				up = l
			}
		}
		t.Logf("%s: %s answers, %d metric lines; %s", p.Name, url, strings.Count(metrics, "\n"), up)
	}
}
