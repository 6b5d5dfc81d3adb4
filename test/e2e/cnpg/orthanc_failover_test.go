package cnpg

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/internal/testutil/orthanctest"
	"github.com/kommons/kommons/internal/testutil/testcluster"
)

// runsEnv sets how many failovers the orthanc-failover step runs per
// replication mode (default 1); test/bench/failover/run.sh raises it.
const runsEnv = "KOMMONS_FAILOVER_RUNS"

// summaryEnv names a file the orthanc-failover step writes its per-mode
// summary into (Markdown), for the benchmark.
const summaryEnv = "KOMMONS_FAILOVER_OUT"

// orthancRelease is the Orthanc release of the orthanc-failover step, in
// the first tenant namespace.
const orthancRelease = "pacs"

// failoverMode is one replication setting of commons' Cluster under test.
type failoverMode struct {
	name string
	// values are the helm upgrade flags (over --reuse-values) selecting it.
	values []string
	// synchronous: the primary must list a synchronous standby, and no
	// acknowledged upload may be lost.
	synchronous bool
	// runs is how many failovers are measured in this mode.
	runs int
}

// failoverResult is one measured failover under ingestion.
type failoverResult struct {
	mode          string
	window        time.Duration // longest gap between two acknowledged uploads around the failover
	windowStart   time.Duration // when that gap began, from the delete
	firstFailure  time.Duration // first upload refused or failed, from the delete; -1 if none
	promoted      time.Duration // the Cluster's status names another primary, from the delete
	acked, failed int
	lost          int
	oldPrimary    string
	newPrimary    string
}

// orthancFailover installs Orthanc (2 replicas, index on commons' Cluster
// through -rw) in the first tenant, then, per replication mode, deletes
// the Cluster's primary pod while a client stores DICOM instances through
// Orthanc's Service one after another, and measures the
// write-unavailability window and the acknowledged instances Orthanc no
// longer has. Orthanc must come through every failover without a restart.
// Modes: asynchronous with the operator's default smartShutdownTimeout
// (one run, benchmark only: Orthanc's pooled index connections hold the deleted primary in
// its smart shutdown for all of it), asynchronous and synchronous
// (dataDurability required) with smartShutdownTimeout 5 s. Nothing is
// timed-asserted: the figures are logged (FAILOVER-ORTHANC lines).
func (s *scenario) orthancFailover(t *testing.T) {
	ns := s.cm.tenants[0]
	s.installOrthanc(t, ns, "PGHOST")
	api := s.orthancAPI(t, ns)
	var err error

	// The loss count below rests on Orthanc answering 404 for an instance
	// its index does not hold: check that it does, through the Service.
	var none struct{ ID string }
	code, err := api.GetJSON("/instances/00000000-00000000-00000000-00000000-00000000", &none)
	require.Equal(t, http.StatusNotFound, code, "an unknown instance is 404 (%v)", err)

	// The operator-default mode holds the deleted primary for its whole
	// smart shutdown (about 4 minutes): only the benchmark (runsEnv set)
	// runs it; the e2e runs the two modes whose handover starts at once.
	runs, defaultRuns := 1, 0
	if v := os.Getenv(runsEnv); v != "" {
		defaultRuns = 1
		runs, err = strconv.Atoi(v)
		require.NoError(t, err, "%s=%q", runsEnv, v)
		require.Positive(t, runs, runsEnv)
	}
	modes := []failoverMode{
		{name: "async, smartShutdownTimeout 180 s (operator default)", runs: defaultRuns, values: []string{"--set", "postgresql.cloudnativepg.smartShutdownTimeout=180"}},
		{name: "async", runs: runs, values: []string{"--set", "postgresql.cloudnativepg.smartShutdownTimeout=5"}},
		{name: "sync (any 1, required)", runs: runs, synchronous: true, values: []string{
			"--set", "postgresql.cloudnativepg.synchronous.method=any",
			"--set", "postgresql.cloudnativepg.synchronous.number=1",
			"--set", "postgresql.cloudnativepg.synchronous.dataDurability=required"}},
	}
	var results []failoverResult
	seq := 0
	for _, m := range modes {
		if m.runs == 0 {
			continue
		}
		if m.values != nil {
			s.upgradeCommons(t, m.values)
		}
		s.requireReplication(t, m.synchronous)
		for i := 0; i < m.runs; i++ {
			seq++
			r := s.failoverUnderIngest(t, api, m, seq)
			results = append(results, r)
			t.Logf("FAILOVER-ORTHANC mode=%q run=%d window=%.1fs window_from=%.1fs first_failure=%.1fs promoted=%.1fs acked=%d failed=%d lost=%d primary=%s->%s",
				r.mode, i+1, r.window.Seconds(), r.windowStart.Seconds(), r.firstFailure.Seconds(), r.promoted.Seconds(), r.acked, r.failed, r.lost, r.oldPrimary, r.newPrimary)
			if m.synchronous {
				assert.Zero(t, r.lost, "synchronous replication: no acknowledged upload may be lost")
			}
		}
	}
	summary := failoverSummary(results)
	t.Logf("failover summary (Orthanc ingesting, 2 instances on one node):\n%s", summary)
	if out := os.Getenv(summaryEnv); out != "" {
		require.NoError(t, os.WriteFile(out, []byte(summary), 0o644))
	}
}

// orthancAPI is Orthanc's REST API through its Service in ns.
func (s *scenario) orthancAPI(t *testing.T, ns string) *orthanctest.Instance {
	t.Helper()
	user, pw := s.orthancAuth(t, ns)
	o, err := s.c.Client().CoreV1().Services(ns).Get(context.Background(), orthancRelease+"-orthanc", metav1.GetOptions{})
	require.NoError(t, err)
	return orthanctest.Remote("http://"+net.JoinHostPort(o.Spec.ClusterIP, servicePort(t, o, "http")), user, pw, 90*time.Second)
}

// installOrthanc installs (or upgrades to these values) charts/orthanc in
// ns: 2 replicas on a volume, the index in the tenant's database on commons'
// Cluster, reached with the tenant Secret's connection facts: its key
// hostKey names the host (PGHOST: -rw; PGHOST_POOLER: commons' Pooler,
// through the chart's postgresInit.connection.hostKey/portKey).
func (s *scenario) installOrthanc(t *testing.T, ns, hostKey string) {
	values := []string{"upgrade", "--install", orthancRelease, filepath.Join(s.cm.charts, "charts", "orthanc"), "-n", ns,
		"--wait", "--wait-for-jobs", "--timeout", "10m",
		"--set", "replicaCount=2", "--set", "storage.type=filesystem", "--set", "storage.filesystem.size=1Gi"}
	values = append(values, testcluster.OrthancValues(s.c.Images.Orthanc)...)
	values = append(values, testcluster.ProvisionerValues("postgresInit", s.c.Images.Tools)...)
	if hostKey != "PGHOST" {
		values = append(values, "--set", "postgresInit.connection.hostKey="+hostKey, "--set", "postgresInit.connection.portKey="+strings.Replace(hostKey, "HOST", "PORT", 1))
	}
	start := time.Now()
	out := s.c.Helm3(t, values...)
	t.Logf("helm upgrade --install %s (Orthanc, 2 replicas, index host %s) in %s --wait --wait-for-jobs: %.1fs", orthancRelease, hostKey, ns, time.Since(start).Seconds())
	require.Contains(t, out, "STATUS: deployed")
	pods := s.orthancPods(t, ns)
	require.Len(t, pods, 2)
	for _, p := range pods {
		env := map[string]string{}
		for _, c := range p.Spec.Containers {
			if c.Name == "orthanc" {
				for _, e := range c.Env {
					if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == testcluster.TenantSecret {
						env[e.Name] = e.ValueFrom.SecretKeyRef.Key
					}
				}
			}
		}
		assert.Equal(t, hostKey, env["PGHOST"], "%s: the index host comes from the tenant Secret's %s", p.Name, hostKey)
	}
	tenant, err := s.c.Client().CoreV1().Secrets(ns).Get(context.Background(), testcluster.TenantSecret, metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, commonsCluster+"-rw."+s.cm.ns+".svc.cluster.local", string(tenant.Data["PGHOST"]))
}

func servicePort(t *testing.T, svc *corev1.Service, name string) string {
	t.Helper()
	for _, p := range svc.Spec.Ports {
		if p.Name == name {
			return strconv.Itoa(int(p.Port))
		}
	}
	t.Fatalf("Service %s/%s has no port %s", svc.Namespace, svc.Name, name)
	return ""
}

func (s *scenario) orthancAuth(t *testing.T, ns string) (string, string) {
	t.Helper()
	a, err := s.c.Client().CoreV1().Secrets(ns).Get(context.Background(), orthancRelease+"-orthanc-auth", metav1.GetOptions{})
	require.NoError(t, err)
	return string(a.Data["username"]), string(a.Data["password"])
}

func (s *scenario) orthancPods(t *testing.T, ns string) []corev1.Pod {
	t.Helper()
	list, err := s.c.Client().CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/name=orthanc,app.kubernetes.io/component=web"})
	require.NoError(t, err)
	var live []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	sort.Slice(live, func(i, j int) bool { return live[i].Name < live[j].Name })
	return live
}

// restarts maps each Orthanc pod (by UID, so that a replaced pod shows) to
// its orthanc container's restartCount.
func (s *scenario) restarts(t *testing.T, ns string) map[string]int32 {
	t.Helper()
	out := map[string]int32{}
	for _, p := range s.orthancPods(t, ns) {
		for _, st := range p.Status.ContainerStatuses {
			if st.Name == "orthanc" {
				out[p.Name+"/"+string(p.UID)] = st.RestartCount
			}
		}
	}
	return out
}

// upgradeCommons upgrades commons with its values plus more.
func (s *scenario) upgradeCommons(t *testing.T, more []string) {
	start := time.Now()
	out := s.c.Helm3(t, append([]string{"upgrade", "commons", filepath.Join(s.cm.charts, "charts", "commons"), "-n", s.cm.ns,
		"--reuse-values", "--wait", "--wait-for-jobs", "--timeout", "15m"}, more...)...)
	require.Contains(t, out, "STATUS: deployed")
	t.Logf("helm upgrade commons %v: %.1fs", more, time.Since(start).Seconds())
	s.waitClusterWhole(t)
}

// waitClusterWhole waits until commons' Cluster is Ready with both
// instances.
func (s *scenario) waitClusterWhole(t *testing.T) {
	t.Helper()
	s.kubectl(t, "wait", "-n", s.cm.ns, "cluster/"+commonsCluster, "--for=condition=Ready", "--timeout=10m")
	require.Eventually(t, func() bool { return s.statusOf(t, s.cm.ns, commonsCluster).ReadyInstances == 2 }, 5*time.Minute, 2*time.Second,
		"commons' Cluster has 2 ready instances")
}

// requireReplication checks on the primary (through -rw, as the
// superuser, the session closed at once: an open one would hold up a
// smart shutdown) that the replica streams and is synchronous or not as
// the mode says.
func (s *scenario) requireReplication(t *testing.T, synchronous bool) {
	t.Helper()
	admin, err := s.c.Client().CoreV1().Secrets(s.cm.ns).Get(context.Background(), commonsCluster+"-admin", metav1.GetOptions{})
	require.NoError(t, err)
	rw := fmt.Sprintf("%s-rw.%s.svc", commonsCluster, s.cm.ns)
	cfg := s.clusterConnConfig(t, s.cm.ns, commonsCluster, rw, "postgres", string(admin.Data["password"]), "postgres")
	var names, states string
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgxConnect(ctx, cfg)
		if err != nil {
			t.Logf("%s: %v", rw, err)
			return false
		}
		defer conn.Close(context.Background())
		if err := conn.QueryRow(ctx, `SELECT current_setting('synchronous_standby_names'),
			coalesce((SELECT string_agg(application_name || ':' || state || ':' || sync_state, ',') FROM pg_stat_replication), '')`).Scan(&names, &states); err != nil {
			t.Logf("%s: %v", rw, err)
			return false
		}
		streaming := strings.Contains(states, ":streaming:")
		if synchronous {
			return streaming && names != "" && (strings.Contains(states, ":quorum") || strings.Contains(states, ":sync"))
		}
		return streaming && names == ""
	}, 3*time.Minute, 2*time.Second, "replication synchronous=%v (synchronous_standby_names %q, replicas %q)", synchronous, names, states)
	t.Logf("primary: synchronous_standby_names %q, replicas %s", names, states)
}

// uploadEvent is one attempt of the ingesting client.
type uploadEvent struct {
	start, end time.Time
	id         string
	err        error
}

// failoverUnderIngest deletes commons' Cluster primary while a client
// stores instances through Orthanc's Service one after another, until a
// replica is the primary and 10 uploads in a row have been acknowledged
// after it was promoted; then it waits for the Cluster to be whole and
// asks Orthanc, through its Service, for every instance it acknowledged.
func (s *scenario) failoverUnderIngest(t *testing.T, api *orthanctest.Instance, m failoverMode, seq int) failoverResult {
	ctx := context.Background()
	ns := s.cm.tenants[0]
	before := s.statusOf(t, s.cm.ns, commonsCluster)
	require.NotEmpty(t, before.CurrentPrimary)
	restartsBefore := s.restarts(t, ns)
	require.Len(t, restartsBefore, 2)

	var (
		mu     sync.Mutex
		events []uploadEvent
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			dicom := orthanctest.DicomFile(orthanctest.DicomSpec{Run: "failover", Study: seq, Instance: i})
			start := time.Now()
			r, err := api.Upload(dicom)
			end := time.Now()
			if err == nil && r.Status != "Success" {
				err = fmt.Errorf("upload %d: status %q", i, r.Status)
			}
			ev := uploadEvent{start: start, end: end, id: r.ID, err: err}
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
			if err != nil {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-done
	}()
	// Ingesting before the delete.
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		ok := 0
		for _, e := range events {
			if e.err == nil {
				ok++
			}
		}
		return ok >= 5
	}, 2*time.Minute, 100*time.Millisecond, "Orthanc acknowledges uploads before the failover")

	t0 := time.Now()
	require.NoError(t, s.c.Client().CoreV1().Pods(s.cm.ns).Delete(ctx, before.CurrentPrimary, metav1.DeleteOptions{}))
	promoted := time.Duration(-1)
	var after clusterStatus
	deadline := time.Now().Add(10 * time.Minute)
	for {
		if promoted < 0 {
			if st := s.statusOf(t, s.cm.ns, commonsCluster); st.CurrentPrimary != "" && st.CurrentPrimary != before.CurrentPrimary {
				promoted, after = time.Since(t0), st
			}
		}
		if promoted >= 0 && ackedInARowAfter(&mu, &events, t0.Add(promoted)) >= 10 {
			break
		}
		require.True(t, time.Now().Before(deadline), "10 uploads in a row acknowledged after a new primary was promoted, within 10 minutes of the delete (promoted at %v)", promoted)
		time.Sleep(500 * time.Millisecond)
	}
	close(stop)
	<-done

	r := failoverResult{mode: m.name, promoted: promoted, firstFailure: -1, oldPrimary: before.CurrentPrimary, newPrimary: after.CurrentPrimary}
	var lastAck time.Duration
	haveAck := false
	var acked []string
	lastErr := ""
	for _, e := range events {
		start, end := e.start.Sub(t0), e.end.Sub(t0) // from the delete; negative before it
		if e.err != nil {
			r.failed++
			if end >= 0 && r.firstFailure < 0 {
				r.firstFailure = end
			}
			if e.err.Error() != lastErr {
				t.Logf("%.1fs to %.1fs: upload through the Service: %v", start.Seconds(), end.Seconds(), e.err)
				lastErr = e.err.Error()
			}
			continue
		}
		r.acked++
		acked = append(acked, e.id)
		// The window: the longest time without an acknowledgement,
		// from the last one before the delete on.
		if haveAck && end >= 0 && end-lastAck > r.window {
			r.window, r.windowStart = end-lastAck, lastAck
		}
		lastAck, haveAck = end, true
	}

	s.waitClusterWhole(t)
	// Every acknowledged instance is still in Orthanc's index (the
	// tenant's database on the new primary).
	for _, id := range acked {
		var inst struct{ ID string }
		var code int
		var err error
		for attempt := 0; attempt < 30; attempt++ {
			code, err = api.GetJSON("/instances/"+id, &inst)
			if err == nil || code == http.StatusNotFound {
				break
			}
			time.Sleep(2 * time.Second)
		}
		if code == http.StatusNotFound {
			r.lost++
			t.Logf("acknowledged instance %s is gone", id)
			continue
		}
		require.NoError(t, err, "GET /instances/%s through the Service", id)
	}
	restartsAfter := s.restarts(t, ns)
	assert.Equal(t, restartsBefore, restartsAfter, "Orthanc pods neither restarted nor replaced: the plugin reconnects through -rw by itself")
	return r
}

// ackedInARowAfter counts the acknowledged uploads at the end of events
// that started after from, stopping at the latest failure.
func ackedInARowAfter(mu *sync.Mutex, events *[]uploadEvent, from time.Time) int {
	mu.Lock()
	defer mu.Unlock()
	n := 0
	for i := len(*events) - 1; i >= 0; i-- {
		e := (*events)[i]
		if e.err != nil || e.start.Before(from) {
			break
		}
		n++
	}
	return n
}

// failoverSummary is a Markdown table per mode: window min/median/max,
// promotion and lost uploads.
func failoverSummary(results []failoverResult) string {
	var order []string
	by := map[string][]failoverResult{}
	for _, r := range results {
		if _, ok := by[r.mode]; !ok {
			order = append(order, r.mode)
		}
		by[r.mode] = append(by[r.mode], r)
	}
	var b strings.Builder
	b.WriteString("| mode | runs | write-unavailability window min / median / max | primary promoted (from the delete) min / median / max | uploads acknowledged | acknowledged uploads lost |\n|---|---|---|---|---|---|\n")
	for _, mode := range order {
		rs := by[mode]
		var windows, promoted []time.Duration
		acked, lost := 0, 0
		for _, r := range rs {
			windows = append(windows, r.window)
			promoted = append(promoted, r.promoted)
			acked += r.acked
			lost += r.lost
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %d | %d |\n", mode, len(rs), spread(windows), spread(promoted), acked, lost)
	}
	return b.String()
}

// spread is "min / median / max" in seconds.
func spread(d []time.Duration) string {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	n := len(d)
	med := d[n/2]
	if n%2 == 0 {
		med = (d[n/2-1] + d[n/2]) / 2
	}
	return fmt.Sprintf("%.1f / %.1f / %.1f s", d[0].Seconds(), med.Seconds(), d[n-1].Seconds())
}
