// Package realnode installs the charts on a Kubernetes node where pods
// really run (internal/testutil/testcluster's real-node mode: containerd,
// runc, the kubelet, kube-proxy, CoreDNS and the CNI bridge inside a
// private network, mount and PID namespace; images built by
// internal/testutil/nodeimages). Unlike the kwok cluster, a wrong command,
// environment variable, mount, probe, security context or Service port in
// a chart fails here.
//
// One ordered scenario, each step depending on the previous one:
// commons, two tenant modules (examples/charts/hello-module), Orthanc with
// two replicas; then day 2: upgrades, a PostgreSQL pod deleted, Orthanc
// uninstalled. Everything goes through Helm 3 and the kommons post-renderer.
package realnode

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/internal/testutil/helmplugin"
	"github.com/kommons/kommons/internal/testutil/nodeimages"
	"github.com/kommons/kommons/internal/testutil/orthanctest"
	"github.com/kommons/kommons/internal/testutil/testcluster"
)

func TestMain(m *testing.M) { testcluster.MainInSandbox(m) }

// scenario is the state shared by the ordered steps.
type scenario struct {
	c        *testcluster.Cluster
	img      *nodeimages.Set
	charts   string   // staged copy of charts/ and examples/charts/
	post     []string // Helm 3 flags of the post-renderer (executable)
	helm4    func(testing.TB, ...string) string
	post4    []string // Helm 4 flags of the post-renderer (plugin)
	commons  string   // namespace of commons
	modules  [2]string
	imaging  string
	orthanc  []string // Orthanc values
	uploaded int
	run      string
	pgAddr   string // commons PostgreSQL Service address
	adminPW  string // commons' PostgreSQL admin password
	tls      *dicomTLS
}

// startScenario starts the control plane and the real node, dumps the
// cluster's state when the test fails, and prepares what every step uses.
func startScenario(t *testing.T) *scenario {
	c := testcluster.StartNode(t)
	s := &scenario{c: c, img: c.Images, run: strconv.FormatInt(time.Now().UnixNano()%1e9, 36)}
	t.Cleanup(func() {
		if t.Failed() {
			s.c.Dump(t)
		}
	})
	s.prepare(t)
	return s
}

func TestRealNode(t *testing.T) {
	s := startScenario(t)
	for _, step := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"commons", s.installCommons},
		{"tenant-modules", s.installModules},
		{"orthanc", s.installOrthanc},
		{"orthanc-dicom", s.dicomThroughService},
		{"dicom-over-the-wire", s.dicomOverTheWire},
		{"orthanc-jobs-instance", s.jobsInstanceRouting},
		{"orthanc-dicom-tls", s.dicomTLSPods},
		{"upgrade-orthanc", s.upgradeOrthanc},
		{"upgrade-commons", s.upgradeCommons},
		{"postgresql-pod-deleted", s.deletePostgresPod},
		{"wait-for-pg-blocks", s.waitForPgBlocks},
		{"uninstall-orthanc", s.uninstallOrthanc},
	} {
		if !t.Run(step.name, step.fn) {
			t.Fatalf("step %s failed; later steps depend on it", step.name)
		}
	}
}

func (s *scenario) prepare(t *testing.T) {
	s.c.LabelNodeForPools(t)

	root := s.c.Tools.RepoRoot
	bin := filepath.Join(t.TempDir(), "postrender")
	build := exec.Command("go", "build", "-o", bin, "./cmd/postrender")
	build.Dir = root
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build ./cmd/postrender:\n%s", out)
	policyPath := filepath.Join(t.TempDir(), "policy.yaml")
	require.NoError(t, os.WriteFile(policyPath, []byte(testcluster.PoolPolicy), 0o644))
	s.post = []string{"--post-renderer", bin, "--post-renderer-args", "--config=" + policyPath}
	s.helm4 = s.c.Helm4WithPlugins(t, helmplugin.StagePostrender(t, root))
	s.post4 = []string{"--post-renderer", helmplugin.Name, "--post-renderer-args", "--config=" + policyPath}

	// Stage the charts (dependency build writes into them, with the
	// repository's layout so that file:// dependencies resolve).
	s.charts = s.c.StageCharts(t)

	s.commons = s.c.Namespace(t, "commons")
	s.modules = [2]string{s.c.Namespace(t, "module-a"), s.c.Namespace(t, "module-b")}
	s.imaging = s.c.Namespace(t, "imaging")
}

// helm runs Helm 3 through the post-renderer.
func (s *scenario) helm(t *testing.T, args ...string) string {
	t.Helper()
	start := time.Now()
	out := s.c.Helm3(t, append(args, s.post...)...)
	t.Logf("helm %s %s: %.1fs", args[0], args[1], time.Since(start).Seconds())
	return out
}

// provisionerValues points a postgres-init dependency (under prefix) at
// commons' tenant Secret and the test's tools image.
func (s *scenario) provisionerValues(prefix string) []string {
	return testcluster.ProvisionerValues(prefix, s.img.Tools)
}

func (s *scenario) commonsValues() []string {
	v := []string{
		"--set", "tenants[0].namespace=" + s.modules[0], "--set", "tenants[1].namespace=" + s.modules[1],
		"--set", "tenants[2].namespace=" + s.imaging, "--set", "tenants[2].buckets[0]=dicom",
		"--set", "postgresql.persistence.size=2Gi",
	}
	v = append(v, testcluster.ImageValues("tools.image", s.img.Tools)...)
	v = append(v, testcluster.ImageValues("postgresql.image", s.img.Postgres)...)
	return append(v, testcluster.ImageValues("objectStorage.minio.image", s.img.MinIO)...)
}

func (s *scenario) installCommons(t *testing.T) {
	s.helm(t, append([]string{"install", "commons", filepath.Join(s.charts, "charts", "commons"), "-n", s.commons,
		"--wait", "--wait-for-jobs", "--timeout", "10m"}, s.commonsValues()...)...)
	s.requirePodsReady(t, s.commons)
	pg := s.onePod(t, s.commons, "app.kubernetes.io/component=database")
	assert.Equal(t, "true", pg.Spec.NodeSelector["kommons.test/pool-db"], "PostgreSQL placed on pool db by the post-renderer")
	assert.Equal(t, testcluster.NodeName, pg.Spec.NodeName)

	admin := s.c.SecretData(t, s.modules[0], "kommons-commons")
	s.adminPW = admin["PGPASSWORD"]
	conn := s.connect(t, admin["PGUSER"], s.adminPW, "postgres")
	var version string
	require.NoError(t, conn.QueryRow(context.Background(), "SHOW server_version").Scan(&version))
	t.Logf("commons PostgreSQL %s answers through its Service as %s", version, admin["PGUSER"])
}

// installModules installs the example module twice: module A with Helm 3
// and the post-renderer executable, module B with Helm 4 and the
// post-renderer plugin.
func (s *scenario) installModules(t *testing.T) {
	for i, ns := range s.modules {
		values := append([]string{"install", "hello", filepath.Join(s.charts, "examples", "charts", "hello-module"), "-n", ns,
			"--wait", "--wait-for-jobs", "--timeout", "5m"}, testcluster.ImageValues("image", s.img.Hello)...)
		values = append(values, s.provisionerValues("postgresInit")...)
		if i == 0 {
			s.helm(t, values...)
		} else {
			start := time.Now()
			s.helm4(t, append(values, s.post4...)...)
			t.Logf("helm 4 install hello (plugin post-renderer): %.1fs", time.Since(start).Seconds())
		}
		s.requirePodsReady(t, ns)
		web := s.onePod(t, ns, "app.kubernetes.io/name=hello-module")
		assert.Equal(t, "true", web.Spec.NodeSelector["kommons.test/pool-app"], "module %d placed on pool app", i)
		s.requirePgInitSummary(t, ns)
	}
	// Each module's web pod reached its own database with its own role
	// through its Service (readiness probes passed, and we ask it again).
	var dbs [2]string
	for i, ns := range s.modules {
		body := s.httpGet(t, "http://"+s.c.ServiceAddr(t, ns, "hello-hello", "http")+"/", "", "")
		require.Contains(t, body, "hello from database ")
		dbs[i] = strings.Fields(strings.TrimPrefix(body, "hello from database "))[0]
	}
	require.NotEqual(t, dbs[0], dbs[1], "two instances of one module get distinct databases")
	// What pg-init created, seen by the server: each database owned by its
	// module's role, which is an ordinary login role.
	admin := s.c.SecretData(t, s.modules[0], "kommons-commons")
	conn := s.connect(t, admin["PGUSER"], admin["PGPASSWORD"], "postgres")
	for i, ns := range s.modules {
		creds := s.roleCredentials(t, ns)
		require.Equal(t, dbs[i], creds["PGDATABASE"])
		var owner string
		var super, createdb, createrole bool
		require.NoError(t, conn.QueryRow(context.Background(), `SELECT pg_get_userbyid(d.datdba), r.rolsuper, r.rolcreatedb, r.rolcreaterole
			FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = $1`, dbs[i]).Scan(&owner, &super, &createdb, &createrole))
		assert.Equal(t, creds["PGUSER"], owner, "database %s owned by the module's role", dbs[i])
		assert.False(t, super || createdb || createrole, "role %s has no admin attributes", owner)
	}
	// Isolation on the shared server: module A's role cannot open module B's database.
	credsA := s.roleCredentials(t, s.modules[0])
	_, err := s.tryConnect(credsA["PGUSER"], credsA["PGPASSWORD"], dbs[1])
	require.Error(t, err, "module A's role must not connect to module B's database")
	assert.Contains(t, err.Error(), "permission denied")
	s.tenantProvisionersConfined(t, conn)
}

// tenantProvisionersConfined: each tenant namespace holds its own
// provisioner (commons' tenant Secret), and with everything tenant A's
// namespace holds, nothing of tenant B's is reachable on the real server
// (PostgreSQL 18, the chart's default major): test/isolation has the full
// suite on every version; this is the same promise on the real node.
func (s *scenario) tenantProvisionersConfined(t *testing.T, conn *pgx.Conn) {
	ctx := context.Background()
	var version string
	require.NoError(t, conn.QueryRow(ctx, "SHOW server_version").Scan(&version))
	t.Logf("real-node PostgreSQL %s", version)
	provA, provB := s.c.SecretData(t, s.modules[0], "kommons-commons"), s.c.SecretData(t, s.modules[1], "kommons-commons")
	require.NotEqual(t, provA["PGUSER"], provB["PGUSER"], "each tenant has its own provisioner")
	require.NotEqual(t, provA["PGPASSWORD"], provB["PGPASSWORD"])
	credsB := s.roleCredentials(t, s.modules[1])
	roleB, dbB := pgx.Identifier{credsB["PGUSER"]}.Sanitize(), pgx.Identifier{credsB["PGDATABASE"]}.Sanitize()
	_, err := s.tryConnect(provA["PGUSER"], provA["PGPASSWORD"], credsB["PGDATABASE"])
	require.Error(t, err, "tenant A's provisioner must not connect to tenant B's database")
	asA := s.connect(t, provA["PGUSER"], provA["PGPASSWORD"], "postgres")
	for _, attack := range []string{
		"SET ROLE " + roleB,
		"ALTER ROLE " + roleB + " PASSWORD 'taken-over-123'",
		"GRANT " + roleB + " TO CURRENT_USER",
		"COMMENT ON ROLE " + roleB + " IS 'forged'",
		"DROP ROLE " + roleB,
		"ALTER DATABASE " + dbB + " OWNER TO CURRENT_USER",
		"DROP DATABASE " + dbB,
		"ALTER ROLE " + pgx.Identifier{provB["PGUSER"]}.Sanitize() + " PASSWORD 'taken-over-123'",
	} {
		_, err := asA.Exec(ctx, attack)
		require.Error(t, err, "ATTACK SUCCEEDED on the real node as tenant A's provisioner: %s", attack)
		t.Logf("refused: %s: %v", attack, err)
	}
	// B's module still logs in with its own password.
	s.connect(t, credsB["PGUSER"], credsB["PGPASSWORD"], credsB["PGDATABASE"])
}

func (s *scenario) orthancValues() []string {
	v := []string{
		"--set", "replicaCount=2", "--set", "storage.type=filesystem", "--set", "storage.filesystem.size=1Gi",
		// A wrong called AE title is refused; FINDSCU is the modality allowed to C-FIND (dicomOverTheWire).
		"--set", "orthanc.dicomCheckCalledAet=true",
		"--set-json", `orthanc.config={"DicomModalities": {"findscu": ["FINDSCU", "127.0.0.1", 104]}}`,
	}
	v = append(v, testcluster.OrthancValues(s.img.Orthanc)...)
	return append(v, s.provisionerValues("postgresInit")...)
}

func (s *scenario) installOrthanc(t *testing.T) {
	s.orthanc = s.orthancValues()
	s.helm(t, append([]string{"install", "pacs", filepath.Join(s.charts, "charts", "orthanc"), "-n", s.imaging,
		"--wait", "--wait-for-jobs", "--timeout", "10m"}, s.orthanc...)...)
	s.requirePodsReady(t, s.imaging)
	s.requirePgInitSummary(t, s.imaging)
	pods := s.orthancPods(t)
	require.Len(t, pods, 2)
	for _, p := range pods {
		assert.Equal(t, "true", p.Spec.NodeSelector["kommons.test/pool-app"], "Orthanc placed on pool app")
	}

	// Ordering, from the pods' own logs and statuses: each wait-for-pg init
	// container saw the database ready only after pg-init logged its
	// summary, and Orthanc started only after wait-for-pg exited 0.
	job := s.pgInitJob(t, s.imaging)
	provisioned := logTime(t, s.c.Kubectl(t, "logs", "-n", s.imaging, "job/"+job.Name), "summary")
	for _, p := range pods {
		logs := s.c.Kubectl(t, "logs", "-n", s.imaging, p.Name, "-c", "wait-for-pg")
		ready := logTime(t, logs, "PostgreSQL ready")
		assert.False(t, ready.Before(provisioned), "pod %s: wait-for-pg ready at %s, before pg-init finished at %s", p.Name, ready, provisioned)
		waited := initContainerExit(t, &p, "wait-for-pg")
		assert.Zero(t, waited.ExitCode)
		for _, st := range p.Status.ContainerStatuses {
			if st.Name == "orthanc" {
				require.NotNil(t, st.State.Running)
				assert.False(t, st.State.Running.StartedAt.Before(&waited.FinishedAt), "Orthanc started after wait-for-pg")
				t.Logf("pod %s: pg-init done %s, wait-for-pg ready %s (exited %s), Orthanc started %s", p.Name,
					provisioned.Format(time.RFC3339Nano), ready.Format(time.RFC3339Nano), waited.FinishedAt.Format(time.RFC3339), st.State.Running.StartedAt.Format(time.RFC3339))
			}
		}
	}
}

// logTime returns the time of the first JSON log line whose msg is msg.
func logTime(t *testing.T, logs, msg string) time.Time {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		var l struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == msg {
			return l.Time
		}
	}
	t.Fatalf("no %q line in:\n%s", msg, logs)
	return time.Time{}
}

func initContainerExit(t *testing.T, p *corev1.Pod, name string) *corev1.ContainerStateTerminated {
	t.Helper()
	for _, st := range p.Status.InitContainerStatuses {
		if st.Name == name && st.State.Terminated != nil {
			return st.State.Terminated
		}
	}
	t.Fatalf("pod %s: init container %s has not terminated", p.Name, name)
	return nil
}

// waitForPgBlocks stops PostgreSQL (StatefulSet scaled to 0), replaces an
// Orthanc pod, and watches the new pod's wait-for-pg init container wait,
// with Orthanc not started, until PostgreSQL is back.
func (s *scenario) waitForPgBlocks(t *testing.T) {
	ctx := context.Background()
	sts := strings.TrimSuffix(s.onePod(t, s.commons, "app.kubernetes.io/component=database").Name, "-0")
	s.c.Kubectl(t, "scale", "statefulset", sts, "-n", s.commons, "--replicas", "0")
	testcluster.Eventually(t, "PostgreSQL stopped", 2*time.Minute, func() error {
		pods, err := s.c.Client().CoreV1().Pods(s.commons).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=database"})
		if err != nil || len(pods.Items) > 0 {
			return fmt.Errorf("still running (%v)", err)
		}
		return nil
	})
	before := s.podNames(s.orthancPods(t))
	require.NoError(t, s.c.Client().CoreV1().Pods(s.imaging).Delete(ctx, before[0], metav1.DeleteOptions{}))
	var fresh string
	testcluster.Eventually(t, "the new Orthanc pod's wait-for-pg waiting", 3*time.Minute, func() error {
		for _, p := range s.orthancPods(t) {
			if slices.Contains(before, p.Name) {
				continue // only the replacement pod started while PostgreSQL is down
			}
			out, err := s.c.Exec(filepath.Join(s.c.Tools.KubeBin, "kubectl"), "logs", "-n", s.imaging, p.Name, "-c", "wait-for-pg")
			if err == nil && strings.Contains(out, "waiting for PostgreSQL") {
				fresh = p.Name
				for _, st := range p.Status.ContainerStatuses {
					if st.Name == "orthanc" && (st.State.Running != nil || st.State.Terminated != nil) {
						return fmt.Errorf("orthanc container started while PostgreSQL is down")
					}
				}
				return nil
			}
		}
		return fmt.Errorf("no new pod waiting yet")
	})
	s.c.Kubectl(t, "scale", "statefulset", sts, "-n", s.commons, "--replicas", "1")
	s.requirePodsReady(t, s.commons)
	s.waitOrthancReady(t)
	logs := s.c.Kubectl(t, "logs", "-n", s.imaging, fresh, "-c", "wait-for-pg")
	p, err := s.c.Client().CoreV1().Pods(s.imaging).Get(ctx, fresh, metav1.GetOptions{})
	require.NoError(t, err)
	waited := initContainerExit(t, p, "wait-for-pg")
	t.Logf("pod %s waited for PostgreSQL (exited %s):\n%s", fresh, waited.FinishedAt.Format(time.RFC3339), logs)
	assert.Contains(t, logs, "PostgreSQL ready")
	s.requireCounts(t)
}

// dicomThroughService uploads through the Service, then reads every
// instance back from each replica directly: both see everything, because
// both index into the tenant's database.
func (s *scenario) dicomThroughService(t *testing.T) {
	svc := "http://" + s.c.ServiceAddr(t, s.imaging, "pacs-orthanc", "http")
	user, pw := s.orthancAuth(t)
	const n = 20
	files := map[string][]byte{}
	for i := 1; i <= n; i++ {
		spec := orthanctest.DicomSpec{Run: s.run, Study: 1 + i%4, Instance: i}
		files[orthanctest.UploadTo(t, svc, user, pw, orthanctest.DicomFile(spec))] = orthanctest.DicomFile(spec)
	}
	s.uploaded = n
	s.requireCounts(t)
	// Every instance, whichever replica the Service sent it to, downloads
	// byte for byte from each replica (index in PostgreSQL, files on the
	// shared volume).
	for _, p := range s.orthancPods(t) {
		for id, want := range files {
			got := s.httpGet(t, "http://"+net.JoinHostPort(p.Status.PodIP, "8042")+"/instances/"+id+"/file", user, pw)
			require.Equal(t, want, []byte(got), "instance %s from replica %s", id, p.Name)
		}
	}
	// The rows are in the tenant's database.
	creds := s.roleCredentials(t, s.imaging)
	conn := s.connect(t, creds["PGUSER"], creds["PGPASSWORD"], creds["PGDATABASE"])
	var rows int
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT count(*) FROM resources WHERE resourcetype = 3").Scan(&rows))
	assert.Equal(t, s.uploaded, rows, "instances indexed in %s", creds["PGDATABASE"])
}

// dicomOverTheWire: a modality's view of the Orthanc pods. DCMTK's echoscu
// and storescu (as a scanner or PACS would) reach the replicas through the
// chart's Service on its DICOM port, with the chart's AE title: C-ECHO
// succeeds, a batch of instances goes in with C-STORE, and every replica
// then lists every instance (one index in PostgreSQL, one volume).
func (s *scenario) dicomOverTheWire(t *testing.T) {
	orthanctest.RequireDcmtk(t)
	host, port, err := net.SplitHostPort(s.c.ServiceAddr(t, s.imaging, "pacs-orthanc", "dicom"))
	require.NoError(t, err)
	r := orthanctest.Dcmtk(t, "echoscu", "-aet", "MODALITY", "-aec", "ORTHANC", host, port)
	require.True(t, r.OK(), "C-ECHO through the Service: %s", r)
	dir := t.TempDir()
	var files []string
	for i := 1; i <= 6; i++ {
		path := filepath.Join(dir, fmt.Sprintf("%d.dcm", i))
		require.NoError(t, os.WriteFile(path, orthanctest.DicomFile(orthanctest.DicomSpec{Run: s.run, Study: 7, Instance: 500 + i}), 0o644))
		files = append(files, path)
	}
	start := time.Now()
	r = orthanctest.Dcmtk(t, "storescu", append([]string{"-aet", "MODALITY", "-aec", "ORTHANC", host, port}, files...)...)
	require.True(t, r.OK(), "C-STORE through the Service: %s", r)
	t.Logf("C-ECHO and C-STORE of %d instances through the Service %s:%s: %.1fs", len(files), host, port, time.Since(start).Seconds())
	s.uploaded += len(files)
	s.requireCounts(t)

	// orthanc.dicomCheckCalledAet is on: a modality calling another AE title is refused.
	r = orthanctest.Dcmtk(t, "echoscu", "-aet", "MODALITY", "-aec", "NOT-ORTHANC", host, port)
	require.False(t, r.OK(), "a wrong called AE title was accepted through the Service: %s", r)
	assert.Contains(t, r.Output, "Called AE Title Not Recognized", r.String())

	// C-FIND (study level) through the Service, as the declared modality
	// FINDSCU: every stored study, those uploaded over REST and over DICOM.
	r = orthanctest.Dcmtk(t, "findscu", "-S", "-aet", "FINDSCU", "-aec", "ORTHANC",
		"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID", "-k", "PatientID", host, port)
	require.True(t, r.OK(), "C-FIND through the Service: %s", r)
	found := orthanctest.DumpValues(r.Output, "0020,000d")
	sort.Strings(found)
	var want []string
	for _, study := range []int{1, 2, 3, 4, 7} {
		want = append(want, orthanctest.UID(s.run, "study", study))
	}
	sort.Strings(want)
	assert.Equal(t, want, found, "C-FIND study-level answers through the Service:\n%s", r.Output)
}

// requireCounts asks each Orthanc replica, by pod IP, for its statistics
// and instance list until both show exactly what was uploaded (after a
// PostgreSQL restart a replica answers 503 "database not available" until
// its plugin reconnects; it must get there by itself, within two minutes).
func (s *scenario) requireCounts(t *testing.T) {
	t.Helper()
	user, pw := s.orthancAuth(t)
	start := time.Now()
	testcluster.Eventually(t, fmt.Sprintf("both replicas count %d instances", s.uploaded), 2*time.Minute, func() error {
		for _, p := range s.orthancPods(t) {
			base := "http://" + net.JoinHostPort(p.Status.PodIP, "8042")
			var st orthanctest.Statistics
			if err := orthanctest.GetJSONURL(base+"/statistics", user, pw, &st); err != nil {
				return fmt.Errorf("replica %s: %w", p.Name, err)
			}
			var ids []string
			if err := orthanctest.GetJSONURL(base+"/instances", user, pw, &ids); err != nil {
				return fmt.Errorf("replica %s: %w", p.Name, err)
			}
			if st.CountInstances != s.uploaded || len(ids) != s.uploaded {
				return fmt.Errorf("replica %s: %d instances counted, %d listed, want %d", p.Name, st.CountInstances, len(ids), s.uploaded)
			}
		}
		return nil
	})
	if d := time.Since(start); d > 2*time.Second {
		t.Logf("replicas answered with exact counts after %.1fs", d.Seconds())
	}
}

func (s *scenario) upgradeOrthanc(t *testing.T) {
	before := s.podNames(s.orthancPods(t))
	auth := s.c.SecretData(t, s.imaging, "pacs-orthanc-auth")["password"]
	role := s.roleCredentials(t, s.imaging)["PGPASSWORD"]
	s.helm(t, append([]string{"upgrade", "pacs", filepath.Join(s.charts, "charts", "orthanc"), "-n", s.imaging,
		"--wait", "--wait-for-jobs", "--timeout", "10m", "--set", "orthanc.config.StableAge=30"}, s.orthanc...)...)
	s.requirePodsReady(t, s.imaging)
	after := s.podNames(s.orthancPods(t))
	for _, p := range after {
		assert.NotContains(t, before, p, "a configuration change rolls the pods")
	}
	assert.Equal(t, auth, s.c.SecretData(t, s.imaging, "pacs-orthanc-auth")["password"], "Orthanc password kept")
	assert.Equal(t, role, s.roleCredentials(t, s.imaging)["PGPASSWORD"], "database password kept")
	s.requireCounts(t)
}

func (s *scenario) upgradeCommons(t *testing.T) {
	before := s.onePod(t, s.commons, "app.kubernetes.io/component=database").UID
	s.helm(t, append([]string{"upgrade", "commons", filepath.Join(s.charts, "charts", "commons"), "-n", s.commons,
		"--wait", "--wait-for-jobs", "--timeout", "10m", "--set", "postgresql.parameters.work_mem=8MB"}, s.commonsValues()...)...)
	s.requirePodsReady(t, s.commons)
	pg := s.onePod(t, s.commons, "app.kubernetes.io/component=database")
	assert.NotEqual(t, before, pg.UID, "a parameter change restarts PostgreSQL")
	admin := s.c.SecretData(t, s.modules[0], "kommons-commons")
	assert.Equal(t, s.adminPW, admin["PGPASSWORD"], "admin password kept")
	conn := s.connect(t, admin["PGUSER"], admin["PGPASSWORD"], "postgres")
	var workMem string
	require.NoError(t, conn.QueryRow(context.Background(), "SHOW work_mem").Scan(&workMem))
	assert.Equal(t, "8MB", workMem)
	s.waitOrthancReady(t)
	s.requireCounts(t)
}

func (s *scenario) deletePostgresPod(t *testing.T) {
	ctx := context.Background()
	pg := s.onePod(t, s.commons, "app.kubernetes.io/component=database")
	require.NoError(t, s.c.Client().CoreV1().Pods(s.commons).Delete(ctx, pg.Name, metav1.DeleteOptions{}))
	testcluster.Eventually(t, "PostgreSQL pod recreated and Ready", 5*time.Minute, func() error {
		p, err := s.c.Client().CoreV1().Pods(s.commons).Get(ctx, pg.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.UID == pg.UID || !testcluster.PodReady(p) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	s.waitOrthancReady(t)
	s.requireCounts(t)
	// Orthanc writes again after the restart.
	user, pw := s.orthancAuth(t)
	orthanctest.UploadTo(t, "http://"+s.c.ServiceAddr(t, s.imaging, "pacs-orthanc", "http"), user, pw,
		orthanctest.DicomFile(orthanctest.DicomSpec{Run: s.run, Study: 9, Instance: 1000}))
	s.uploaded++
	s.requireCounts(t)
}

func (s *scenario) uninstallOrthanc(t *testing.T) {
	ctx := context.Background()
	creds := s.roleCredentials(t, s.imaging)
	pvcs, err := s.c.Client().CoreV1().PersistentVolumeClaims(s.imaging).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, pvcs.Items)
	s.c.Helm3(t, "uninstall", "pacs", "-n", s.imaging, "--wait", "--timeout", "5m")
	after, err := s.c.Client().CoreV1().PersistentVolumeClaims(s.imaging).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	assert.Len(t, after.Items, len(pvcs.Items), "volumes kept on uninstall")
	// Read through the imaging tenant's own credentials: another tenant's
	// provisioner may not open this database (tenantProvisionersConfined).
	tenant := s.c.SecretData(t, s.imaging, "kommons-commons")
	conn := s.connect(t, tenant["PGUSER"], tenant["PGPASSWORD"], "postgres")
	var rows int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", creds["PGDATABASE"]).Scan(&rows))
	assert.Equal(t, 1, rows, "database %s kept on uninstall", creds["PGDATABASE"])
	data := s.connect(t, creds["PGUSER"], creds["PGPASSWORD"], creds["PGDATABASE"])
	require.NoError(t, data.QueryRow(ctx, "SELECT count(*) FROM resources WHERE resourcetype = 3").Scan(&rows))
	assert.Equal(t, s.uploaded, rows, "index rows kept on uninstall")
}

// ---- helpers ----

// requirePodsReady waits until every pod of the namespace is Running and
// Ready, or Succeeded (Job pods).
func (s *scenario) requirePodsReady(t *testing.T, ns string) {
	t.Helper()
	testcluster.Eventually(t, "pods of "+ns+" ready", 3*time.Minute, func() error { return s.c.PodsReady(ns) })
}

func (s *scenario) onePod(t *testing.T, ns, selector string) *corev1.Pod {
	t.Helper()
	pods, err := s.c.Client().CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	require.NoError(t, err)
	require.Len(t, pods.Items, 1, "pods %s in %s", selector, ns)
	return &pods.Items[0]
}

func (s *scenario) orthancPods(t *testing.T) []corev1.Pod {
	t.Helper()
	pods, err := s.c.Client().CoreV1().Pods(s.imaging).List(context.Background(),
		metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=orthanc,app.kubernetes.io/component=web"})
	require.NoError(t, err)
	var live []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	return live
}

func (s *scenario) podNames(pods []corev1.Pod) []string {
	var names []string
	for _, p := range pods {
		names = append(names, p.Name)
	}
	return names
}

// waitOrthancReady waits until both Orthanc replicas are Ready again (their
// readiness probe reads the index, so it follows PostgreSQL's restarts).
func (s *scenario) waitOrthancReady(t *testing.T) {
	t.Helper()
	testcluster.Eventually(t, "Orthanc replicas ready", 5*time.Minute, func() error {
		pods := s.orthancPods(t)
		if len(pods) != 2 {
			return fmt.Errorf("%d pods", len(pods))
		}
		for i := range pods {
			if !testcluster.PodReady(&pods[i]) {
				return fmt.Errorf("pod %s not ready", pods[i].Name)
			}
		}
		return nil
	})
}

func (s *scenario) pgInitJob(t *testing.T, ns string) *batchv1.Job {
	t.Helper()
	jobs, err := s.c.Client().BatchV1().Jobs(ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	var found []batchv1.Job
	for _, j := range jobs.Items {
		for _, c := range j.Spec.Template.Spec.Containers {
			if len(c.Command) > 0 && filepath.Base(c.Command[0]) == "pg-init" {
				found = append(found, j)
			}
		}
	}
	require.Len(t, found, 1, "one pg-init Job in %s", ns)
	return &found[0]
}

// requirePgInitSummary reads the pg-init Job's log: it ran against the
// in-cluster server and logged its summary.
func (s *scenario) requirePgInitSummary(t *testing.T, ns string) {
	t.Helper()
	job := s.pgInitJob(t, ns)
	logs := s.c.Kubectl(t, "logs", "-n", ns, "job/"+job.Name)
	require.Contains(t, logs, `"msg":"summary"`, "pg-init log of %s/%s", ns, job.Name)
	require.NotContains(t, logs, s.roleCredentials(t, ns)["PGPASSWORD"], "no password in pg-init's log")
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `"msg":"summary"`) {
			t.Logf("pg-init in %s: %s", ns, line)
		}
	}
}

// roleCredentials is the connection Secret postgres-init generated for the
// namespace's module (label app.kubernetes.io/component=credentials), with
// libpq's names: PGUSER, PGPASSWORD, PGDATABASE.
func (s *scenario) roleCredentials(t *testing.T, ns string) map[string]string {
	t.Helper()
	secs, err := s.c.Client().CoreV1().Secrets(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=postgres-init,app.kubernetes.io/component=credentials"})
	require.NoError(t, err)
	require.Len(t, secs.Items, 1, "one postgres-init connection Secret in %s", ns)
	d := secs.Items[0].Data
	return map[string]string{"PGUSER": string(d["username"]), "PGPASSWORD": string(d["password"]), "PGDATABASE": string(d["dbname"])}
}

func (s *scenario) orthancAuth(t *testing.T) (string, string) {
	a := s.c.SecretData(t, s.imaging, "pacs-orthanc-auth")
	return a["username"], a["password"]
}

// postgresAddr is commons' PostgreSQL Service (ClusterIP, through kube-proxy).
func (s *scenario) postgresAddr(t *testing.T) string {
	t.Helper()
	host := s.c.SecretData(t, s.modules[0], "kommons-commons")["PGHOST"] // <svc>.<ns>.svc.cluster.local
	name := strings.Split(host, ".")[0]
	return s.c.ServiceAddr(t, s.commons, name, "postgresql")
}

// tryConnect connects to commons' PostgreSQL at s.pgAddr as a client in
// the cluster does: with the bundled server's TLS Secret
// (<fullname>-postgresql-tls) present, over TLS, verifying the certificate
// against its ca.crt under the client Service's name (verify-full); without
// it (tls.enabled=false), in plain text.
func (s *scenario) tryConnect(user, password, db string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(s.pgAddr)
	p, _ := strconv.Atoi(port)
	cfg.Host, cfg.Port, cfg.User, cfg.Password, cfg.Database = host, uint16(p), user, password, db
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if cfg.TLSConfig, err = s.serverTLS(ctx); err != nil {
		return nil, err
	}
	cfg.Fallbacks = nil
	return pgx.ConnectConfig(ctx, cfg)
}

// serverTLS is the TLS configuration that verifies the bundled server of
// s.commons (nil when it has no TLS Secret): its CA, its Service's name.
func (s *scenario) serverTLS(ctx context.Context) (*tls.Config, error) {
	secs, err := s.c.Client().CoreV1().Secrets(s.commons).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for _, sec := range secs.Items {
		svc, ok := strings.CutSuffix(sec.Name, "-postgresql-tls")
		if !ok {
			continue
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(sec.Data["ca.crt"]) {
			return nil, fmt.Errorf("Secret %s/%s: no PEM certificate in ca.crt", s.commons, sec.Name)
		}
		return &tls.Config{RootCAs: pool, ServerName: svc + "-postgresql." + s.commons + ".svc.cluster.local", MinVersion: tls.VersionTLS12}, nil
	}
	return nil, nil
}

// requireTLSSession checks that conn's session is encrypted (pg_stat_ssl).
func requireTLSSession(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	var ssl bool
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl))
	require.True(t, ssl, "the session of %s is TLS", conn.Config().User)
}

func (s *scenario) connect(t *testing.T, user, password, db string) *pgx.Conn {
	t.Helper()
	if s.pgAddr == "" {
		s.pgAddr = s.postgresAddr(t)
	}
	conn, err := s.tryConnect(user, password, db)
	require.NoError(t, err, "connect to %s as %s", db, user)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func (s *scenario) httpGet(t *testing.T, url, user, password string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	require.NoError(t, err, "GET %s", url)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", url, body)
	return string(body)
}
