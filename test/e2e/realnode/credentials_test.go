package realnode

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/internal/testutil/testcluster"
)

// chartsRefEnv, when set (e.g. "main"), makes TestCredentialsAcrossRenders
// install the charts of that git revision instead of the work tree's: the
// proof that the test fails on a chart that renders its passwords
// (docs/testing.md).
const chartsRefEnv = "KOMMONS_CREDS_CHARTS_REF"

// upgradeFromEnv, when set to a git revision whose charts render their
// passwords (e.g. the last release tag), adds the sequence of an upgrade from
// it: install that revision's commons, then upgrade to the work tree's.
const upgradeFromEnv = "KOMMONS_CREDS_UPGRADE_FROM"

// creds are the generated credentials of one commons installation that its
// consumers depend on.
// serverCert is the bundled server's certificate (tls.crt of
// <fullname>-postgresql-tls): issued once, kept like a password.
type creds struct{ admin, provisioner, s3Secret, serverCert string }

// TestCredentialsAcrossRenders runs issue #18's sequences for commons with a
// tenant on the real node, where the secret-init, provisioner and s3-init
// Jobs and the data pods really run: (a) `helm template | kubectl apply`
// twice with a values change in between (a new tenant, a PostgreSQL
// resource change that rolls its pod), (b) `helm install` then `helm
// upgrade`, (c) `helm uninstall` then `helm install` over the kept claims.
// After each: every generated credential is unchanged, and after restarting
// the PostgreSQL and MinIO pods the admin, the tenant's provisioner (from
// the tenant Secret, as a module's pg-init uses it) and the tenant's S3 key
// still authenticate; (c) also finds the data written before.
func TestCredentialsAcrossRenders(t *testing.T) {
	c := testcluster.StartNode(t)
	s := &scenario{c: c, img: c.Images}
	t.Cleanup(func() {
		if t.Failed() {
			s.c.Dump(t)
		}
	})
	chart := credsChart(t, c)
	var tenantA, tenantB string
	values := func(extra ...string) []string {
		v := []string{"--set", "tenants[0].namespace=" + tenantA, "--set", "tenants[0].buckets[0]=dicom",
			"--set", "postgresql.persistence.size=1Gi", "--set", "objectStorage.minio.persistence.size=1Gi"}
		v = append(v, testcluster.ImageValues("tools.image", s.img.Tools)...)
		v = append(v, testcluster.ImageValues("postgresql.image", s.img.Postgres)...)
		v = append(v, testcluster.ImageValues("objectStorage.minio.image", s.img.MinIO)...)
		return append(v, extra...)
	}
	// The values change: a new tenant, and a PostgreSQL resource change
	// that rolls its pod.
	changed := func() []string {
		return values("--set", "tenants[1].namespace="+tenantB, "--set", "postgresql.resources.limits.memory=600Mi")
	}
	// Fresh tenant namespaces per sequence: objects kubectl applied there
	// cannot be adopted by a Helm release.
	newTenants := func(t *testing.T) {
		tenantA, tenantB = c.Namespace(t, "creds-a"), c.Namespace(t, "creds-b")
		s.modules = [2]string{tenantA, tenantB}
	}

	t.Run("template-apply", func(t *testing.T) {
		s.commons, s.pgAddr = c.Namespace(t, "commons-tpl"), ""
		newTenants(t)
		apply := func(vals []string) {
			out := c.Helm3(t, append([]string{"template", "commons", chart, "-n", s.commons}, vals...)...)
			f := filepath.Join(t.TempDir(), "commons.yaml")
			require.NoError(t, os.WriteFile(f, []byte(out), 0o600))
			c.Kubectl(t, "apply", "-f", f) // every object names its namespace
			s.waitCommons(t)
		}
		apply(values())
		before := s.creds(t, tenantA)
		s.requireAuth(t, tenantA, before)
		apply(changed())
		require.Equal(t, before, s.creds(t, tenantA), "a second render and apply changed a credential")
		s.restartData(t)
		s.requireAuth(t, tenantA, before)
		s.creds(t, tenantB)
		c.Kubectl(t, "delete", "namespace", s.commons, "--wait=false")
	})

	t.Run("install-upgrade-uninstall-reinstall", func(t *testing.T) {
		s.commons, s.pgAddr = c.Namespace(t, "commons-helm"), ""
		newTenants(t)
		c.Helm3(t, append([]string{"install", "commons", chart, "-n", s.commons, "--wait", "--wait-for-jobs", "--timeout", "10m"}, values()...)...)
		s.waitCommons(t)
		before := s.creds(t, tenantA)
		s.requireAuth(t, tenantA, before)
		conn := s.connect(t, "postgres", before.admin, "postgres")
		_, err := conn.Exec(context.Background(), "CREATE TABLE kept(v text); INSERT INTO kept VALUES ('"+s.commons+"')")
		require.NoError(t, err)
		conn.Close(context.Background())

		c.Helm3(t, append([]string{"upgrade", "commons", chart, "-n", s.commons, "--wait", "--wait-for-jobs", "--timeout", "10m"}, changed()...)...)
		s.waitCommons(t)
		require.Equal(t, before, s.creds(t, tenantA), "helm upgrade changed a credential")
		s.restartData(t)
		s.requireAuth(t, tenantA, before)

		c.Helm3(t, "uninstall", "commons", "-n", s.commons, "--wait", "--timeout", "5m")
		c.Helm3(t, append([]string{"install", "commons", chart, "-n", s.commons, "--wait", "--wait-for-jobs", "--timeout", "10m"}, changed()...)...)
		s.waitCommons(t)
		require.Equal(t, before, s.creds(t, tenantA), "uninstall and reinstall changed a credential")
		s.restartData(t)
		s.requireAuth(t, tenantA, before)
		var v string
		require.NoError(t, s.connect(t, "postgres", before.admin, "postgres").QueryRow(context.Background(), "SELECT v FROM kept").Scan(&v))
		require.Equal(t, s.commons, v, "the data written before the uninstall")
		c.Helm3(t, "uninstall", "commons", "-n", s.commons, "--wait", "--timeout", "5m")
	})

	// The upgrade from a chart that rendered its Secrets: secret-init adopts
	// them (values kept) and writes again the tenant Secret Helm deletes.
	if from := os.Getenv(upgradeFromEnv); from != "" {
		t.Run("upgrade-from-"+from, func(t *testing.T) {
			s.commons, s.pgAddr = c.Namespace(t, "commons-up"), ""
			newTenants(t)
			c.Helm3(t, append([]string{"install", "commons", chartOf(t, c, from), "-n", s.commons, "--wait", "--wait-for-jobs", "--timeout", "10m"}, values()...)...)
			s.waitCommons(t)
			before := s.creds(t, tenantA)
			s.requireAuth(t, tenantA, before)
			c.Helm3(t, append([]string{"upgrade", "commons", chart, "-n", s.commons, "--wait", "--wait-for-jobs", "--timeout", "10m"}, values()...)...)
			s.waitCommons(t)
			testcluster.Eventually(t, "the tenant Secret written again", 3*time.Minute, func() error {
				_, err := c.Client().CoreV1().Secrets(tenantA).Get(context.Background(), "kommons-commons", metav1.GetOptions{})
				return err
			})
			after := s.creds(t, tenantA)
			if before.serverCert == "" { // a release without bundled TLS: the upgrade issues the certificate
				require.NotEmpty(t, after.serverCert)
				before.serverCert = after.serverCert
			}
			require.Equal(t, before, after, "the upgrade changed a credential")
			s.restartData(t)
			s.requireAuth(t, tenantA, before)
			c.Helm3(t, "uninstall", "commons", "-n", s.commons, "--wait", "--timeout", "5m")
		})
	}
}

// credsChart stages the charts (the work tree's, or those of
// $KOMMONS_CREDS_CHARTS_REF) and returns charts/commons.
func credsChart(t *testing.T, c *testcluster.Cluster) string {
	t.Helper()
	ref := os.Getenv(chartsRefEnv)
	if ref == "" {
		return filepath.Join(c.StageCharts(t), "charts", "commons")
	}
	return chartOf(t, c, ref)
}

// chartOf stages charts/commons of git revision ref.
func chartOf(t *testing.T, c *testcluster.Cluster, ref string) string {
	t.Helper()
	dir := t.TempDir()
	archive := exec.Command("sh", "-c", "git archive "+ref+" charts | tar -x -C "+dir)
	archive.Dir = c.Tools.RepoRoot
	out, err := archive.CombinedOutput()
	require.NoError(t, err, "git archive %s: %s", ref, out)
	c.Helm3(t, "dependency", "build", filepath.Join(dir, "charts", "commons"))
	t.Logf("charts/commons of %s", ref)
	return filepath.Join(dir, "charts", "commons")
}

// waitCommons waits until every Job of commons' namespace has completed (a
// failed Job fails the test) and its PostgreSQL and MinIO pods are Ready.
func (s *scenario) waitCommons(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	testcluster.Eventually(t, "commons' Jobs complete and data pods Ready in "+s.commons, 10*time.Minute, func() error {
		jobs, err := s.c.Client().BatchV1().Jobs(s.commons).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if len(jobs.Items) == 0 {
			return fmt.Errorf("no Jobs yet")
		}
		for _, j := range jobs.Items {
			done := false
			for _, cond := range j.Status.Conditions {
				if cond.Status != corev1.ConditionTrue {
					continue
				}
				if cond.Type == batchv1.JobFailed {
					t.Fatalf("Job %s/%s failed: %s", s.commons, j.Name, cond.Message)
				}
				done = done || cond.Type == batchv1.JobComplete
			}
			if !done {
				return fmt.Errorf("Job %s not complete", j.Name)
			}
		}
		for _, sel := range []string{"app.kubernetes.io/component=database", "app.kubernetes.io/component=object-store"} {
			pods, err := s.c.Client().CoreV1().Pods(s.commons).List(ctx, metav1.ListOptions{LabelSelector: sel})
			if err != nil {
				return err
			}
			if len(pods.Items) != 1 || !testcluster.PodReady(&pods.Items[0]) || pods.Items[0].DeletionTimestamp != nil {
				return fmt.Errorf("%s not Ready", sel)
			}
		}
		return nil
	})
}

// creds reads the generated credentials: the admin's, and the tenant's
// provisioner password and S3 secret key from its Secret.
func (s *scenario) creds(t *testing.T, tenant string) creds {
	t.Helper()
	var admin string
	testcluster.Eventually(t, "the admin Secret", 2*time.Minute, func() error {
		sec, err := s.c.Client().CoreV1().Secrets(s.commons).Get(context.Background(), "commons-postgresql-admin", metav1.GetOptions{})
		if err != nil {
			return err
		}
		admin = string(sec.Data["password"])
		return nil
	})
	ten := s.c.SecretData(t, tenant, "kommons-commons")
	require.NotEmpty(t, admin)
	require.NotEmpty(t, ten["PGPASSWORD"])
	var cert string
	if sec, err := s.c.Client().CoreV1().Secrets(s.commons).Get(context.Background(), "commons-postgresql-tls", metav1.GetOptions{}); err == nil {
		// TLS on (the default): the tenant verifies the server with its CA.
		cert = string(sec.Data["tls.crt"])
		require.NotEmpty(t, cert)
		require.Equal(t, "verify-full", ten["PGSSLMODE"], "the tenant Secret's sslmode")
		require.Equal(t, string(sec.Data["ca.crt"]), ten["ca.crt"], "the tenant Secret carries the server's CA")
		require.Equal(t, "/etc/kommons/postgres-ca/ca.crt", ten["PGSSLROOTCERT"])
	}
	return creds{admin: admin, provisioner: ten["PGPASSWORD"], s3Secret: ten["S3_SECRET_ACCESS_KEY"], serverCert: cert}
}

// requireAuth connects as the admin and as the tenant's provisioner (its
// Secret's PGUSER and PGPASSWORD), and lists the tenant's bucket with its
// access key.
func (s *scenario) requireAuth(t *testing.T, tenant string, want creds) {
	t.Helper()
	ten := s.c.SecretData(t, tenant, "kommons-commons")
	s.pgAddr = s.c.ServiceAddr(t, s.commons, strings.Split(ten["PGHOST"], ".")[0], "postgresql")
	testcluster.Eventually(t, "PostgreSQL accepts the admin and the provisioner", 3*time.Minute, func() error {
		for _, u := range [][2]string{{"postgres", want.admin}, {ten["PGUSER"], want.provisioner}} {
			conn, err := s.tryConnect(u[0], u[1], "postgres")
			if err != nil {
				return fmt.Errorf("%s: %w", u[0], err)
			}
			if want.serverCert != "" {
				requireTLSSession(t, conn)
			}
			conn.Close(context.Background())
		}
		return nil
	})
	if want.serverCert != "" {
		// The rendered pg_hba.conf: the right password without TLS is refused.
		host, port, _ := net.SplitHostPort(s.pgAddr)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=postgres password=%s dbname=postgres sslmode=disable", host, port, want.admin))
		require.Error(t, err, "a connection without TLS")
		require.Contains(t, err.Error(), "no pg_hba.conf entry")
	}
	mc, err := minio.New(s.c.ServiceAddr(t, s.commons, "commons-minio", "s3"), &minio.Options{
		Creds: credentials.NewStaticV4(ten["S3_ACCESS_KEY_ID"], want.s3Secret, ""), Region: ten["S3_REGION"]})
	require.NoError(t, err)
	testcluster.Eventually(t, "MinIO accepts the tenant's key", 3*time.Minute, func() error {
		ok, err := mc.BucketExists(context.Background(), ten["S3_BUCKET_DICOM"])
		if err == nil && !ok {
			err = fmt.Errorf("bucket %s missing", ten["S3_BUCKET_DICOM"])
		}
		return err
	})
}

// restartData deletes the PostgreSQL and MinIO pods and waits for their
// replacements to be Ready.
func (s *scenario) restartData(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, sel := range []string{"app.kubernetes.io/component=database", "app.kubernetes.io/component=object-store"} {
		old := s.onePod(t, s.commons, sel)
		require.NoError(t, s.c.Client().CoreV1().Pods(s.commons).Delete(ctx, old.Name, metav1.DeleteOptions{}))
		testcluster.Eventually(t, sel+" pod recreated and Ready", 5*time.Minute, func() error {
			p, err := s.c.Client().CoreV1().Pods(s.commons).Get(ctx, old.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if p.UID == old.UID || !testcluster.PodReady(p) {
				return fmt.Errorf("not yet")
			}
			return nil
		})
	}
}
