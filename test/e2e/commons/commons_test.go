// Package commons installs charts/commons on the local Kubernetes cluster
// (internal/testutil/testcluster: real apiserver, controllers, scheduler,
// admission; kwok pods that never run containers) through the Helm 3 and
// Helm 4 CLIs, and checks what a platform team relies on: the bundled data
// layer becomes ready under the restricted Pod Security level, tenant
// Secrets and NetworkPolicies exist for tenant namespaces only, upgrades
// keep every generated password, and uninstalling keeps the data. No
// container runs here except secret-init's: testcluster runs the pods of the
// secret-init Jobs with the real binary, their spec and their ServiceAccount.
package commons

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/internal/testutil/testcluster"
)

func TestMain(m *testing.M) { testcluster.Main(m) }

const release = "commons"

// credentialSecrets are the Secrets (in the commons namespace) that hold data
// credentials and must survive upgrades and uninstalls unchanged.
var credentialSecrets = []string{"commons-postgresql-admin", "commons-provisioner", "commons-minio-root", "commons-tenant-s3-keys"}

// generate waits for the newest secret-init Job in ns, which writes the
// credentials (on kwok, testcluster runs its pod with the real secret-init:
// testcluster.SecretInitComponent), and returns its name.
func generate(t *testing.T, c *testcluster.Cluster, ns string) string {
	t.Helper()
	return waitJob(t, c, ns, "secret-init")
}

// chartDir stages the charts (dependencies built, never in the work tree)
// and returns the staged charts/commons.
func chartDir(t *testing.T, c *testcluster.Cluster) string {
	return filepath.Join(c.StageCharts(t), "charts", "commons")
}

// TestCommonsLifecycle runs, per Helm major: install with --wait, upgrade
// adding a tenant, uninstall, reinstall.
func TestCommonsLifecycle(t *testing.T) {
	c := testcluster.Start(t)
	for _, tc := range []struct {
		name string
		helm func(testing.TB, ...string) string
	}{{"helm3", c.Helm3}, {"helm4", c.Helm4}} {
		t.Run(tc.name, func(t *testing.T) {
			lifecycle(t, c, tc.helm)
		})
	}
}

func lifecycle(t *testing.T, c *testcluster.Cluster, helm func(testing.TB, ...string) string) {
	ctx := context.Background()
	cs := c.Client()
	ns := c.Namespace(t, "commons")
	imaging := c.Namespace(t, "imaging")
	lab := c.Namespace(t, "lab")
	stranger := c.Namespace(t, "stranger")
	// The data layer must pass the restricted Pod Security level: admission
	// refuses any pod that runs as root, keeps capabilities or lacks seccomp.
	c.Kubectl(t, "label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")

	start := time.Now()
	out := helm(t, "install", release, chartDir(t, c), "-n", ns, "--wait", "--timeout", "5m",
		"--set", "tenants[0].namespace="+imaging, "--set", "tenants[0].buckets[0]=dicom",
		"--set", "tenants[1].namespace="+lab)
	t.Logf("install --wait: %.1fs", time.Since(start).Seconds())
	require.Contains(t, out, "STATUS: deployed")
	require.Contains(t, out, imaging+": Secret kommons-commons", "NOTES name the tenant Secret")

	for _, name := range []string{"commons-postgresql", "commons-minio"} {
		sts, err := cs.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err)
		require.EqualValues(t, 1, sts.Status.ReadyReplicas, name)
		pvc, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-"+name+"-0", metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, corev1.ClaimBound, pvc.Status.Phase)
		require.Equal(t, testcluster.DefaultStorageClass, *pvc.Spec.StorageClassName)
	}
	siJob := generate(t, c, ns)
	provJob := waitJob(t, c, ns, "provisioner")
	waitJob(t, c, ns, "s3-init")

	before := map[string]map[string][]byte{}
	for _, name := range credentialSecrets {
		before[name] = secret(t, c, ns, name).Data
	}
	require.Len(t, before["commons-postgresql-admin"]["password"], 32)
	// The render-time memo of generated passwords is never stored as values.
	vals := helm(t, "get", "values", release, "-n", ns, "--all", "-o", "json")
	require.NotContains(t, vals, "__kommonsCommonMemo")
	require.NotContains(t, vals, string(before["commons-postgresql-admin"]["password"]))

	// Tenant Secrets: only in tenant namespaces, each carrying its own provisioner's credentials.
	img := secret(t, c, imaging, "kommons-commons").Data
	require.Equal(t, before["commons-provisioner"][imaging], img["PGPASSWORD"])
	require.Equal(t, "kommons_tenant_"+strings.ReplaceAll(imaging, "-", "_"), string(img["PGUSER"]))
	require.NotEqual(t, img["PGPASSWORD"], secret(t, c, lab, "kommons-commons").Data["PGPASSWORD"], "tenants do not share a provisioner")
	require.Equal(t, "commons-postgresql."+ns+".svc.cluster.local", string(img["PGHOST"]))
	require.Equal(t, before["commons-tenant-s3-keys"][imaging+".secretKey"], img["S3_SECRET_ACCESS_KEY"])
	require.NotEqual(t, before["commons-postgresql-admin"]["password"], img["PGPASSWORD"])
	secret(t, c, lab, "kommons-commons")
	assertNoTenantSecret(t, c, stranger)
	assertPolicyNamespaces(t, c, ns, imaging, lab)

	// An unchanged upgrade renders no password: the finished secret-init and
	// provisioner Jobs are kept, not run again.
	helm(t, "upgrade", release, chartDir(t, c), "-n", ns, "--wait", "--timeout", "5m",
		"--set", "tenants[0].namespace="+imaging, "--set", "tenants[0].buckets[0]=dicom",
		"--set", "tenants[1].namespace="+lab)
	require.Equal(t, siJob, generate(t, c, ns), "an unchanged upgrade keeps the secret-init Job")
	require.Equal(t, provJob, waitJob(t, c, ns, "provisioner"), "an unchanged upgrade keeps the provisioner Job")

	// Upgrade: a new tenant; every generated password is kept (secret-init
	// never overwrites a generated key).
	third := c.Namespace(t, "reports")
	// The whole list is passed: --reuse-values would not merge lists.
	helm(t, "upgrade", release, chartDir(t, c), "-n", ns, "--wait", "--timeout", "5m",
		"--set", "tenants[0].namespace="+imaging, "--set", "tenants[0].buckets[0]=dicom",
		"--set", "tenants[1].namespace="+lab, "--set", "tenants[2].namespace="+third, "--set", "tenants[2].buckets[0]=pdf")
	require.NotEqual(t, siJob, generate(t, c, ns), "a new tenant runs secret-init again")
	for _, name := range credentialSecrets {
		after := secret(t, c, ns, name).Data
		for k, v := range before[name] {
			require.Equal(t, string(v), string(after[k]), "%s key %s changed on upgrade", name, k)
		}
	}
	require.Equal(t, img, secret(t, c, imaging, "kommons-commons").Data, "an existing tenant's Secret is unchanged")
	rep := secret(t, c, third, "kommons-commons").Data
	require.Equal(t, secret(t, c, ns, "commons-provisioner").Data[third], rep["PGPASSWORD"])
	require.NotEqual(t, img["PGPASSWORD"], rep["PGPASSWORD"])
	assertNoTenantSecret(t, c, stranger)
	assertPolicyNamespaces(t, c, ns, imaging, lab, third)
	// Adding a tenant runs a new provisioner Job: it creates the new tenant's role.
	provJob2 := waitJob(t, c, ns, "provisioner")
	require.NotEqual(t, provJob, provJob2, "a new tenant reruns the provisioner")

	// Rotation (docs/secret-init.md): delete the key, bump
	// secretInit.revision: secret-init generates a new password, the
	// provisioner Job runs again (it sets the role's password) and the new
	// password reaches that tenant only.
	old := string(img["PGPASSWORD"])
	c.Kubectl(t, "patch", "secret", "commons-provisioner", "-n", ns, "--type=json",
		"-p", `[{"op":"remove","path":"/data/`+imaging+`"}]`)
	helm(t, "upgrade", release, chartDir(t, c), "-n", ns, "--wait", "--timeout", "5m", "--set", "secretInit.revision=1",
		"--set", "tenants[0].namespace="+imaging, "--set", "tenants[0].buckets[0]=dicom",
		"--set", "tenants[1].namespace="+lab, "--set", "tenants[2].namespace="+third, "--set", "tenants[2].buckets[0]=pdf")
	generate(t, c, ns)
	rotated := string(secret(t, c, ns, "commons-provisioner").Data[imaging])
	require.Len(t, rotated, 32)
	require.NotEqual(t, old, rotated)
	require.Equal(t, rotated, string(secret(t, c, imaging, "kommons-commons").Data["PGPASSWORD"]), "the tenant Secret carries the rotated password")
	require.Equal(t, rep["PGPASSWORD"], secret(t, c, third, "kommons-commons").Data["PGPASSWORD"], "other tenants keep theirs")
	require.NotEqual(t, provJob2, waitJob(t, c, ns, "provisioner"), "a rotated password reruns the provisioner Job")
	img = secret(t, c, imaging, "kommons-commons").Data
	waitJob(t, c, ns, "s3-init") // the new spec runs a new s3-init Job

	// Uninstall keeps the data: claims (volumeClaimTemplates) and credential
	// Secrets, which Helm never owned; the tenant Secrets too, so modules keep
	// connecting across a reinstall (docs/secret-init.md: removing a tenant).
	keptData := map[string]map[string][]byte{}
	for _, name := range credentialSecrets {
		keptData[name] = secret(t, c, ns, name).Data
	}
	helm(t, "uninstall", release, "-n", ns, "--wait", "--timeout", "3m")
	for _, name := range []string{"data-commons-postgresql-0", "data-commons-minio-0"} {
		_, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err, "claim %s must outlive the release", name)
	}
	for _, name := range credentialSecrets {
		secret(t, c, ns, name)
	}
	_, err := cs.AppsV1().StatefulSets(ns).Get(ctx, "commons-postgresql", metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "the StatefulSet is removed: %v", err)
	require.Equal(t, img, secret(t, c, imaging, "kommons-commons").Data, "the tenant Secret is kept")

	// Reinstall over the kept data: the same admin password opens the same data directory.
	helm(t, "install", release, chartDir(t, c), "-n", ns, "--wait", "--timeout", "5m",
		"--set", "tenants[0].namespace="+imaging, "--set", "tenants[0].buckets[0]=dicom")
	generate(t, c, ns)
	for _, name := range credentialSecrets {
		after := secret(t, c, ns, name).Data
		for k, v := range keptData[name] {
			if name == "commons-tenant-s3-keys" && !strings.HasPrefix(k, imaging+".") || name == "commons-provisioner" && k != imaging {
				continue // only the listed tenants' keys are reconciled again
			}
			require.Equal(t, string(v), string(after[k]), "%s key %s changed on reinstall", name, k)
		}
	}
	require.Equal(t, img["PGPASSWORD"], secret(t, c, imaging, "kommons-commons").Data["PGPASSWORD"])
	helm(t, "uninstall", release, "-n", ns, "--wait", "--timeout", "3m")
}

// TestProvisionerFailureFailsInstall: a provisioner Job that fails (kwok's
// failure annotation) makes `helm install --wait --wait-for-jobs` fail with
// the Job's name instead of hanging, with Helm 3 and Helm 4.
func TestProvisionerFailureFailsInstall(t *testing.T) {
	c := testcluster.Start(t)
	for _, tc := range []struct{ name, bin string }{{"helm3", c.Tools.Helm3}, {"helm4", c.Tools.Helm4}} {
		t.Run(tc.name, func(t *testing.T) {
			ns := c.Namespace(t, "commons-fail")
			tenant := c.Namespace(t, "fail-tenant") // the provisioner Job is rendered for tenants
			start := time.Now()
			out, err := c.Exec(tc.bin, "install", release, chartDir(t, c), "-n", ns, "--wait", "--wait-for-jobs", "--timeout", "4m",
				"--set", "tenants[0].namespace="+tenant,
				"--set", "jobs.backoffLimit=0", "--set-string", "jobs.podAnnotations."+strings.ReplaceAll(testcluster.FailAnnotation, ".", `\.`)+"=true")
			require.Error(t, err, "install must fail:\n%s", out)
			t.Logf("%s failed after %.1fs: %s", tc.name, time.Since(start).Seconds(), strings.TrimSpace(out))
			// Every Job gets the failure annotation: the first to fail is named.
			require.Regexp(t, `commons-(provisioner|secret-init)-`, out, "the failure names the Job")
			require.Contains(t, strings.ToLower(out), "fail")
		})
	}
}

func secret(t *testing.T, c *testcluster.Cluster, ns, name string) *corev1.Secret {
	t.Helper()
	s, err := c.Client().CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(t, err, "Secret %s/%s", ns, name)
	return s
}

func assertNoTenantSecret(t *testing.T, c *testcluster.Cluster, ns string) {
	t.Helper()
	list, err := c.Client().CoreV1().Secrets(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/part-of=kommons"})
	require.NoError(t, err)
	require.Empty(t, list.Items, "namespace %s is not a tenant: no credentials", ns)
}

// assertPolicyNamespaces checks that the live NetworkPolicies of PostgreSQL
// and the object store let in exactly the tenant namespaces.
func assertPolicyNamespaces(t *testing.T, c *testcluster.Cluster, ns string, want ...string) {
	t.Helper()
	for _, name := range []string{"commons-postgresql", "commons-minio"} {
		np, err := c.Client().NetworkingV1().NetworkPolicies(ns).Get(context.Background(), name, metav1.GetOptions{})
		require.NoError(t, err)
		var got []string
		for _, rule := range np.Spec.Ingress {
			for _, peer := range rule.From {
				if peer.NamespaceSelector != nil {
					for _, e := range peer.NamespaceSelector.MatchExpressions {
						require.Equal(t, "kubernetes.io/metadata.name", e.Key)
						got = append(got, e.Values...)
					}
				}
			}
		}
		slices.Sort(got)
		w := slices.Clone(want)
		slices.Sort(w)
		assert.Equal(t, w, got, "NetworkPolicy %s", name)
	}
}

// waitJob waits until the newest Job of a component completes and returns its name.
func waitJob(t *testing.T, c *testcluster.Cluster, ns, component string) string {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(3 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		list, err := c.Client().BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{
			LabelSelector: fmt.Sprintf("app.kubernetes.io/instance=%s,app.kubernetes.io/component=%s", release, component)})
		require.NoError(t, err)
		slices.SortFunc(list.Items, func(a, b batchv1.Job) int {
			return b.CreationTimestamp.Compare(a.CreationTimestamp.Time)
		})
		if len(list.Items) > 0 {
			job := list.Items[0]
			last = job.Name
			for _, cond := range job.Status.Conditions {
				if cond.Status != corev1.ConditionTrue {
					continue
				}
				switch cond.Type {
				case batchv1.JobComplete:
					return job.Name
				case batchv1.JobFailed:
					t.Fatalf("Job %s/%s failed: %s", ns, job.Name, cond.Message)
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("no %s Job completed in %s within 3m (last seen: %q)", component, ns, last)
	return ""
}
