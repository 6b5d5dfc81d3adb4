package render_test

// The `helm test` hooks of charts/commons, charts/postgres-init and
// charts/orthanc: rendered as hooks with secure defaults, switched off by
// tests.enabled, and (commons, postgres-init) run as rendered against a real
// PostgreSQL and MinIO, failing before provisioning and passing after.

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/kommons/kommons/internal/testutil/miniotest"
	"github.com/kommons/kommons/internal/testutil/pgtest"
	"github.com/kommons/kommons/test/render"
)

// testHooks returns the rendered Pods annotated helm.sh/hook: test.
func testHooks(t *testing.T, m *render.Manifest) []*corev1.Pod {
	t.Helper()
	var out []*corev1.Pod
	for _, o := range m.ByKind("Pod") {
		p := render.Decode[corev1.Pod](t, o)
		if p.Annotations["helm.sh/hook"] == "test" {
			out = append(out, p)
		}
	}
	return out
}

// requireSecureTestPod checks a test hook's pod: deleted before a rerun and
// once it passed, no token, non-root, read-only root file system, no
// capability, RuntimeDefault seccomp, resources, a deadline.
func requireSecureTestPod(t *testing.T, p *corev1.Pod) {
	t.Helper()
	assert.Equal(t, "before-hook-creation,hook-succeeded", p.Annotations["helm.sh/hook-delete-policy"], p.Name)
	assert.Equal(t, corev1.RestartPolicyNever, p.Spec.RestartPolicy, p.Name)
	require.NotNil(t, p.Spec.AutomountServiceAccountToken, p.Name)
	assert.False(t, *p.Spec.AutomountServiceAccountToken, p.Name)
	require.NotNil(t, p.Spec.ActiveDeadlineSeconds, p.Name)
	require.NotNil(t, p.Spec.SecurityContext, p.Name)
	require.NotNil(t, p.Spec.SecurityContext.RunAsNonRoot, p.Name)
	assert.True(t, *p.Spec.SecurityContext.RunAsNonRoot, p.Name)
	require.NotNil(t, p.Spec.SecurityContext.SeccompProfile, p.Name)
	assert.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, p.Spec.SecurityContext.SeccompProfile.Type, p.Name)
	require.NotEmpty(t, p.Spec.Containers, p.Name)
	for _, c := range p.Spec.Containers {
		sc := c.SecurityContext
		require.NotNil(t, sc, "%s/%s", p.Name, c.Name)
		assert.True(t, *sc.ReadOnlyRootFilesystem, "%s/%s", p.Name, c.Name)
		assert.False(t, *sc.AllowPrivilegeEscalation, "%s/%s", p.Name, c.Name)
		assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop, "%s/%s", p.Name, c.Name)
		assert.NotEmpty(t, c.Resources.Limits, "%s/%s", p.Name, c.Name)
		assert.NotEmpty(t, c.Resources.Requests, "%s/%s", p.Name, c.Name)
		assert.Contains(t, c.Image, "kommons-tools", "%s/%s runs the kommons-tools image", p.Name, c.Name)
	}
}

func podContainer(t *testing.T, p *corev1.Pod, name string) corev1.Container {
	t.Helper()
	return container(t, p.Spec, name, false)
}

// TestCommonsTestHookAgainstPostgreSQLAndMinIO: one test Pod per tenant, in
// the tenant's namespace, reading the tenant's Secret. Run as rendered: the
// provisioner login fails (after tests.timeout) before the provisioner Job
// ran and passes after; the tenant's key fails before s3-init created it and
// lists the tenant's buckets after.
func TestCommonsTestHookAgainstPostgreSQLAndMinIO(t *testing.T) {
	s := bundledServer(t, pgtest.Options{Major: 18}) // two tenants: PostgreSQL 16+ (the chart's default is 18)
	srv := miniotest.New(t, miniotest.Options{})
	bin := buildTools(t, "wait-for-pg", "pg-init", "s3-init")
	m := renderCommons(t, merge(tenants(
		map[string]any{"namespace": "imaging", "buckets": []any{"dicom", "exports"}},
		map[string]any{"namespace": "lab"},
	), map[string]any{"tests": map[string]any{"timeout": "3s"}}))
	hooks := testHooks(t, m)
	require.Len(t, hooks, 2, "one test Pod per tenant")
	for _, ns := range []string{"imaging", "lab"} {
		np := render.Decode[networkingv1.NetworkPolicy](t, m.MustGet(t, "NetworkPolicy", ns, "commons-test"))
		assert.Equal(t, "test", np.Spec.PodSelector.MatchLabels["app.kubernetes.io/component"], "the test Pods of %s: no ingress, egress to DNS, PostgreSQL and MinIO only", ns)
		assert.Empty(t, np.Spec.Ingress)
		assert.Len(t, np.Spec.Egress, 3)
	}
	byNS := map[string]*corev1.Pod{}
	for _, p := range hooks {
		requireSecureTestPod(t, p)
		byNS[p.Namespace] = p
	}
	require.Contains(t, byNS, "imaging")
	require.Contains(t, byNS, "lab")
	assert.Len(t, byNS["lab"].Spec.Containers, 1, "a tenant without buckets has no object-store check")
	imaging := byNS["imaging"]
	require.Len(t, imaging.Spec.Containers, 2)
	for _, c := range imaging.Spec.Containers {
		for _, e := range c.Env {
			if e.ValueFrom != nil {
				assert.Equal(t, "kommons-commons", e.ValueFrom.SecretKeyRef.Name, "%s reads the tenant Secret only", e.Name)
			}
		}
	}

	// PostgreSQL: the tenant's provisioner logs in.
	login := podContainer(t, imaging, "provisioner-login")
	out, err := runContainerIn(t, "imaging", bin, m, imaging.Spec, login, s, nil)
	require.Error(t, err, "provisioner login before the provisioner Job ran:\n%s", out)
	job := render.Decode[batchv1.Job](t, m.One(t, "Job", "commons-provisioner-"))
	admin := map[string]map[string]string{"Secret/commons-postgresql-admin": {"username": pgtest.AdminUser, "password": s.AdminPassword()}}
	out, err = runContainer(t, bin, m, job.Spec.Template.Spec, container(t, job.Spec.Template.Spec, "provisioner", false), s, admin)
	require.NoError(t, err, "provisioner Job:\n%s", out)
	out, err = runContainerIn(t, "imaging", bin, m, imaging.Spec, login, s, nil)
	require.NoError(t, err, "provisioner login after provisioning:\n%s", out)
	tenant := secretData(t, m.MustGet(t, "Secret", "imaging", "kommons-commons"))
	assert.NotContains(t, out, tenant["PGPASSWORD"])

	// Object store: the tenant's key lists its buckets.
	objects := podContainer(t, imaging, "object-store-tenant-key")
	runS3Check := func() (string, error) {
		env := []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir(), "S3_INIT_LOG_FORMAT=json"}
		for _, e := range m.Env(t, "imaging", objects, nil) {
			if strings.HasPrefix(e, "S3_ENDPOINT=") {
				require.Equal(t, "S3_ENDPOINT=http://commons-minio.commons.svc.cluster.local:9000", e)
				e = "S3_ENDPOINT=" + srv.Endpoint() // the Service name only resolves in a cluster
			}
			env = append(env, e)
		}
		require.Equal(t, []string{"s3-init"}, objects.Command)
		cmd := exec.CommandContext(context.Background(), filepath.Join(bin, "s3-init"), objects.Args...)
		cmd.Env = env
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		err := cmd.Run()
		return buf.String(), err
	}
	out, err = runS3Check()
	require.Error(t, err, "the tenant's key before s3-init created it:\n%s", out)
	m2 := withRootSecret(m, srv)
	for ns, job := range s3InitJobs(t, m) {
		out, err := runRenderedS3Init(t, filepath.Join(bin, "s3-init"), m2, job, srv)
		require.NoError(t, err, "s3-init for %s:\n%s", ns, out)
	}
	out, err = runS3Check()
	require.NoError(t, err, "the tenant's key after s3-init:\n%s", out)
	assert.Contains(t, out, `"msg":"buckets answer"`)
	assert.NotContains(t, out, tenant["S3_SECRET_ACCESS_KEY"])
}

// TestPostgresInitTestHookAgainstPostgreSQL: one container per role that has
// a database, logging in with the role's own Secret and querying its
// database; it fails before pg-init ran and passes after.
func TestPostgresInitTestHookAgainstPostgreSQL(t *testing.T) {
	s := pgtest.New(t, pgtest.Options{})
	bin := buildTools(t, "wait-for-pg", "pg-init")
	m := render.MustChart(t, "../../charts/postgres-init", render.Options{ReleaseName: "billing", Namespace: "commons",
		Values: map[string]any{
			"roles": []any{
				map[string]any{"name": "app"},
				map[string]any{"name": "migrator"},
			},
			"databases": []any{map[string]any{"name": "app", "owner": "app"}},
			"tests":     map[string]any{"timeout": "3s"},
		}})
	hooks := testHooks(t, m)
	require.Len(t, hooks, 1)
	p := hooks[0]
	requireSecureTestPod(t, p)
	require.Len(t, p.Spec.Containers, 1, "role migrator owns no database: nothing to check")
	c := podContainer(t, p, "role-app")
	assert.Contains(t, c.Args, "--level=query")

	// The provisioner Secret commons renders in the tenant namespace.
	prov := map[string]map[string]string{"Secret/kommons-commons": {"PGHOST": "commons-postgresql.commons.svc.cluster.local",
		"PGPORT": "5432", "PGSSLMODE": "disable", "PGUSER": pgtest.AdminUser, "PGPASSWORD": s.AdminPassword(), "PGDATABASE": "postgres"}}
	// The connection Secrets the Job's secret-init init container writes.
	for id, data := range m.SecretInitRun(t, "commons", "billing-pg-secret-init", map[string]map[string]string{"commons/kommons-commons": prov["Secret/kommons-commons"]}) {
		prov["Secret/"+strings.TrimPrefix(id, "commons/")] = data
	}
	pw := prov["Secret/billing-pg-app"]["password"]
	require.NotEmpty(t, pw)
	out, err := runContainer(t, bin, m, p.Spec, c, s, prov)
	require.Error(t, err, "the role's login before pg-init ran:\n%s", out)
	job := render.Decode[batchv1.Job](t, m.One(t, "Job", "billing-pg-init-"))
	out, err = runContainer(t, bin, m, job.Spec.Template.Spec, container(t, job.Spec.Template.Spec, "pg-init", false), s, prov)
	require.NoError(t, err, "pg-init Job:\n%s", out)
	out, err = runContainer(t, bin, m, p.Spec, c, s, prov)
	require.NoError(t, err, "the role's login after pg-init:\n%s", out)
	assert.NotContains(t, out, pw)
}

// TestOrthancTestHook: GET /system through the web Service with the chart's
// credentials (the generated auth Secret, or auth.existingSecret's keys); the
// NetworkPolicy lets the test Pod reach the web pods' HTTP port; the
// postgres-init dependency adds its own.
func TestOrthancTestHook(t *testing.T) {
	m := render.MustChart(t, "../../charts/orthanc", render.Options{ReleaseName: "pacs", Namespace: "imaging"})
	hooks := testHooks(t, m)
	require.Len(t, hooks, 2, "Orthanc's and postgres-init's")
	var sys *corev1.Pod
	for _, p := range hooks {
		requireSecureTestPod(t, p)
		if p.Name == "pacs-orthanc-test" {
			sys = p
		}
	}
	require.NotNil(t, sys)
	c := podContainer(t, sys, "system")
	assert.Equal(t, []string{"/usr/local/bin/orthanc-tiering"}, c.Command)
	assert.Contains(t, c.Args, "--url=http://pacs-orthanc:8042")
	assert.Contains(t, c.Args, "--dry-run", "moves nothing")
	svc := m.MustGet(t, "Service", "imaging", "pacs-orthanc")
	assert.Contains(t, string(svc.YAML), "port: 8042")
	env := envOf(c)
	assert.Equal(t, "pacs-orthanc-auth", env["ORTHANC_TIERING_USER"].ValueFrom.SecretKeyRef.Name)
	assert.Equal(t, "username", env["ORTHANC_TIERING_USER"].ValueFrom.SecretKeyRef.Key)
	assert.Equal(t, "password", env["ORTHANC_TIERING_PASSWORD"].ValueFrom.SecretKeyRef.Key)
	auth := secretData(t, m.MustGet(t, "Secret", "imaging", "pacs-orthanc-auth"))
	assert.NotEmpty(t, auth["username"], "the account the secret-init Job writes")

	np := render.Decode[networkingv1.NetworkPolicy](t, m.MustGet(t, "NetworkPolicy", "imaging", "pacs-orthanc"))
	selected := true
	for k, v := range np.Spec.PodSelector.MatchLabels {
		selected = selected && sys.Labels[k] == v
	}
	require.True(t, selected, "the policy selects the test Pod: its egress must let it through")
	reaches := false
	for _, e := range np.Spec.Egress {
		for _, to := range e.To {
			if to.PodSelector != nil && to.PodSelector.MatchLabels["app.kubernetes.io/component"] == "web" &&
				len(e.Ports) == 1 && e.Ports[0].Port.IntValue() == 8042 {
				reaches = true
			}
		}
	}
	assert.True(t, reaches, "egress to the web pods' HTTP port")

	existing := render.MustChart(t, "../../charts/orthanc", render.Options{ReleaseName: "pacs", Namespace: "imaging",
		ValuesFiles: []string{"../../charts/orthanc/ci/existing-secrets-values.yaml"}})
	e := envOf(podContainer(t, render.Decode[corev1.Pod](t, existing.MustGet(t, "Pod", "imaging", "pacs-orthanc-test")), "system"))
	assert.Equal(t, "pacs-admin", e["ORTHANC_TIERING_USER"].ValueFrom.SecretKeyRef.Name)
	assert.Equal(t, "user", e["ORTHANC_TIERING_USER"].ValueFrom.SecretKeyRef.Key)
	assert.Equal(t, "pass", e["ORTHANC_TIERING_PASSWORD"].ValueFrom.SecretKeyRef.Key)
}

// TestTestHooksCanBeDisabled: tests.enabled=false renders no test hook (and,
// for Orthanc, no egress rule for it).
func TestTestHooksCanBeDisabled(t *testing.T) {
	off := map[string]any{"enabled": false}
	m := renderCommons(t, merge(tenants(map[string]any{"namespace": "imaging", "buckets": []any{"dicom"}}), map[string]any{"tests": off}))
	assert.Empty(t, testHooks(t, m))
	_, policy := m.Get("NetworkPolicy", "imaging", "commons-test")
	assert.False(t, policy, "no NetworkPolicy for test Pods that are not rendered")
	m = render.MustChart(t, "../../charts/postgres-init", render.Options{Values: map[string]any{"tests": off}})
	assert.Empty(t, testHooks(t, m))
	_, policy = m.Get("NetworkPolicy", "default", "release-pg-test")
	assert.False(t, policy)
	m = render.MustChart(t, "../../charts/orthanc", render.Options{ReleaseName: "pacs", Namespace: "imaging",
		Values: map[string]any{"tests": off, "postgresInit": map[string]any{"tests": off}}})
	assert.Empty(t, testHooks(t, m))
	assert.NotContains(t, string(m.MustGet(t, "NetworkPolicy", "imaging", "pacs-orthanc").YAML), "calls /system")
}
