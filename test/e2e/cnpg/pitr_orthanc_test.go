package cnpg

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/internal/testutil/orthanctest"
	"github.com/kommons/kommons/internal/testutil/testcluster"
)

// pitrOrthanc is the Orthanc part of the point-in-time recovery.
type pitrOrthanc struct {
	base, user, pw string
	before, after  []string // instance IDs uploaded before and after the target
}

// installOrthanc installs charts/orthanc (one replica, filesystem storage,
// the harness's Orthanc image) in the tenant namespace: its postgres-init
// Job provisions the index database through commons' -rw Service.
func (p *pitr) installOrthanc(t *testing.T) {
	values := []string{"install", orthancRelease, filepath.Join(p.cm.charts, "charts", "orthanc"), "-n", p.tenant,
		"--wait", "--wait-for-jobs", "--timeout", "10m",
		"--set", "replicaCount=1", "--set", "storage.type=filesystem", "--set", "storage.filesystem.size=1Gi"}
	values = append(values, testcluster.OrthancValues(p.c.Images.Orthanc)...)
	values = append(values, testcluster.ProvisionerValues("postgresInit", p.c.Images.Tools)...)
	start := time.Now()
	out := p.c.Helm3(t, values...)
	require.Contains(t, out, "STATUS: deployed")
	t.Logf("helm install %s (Orthanc, index on commons' Cluster) --wait --wait-for-jobs: %.1fs", orthancRelease, time.Since(start).Seconds())

	ctx := context.Background()
	svc, err := p.c.Client().CoreV1().Services(p.tenant).Get(ctx, orthancRelease+"-orthanc", metav1.GetOptions{})
	require.NoError(t, err)
	for _, port := range svc.Spec.Ports {
		if port.Name == "http" {
			p.orthanc.base = "http://" + net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(int(port.Port)))
		}
	}
	require.NotEmpty(t, p.orthanc.base, "the Orthanc Service's http port")
	auth, err := p.c.Client().CoreV1().Secrets(p.tenant).Get(ctx, orthancRelease+"-orthanc-auth", metav1.GetOptions{})
	require.NoError(t, err)
	p.orthanc.user, p.orthanc.pw = string(auth.Data["username"]), string(auth.Data["password"])
}

// uploadInstances stores n new DICOM instances through the Service and
// returns their Orthanc IDs.
func (p *pitr) uploadInstances(t *testing.T, first, n int) []string {
	t.Helper()
	var ids []string
	for i := first; i < first+n; i++ {
		dicom := orthanctest.DicomFile(orthanctest.DicomSpec{Run: p.ns, Study: 1, Instance: i})
		req, err := http.NewRequest(http.MethodPost, p.orthanc.base+"/instances", bytes.NewReader(dicom))
		require.NoError(t, err)
		req.SetBasicAuth(p.orthanc.user, p.orthanc.pw)
		req.Header.Set("Content-Type", "application/dicom")
		resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "upload: %s", body)
		var r struct{ ID, Status string }
		require.NoError(t, json.Unmarshal(body, &r))
		require.Equal(t, "Success", r.Status, "upload: %s", body)
		ids = append(ids, r.ID)
	}
	return ids
}

// listInstances is Orthanc's /instances, sorted.
func (p *pitr) listInstances(t *testing.T) ([]string, error) {
	req, err := http.NewRequest(http.MethodGet, p.orthanc.base+"/instances", nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(p.orthanc.user, p.orthanc.pw)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, &httpError{resp.StatusCode, string(body)}
	}
	var ids []string
	if err := json.Unmarshal(body, &ids); err != nil {
		return nil, err
	}
	slices.Sort(ids)
	return ids, nil
}

type httpError struct {
	code int
	body string
}

func (e *httpError) Error() string { return strconv.Itoa(e.code) + ": " + e.body }

// indexedInstances returns the public IDs of the instances Orthanc's index
// holds in Cluster name (the module's database, read as the superuser), sorted.
func (p *pitr) indexedInstances(t *testing.T, name string) []string {
	t.Helper()
	ctx := context.Background()
	secs, err := p.c.Client().CoreV1().Secrets(p.tenant).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=postgres-init,app.kubernetes.io/component=credentials"})
	require.NoError(t, err)
	require.Len(t, secs.Items, 1, "Orthanc's connection Secret")
	db := string(secs.Items[0].Data["dbname"])
	rw := name + "-rw." + p.ns + ".svc"
	conn, err := pgx.ConnectConfig(ctx, p.clusterConnConfig(t, p.ns, name, rw, "postgres", p.adminPW, db))
	require.NoError(t, err, "connect to %s/%s", rw, db)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT publicid FROM resources WHERE resourcetype = 3 ORDER BY publicid")
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return ids
}

// sortedCopy returns ids sorted, leaving ids alone.
func sortedCopy(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

// scaleOrthanc scales the Orthanc Deployment and waits for it (0: no pod).
func (p *pitr) scaleOrthanc(t *testing.T, replicas int) {
	t.Helper()
	deploy := "deployment/" + orthancRelease + "-orthanc"
	p.kubectl(t, "scale", "-n", p.tenant, deploy, "--replicas="+strconv.Itoa(replicas))
	if replicas > 0 {
		p.kubectl(t, "rollout", "status", "-n", p.tenant, deploy, "--timeout=10m")
		return
	}
	ctx := context.Background()
	require.Eventually(t, func() bool {
		pods, err := p.c.Client().CoreV1().Pods(p.tenant).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=orthanc"})
		return err == nil && len(pods.Items) == 0
	}, 5*time.Minute, time.Second, "Orthanc scaled to 0")
}

// requireOrthancHolds: Orthanc, through its Service, lists exactly want.
func (p *pitr) requireOrthancHolds(t *testing.T, want []string, why string) {
	t.Helper()
	var got []string
	require.Eventually(t, func() bool {
		var err error
		got, err = p.listInstances(t)
		if err != nil {
			t.Logf("Orthanc /instances: %v", err)
		}
		return err == nil
	}, 3*time.Minute, 2*time.Second, "Orthanc answers /instances")
	assert.Equal(t, sortedCopy(want), got, why)
}
