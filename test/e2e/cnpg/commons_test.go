package cnpg

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/internal/testutil/testcluster"
)

// commonsCluster is the Cluster charts/commons renders for release
// "commons" (commons.postgresql.clusterName).
const commonsCluster = "commons-postgresql"

// commonsMode is the state of the charts/commons steps: commons in
// cloudnativepg mode in its own namespace, two tenant namespaces.
type commonsMode struct {
	charts  string
	ns      string
	tenants [2]string
}

// prepareCommons stages the charts and creates the commons and tenant
// namespaces for the whole test (a subtest's temporary directory and
// namespaces go when it ends).
func (s *scenario) prepareCommons(t *testing.T) {
	s.cm.charts = s.c.StageCharts(t)
	s.cm.ns = s.c.Namespace(t, "commons")
	s.cm.tenants = [2]string{s.c.Namespace(t, "tenant-a"), s.c.Namespace(t, "tenant-b")}
}

// installCommons installs charts/commons in cloudnativepg mode on the
// operator installed above: a Cluster of 2 instances (one node) on the
// operand image built here, no object store, two tenants. Helm waits for the
// provisioner Job, whose wait-for-pg and pg-init connect as the Cluster's
// superuser to <cluster>-rw with sslmode=verify-full and the operator's CA.
func (s *scenario) installCommons(t *testing.T) {
	// The earlier steps' Cluster is not needed any more: room on the node.
	s.kubectl(t, "delete", "-n", s.ns, "cluster/"+clusterName, "--wait=false", "--ignore-not-found")
	values := []string{
		"--set", "postgresql.mode=cloudnativepg",
		"--set", "postgresql.cloudnativepg.instances=2",
		"--set", "postgresql.cloudnativepg.imageName=" + s.imgs.Operand.Ref(),
		"--set", "postgresql.cloudnativepg.storage.size=1Gi",
		"--set", "global.storageClass=standard",
		"--set", "postgresql.cloudnativepg.resources.requests.cpu=50m",
		"--set", "postgresql.cloudnativepg.resources.requests.memory=256Mi",
		// The operator refuses a memory request below shared_buffers.
		"--set", "postgresql.cloudnativepg.parameters.shared_buffers=128MB",
		"--set", "objectStorage.bundled=false",
		// The Pooler (session mode) on the PgBouncer image built here.
		// PgBouncer's (and Orthanc's) pooled server connections would hold a
		// deleted primary in its smart shutdown for the operator's default
		// 180 s before the failover starts (docs/operations.md).
		"--set", "postgresql.cloudnativepg.smartShutdownTimeout=5",
		"--set", "postgresql.cloudnativepg.pooler.enabled=true",
		"--set", "postgresql.cloudnativepg.pooler.instances=1",
		"--set", "postgresql.cloudnativepg.pooler.image=" + s.imgs.PgBouncer.Ref(),
		"--set", "postgresql.cloudnativepg.pooler.resources.requests.cpu=10m",
		// The ro Pooler in front of the replicas (checked in commons-pooler).
		"--set", "postgresql.cloudnativepg.pooler.ro.enabled=true",
		"--set", "tenants[0].namespace=" + s.cm.tenants[0],
		"--set", "tenants[1].namespace=" + s.cm.tenants[1],
	}
	values = append(values, testcluster.ImageValues("tools.image", s.c.Images.Tools)...)
	start := time.Now()
	out := s.c.Helm3(t, append([]string{"install", "commons", filepath.Join(s.cm.charts, "charts", "commons"), "-n", s.cm.ns,
		"--wait", "--wait-for-jobs", "--timeout", "15m"}, values...)...)
	t.Logf("helm install commons (cloudnativepg mode) --wait --wait-for-jobs: %.1fs", time.Since(start).Seconds())
	require.Contains(t, out, "STATUS: deployed")
	require.Contains(t, out, "CloudNativePG Cluster "+commonsCluster)

	s.kubectl(t, "wait", "-n", s.cm.ns, "cluster/"+commonsCluster, "--for=condition=Ready", "--timeout=10m")
	ctx := context.Background()
	cs := s.c.Client()
	// The provisioner Job completed, over verify-full with the operator's CA.
	jobs, err := cs.BatchV1().Jobs(s.cm.ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=provisioner"})
	require.NoError(t, err)
	require.Len(t, jobs.Items, 1)
	job := jobs.Items[0]
	require.EqualValues(t, 1, job.Status.Succeeded, "provisioner Job %s succeeded", job.Name)
	env := map[string]string{}
	for _, e := range job.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	assert.Equal(t, commonsCluster+"-rw."+s.cm.ns+".svc.cluster.local", env["PGHOST"])
	assert.Equal(t, "verify-full", env["PGSSLMODE"])
	assert.Equal(t, "/etc/kommons/postgresql-ca/ca.crt", env["PGSSLROOTCERT"])
	assert.Contains(t, jobVolumes(job), commonsCluster+"-ca", "the operator's CA Secret is mounted")
	logs := s.kubectl(t, "logs", "-n", s.cm.ns, "job/"+job.Name, "-c", "provisioner")
	t.Logf("provisioner log:\n%s", strings.TrimSpace(logs))
	assert.Contains(t, logs, "sslmode=verify-full", "pg-init connected with verify-full")
	assert.Contains(t, logs, `"msg":"provisioner created"`)
	admin, err := cs.CoreV1().Secrets(s.cm.ns).Get(ctx, commonsCluster+"-admin", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, corev1.SecretTypeBasicAuth, admin.Type)
	assert.NotContains(t, logs, string(admin.Data["password"]), "no password in the provisioner's log")

	// The roles exist on the primary, as the provisioner made them; the
	// session is verified TLS to -rw with the Cluster's CA, as the superuser.
	rw := fmt.Sprintf("%s-rw.%s.svc", commonsCluster, s.cm.ns)
	cfg := s.clusterConnConfig(t, s.cm.ns, commonsCluster, rw, "postgres", string(admin.Data["password"]), "postgres")
	conn, err := pgxConnect(ctx, cfg)
	require.NoError(t, err, "connect to %s as postgres with verify-full", rw)
	defer conn.Close(ctx)
	for _, ns := range s.cm.tenants {
		role := "kommons_tenant_" + strings.ReplaceAll(ns, "-", "_")
		var createrole, super bool
		require.NoError(t, conn.QueryRow(ctx, "SELECT rolcreaterole, rolsuper FROM pg_roles WHERE rolname = $1", role).Scan(&createrole, &super), role)
		assert.True(t, createrole && !super, "%s: CREATEROLE, not superuser", role)
		ts, err := cs.CoreV1().Secrets(ns).Get(ctx, "kommons-commons", metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, commonsCluster+"-rw."+s.cm.ns+".svc.cluster.local", string(ts.Data["PGHOST"]), "tenants connect to -rw")
		assert.Equal(t, "verify-full", string(ts.Data["PGSSLMODE"]), "tenants verify the server")
		operatorCA, err := cs.CoreV1().Secrets(s.cm.ns).Get(ctx, commonsCluster+"-ca", metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, string(operatorCA.Data["ca.crt"]), string(ts.Data["ca.crt"]), "the operator's CA, copied by secret-init")
		assert.Equal(t, "/etc/kommons/postgres-ca/ca.crt", string(ts.Data["PGSSLROOTCERT"]))
	}
}

func jobVolumes(job batchv1.Job) []string {
	var out []string
	for _, v := range job.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			out = append(out, v.Secret.SecretName)
		}
	}
	return out
}

// installModule installs examples/charts/hello-module in a tenant namespace:
// its pg-init Job provisions through -rw with the tenant's provisioner, and
// its web pod's wait-for-pg passes and it answers from its database.
func (s *scenario) installModule(t *testing.T, ns string) { s.installModuleAs(t, ns, "hello") }

// installModuleAs installs hello-module as release in ns, with extra helm
// arguments (later --set values win).
func (s *scenario) installModuleAs(t *testing.T, ns, release string, extra ...string) {
	values := []string{"install", release, filepath.Join(s.cm.charts, "examples", "charts", "hello-module"), "-n", ns,
		"--wait", "--wait-for-jobs", "--timeout", "10m"}
	values = append(values, testcluster.ImageValues("image", s.c.Images.Hello)...)
	values = append(values, testcluster.ProvisionerValues("postgresInit", s.c.Images.Tools)...)
	values = append(values, extra...)
	start := time.Now()
	out := s.c.Helm3(t, values...)
	t.Logf("helm install %s in %s --wait --wait-for-jobs: %.1fs", release, ns, time.Since(start).Seconds())
	require.Contains(t, out, "STATUS: deployed")
	ctx := context.Background()
	jobs, err := s.c.Client().BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, jobs.Items)
	for _, j := range jobs.Items {
		require.EqualValues(t, 1, j.Status.Succeeded, "Job %s/%s", ns, j.Name)
		logs := s.kubectl(t, "logs", "-n", ns, "job/"+j.Name)
		require.Contains(t, logs, `"msg":"summary"`, "pg-init's summary")
		require.Contains(t, logs, "sslmode=verify-full", "pg-init verified the server with the tenant Secret's CA")
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, `"msg":"summary"`) {
				t.Logf("pg-init in %s: %s", ns, line)
			}
		}
	}
	pods, err := s.c.Client().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=hello-module"})
	require.NoError(t, err)
	var ready int
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded {
			continue
		}
		require.True(t, testcluster.PodReady(p), "pod %s ready (its wait-for-pg passed, it reads its database)", p.Name)
		for _, st := range p.Status.InitContainerStatuses {
			if st.Name == "wait-for-pg" {
				require.NotNil(t, st.State.Terminated, "%s: wait-for-pg finished", p.Name)
				assert.EqualValues(t, 0, st.State.Terminated.ExitCode)
				assert.Contains(t, s.kubectl(t, "logs", "-n", ns, p.Name, "-c", "wait-for-pg"), "sslmode=verify-full", "%s: wait-for-pg over verify-full", p.Name)
			}
		}
		ready++
	}
	require.Positive(t, ready, "a ready hello-module pod in %s", ns)
}

// moduleFirstTenant installs hello-module in the first tenant namespace.
func (s *scenario) moduleFirstTenant(t *testing.T) { s.installModule(t, s.cm.tenants[0]) }

// moduleAfterFailover deletes commons' Cluster primary, waits until another
// instance is the primary, and installs hello-module in the second tenant:
// the tenant's connection facts (-rw) follow the failover.
func (s *scenario) moduleAfterFailover(t *testing.T) {
	ctx := context.Background()
	before := s.statusOf(t, s.cm.ns, commonsCluster)
	require.NotEmpty(t, before.CurrentPrimary)
	start := time.Now()
	require.NoError(t, s.c.Client().CoreV1().Pods(s.cm.ns).Delete(ctx, before.CurrentPrimary, metav1.DeleteOptions{}))
	require.Eventually(t, func() bool {
		st := s.statusOf(t, s.cm.ns, commonsCluster)
		return st.CurrentPrimary != "" && st.CurrentPrimary != before.CurrentPrimary
	}, 5*time.Minute, time.Second, "a replica is promoted")
	after := s.statusOf(t, s.cm.ns, commonsCluster)
	t.Logf("primary %s deleted; %s primary %.1fs later", before.CurrentPrimary, after.CurrentPrimary, time.Since(start).Seconds())
	s.installModule(t, s.cm.tenants[1])
	t.Logf("hello-module installed and ready in %s %.1fs after the primary was deleted", s.cm.tenants[1], time.Since(start).Seconds())
}
