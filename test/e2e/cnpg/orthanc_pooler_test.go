package cnpg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
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
// pooler-mode guard lets the pods start): what Orthanc does is recorded
// (ORTHANC-TRANSACTION lines) and a new pod must fail to start; with the
// tenant Secret saying transaction, the guard must stop a new pod before
// Orthanc starts (ORTHANC-GUARD). Then everything is put back to session
// mode and the rollout completes.
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
			// kubectl's combined output may carry a warning line of its own
			// (its exec stream): the file's lines are the ones starting pool_mode.
			out := s.kubectl(t, "exec", "-n", s.cm.ns, name, "-c", "pgbouncer", "--", "grep", "^pool_mode", "/controller/configs/pgbouncer.ini")
			var modes []string
			for _, line := range strings.Split(out, "\n") {
				if strings.HasPrefix(line, "pool_mode") {
					modes = append(modes, strings.TrimSpace(line))
				}
			}
			require.Equal(t, []string{"pool_mode = " + mode}, modes, "%s: %s", name, out)
		}
		t.Logf("Pooler %s: PgBouncer pods restarted with pool_mode = %s", pooler, mode)
	}
	setMode("transaction")
	restored := false
	defer func() {
		if !restored {
			setMode("session")
		}
	}()

	deploy := orthancRelease + "-orthanc"
	api := s.orthancAPI(t, ns)
	// The running pods lost their server connections with the PgBouncer
	// pods; the plugin reopens one per failed request.
	settleReads(t, api, ids[0], "the running Orthanc pods read again through the transaction-mode pooler")
	uploads := s.recordTransactionMode(t, ns, role, "running pods (started in session mode)", api, ids)
	t.Logf("ORTHANC-TRANSACTION running pods: %d of 3 uploads stored", uploads)

	// New pods: a rollout whose first new pod starts through the
	// transaction-mode pooler.
	old := map[string]bool{}
	for _, p := range s.orthancPods(t, ns) {
		old[p.Name] = true
	}
	start := time.Now()
	s.kubectl(t, "rollout", "restart", "-n", ns, "deployment/"+deploy)
	var fresh string
	require.Eventually(t, func() bool {
		for _, p := range s.orthancPods(t, ns) {
			if old[p.Name] {
				continue
			}
			fresh = p.Name
			if testcluster.PodReady(&p) {
				return true
			}
			for _, st := range p.Status.ContainerStatuses {
				if st.Name == "orthanc" && st.RestartCount >= 2 {
					return true
				}
			}
		}
		return false
	}, 3*time.Minute, time.Second, "the new Orthanc pod is Ready or has exited twice")
	pod, err := s.c.Client().CoreV1().Pods(ns).Get(ctx, fresh, metav1.GetOptions{})
	require.NoError(t, err)
	t.Logf("ORTHANC-TRANSACTION new pod %s after %.1fs: %s", fresh, time.Since(start).Seconds(), podStatusLine(pod))
	// The pod's own log (its last run's, or the current one's; the
	// container may be between runs): retried, the kubelet can refuse
	// while it restarts it.
	var logs string
	require.Eventually(t, func() bool {
		for _, prev := range []bool{true, false} {
			args := []string{"logs", "-n", ns, fresh, "-c", "orthanc"}
			if prev {
				args = append(args, "--previous")
			}
			if out, err := s.c.Exec(kubectl, args...); err == nil && strings.Contains(out, "does not exist") {
				logs = out
				return true
			}
		}
		return false
	}, time.Minute, 2*time.Second, "the new pod's log names the failed statement")
	t.Logf("ORTHANC-TRANSACTION new pod %s, error lines of a run:\n%s", fresh, strings.Join(errorLines(logs, 12), "\n"))
	assert.False(t, testcluster.PodReady(pod), "a new Orthanc pod does not start through transaction pooling")
	assert.Contains(t, logs, `PostgreSQL error: ERROR:  prepared statement "`, "the plugin's named statements")
	// The server says which statement failed: the plugin's SQL-level
	// DEALLOCATE of a statement PgBouncer prepared under its own name.
	server := s.serverErrors(t, role)
	assert.True(t, containsAll(server, "26000 prepared statement", `statement: DEALLOCATE "`), "the primary logged the failed DEALLOCATE: %v", server)

	// The chart's guard: when the tenant Secret says transaction (as commons
	// writes it with pooler.poolMode transaction), a new pod stops in its
	// pooler-mode init container with the chart's message. The Secret is
	// patched here (commons' secret-init owns it; the patch is undone below).
	tenantPatch := func(mode string) {
		s.kubectl(t, "patch", "secret", "-n", ns, "kommons-commons", "--type", "merge", "-p", fmt.Sprintf(`{"stringData":{"PGPOOLER_MODE":%q}}`, mode))
	}
	tenantPatch("transaction")
	defer func() {
		if !restored {
			tenantPatch("session")
		}
	}()
	s.kubectl(t, "delete", "pod", "-n", ns, fresh, "--wait=false")
	var guarded string
	require.Eventually(t, func() bool {
		for _, p := range s.orthancPods(t, ns) {
			if old[p.Name] || p.Name == fresh {
				continue
			}
			for _, st := range p.Status.InitContainerStatuses {
				if st.Name == "pooler-mode" && (st.State.Terminated != nil && st.State.Terminated.ExitCode != 0 || st.LastTerminationState.Terminated != nil) {
					guarded = p.Name
					return true
				}
			}
		}
		return false
	}, 2*time.Minute, time.Second, "a new Orthanc pod stops in its pooler-mode init container")
	msg := s.kubectl(t, "logs", "-n", ns, guarded, "-c", "pooler-mode")
	t.Logf("ORTHANC-GUARD pod %s, init container pooler-mode: %s", guarded, strings.TrimSpace(msg))
	assert.Contains(t, msg, `pool mode is "transaction"`)
	assert.Contains(t, msg, "needs session pooling")
	g, err := s.c.Client().CoreV1().Pods(ns).Get(ctx, guarded, metav1.GetOptions{})
	require.NoError(t, err)
	for _, st := range g.Status.ContainerStatuses {
		if st.Name == "orthanc" {
			assert.Nil(t, st.State.Running, "Orthanc never started in the guarded pod")
			assert.Zero(t, st.RestartCount)
		}
	}

	// Back to session mode (Secret, Pooler), and the rollout completes.
	tenantPatch("session")
	setMode("session")
	restored = true
	s.kubectl(t, "delete", "pod", "-n", ns, guarded, "--wait=false")
	start = time.Now()
	s.kubectl(t, "rollout", "status", "-n", ns, "deployment/"+deploy, "--timeout=4m")
	t.Logf("Orthanc rollout complete through the session-mode pooler again (%.1fs)", time.Since(start).Seconds())
	settleReads(t, api, ids[0], "Orthanc reads again through the session-mode pooler")
	s.requireOrthancHas(t, api, ids)
}

// settleReads reads instance id through the Service until 10 reads in a
// row succeed: after the PgBouncer pods were replaced, each of Orthanc's
// index connections fails once (HTTP 503, Orthanc error 36) and is reopened.
func settleReads(t *testing.T, api *orthanctest.Instance, id, what string) {
	t.Helper()
	ok, failed := 0, 0
	require.Eventually(t, func() bool {
		var inst struct{ ID string }
		if _, err := api.GetJSON("/instances/"+id, &inst); err != nil {
			ok = 0
			failed++
			return false
		}
		ok++
		return ok >= 10
	}, 2*time.Minute, 200*time.Millisecond, what)
	t.Logf("%s (%d failed reads first)", what, failed)
}

// recordTransactionMode logs what Orthanc answers through the
// transaction-mode pooler: reads, uploads (returned: how many were
// stored), a lookup, the pods' error lines and the role's advisory locks.
func (s *scenario) recordTransactionMode(t *testing.T, ns, role, what string, api *orthanctest.Instance, ids []string) int {
	t.Helper()
	ctx := context.Background()
	kubectl := filepath.Join(s.c.Tools.KubeBin, "kubectl")
	for _, id := range ids[:3] {
		var inst struct{ ID string }
		code, err := api.GetJSON("/instances/"+id, &inst)
		t.Logf("ORTHANC-TRANSACTION %s: GET /instances/%s: HTTP %d %v", what, id, code, oneLine(err))
	}
	stored := 0
	for i := 1; i <= 3; i++ {
		r, err := api.Upload(orthanctest.DicomFile(orthanctest.DicomSpec{Run: "txpool", Study: 1, Instance: i}))
		if err == nil && r.Status == "Success" {
			stored++
		}
		t.Logf("ORTHANC-TRANSACTION %s: upload %d: %q %v", what, i, r.Status, oneLine(err))
	}
	q, _ := json.Marshal(map[string]any{"Level": "Instance", "Query": map[string]string{"PatientID": orthanctest.PatientID("pooled", 1)}})
	code, body, err := api.Do(http.MethodPost, "/tools/find", "application/json", q)
	var found []string
	if code == http.StatusOK && json.Unmarshal(body, &found) == nil {
		t.Logf("ORTHANC-TRANSACTION %s: POST /tools/find (PatientID): HTTP 200, %d instances (of %d)", what, len(found), len(ids))
	} else {
		t.Logf("ORTHANC-TRANSACTION %s: POST /tools/find (PatientID): HTTP %d %s %v", what, code, oneLine(errors.New(string(body))), err)
	}
	for _, p := range s.orthancPods(t, ns) {
		logs, _ := s.c.Exec(kubectl, "logs", "-n", ns, p.Name, "-c", "orthanc", "--tail", "400")
		t.Logf("ORTHANC-TRANSACTION %s: pod %s, distinct error lines:\n%s", what, podStatusLine(&p), strings.Join(errorLines(logs, 12), "\n"))
	}
	conn := s.commonsAdmin(ctx, t)
	defer conn.Close(ctx)
	var locks, sessions int
	require.NoError(t, conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND a.usename = $1),
		(SELECT count(*) FROM pg_stat_activity WHERE usename = $1)`, role).Scan(&locks, &sessions))
	t.Logf("ORTHANC-TRANSACTION %s: %d server sessions of %s, %d advisory locks held by them", what, sessions, role, locks)
	return stored
}

// serverErrors logs the primary's log records of role's failed statements
// (PostgreSQL logs the statement of an error: log_min_error_statement).
func (s *scenario) serverErrors(t *testing.T, role string) []string {
	t.Helper()
	st := s.statusOf(t, s.cm.ns, commonsCluster)
	out, err := s.c.Exec(filepath.Join(s.c.Tools.KubeBin, "kubectl"), "logs", "-n", s.cm.ns, st.CurrentPrimary, "-c", "postgres", "--since", "10m")
	if err != nil {
		t.Logf("logs of %s: %v", st.CurrentPrimary, err)
		return nil
	}
	seen := map[string]bool{}
	var lines []string
	undecoded := 0
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, role) || !strings.Contains(line, "ERROR") {
			continue
		}
		var rec struct {
			Record struct {
				Severity string `json:"error_severity"`
				Message  string `json:"message"`
				Query    string `json:"query"`
				State    string `json:"sql_state_code"`
			} `json:"record"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil || rec.Record.Severity != "ERROR" {
			if undecoded++; undecoded <= 2 {
				t.Logf("primary's log line not decoded: %.400s", line)
			}
			continue
		}
		key := rec.Record.State + rec.Record.Message[:min(len(rec.Record.Message), 30)] + rec.Record.Query[:min(len(rec.Record.Query), 20)]
		if seen[key] {
			continue
		}
		seen[key] = true
		lines = append(lines, fmt.Sprintf("%s %s; statement: %.160s", rec.Record.State, rec.Record.Message, rec.Record.Query))
	}
	if len(lines) > 10 {
		lines = lines[:10]
	}
	t.Logf("ORTHANC-TRANSACTION the primary %s logged for %s (distinct; %d log lines of %d bytes read):\n%s", st.CurrentPrimary, role, strings.Count(out, "\n"), len(out), strings.Join(lines, "\n"))
	return lines
}

// containsAll reports whether one of lines contains every one of parts.
func containsAll(lines []string, parts ...string) bool {
	for _, l := range lines {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			return true
		}
	}
	return false
}

func podStatusLine(p *corev1.Pod) string {
	var restarts int32
	var state []string
	for _, st := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		restarts += st.RestartCount
		switch {
		case st.State.Waiting != nil:
			state = append(state, st.Name+":"+st.State.Waiting.Reason)
		case st.State.Terminated != nil:
			state = append(state, fmt.Sprintf("%s:exit %d", st.Name, st.State.Terminated.ExitCode))
		}
	}
	return fmt.Sprintf("%s %s, %d restarts %v", p.Name, podReadyName(testcluster.PodReady(p)), restarts, state)
}

// errorLines are Orthanc's distinct error log lines (E...), at most n.
func errorLines(logs string, n int) []string {
	var out []string
	seen := map[string]bool{}
	for _, line := range strings.Split(logs, "\n") {
		if strings.HasPrefix(line, "E") && !seen[trimLogPrefix(line)] && !strings.Contains(line, "global locale") {
			seen[trimLogPrefix(line)] = true
			out = append(out, line)
		}
	}
	if len(out) > n {
		out = append(out[:n], fmt.Sprintf("... %d more", len(out)-n))
	}
	return out
}

func oneLine(err error) string {
	if err == nil {
		return "<nil>"
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

// trimLogPrefix drops Orthanc's "E1207 23:01:02.123456  thread" prefix
// so that repeated messages are logged once.
func trimLogPrefix(line string) string {
	if i := strings.Index(line, "] "); i >= 0 {
		return line[i+2:]
	}
	return line
}
