package cnpg

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/internal/pgnames"
	"github.com/kommons/kommons/internal/testutil/orthanctest"
	"github.com/kommons/kommons/internal/testutil/testcluster"
)

// orthancPoolerInstances is how many PgBouncer pods commons' Pooler runs in
// the orthanc-pooler step: both must receive Orthanc's sessions.
const orthancPoolerInstances = 2

// orthancThroughPooler installs Orthanc (release pacs, 2 replicas) in the
// first tenant with its index through commons' Pooler (session mode, 2
// PgBouncer pods; postgresInit.connection.hostKey PGHOST_POOLER): it
// stores DICOM instances and reads them back, survives a pod restart, and
// the server sees every session of Orthanc's role coming from the PgBouncer
// pods, from both. Then the same Pooler is switched to transaction mode (a
// patch of the Pooler: the tenant Secret still says session, so the chart's
// start-up guard does not fire) and what Orthanc does is recorded
// (ORTHANC-TRANSACTION lines), and the Pooler is put back to session mode.
func (s *scenario) orthancThroughPooler(t *testing.T) {
	ctx := context.Background()
	ns := s.cm.tenants[0]
	pooler := commonsCluster + "-pooler-rw"
	s.kubectl(t, "patch", "-n", s.cm.ns, "pooler/"+pooler, "--type", "merge", "-p",
		fmt.Sprintf(`{"spec":{"instances":%d}}`, orthancPoolerInstances))
	s.waitPoolerPods(t, pooler, orthancPoolerInstances)

	s.installOrthanc(t, ns, "PGHOST_POOLER")
	api := s.orthancAPI(t, ns)
	role, err := pgnames.Physical(ns, orthancRelease, "orthanc")
	require.NoError(t, err)
	conn := s.commonsAdmin(ctx, t)
	defer conn.Close(ctx)

	var ids []string
	for i := 1; i <= 10; i++ {
		r, err := api.Upload(orthanctest.DicomFile(orthanctest.DicomSpec{Run: "pooled", Study: 1, Instance: i}))
		require.NoError(t, err, "upload %d through the session-mode pooler", i)
		require.Equal(t, "Success", r.Status)
		ids = append(ids, r.ID)
	}
	s.requireOrthancHas(t, api, ids)
	pods := s.orthancPods(t, ns)
	require.Len(t, pods, 2)
	fromPooler := s.requireSessionsFromPooler(ctx, t, ns, role, pooler)
	t.Logf("ORTHANC-SESSION %d instances stored and read back; Orthanc role %s sessions per PgBouncer pod: %v", len(ids), role, fromPooler)
	assert.Len(t, fromPooler, orthancPoolerInstances, "every PgBouncer pod serves some of Orthanc's sessions: %v", fromPooler)

	// A restarted pod opens its index connections through the pooler again.
	start := time.Now()
	require.NoError(t, s.c.Client().CoreV1().Pods(ns).Delete(ctx, pods[0].Name, metav1.DeleteOptions{}))
	require.Eventually(t, func() bool {
		live := s.orthancPods(t, ns)
		if len(live) != 2 {
			return false
		}
		for i := range live {
			if live[i].Name == pods[0].Name || !testcluster.PodReady(&live[i]) {
				return false
			}
		}
		return true
	}, 3*time.Minute, time.Second, "the deleted Orthanc pod is replaced and Ready")
	t.Logf("Orthanc pod %s deleted, replacement Ready in %.1fs", pods[0].Name, time.Since(start).Seconds())
	for i := 11; i <= 15; i++ {
		r, err := api.Upload(orthanctest.DicomFile(orthanctest.DicomSpec{Run: "pooled", Study: 1, Instance: i}))
		require.NoError(t, err, "upload %d after the restart", i)
		ids = append(ids, r.ID)
	}
	s.requireOrthancHas(t, api, ids)
	fromPooler = s.requireSessionsFromPooler(ctx, t, ns, role, pooler)
	t.Logf("ORTHANC-SESSION after a pod restart: %d instances read back; sessions per PgBouncer pod: %v", len(ids), fromPooler)

	s.orthancTransactionPooling(t, ns, pooler, role, ids)
}

// requireOrthancHas GETs every instance through the Service.
func (s *scenario) requireOrthancHas(t *testing.T, api *orthanctest.Instance, ids []string) {
	t.Helper()
	for _, id := range ids {
		var inst struct{ ID string }
		code, err := api.GetJSON("/instances/"+id, &inst)
		require.NoError(t, err, "GET /instances/%s (HTTP %d)", id, code)
		require.Equal(t, id, inst.ID)
	}
}

// poolerIPs maps the Ready PgBouncer pods' addresses to their names.
func (s *scenario) poolerIPs(t *testing.T, pooler string) map[string]string {
	t.Helper()
	list, err := s.c.Client().CoreV1().Pods(s.cm.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "cnpg.io/poolerName=" + pooler})
	require.NoError(t, err)
	out := map[string]string{}
	for i := range list.Items {
		p := &list.Items[i]
		if p.DeletionTimestamp == nil && testcluster.PodReady(p) && p.Status.PodIP != "" {
			out[p.Status.PodIP] = p.Name
		}
	}
	return out
}

// waitPoolerPods waits until the Pooler's Deployment has n Ready pods and
// no other.
func (s *scenario) waitPoolerPods(t *testing.T, pooler string, n int) {
	t.Helper()
	start := time.Now()
	require.Eventually(t, func() bool {
		d, err := s.c.Client().AppsV1().Deployments(s.cm.ns).Get(context.Background(), pooler, metav1.GetOptions{})
		if err != nil || d.Spec.Replicas == nil || int(*d.Spec.Replicas) != n || d.Status.ObservedGeneration < d.Generation {
			return false
		}
		return int(d.Status.ReadyReplicas) == n && int(d.Status.Replicas) == n && int(d.Status.UpdatedReplicas) == n && len(s.poolerIPs(t, pooler)) == n
	}, 4*time.Minute, time.Second, "Pooler %s has %d Ready PgBouncer pods", pooler, n)
	t.Logf("Pooler %s: %d PgBouncer pods Ready (%.1fs)", pooler, n, time.Since(start).Seconds())
}

// requireSessionsFromPooler waits until Orthanc's role has sessions on the
// primary and every one comes from a PgBouncer pod (none from an Orthanc
// pod directly); it returns the count per PgBouncer pod.
func (s *scenario) requireSessionsFromPooler(ctx context.Context, t *testing.T, ns, role, pooler string) map[string]int {
	t.Helper()
	ips := s.poolerIPs(t, pooler)
	var per map[string]int
	var other []string
	require.Eventually(t, func() bool {
		conn := s.commonsAdmin(ctx, t)
		defer conn.Close(ctx)
		rows, err := conn.Query(ctx, "SELECT coalesce(host(client_addr), 'local'), count(*) FROM pg_stat_activity WHERE usename = $1 GROUP BY 1", role)
		if err != nil {
			return false
		}
		defer rows.Close()
		per, other = map[string]int{}, nil
		for rows.Next() {
			var addr string
			var n int
			if rows.Scan(&addr, &n) != nil {
				return false
			}
			if name, ok := ips[addr]; ok {
				per[name] += n
			} else {
				other = append(other, fmt.Sprintf("%s x%d", addr, n))
			}
		}
		return rows.Err() == nil && len(per) > 0 && len(other) == 0
	}, 2*time.Minute, 2*time.Second, "every session of %s comes from a PgBouncer pod %v (others: %v)", role, ips, other)
	return per
}

func podReadyName(ok bool) string {
	if ok {
		return "Ready"
	}
	return "not Ready"
}

// orthancTransactionPooling switches commons' Pooler to transaction mode
// behind the chart's back, makes both PgBouncer pods and then the Orthanc
// pods start again on it, and records what Orthanc does: readiness, REST
// calls that write and read the index, its error log lines, advisory locks
// its role holds. Then it puts the Pooler back to session mode.
func (s *scenario) orthancTransactionPooling(t *testing.T, ns, pooler, role string, ids []string) {
	ctx := context.Background()
	kubectl := filepath.Join(s.c.Tools.KubeBin, "kubectl")
	setMode := func(mode string) {
		s.kubectl(t, "patch", "-n", s.cm.ns, "pooler/"+pooler, "--type", "merge", "-p", fmt.Sprintf(`{"spec":{"pgbouncer":{"poolMode":%q}}}`, mode))
		// Fresh PgBouncer processes (and no server connection of the
		// other mode left): delete the pods, the Deployment makes new ones.
		require.Eventually(t, func() bool {
			ok := 0
			for _, name := range s.poolerIPs(t, pooler) {
				out, err := s.c.Exec(kubectl, "exec", "-n", s.cm.ns, name, "-c", "pgbouncer", "--", "grep", "-x", "pool_mode = "+mode, "/controller/configs/pgbouncer.ini")
				if err == nil && strings.TrimSpace(out) != "" {
					ok++
				}
			}
			return ok == orthancPoolerInstances
		}, 2*time.Minute, 2*time.Second, "the instance manager writes pool_mode = %s into pgbouncer.ini", mode)
		s.kubectl(t, "delete", "pod", "-n", s.cm.ns, "-l", "cnpg.io/poolerName="+pooler, "--wait=true")
		s.waitPoolerPods(t, pooler, orthancPoolerInstances)
		for _, name := range s.poolerIPs(t, pooler) {
			out := s.kubectl(t, "exec", "-n", s.cm.ns, name, "-c", "pgbouncer", "--", "grep", "^pool_mode", "/controller/configs/pgbouncer.ini")
			require.Equal(t, "pool_mode = "+mode, strings.TrimSpace(out), name)
		}
		t.Logf("Pooler %s: PgBouncer pods restarted with pool_mode = %s", pooler, mode)
	}
	setMode("transaction")
	defer setMode("session")

	deploy := "deployment/" + orthancRelease + "-orthanc"
	api := s.orthancAPI(t, ns)
	record := func(what string) {
		// The existing pods lost their server connections with the PgBouncer pods.
		for _, id := range ids[:3] {
			var inst struct{ ID string }
			code, err := api.GetJSON("/instances/"+id, &inst)
			t.Logf("ORTHANC-TRANSACTION %s: GET /instances/%s: HTTP %d %v", what, id, code, err)
		}
		for i := 1; i <= 3; i++ {
			r, err := api.Upload(orthanctest.DicomFile(orthanctest.DicomSpec{Run: "txpool-" + strings.ReplaceAll(what, " ", "-"), Study: 1, Instance: i}))
			t.Logf("ORTHANC-TRANSACTION %s: upload %d: %+v %v", what, i, r, err)
		}
		q, _ := json.Marshal(map[string]any{"Level": "Instance", "Query": map[string]string{"PatientID": orthanctest.PatientID("pooled", 1)}})
		code, body, err := api.Do(http.MethodPost, "/tools/find", "application/json", q)
		var found []string
		if code == http.StatusOK && json.Unmarshal(body, &found) == nil {
			t.Logf("ORTHANC-TRANSACTION %s: POST /tools/find (PatientID): HTTP 200, %d instances (want %d)", what, len(found), len(ids))
		} else {
			t.Logf("ORTHANC-TRANSACTION %s: POST /tools/find (PatientID): HTTP %d %.300s %v", what, code, body, err)
		}
		for _, p := range s.orthancPods(t, ns) {
			var restarts int32
			for _, st := range p.Status.ContainerStatuses {
				restarts += st.RestartCount
			}
			logs, _ := s.c.Exec(kubectl, "logs", "-n", ns, p.Name, "-c", "orthanc", "--tail", "400")
			var errs []string
			seen := map[string]bool{}
			for _, line := range strings.Split(logs, "\n") {
				if (strings.HasPrefix(line, "E") || strings.Contains(line, "rror")) && !seen[trimLogPrefix(line)] {
					seen[trimLogPrefix(line)] = true
					errs = append(errs, line)
				}
			}
			if len(errs) > 12 {
				errs = append(errs[:12], fmt.Sprintf("... %d more", len(errs)-12))
			}
			t.Logf("ORTHANC-TRANSACTION %s: pod %s %s, %d restarts, distinct error lines:\n%s", what, p.Name, podReadyName(testcluster.PodReady(&p)), restarts, strings.Join(errs, "\n"))
		}
		conn := s.commonsAdmin(ctx, t)
		defer conn.Close(ctx)
		var locks, sessions int
		require.NoError(t, conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND a.usename = $1),
			(SELECT count(*) FROM pg_stat_activity WHERE usename = $1)`, role).Scan(&locks, &sessions))
		t.Logf("ORTHANC-TRANSACTION %s: %d server sessions of %s, %d advisory locks held by them", what, sessions, role, locks)
	}
	record("running pods after the switch")
	for round := 1; round <= 2; round++ {
		start := time.Now()
		s.kubectl(t, "rollout", "restart", "-n", ns, deploy)
		out, err := s.c.Exec(kubectl, "rollout", "status", "-n", ns, deploy, "--timeout=150s")
		t.Logf("ORTHANC-TRANSACTION restart %d: rollout %v after %.1fs: %s", round, err, time.Since(start).Seconds(), strings.TrimSpace(lastLine(out)))
		record(fmt.Sprintf("after restart %d", round))
		if err != nil {
			break
		}
	}
}

// trimLogPrefix drops Orthanc's "E1207 23:01:02.123456  thread" prefix
// so that repeated messages are logged once.
func trimLogPrefix(line string) string {
	if i := strings.Index(line, "] "); i >= 0 {
		return line[i+2:]
	}
	return line
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
