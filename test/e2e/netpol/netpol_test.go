// Package netpol proves that NetworkPolicies are enforced on the real node
// (internal/testutil/testcluster's real-node mode with its NetworkPolicy
// agent, kube-router's firewall: testcluster.WithNetworkPolicy), with real
// pods opening real TCP connections:
//
//   - charts/commons is installed with two tenants (A and B) and one extra
//     (monitoring) namespace on the node's PostgreSQL 18, so its own
//     NetworkPolicies protect PostgreSQL and the object store, and its Jobs
//     (provisioner, s3-init) must do their work under their egress policy;
//   - client pods in both tenants and the extra namespace reach PostgreSQL
//     and the S3 port, by pod IP and through the Services; a pod in a
//     namespace commons does not list (an outsider) and a stray pod in
//     commons' own namespace are refused; only the extra namespace reaches
//     the MinIO console port;
//   - with a default-deny ingress policy (plus same-namespace allow) in the
//     tenant namespaces, tenant B cannot reach tenant A's web pod, which
//     tenant B reached before the policy and tenant A's own client still
//     reaches;
//   - deleting the chart's PostgreSQL policy lets the outsider in: the
//     refusals came from the policies, not from the network.
//
// Every connection attempt is logged with its result and duration.
package netpol

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/internal/testutil/nodeimages"
	"github.com/kommons/kommons/internal/testutil/testcluster"
)

func TestMain(m *testing.M) { testcluster.MainInSandbox(m) }

// probe opens one TCP connection and prints "connected", "refused",
// "timeout" or "error: ..." with the time it took (python3 of the postgres
// image, which the client pods run).
const probe = `import socket, sys, time
t = time.time()
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
    r = "connected"
except socket.timeout:
    r = "timeout"
except ConnectionRefusedError:
    r = "refused"
except OSError as e:
    r = "error: %s" % e
print("%s in %.3fs" % (r, time.time() - t))
`

type suite struct {
	c       *testcluster.Cluster
	img     *nodeimages.Set
	results []string // every final connection result, for the summary
}

// target is an address a client connects to.
type target struct{ name, addr string }

// client is a pod that runs the probe.
type client struct{ name, ns, pod string }

func TestNetworkPoliciesEnforced(t *testing.T) {
	c := testcluster.StartNode(t, testcluster.WithNetworkPolicy())
	s := &suite{c: c, img: c.Images}
	ctx := context.Background()
	t.Cleanup(func() {
		if t.Failed() {
			s.dump(t)
		}
	})

	commons := c.Namespace(t, "commons")
	tenantA, tenantB := c.Namespace(t, "tenant-a"), c.Namespace(t, "tenant-b")
	outsider, monitoring := c.Namespace(t, "outsider"), c.Namespace(t, "monitoring")

	// Clients and tenant A's web server start while commons installs.
	clients := map[string]client{}
	for _, cl := range []client{{"tenant A", tenantA, "client"}, {"tenant B", tenantB, "client"},
		{"outsider", outsider, "client"}, {"monitoring", monitoring, "client"}, {"commons stray pod", commons, "stray"}} {
		s.createClient(t, cl)
		clients[cl.name] = cl
	}
	s.createWeb(t, tenantA)

	start := time.Now()
	s.c.Helm3(t, "install", "commons", filepath.Join(s.c.StageCharts(t), "charts", "commons"), "-n", commons,
		"--wait", "--wait-for-jobs", "--timeout", "10m",
		"--set", "tenants[0].namespace="+tenantA, "--set", "tenants[0].buckets[0]=data",
		"--set", "tenants[1].namespace="+tenantB,
		"--set", "networkPolicy.extraNamespaces[0]="+monitoring,
		"--set", "postgresql.persistence.size=1Gi",
		"--set", "tools.image.registry="+nodeimages.Registry, "--set", "tools.image.repository="+s.img.Tools.Repository, "--set", "tools.image.tag="+s.img.Tools.Tag,
		"--set", "postgresql.image.registry="+nodeimages.Registry, "--set", "postgresql.image.repository="+s.img.Postgres.Repository, "--set", "postgresql.image.tag="+s.img.Postgres.Tag,
		"--set", "objectStorage.minio.image.registry="+nodeimages.Registry, "--set", "objectStorage.minio.image.repository="+s.img.MinIO.Repository, "--set", "objectStorage.minio.image.tag="+s.img.MinIO.Tag)
	t.Logf("helm install commons (--wait --wait-for-jobs, policies enforced): %.1fs", time.Since(start).Seconds())

	pols, err := c.Client().NetworkingV1().NetworkPolicies(commons).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	var names []string
	for _, p := range pols.Items {
		names = append(names, p.Name)
	}
	require.ElementsMatch(t, []string{"commons-jobs", "commons-minio", "commons-postgresql", "commons-secret-init"}, names,
		"the chart's NetworkPolicies (secret-init's egress reaches the API server)")
	t.Logf("charts/commons NetworkPolicies in %s: %s", commons, strings.Join(names, ", "))

	// The Jobs ran under their egress policy (DNS, PostgreSQL, S3 only).
	jobs, err := c.Client().BatchV1().Jobs(commons).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, jobs.Items)
	for _, j := range jobs.Items {
		require.EqualValues(t, 1, j.Status.Succeeded, "Job %s succeeded under the Jobs' egress policy", j.Name)
		t.Logf("Job %s succeeded under the chart's egress policy", j.Name)
	}
	_, err = c.Client().CoreV1().Secrets(tenantA).Get(ctx, "kommons-commons", metav1.GetOptions{})
	require.NoError(t, err, "tenant Secret in %s", tenantA)

	s.waitReady(t, commons, "app.kubernetes.io/component=database")
	s.waitReady(t, commons, "app.kubernetes.io/component=object-store")
	pg := target{"PostgreSQL pod", net.JoinHostPort(s.podIP(t, commons, "app.kubernetes.io/component=database"), "5432")}
	pgSvc := target{"PostgreSQL Service", s.serviceAddr(t, commons, "app.kubernetes.io/component=database", "postgresql")}
	s3 := target{"MinIO S3 port", net.JoinHostPort(s.podIP(t, commons, "app.kubernetes.io/component=object-store"), "9000")}
	s3Svc := target{"MinIO S3 Service", s.serviceAddr(t, commons, "app.kubernetes.io/component=object-store", "s3")}
	console := target{"MinIO console port", net.JoinHostPort(s.podIP(t, commons, "app.kubernetes.io/component=object-store"), "9001")}

	t.Run("commons-policies", func(t *testing.T) {
		for _, tg := range []target{pg, pgSvc, s3, s3Svc} {
			s.expect(t, clients["tenant A"], tg, true)
			s.expect(t, clients["monitoring"], tg, true)
			s.expect(t, clients["tenant B"], tg, true)
			s.expect(t, clients["outsider"], tg, false)
			s.expect(t, clients["commons stray pod"], tg, false)
		}
		s.expect(t, clients["monitoring"], console, true)
		s.expect(t, clients["tenant A"], console, false)
	})

	t.Run("tenant-default-deny", func(t *testing.T) {
		s.waitReady(t, tenantA, "app=web")
		web := target{"tenant A web pod", net.JoinHostPort(s.podIP(t, tenantA, "app=web"), "8080")}
		s.expect(t, clients["tenant B"], web, true) // no policy selects it yet
		for _, ns := range []string{tenantA, tenantB} {
			s.isolate(t, ns)
		}
		s.expect(t, clients["tenant B"], web, false)
		s.expect(t, clients["outsider"], web, false)
		s.expect(t, clients["tenant A"], web, true)
		// Tenant isolation leaves commons reachable: the policies are on
		// the receiving side, and the tenants have no egress policy.
		s.expect(t, clients["tenant A"], pg, true)
	})

	t.Run("policy-removed", func(t *testing.T) {
		var pgPolicy string
		for _, p := range pols.Items {
			if p.Spec.PodSelector.MatchLabels["app.kubernetes.io/component"] == "database" {
				pgPolicy = p.Name
			}
		}
		require.NotEmpty(t, pgPolicy)
		require.NoError(t, c.Client().NetworkingV1().NetworkPolicies(commons).Delete(ctx, pgPolicy, metav1.DeleteOptions{}))
		t.Logf("deleted NetworkPolicy %s/%s", commons, pgPolicy)
		s.expect(t, clients["outsider"], pg, true)
		s.expect(t, clients["outsider"], s3, false) // the object store's policy stays
	})

	t.Logf("connection results:\n%s", strings.Join(s.results, "\n"))
}

// createClient starts a pod of the postgres image (python3) that only sleeps.
func (s *suite) createClient(t *testing.T, cl client) {
	t.Helper()
	zero := int64(0)
	_, err := s.c.Client().CoreV1().Pods(cl.ns).Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: cl.pod, Labels: map[string]string{"app": "client"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: &zero,
			Containers:                    []corev1.Container{{Name: "client", Image: s.img.Postgres.Ref(), Command: []string{"sleep", "infinity"}}},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err, "client pod in %s", cl.ns)
}

// createWeb starts the hello image (listens on :8080) as tenant A's server.
func (s *suite) createWeb(t *testing.T, ns string) {
	t.Helper()
	one := int64(1)
	_, err := s.c.Client().CoreV1().Pods(ns).Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: &one,
			Containers: []corev1.Container{{Name: "web", Image: s.img.Hello.Ref(),
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err, "web pod in %s", ns)
}

// isolate applies the usual tenant baseline: deny all ingress, except from
// the namespace's own pods.
func (s *suite) isolate(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	for _, p := range []*networkingv1.NetworkPolicy{
		{ObjectMeta: metav1.ObjectMeta{Name: "default-deny-ingress"},
			Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "allow-same-namespace"},
			Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
				Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}}}}}},
	} {
		_, err := s.c.Client().NetworkingV1().NetworkPolicies(ns).Create(ctx, p, metav1.CreateOptions{})
		require.NoError(t, err, "NetworkPolicy %s/%s", ns, p.Name)
	}
	t.Logf("tenant namespace %s: default-deny-ingress + allow-same-namespace", ns)
}

// expect connects from the client to the target until the result is the
// expected one (the agent applies a change within seconds), for at most a
// minute; a refusal must hold on three attempts in a row.
func (s *suite) expect(t *testing.T, cl client, tg target, connect bool) {
	t.Helper()
	host, port, _ := net.SplitHostPort(tg.addr)
	start := time.Now()
	streak := 0
	var last string
	attempt := 1
	for ; ; attempt++ {
		out, err := s.c.Exec(filepath.Join(s.c.Tools.KubeBin, "kubectl"), "exec", "-n", cl.ns, cl.pod, "--",
			"python3", "-c", probe, host, port, "3")
		last = probeResult(out)
		if err != nil || last == "" {
			last = fmt.Sprintf("kubectl exec failed: %v: %s", err, strings.TrimSpace(out))
			err = fmt.Errorf("no result")
		}
		ok := err == nil && strings.HasPrefix(last, "connected")
		blocked := err == nil && !ok
		switch {
		case connect && ok:
			streak = 3
		case !connect && blocked:
			streak++
		default:
			streak = 0
		}
		if streak >= 3 {
			break
		}
		if time.Since(start) > time.Minute {
			want := "connected"
			if !connect {
				want = "refused or timed out"
			}
			t.Fatalf("%s (%s) -> %s %s: want %s, last attempt (%d): %s", cl.name, cl.ns, tg.name, tg.addr, want, attempt, last)
		}
		if streak == 0 {
			time.Sleep(time.Second)
		}
	}
	line := fmt.Sprintf("%-18s -> %-20s %-19s %s (as expected; %d attempts, %.1fs)", cl.name, tg.name, tg.addr, last, attempt, time.Since(start).Seconds())
	s.results = append(s.results, line)
	t.Log(line)
}

// probeResult picks the probe's line out of kubectl's combined output
// (kubectl may log on stderr, e.g. "Unknown stream id 1, discarding message").
func probeResult(out string) string {
	for _, line := range strings.Split(out, "\n") {
		for _, r := range []string{"connected in ", "refused in ", "timeout in ", "error: "} {
			if i := strings.Index(line, r); i >= 0 {
				return strings.TrimSpace(line[i:])
			}
		}
	}
	return ""
}

func (s *suite) waitReady(t *testing.T, ns, selector string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		pods, err := s.c.Client().CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
		if err == nil && len(pods.Items) == 1 && pods.Items[0].Status.PodIP != "" && testcluster.PodReady(&pods.Items[0]) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s in %s not ready after 5m (%v)", selector, ns, err)
		}
		time.Sleep(time.Second)
	}
}

func (s *suite) podIP(t *testing.T, ns, selector string) string {
	t.Helper()
	pods, err := s.c.Client().CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	require.NoError(t, err)
	require.Len(t, pods.Items, 1, "pods %s in %s", selector, ns)
	require.NotEmpty(t, pods.Items[0].Status.PodIP)
	return pods.Items[0].Status.PodIP
}

// serviceAddr is the ClusterIP address of the (non-headless) Service with
// the selector's labels and the named port.
func (s *suite) serviceAddr(t *testing.T, ns, selector, port string) string {
	t.Helper()
	svcs, err := s.c.Client().CoreV1().Services(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	require.NoError(t, err)
	for _, svc := range svcs.Items {
		if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
			continue
		}
		for _, p := range svc.Spec.Ports {
			if p.Name == port {
				return net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(int(p.Port)))
			}
		}
	}
	t.Fatalf("no ClusterIP Service %s with port %s in %s", selector, port, ns)
	return ""
}

// dump logs what explains a failure: pods, policies and events, the
// agent's log and its iptables rules (the test runs in the node's network
// namespace).
func (s *suite) dump(t *testing.T) {
	kubectl := filepath.Join(s.c.Tools.KubeBin, "kubectl")
	out, _ := s.c.Exec(kubectl, "get", "pods,jobs,svc,networkpolicies", "-A", "-o", "wide")
	t.Logf("state:\n%s", out)
	out, _ = s.c.Exec(kubectl, "get", "events", "-A", "--sort-by=.lastTimestamp")
	t.Logf("events:\n%s", out)
	b, _ := os.ReadFile(filepath.Join(s.c.Dir, "logs", "kube-router.log"))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 60 {
		lines = lines[len(lines)-60:]
	}
	t.Logf("kube-router log (tail):\n%s", strings.Join(lines, "\n"))
	rules, _ := exec.Command("iptables-save", "-t", "filter").CombinedOutput()
	t.Logf("iptables filter table:\n%s", rules)
	t.Logf("cluster logs: %s", filepath.Join(s.c.Dir, "logs"))
}
