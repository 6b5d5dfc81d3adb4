// Package cnpg runs the CloudNativePG operator for real on the test
// harness's real node (internal/testutil/testcluster's real-node mode): its
// release manifest (CRDs, RBAC, webhooks, Deployment) with the operator image
// built from the pinned module (test/cluster/build.sh cnpg), a Cluster of two
// instances on the operand image nodeimages.BuildCNPG makes from Debian's
// PostgreSQL, a row written and read through the -rw Service over verified
// TLS, and a failover when the primary pod is deleted, with the time until
// -rw accepts writes again logged (no timed assertion). Then charts/commons
// in cloudnativepg mode on that operator: its provisioner Job over
// verify-full to the Cluster's -rw, hello-module provisioned by pg-init in a
// tenant namespace, and again after the primary pod is deleted; charts/orthanc
// with its index through commons' Pooler, in session mode and, measured,
// transaction mode (orthanc_pooler_test.go); and charts/orthanc ingesting
// through failovers of commons' Cluster, per replication mode
// (orthanc_failover_test.go).
// docs/operations.md says what it proves.
package cnpg

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/internal/testutil/nodeimages"
	"github.com/kommons/kommons/internal/testutil/testcluster"
)

// imagesErrEnv carries the outcome of building the CloudNativePG images
// outside the sandbox (which has no network for debootstrap) into it: set
// means built (empty) or failed (the error).
const imagesErrEnv = "KOMMONS_CNPG_IMAGES_ERROR"

func TestMain(m *testing.M) {
	flag.Parse()
	if _, done := os.LookupEnv(imagesErrEnv); !done && !testing.Short() && os.Geteuid() == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		_, err := nodeimages.BuildCNPG(ctx, func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) })
		cancel()
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		os.Setenv(imagesErrEnv, msg)
	}
	testcluster.MainInSandbox(m)
}

// operatorNamespace is the release manifest's namespace.
const operatorNamespace = "cnpg-system"

// clusterName is the Cluster's name; its Services are <name>-rw, -ro, -r.
const clusterName = "pg"

type scenario struct {
	c      *testcluster.Cluster
	imgs   *nodeimages.CNPGSet
	ns     string
	rw     string // -rw Service host name (verified by the server certificate)
	caFile string // the Cluster's CA, written once into tmp
	tmp    string // the whole test's temporary directory
	cm     commonsMode
}

func TestCloudNativePG(t *testing.T) {
	c := testcluster.StartNode(t)
	s := &scenario{c: c, imgs: cnpgImages(t), tmp: t.TempDir()}
	s.ns = c.Namespace(t, "cnpg") // the whole test's: a subtest's would go when it ends
	s.prepareCommons(t)
	t.Cleanup(func() {
		if t.Failed() {
			s.dump(t)
		}
	})
	for _, step := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"operator", s.installOperator},
		{"webhook", s.webhookValidates},
		{"cluster", s.createCluster},
		{"write-read", s.writeRead},
		{"failover", s.failover},
		{"pooler", s.poolerReady},
		{"connection-budget", s.connectionBudget},
		{"commons", s.installCommons},
		{"metrics", s.instanceMetrics},
		{"commons-pooler", s.commonsPooler},
		{"module", s.moduleFirstTenant},
		{"module-after-failover", s.moduleAfterFailover},
		{"module-lifecycle", s.moduleLifecycle},
		{"module-through-pooler", s.moduleThroughPooler},
		{"pooler-adversarial", s.poolerAdversarial},
		{"bench-pginit-pooler", s.benchPgInitPooler},
		{"orthanc-pooler", s.orthancThroughPooler},
		{"orthanc-failover", s.orthancFailover},
	} {
		if !t.Run(step.name, step.fn) {
			t.Fatalf("step %s failed; later steps depend on it", step.name)
		}
	}
}

// cnpgImages returns the images TestMain built outside the sandbox (from
// the cache) and pushes them to the node's registry.
func cnpgImages(t *testing.T) *nodeimages.CNPGSet {
	t.Helper()
	if e, ok := os.LookupEnv(imagesErrEnv); ok && e != "" {
		t.Fatalf("build the CloudNativePG images (before entering the sandbox): %s", e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	set, err := nodeimages.BuildCNPG(ctx, t.Logf)
	require.NoError(t, err, "CloudNativePG images (test/cluster/build.sh cnpg; root and debootstrap for the operand image)")
	require.NoError(t, nodeimages.Push(ctx, testcluster.RegistryAddr, set.All()...))
	return set
}

func (s *scenario) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	return s.c.Kubectl(t, args...)
}

// installOperator applies the release manifest with the upstream image
// replaced by the one built here, and waits for the operator's rollout.
func (s *scenario) installOperator(t *testing.T) {
	data, err := os.ReadFile(s.imgs.Manifest)
	require.NoError(t, err)
	upstream := nodeimages.CNPGUpstreamImage + ":" + strings.TrimPrefix(s.imgs.Version, "v")
	manifest := string(data)
	require.Equal(t, 2, strings.Count(manifest, upstream), "the Deployment's image and OPERATOR_IMAGE_NAME name %s", upstream)
	manifest = strings.ReplaceAll(manifest, upstream, s.imgs.Operator.Ref())
	manifest = strings.ReplaceAll(manifest, "imagePullPolicy: Always", "imagePullPolicy: IfNotPresent")
	path := filepath.Join(t.TempDir(), "cnpg.yaml")
	require.NoError(t, os.WriteFile(path, []byte(manifest), 0o644))

	start := time.Now()
	// Server-side: the Cluster CRD is too large for the last-applied annotation.
	s.kubectl(t, "apply", "--server-side", "-f", path)
	s.kubectl(t, "rollout", "status", "-n", operatorNamespace, "deployment/cnpg-controller-manager", "--timeout=5m")
	t.Logf("operator %s rolled out %.1fs after apply", s.imgs.Version, time.Since(start).Seconds())

	// The operator generates its webhook CA and certificate, and patches the
	// webhook configurations with the CA.
	ctx := context.Background()
	require.Eventually(t, func() bool {
		v, err := s.c.Client().AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "cnpg-validating-webhook-configuration", metav1.GetOptions{})
		if err != nil || len(v.Webhooks) == 0 {
			return false
		}
		m, err := s.c.Client().AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "cnpg-mutating-webhook-configuration", metav1.GetOptions{})
		if err != nil || len(m.Webhooks) == 0 {
			return false
		}
		return len(v.Webhooks[0].ClientConfig.CABundle) > 0 && len(m.Webhooks[0].ClientConfig.CABundle) > 0
	}, 2*time.Minute, time.Second, "the operator puts its CA into the webhook configurations")
	_, err = s.c.Client().CoreV1().Secrets(operatorNamespace).Get(ctx, "cnpg-webhook-cert", metav1.GetOptions{})
	require.NoError(t, err, "the operator's self-generated webhook certificate")
}

// webhookValidates proves the API server calls the operator's validating
// webhook: a Cluster setting a parameter the operator fixes (which the CRD's
// schema allows) is refused with the operator's own message, and the
// operator logs the validation.
func (s *scenario) webhookValidates(t *testing.T) {
	bad := s.clusterYAML("bad", 1) + "  postgresql:\n    parameters:\n      data_directory: /tmp/elsewhere\n"
	var out string
	var err error
	// The webhook's Service has an endpoint once the operator is Ready; the
	// first calls can still race it ("failed calling webhook").
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, err = s.apply(bad)
		if err == nil || !strings.Contains(out, "failed calling webhook") || time.Now().After(deadline) {
			break
		}
		t.Logf("webhook not answering yet: %s", strings.TrimSpace(out))
		time.Sleep(2 * time.Second)
	}
	require.Error(t, err, "a Cluster with a fixed parameter must be refused:\n%s", out)
	assert.Contains(t, out, `spec.postgresql.parameters.data_directory: Invalid value: "/tmp/elsewhere": Can't set fixed configuration parameter`)
	t.Logf("refused by the webhook: %s", strings.TrimSpace(out))
	logs := s.kubectl(t, "logs", "-n", operatorNamespace, "deployment/cnpg-controller-manager")
	assert.Regexp(t, `"msg":"Validation for Cluster upon creation".*"name":"bad","namespace":"`+s.ns+`"`, logs, "the operator validated it")
}

func (s *scenario) clusterYAML(name string, instances int) string {
	return fmt.Sprintf(`apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata:
  name: %s
  namespace: %s
spec:
  instances: %d
  imageName: %s
  storage:
    size: 1Gi
    storageClass: standard
`, name, s.ns, instances, s.imgs.Operand.Ref())
}

// apply runs kubectl apply on a manifest and returns its output and error.
func (s *scenario) apply(manifest string) (string, error) {
	f, err := os.CreateTemp("", "cnpg-*.yaml")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(manifest); err != nil {
		f.Close()
		return "", err
	}
	f.Close()
	return s.c.Exec(filepath.Join(s.c.Tools.KubeBin, "kubectl"), "apply", "-f", f.Name())
}

// createCluster creates a Cluster of two instances on the one node and
// waits until it is Ready: the operator's default anti-affinity is
// preferred, so both pods share the node.
func (s *scenario) createCluster(t *testing.T) {
	start := time.Now()
	out, err := s.apply(s.clusterYAML(clusterName, 2))
	require.NoError(t, err, out)
	s.kubectl(t, "wait", "-n", s.ns, "cluster/"+clusterName, "--for=condition=Ready", "--timeout=10m")
	t.Logf("Cluster %s of 2 instances Ready %.1fs after apply", clusterName, time.Since(start).Seconds())

	pods := s.instancePods(t)
	require.Len(t, pods, 2)
	for _, p := range pods {
		assert.Equal(t, testcluster.NodeName, p.Spec.NodeName, "%s runs on the one node", p.Name)
		require.NotNil(t, p.Spec.Affinity, p.Name)
		require.NotNil(t, p.Spec.Affinity.PodAntiAffinity, p.Name)
		anti := p.Spec.Affinity.PodAntiAffinity
		assert.Empty(t, anti.RequiredDuringSchedulingIgnoredDuringExecution, "%s: anti-affinity is not required by default", p.Name)
		require.NotEmpty(t, anti.PreferredDuringSchedulingIgnoredDuringExecution, "%s: anti-affinity is preferred by default", p.Name)
		assert.Equal(t, "kubernetes.io/hostname", anti.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey)
		assert.True(t, testcluster.PodReady(&p), "%s Ready", p.Name)
		var boot *corev1.Container
		for i := range p.Spec.InitContainers {
			if p.Spec.InitContainers[i].Name == "bootstrap-controller" {
				boot = &p.Spec.InitContainers[i]
			}
		}
		require.NotNil(t, boot, "%s: the bootstrap-controller init container copies the instance manager", p.Name)
		assert.Equal(t, s.imgs.Operator.Ref(), boot.Image)
		assert.Equal(t, nodeimages.CNPGManager, boot.Command[0])
	}
	st := s.clusterStatus(t)
	t.Logf("primary %s, instances %v, phase %q", st.CurrentPrimary, st.InstanceNames, st.Phase)
	s.rw = fmt.Sprintf("%s-rw.%s.svc", clusterName, s.ns)
}

type clusterStatus struct {
	Phase          string   `json:"phase"`
	CurrentPrimary string   `json:"currentPrimary"`
	TargetPrimary  string   `json:"targetPrimary"`
	ReadyInstances int      `json:"readyInstances"`
	InstanceNames  []string `json:"instanceNames"`
}

func (s *scenario) clusterStatus(t *testing.T) clusterStatus {
	t.Helper()
	return s.statusOf(t, s.ns, clusterName)
}

// statusOf is the status of Cluster ns/name.
func (s *scenario) statusOf(t *testing.T, ns, name string) clusterStatus {
	t.Helper()
	out := s.kubectl(t, "get", "-n", ns, "cluster/"+name, "-o", "jsonpath={.status}")
	var st clusterStatus
	require.NoError(t, json.Unmarshal([]byte(out), &st), out)
	return st
}

func (s *scenario) instancePods(t *testing.T) []corev1.Pod {
	t.Helper()
	list, err := s.c.Client().CoreV1().Pods(s.ns).List(context.Background(), metav1.ListOptions{
		LabelSelector: "cnpg.io/cluster=" + clusterName + ",cnpg.io/podRole=instance"})
	require.NoError(t, err)
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	return list.Items
}

// connConfig is a connection to host (a Service name) as the application
// user of the Cluster's <name>-app Secret, with sslmode=verify-full and
// sslrootcert the Cluster's CA (<name>-ca Secret), as a kommons client
// would be configured: the name is resolved through the cluster's DNS, the
// server certificate checked for it.
func (s *scenario) connConfig(t *testing.T, host string) *pgx.ConnConfig {
	t.Helper()
	app, err := s.c.Client().CoreV1().Secrets(s.ns).Get(context.Background(), clusterName+"-app", metav1.GetOptions{})
	require.NoError(t, err)
	if s.caFile == "" {
		s.caFile = s.writeCA(t, s.ns, clusterName)
	}
	return s.verifyFullConfig(t, host, s.caFile, string(app.Data["username"]), string(app.Data["password"]), string(app.Data["dbname"]))
}

// writeCA writes the CA of Cluster ns/name (its <name>-ca Secret) into the
// test's temporary directory and returns the file.
func (s *scenario) writeCA(t *testing.T, ns, name string) string {
	t.Helper()
	ca, err := s.c.Client().CoreV1().Secrets(ns).Get(context.Background(), name+"-ca", metav1.GetOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, ca.Data["ca.crt"], "CA of the Cluster %s/%s", ns, name)
	file := filepath.Join(s.tmp, ns+"-"+name+"-ca.crt")
	require.NoError(t, os.WriteFile(file, ca.Data["ca.crt"], 0o600))
	return file
}

// clusterConnConfig is a verify-full connection to host (a Service of
// Cluster ns/name) with the Cluster's CA.
func (s *scenario) clusterConnConfig(t *testing.T, ns, name, host, user, password, db string) *pgx.ConnConfig {
	t.Helper()
	return s.verifyFullConfig(t, host, s.writeCA(t, ns, name), user, password, db)
}

func pgxConnect(ctx context.Context, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	return pgx.ConnectConfig(ctx, cfg)
}

// verifyFullConfig: sslmode=verify-full with caFile, the host resolved
// through the cluster's DNS.
func (s *scenario) verifyFullConfig(t *testing.T, host, caFile, user, password, db string) *pgx.ConnConfig {
	t.Helper()
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=5432 dbname=%s user=%s sslmode=verify-full sslrootcert=%s connect_timeout=3",
		host, db, user, caFile))
	require.NoError(t, err)
	cfg.Password = password
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, testcluster.NodeIP+":53")
	}}
	cfg.LookupFunc = func(ctx context.Context, h string) ([]string, error) {
		return resolver.LookupHost(ctx, h+".cluster.local")
	}
	return cfg
}

func (s *scenario) connect(ctx context.Context, t *testing.T, host string) (*pgx.Conn, error) {
	t.Helper()
	return pgx.ConnectConfig(ctx, s.connConfig(t, host))
}

// writeRead writes a row through -rw and reads it back there, and from a
// replica through -ro once streaming replication has it.
func (s *scenario) writeRead(t *testing.T) {
	ctx := context.Background()
	conn, err := s.connect(ctx, t, s.rw)
	require.NoError(t, err, "connect to %s with verify-full", s.rw)
	defer conn.Close(ctx)
	var version string
	require.NoError(t, conn.QueryRow(ctx, "SHOW server_version").Scan(&version))
	var inRecovery, ssl bool
	require.NoError(t, conn.QueryRow(ctx, "SELECT pg_is_in_recovery(), (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())").Scan(&inRecovery, &ssl))
	assert.False(t, inRecovery, "-rw reaches the primary")
	assert.True(t, ssl, "the session is encrypted")
	t.Logf("connected to %s: PostgreSQL %s over TLS (verify-full)", s.rw, version)
	_, err = conn.Exec(ctx, "CREATE TABLE notes (id serial PRIMARY KEY, note text NOT NULL, at timestamptz NOT NULL DEFAULT now())")
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "INSERT INTO notes (note) VALUES ($1)", "before failover")
	require.NoError(t, err)
	var note string
	require.NoError(t, conn.QueryRow(ctx, "SELECT note FROM notes WHERE id = 1").Scan(&note))
	assert.Equal(t, "before failover", note)

	ro := fmt.Sprintf("%s-ro.%s.svc", clusterName, s.ns)
	require.Eventually(t, func() bool {
		c, err := s.connect(ctx, t, ro)
		if err != nil {
			t.Logf("%s: %v", ro, err)
			return false
		}
		defer c.Close(ctx)
		var standby bool
		var n int
		if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery(), count(*) FROM notes").Scan(&standby, &n); err != nil {
			t.Logf("%s: %v", ro, err)
			return false
		}
		return standby && n == 1
	}, time.Minute, time.Second, "the replica behind -ro has the row")
}

// failover deletes the primary pod while the test writes through -rw
// every 200 ms on a fresh connection, each write reporting the server's
// address, until a write lands on another server than the deleted primary.
// It logs (no timed assertion) when writes stopped and resumed, the
// write-unavailability window between the last write the old primary
// acknowledged and the first the new one did, and how many acknowledged
// writes the failover lost; then it waits for the Cluster to be whole again.
func (s *scenario) failover(t *testing.T) {
	ctx := context.Background()
	before := s.clusterStatus(t)
	require.NotEmpty(t, before.CurrentPrimary)
	old, err := s.c.Client().CoreV1().Pods(s.ns).Get(ctx, before.CurrentPrimary, metav1.GetOptions{})
	require.NoError(t, err)
	oldIP := old.Status.PodIP
	require.NotEmpty(t, oldIP)

	var acked []int // ids of the writes a server acknowledged
	var lastOld, firstFail time.Duration = -1, -1
	var window time.Duration // delete -> first write on the new primary
	var newIP string
	var lastErr string
	attempts := 0
	start := time.Now()
	// No session stays open: the instance manager's shutdown would wait for it.
	require.NoError(t, s.c.Client().CoreV1().Pods(s.ns).Delete(ctx, before.CurrentPrimary, metav1.DeleteOptions{}))
	for {
		attempts++
		ip, id, err := s.tryWrite(ctx, t, fmt.Sprintf("failover write %d", attempts))
		now := time.Since(start)
		switch {
		case err != nil:
			if firstFail < 0 {
				firstFail = now
			}
			if err.Error() != lastErr {
				t.Logf("%.1fs: write through %s: %v", now.Seconds(), s.rw, err)
				lastErr = err.Error()
			}
		case ip == oldIP:
			acked = append(acked, id)
			lastOld = now
		default:
			acked = append(acked, id)
			window, newIP = now, ip
		}
		if newIP != "" {
			break
		}
		require.Less(t, now, 10*time.Minute, "no write reached a new primary through -rw 10 minutes after the primary pod was deleted")
		time.Sleep(200 * time.Millisecond)
	}
	var after clusterStatus
	assert.Eventually(t, func() bool {
		after = s.clusterStatus(t)
		return after.CurrentPrimary != "" && after.CurrentPrimary != before.CurrentPrimary
	}, time.Minute, time.Second, "a replica was promoted (status.currentPrimary)")

	// Closed before waiting below: an open session would hold up the old
	// primary's smart shutdown when it rejoins.
	conn, err := s.connect(ctx, t, s.rw)
	require.NoError(t, err)
	var n, lost int
	err = conn.QueryRow(ctx, "SELECT count(*) FROM notes WHERE note = 'before failover'").Scan(&n)
	if err == nil {
		err = conn.QueryRow(ctx, "SELECT count(*) FROM unnest($1::int[]) AS a(id) WHERE NOT EXISTS (SELECT 1 FROM notes WHERE notes.id = a.id)", acked).Scan(&lost)
	}
	conn.Close(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "the row written before the failover survives it")
	gap := window
	if lastOld >= 0 {
		gap = window - lastOld
	}
	t.Logf("FAILOVER (asynchronous replication): primary %s (%s) deleted at 0s; writes on it until %.1fs, first refused at %.1fs; "+
		"first write on the new primary %s (%s) at %.1fs: write-unavailability window %.1fs; %d attempts, acknowledged writes lost: %d of %d",
		before.CurrentPrimary, oldIP, lastOld.Seconds(), firstFail.Seconds(), after.CurrentPrimary, newIP, window.Seconds(), gap.Seconds(), attempts, lost, len(acked))

	s.kubectl(t, "wait", "-n", s.ns, "cluster/"+clusterName, "--for=condition=Ready", "--timeout=10m")
	require.Eventually(t, func() bool { return s.clusterStatus(t).ReadyInstances == 2 }, 5*time.Minute, 2*time.Second)
	t.Logf("Cluster whole again (2 ready instances, the old primary a replica) %.1fs after the delete", time.Since(start).Seconds())
}

// tryWrite inserts one row through -rw on a fresh connection and returns
// the address of the server that acknowledged it and the row's id. A
// connection attempt gives up after a second (the resolution of the
// measured window).
func (s *scenario) tryWrite(ctx context.Context, t *testing.T, note string) (string, int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cfg := s.connConfig(t, s.rw)
	cfg.ConnectTimeout = time.Second
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return "", 0, err
	}
	defer conn.Close(context.Background())
	var ip string
	var id int
	err = conn.QueryRow(ctx, "INSERT INTO notes (note) VALUES ($1) RETURNING host(inet_server_addr()), id", note).Scan(&ip, &id)
	return ip, id, err
}

func (s *scenario) dump(t *testing.T) {
	kubectl := filepath.Join(s.c.Tools.KubeBin, "kubectl")
	out, _ := s.c.Exec(kubectl, "get", "pods,jobs,pvc,svc,clusters.postgresql.cnpg.io", "-A", "-o", "wide")
	t.Logf("state:\n%s", out)
	if s.ns != "" {
		out, _ = s.c.Exec(kubectl, "get", "-n", s.ns, "cluster/"+clusterName, "-o", "yaml")
		t.Logf("cluster:\n%s", out)
	}
	out, _ = s.c.Exec(kubectl, "get", "events", "-A", "--sort-by=.lastTimestamp")
	t.Logf("events:\n%s", out)
	pods, err := s.c.Client().CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return
	}
	for _, p := range pods.Items {
		if p.Namespace != operatorNamespace && p.Namespace != s.ns && p.Namespace != s.cm.ns &&
			p.Namespace != s.cm.tenants[0] && p.Namespace != s.cm.tenants[1] {
			continue
		}
		for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
			out, _ := s.c.Exec(kubectl, "logs", "-n", p.Namespace, p.Name, "-c", c.Name, "--tail", "60")
			t.Logf("logs %s/%s[%s]:\n%s", p.Namespace, p.Name, c.Name, out)
		}
	}
	t.Logf("cluster logs: %s", filepath.Join(s.c.Dir, "logs"))
}
