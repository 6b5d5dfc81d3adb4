package render_test

import (
	"encoding/base64"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kommons/kommons/internal/kubeapi"
	"github.com/kommons/kommons/internal/s3names"
	"github.com/kommons/kommons/internal/s3provision"
	"github.com/kommons/kommons/internal/testutil/pgtest"
	"github.com/kommons/kommons/test/render"
)

const commonsChart = "../../charts/commons"

// renderCommons renders charts/commons as release "commons" in namespace
// "commons"; the secret-init Job's work is done with the CloudNativePG
// operator's CA Secret (commons-postgresql-ca, ca.crt operatorCAPEM) present,
// as the operator creates it in cloudnativepg mode.
func renderCommons(t *testing.T, values map[string]any) *render.Manifest {
	t.Helper()
	return render.MustChart(t, commonsChart, render.Options{ReleaseName: "commons", Namespace: "commons", Values: values,
		Existing: []*kubeapi.Secret{operatorCA(), bundledTLSSecret(t)}})
}

// bundledHost is the bundled server's client Service, as the tenants and
// Jobs of release commons in namespace commons name it.
const bundledHost = "commons-postgresql.commons.svc.cluster.local"

var (
	bundledTLSOnce sync.Once
	bundledTLS     *kubeapi.Secret
)

// bundledTLSSecret is the bundled server's certificate Secret
// (commons-postgresql-tls) as the chart's secret-init spec issues it, issued
// once per test binary by a render of the defaults; renderCommons passes it
// as existing, as a cluster has it after the first install (secret-init
// keeps it), so that a test server started with it (bundledServer) serves
// every render's Jobs and tenants.
func bundledTLSSecret(t *testing.T) *kubeapi.Secret {
	t.Helper()
	bundledTLSOnce.Do(func() {
		m, err := render.Chart(commonsChart, render.Options{ReleaseName: "commons", Namespace: "commons",
			Existing: []*kubeapi.Secret{operatorCA()}})
		if err != nil {
			return
		}
		o, ok := m.Get("Secret", "commons", "commons-postgresql-tls")
		if !ok {
			return
		}
		s := render.Decode[corev1.Secret](t, o)
		bundledTLS = &kubeapi.Secret{Type: string(s.Type), Data: s.Data}
		bundledTLS.Metadata.Namespace, bundledTLS.Metadata.Name, bundledTLS.Metadata.Labels = s.Namespace, s.Name, s.Labels
	})
	require.NotNil(t, bundledTLS, "the defaults of charts/commons issue the bundled server's certificate (Secret commons-postgresql-tls)")
	c := *bundledTLS // the in-memory store may patch metadata: a copy per render
	c.Data = maps.Clone(bundledTLS.Data)
	c.Metadata.Labels = maps.Clone(bundledTLS.Metadata.Labels)
	return &c
}

// bundledServer starts a PostgreSQL with the bundled server's certificate
// (bundledTLSSecret), as the StatefulSet runs it: the clients of every
// commons render verify it under bundledHost.
func bundledServer(t *testing.T, opts pgtest.Options) *pgtest.Server {
	t.Helper()
	sec := bundledTLSSecret(t)
	opts.TLS = &pgtest.TLS{CertPEM: sec.Data["tls.crt"], KeyPEM: sec.Data["tls.key"]}
	return pgtest.New(t, opts)
}

// operatorCAPEM stands for the certificate of the CA CloudNativePG generates.
const operatorCAPEM = "-----BEGIN CERTIFICATE-----\noperator CA of commons-postgresql\n-----END CERTIFICATE-----\n"

func operatorCA() *kubeapi.Secret {
	s := &kubeapi.Secret{Type: "Opaque", Data: map[string][]byte{"ca.crt": []byte(operatorCAPEM)}}
	s.Metadata.Namespace, s.Metadata.Name = "commons", "commons-postgresql-ca"
	return s
}

func tenants(specs ...map[string]any) map[string]any {
	list := make([]any, len(specs))
	for i, s := range specs {
		list[i] = s
	}
	return map[string]any{"tenants": list}
}

func merge(maps ...map[string]any) map[string]any {
	out := map[string]any{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func secretData(t *testing.T, o *render.Object) map[string]string {
	t.Helper()
	s := render.Decode[corev1.Secret](t, o)
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	for k, v := range s.StringData {
		out[k] = v
	}
	return out
}

func container(t *testing.T, spec corev1.PodSpec, name string, init bool) corev1.Container {
	t.Helper()
	list := spec.Containers
	if init {
		list = spec.InitContainers
	}
	for _, c := range list {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q (init=%v)", name, init)
	return corev1.Container{}
}

func envOf(c corev1.Container) map[string]corev1.EnvVar {
	out := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		out[e.Name] = e
	}
	return out
}

func TestPostgreSQLStatefulSet(t *testing.T) {
	m := renderCommons(t, nil)
	sts := render.Decode[appsv1.StatefulSet](t, m.MustGet(t, "StatefulSet", "commons", "commons-postgresql"))
	pod := sts.Spec.Template.Spec
	c := container(t, pod, "postgresql", false)

	assert.Equal(t, "docker.io/library/postgres:18.6", c.Image, "official image, pinned minor of a current major")
	assert.Equal(t, "commons-postgresql-hl", sts.Spec.ServiceName)
	assert.EqualValues(t, 1, *sts.Spec.Replicas)

	// Server parameters through -c.
	args := strings.Join(c.Args, " ")
	assert.True(t, strings.HasPrefix(args, "postgres "), args)
	assert.Contains(t, args, "-c max_connections=300")
	assert.Contains(t, args, "-c shared_buffers=256MB")

	// The official image's env contract.
	env := envOf(c)
	assert.Equal(t, "postgres", env["POSTGRES_USER"].Value)
	assert.Equal(t, "/secrets/admin/password", env["POSTGRES_PASSWORD_FILE"].Value)
	pgdata := env["PGDATA"].Value
	assert.True(t, strings.HasPrefix(pgdata, "/var/lib/postgresql/") && pgdata != "/var/lib/postgresql/data", "PGDATA %q: a subdirectory of the volume, not the legacy path the 18+ image refuses", pgdata)
	assert.NotContains(t, env, "POSTGRES_PASSWORD", "the password never appears in the pod spec")

	mounts := map[string]string{}
	for _, vm := range c.VolumeMounts {
		mounts[vm.MountPath] = vm.Name
	}
	assert.Equal(t, "data", mounts["/var/lib/postgresql"])
	for _, p := range []string{"/var/run/postgresql", "/tmp", "/dev/shm"} {
		name, ok := mounts[p]
		require.True(t, ok, "emptyDir mount %s (read-only root filesystem)", p)
		var vol *corev1.Volume
		for i := range pod.Volumes {
			if pod.Volumes[i].Name == name {
				vol = &pod.Volumes[i]
			}
		}
		require.NotNil(t, vol, p)
		assert.NotNil(t, vol.EmptyDir, "%s is an emptyDir", p)
	}
	require.Contains(t, mounts, "/secrets/admin")

	// Probes: pg_isready over TCP to 127.0.0.1, never the Unix socket.
	for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		require.NotNil(t, p, name)
		require.NotNil(t, p.Exec, name)
		cmd := strings.Join(p.Exec.Command, " ")
		assert.Contains(t, cmd, "pg_isready -h 127.0.0.1", name)
	}
	assert.NotEqual(t, c.ReadinessProbe, c.LivenessProbe)
	require.NotNil(t, c.Lifecycle.PreStop.Exec)
	assert.Contains(t, strings.Join(c.Lifecycle.PreStop.Exec.Command, " "), "-m fast")

	// Security: non-root uid 999, fsGroup, no capabilities, seccomp, read-only root.
	psc := pod.SecurityContext
	assert.True(t, *psc.RunAsNonRoot)
	assert.EqualValues(t, 999, *psc.RunAsUser)
	assert.EqualValues(t, 999, *psc.FSGroup)
	assert.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, psc.SeccompProfile.Type)
	csc := c.SecurityContext
	assert.False(t, *csc.AllowPrivilegeEscalation)
	assert.True(t, *csc.ReadOnlyRootFilesystem)
	assert.Equal(t, []corev1.Capability{"ALL"}, csc.Capabilities.Drop)
	assert.False(t, *pod.AutomountServiceAccountToken)
	assert.False(t, c.Resources.Requests.Memory().IsZero())
	assert.False(t, c.Resources.Limits.Memory().IsZero())

	// Claims: kept, class left to the cluster default.
	require.Len(t, sts.Spec.VolumeClaimTemplates, 1)
	claim := sts.Spec.VolumeClaimTemplates[0]
	assert.Equal(t, "data", claim.Name)
	assert.Nil(t, claim.Spec.StorageClassName)
	assert.Equal(t, appsv1.RetainPersistentVolumeClaimRetentionPolicyType, sts.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted)

	// Labels a post-renderer policy can select.
	labels := sts.Spec.Template.Labels
	assert.Equal(t, "database", labels["app.kubernetes.io/component"])
	assert.Equal(t, "database", labels["kommons.io/workload-class"])
	for _, k := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "app.kubernetes.io/part-of", "helm.sh/chart"} {
		assert.NotEmpty(t, sts.Labels[k], k)
	}
	for k, v := range sts.Spec.Selector.MatchLabels {
		assert.Equal(t, v, labels[k], "selector label %s matches the pod", k)
	}

	// Services and PodDisruptionBudget select the pod.
	hl := render.Decode[corev1.Service](t, m.MustGet(t, "Service", "commons", "commons-postgresql-hl"))
	assert.Equal(t, "None", hl.Spec.ClusterIP)
	svc := render.Decode[corev1.Service](t, m.MustGet(t, "Service", "commons", "commons-postgresql"))
	assert.EqualValues(t, 5432, svc.Spec.Ports[0].Port)
	for _, sel := range []map[string]string{hl.Spec.Selector, svc.Spec.Selector} {
		for k, v := range sel {
			assert.Equal(t, v, labels[k])
		}
	}
	pdb := render.Decode[policyv1.PodDisruptionBudget](t, m.MustGet(t, "PodDisruptionBudget", "commons", "commons-postgresql"))
	assert.Equal(t, sts.Spec.Selector.MatchLabels, pdb.Spec.Selector.MatchLabels)
}

func TestParametersAndImageOverrides(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	m := renderCommons(t, map[string]any{
		"global": map[string]any{"imageRegistry": "mirror.example.com:5000"},
		"postgresql": map[string]any{
			"image":      map[string]any{"tag": "18.5", "digest": digest},
			"parameters": map[string]any{"max_connections": 800},
		},
		"tools":   map[string]any{"image": map[string]any{"tag": "1.2.3"}},
		"tenants": []any{map[string]any{"namespace": "imaging"}},
	})
	sts := render.Decode[appsv1.StatefulSet](t, m.MustGet(t, "StatefulSet", "commons", "commons-postgresql"))
	c := container(t, sts.Spec.Template.Spec, "postgresql", false)
	assert.Equal(t, "mirror.example.com:5000/library/postgres:18.5@"+digest, c.Image)
	assert.Contains(t, c.Args, "max_connections=800")
	job := render.Decode[batchv1.Job](t, m.One(t, "Job", "commons-provisioner-"))
	assert.Equal(t, "mirror.example.com:5000/kommons/kommons-tools:1.2.3", job.Spec.Template.Spec.Containers[0].Image)
	minio := render.Decode[appsv1.StatefulSet](t, m.MustGet(t, "StatefulSet", "commons", "commons-minio"))
	assert.Equal(t, "mirror.example.com:5000/pgsty/silo:RELEASE.2026-09-16T00-00-00Z", minio.Spec.Template.Spec.Containers[0].Image)
}

func TestStorageClass(t *testing.T) {
	classOf := func(m *render.Manifest, name string) *string {
		sts := render.Decode[appsv1.StatefulSet](t, m.MustGet(t, "StatefulSet", "commons", name))
		return sts.Spec.VolumeClaimTemplates[0].Spec.StorageClassName
	}
	m := renderCommons(t, map[string]any{"global": map[string]any{"storageClass": "fast"}})
	assert.Equal(t, "fast", *classOf(m, "commons-postgresql"), "global.storageClass")
	assert.Equal(t, "fast", *classOf(m, "commons-minio"), "global.storageClass")

	m = renderCommons(t, map[string]any{
		"global":        map[string]any{"storageClass": "fast"},
		"postgresql":    map[string]any{"persistence": map[string]any{"storageClass": "db-ssd"}},
		"objectStorage": map[string]any{"minio": map[string]any{"persistence": map[string]any{"storageClass": "-"}}},
	})
	assert.Equal(t, "db-ssd", *classOf(m, "commons-postgresql"), "the claim's own class wins")
	assert.Equal(t, "", *classOf(m, "commons-minio"), `"-" renders an empty class`)
}

func TestDefaultsHaveNoTenantObjects(t *testing.T) {
	m := renderCommons(t, nil)
	for _, o := range m.Objects {
		assert.Equal(t, "commons", o.Namespace, "%s %s rendered outside the release namespace without tenants", o.Kind, o.Name)
	}
	assert.Empty(t, s3InitConfigMaps(m), "no s3-init spec without tenant buckets")
	np := render.Decode[networkingv1.NetworkPolicy](t, m.MustGet(t, "NetworkPolicy", "commons", "commons-postgresql"))
	for _, rule := range np.Spec.Ingress {
		for _, peer := range rule.From {
			assert.Nil(t, peer.NamespaceSelector, "no namespace is let in without tenants")
		}
	}
}

func TestTenantSecretsAndNetworkPolicies(t *testing.T) {
	m := renderCommons(t, tenants(
		map[string]any{"namespace": "imaging", "buckets": []any{"dicom", "exports"}},
		map[string]any{"namespace": "lab", "secretName": "db-connection"},
	))
	admin := secretData(t, m.MustGet(t, "Secret", "commons", "commons-postgresql-admin"))["password"]
	prov := secretData(t, m.MustGet(t, "Secret", "commons", "commons-provisioner"))
	require.Len(t, prov, 2, "one provisioner password per tenant namespace")
	require.Len(t, prov["imaging"], 32)
	require.Len(t, prov["lab"], 32)
	assert.NotEqual(t, prov["imaging"], prov["lab"])

	imaging := secretData(t, m.MustGet(t, "Secret", "imaging", "kommons-commons"))
	assert.Equal(t, map[string]string{
		"PGHOST":               "commons-postgresql.commons.svc.cluster.local",
		"PGPORT":               "5432",
		"PGSSLMODE":            "verify-full",
		"PGSSLROOTCERT":        "/etc/kommons/postgres-ca/ca.crt",
		"ca.crt":               string(bundledTLSSecret(t).Data["ca.crt"]),
		"PGDATABASE":           "postgres",
		"PGUSER":               "kommons_tenant_imaging",
		"PGPASSWORD":           prov["imaging"],
		"S3_ENDPOINT":          "http://commons-minio.commons.svc.cluster.local:9000",
		"S3_REGION":            "us-east-1",
		"S3_ADDRESSING":        "path",
		"S3_BUCKET_DICOM":      "imaging-commons-dicom",
		"S3_BUCKET_EXPORTS":    "imaging-commons-exports",
		"S3_BUCKETS":           "imaging-commons-dicom,imaging-commons-exports",
		"S3_ACCESS_KEY_ID":     "imaging-commons-tenant",
		"S3_SECRET_ACCESS_KEY": secretData(t, m.MustGet(t, "Secret", "commons", "commons-tenant-s3-keys"))["imaging.secretKey"],
	}, imaging)
	assert.Len(t, imaging["S3_SECRET_ACCESS_KEY"], 40)

	lab := secretData(t, m.MustGet(t, "Secret", "lab", "db-connection"))
	assert.Equal(t, "kommons_tenant_lab", lab["PGUSER"])
	assert.Equal(t, prov["lab"], lab["PGPASSWORD"], "each tenant Secret carries its own provisioner's password only")
	assert.NotContains(t, lab, "S3_ACCESS_KEY_ID", "a tenant without buckets gets no access key")
	assert.Equal(t, "", lab["S3_BUCKETS"])

	// The admin password never leaves the commons namespace.
	for _, o := range m.Objects {
		if o.Namespace != "commons" {
			assert.NotContains(t, string(o.YAML), base64.StdEncoding.EncodeToString([]byte(admin)), "%s %s/%s", o.Kind, o.Namespace, o.Name)
			assert.NotContains(t, string(o.YAML), admin)
		}
	}
	// Tenant objects exist only in tenant namespaces.
	var namespaces []string
	for _, o := range m.Objects {
		if o.Namespace != "commons" && !slices.Contains(namespaces, o.Namespace) {
			namespaces = append(namespaces, o.Namespace)
		}
	}
	slices.Sort(namespaces)
	assert.Equal(t, []string{"imaging", "lab"}, namespaces)

	// Only the tenant namespaces (and this release's Jobs) reach PostgreSQL and the object store.
	for _, name := range []string{"commons-postgresql", "commons-minio"} {
		np := render.Decode[networkingv1.NetworkPolicy](t, m.MustGet(t, "NetworkPolicy", "commons", name))
		assert.ElementsMatch(t, []networkingv1.PolicyType{"Ingress", "Egress"}, np.Spec.PolicyTypes)
		assert.Empty(t, np.Spec.Egress, "%s opens no connection", name)
		require.Len(t, np.Spec.Ingress, 1, name)
		var nsValues []string
		for _, peer := range np.Spec.Ingress[0].From {
			if peer.NamespaceSelector != nil {
				require.Len(t, peer.NamespaceSelector.MatchExpressions, 1)
				e := peer.NamespaceSelector.MatchExpressions[0]
				assert.Equal(t, "kubernetes.io/metadata.name", e.Key)
				assert.EqualValues(t, "In", e.Operator)
				nsValues = append(nsValues, e.Values...)
			} else {
				require.NotNil(t, peer.PodSelector, "a peer without namespaceSelector is a pod of this namespace")
			}
		}
		assert.Equal(t, []string{"imaging", "lab"}, nsValues, name)
	}
	sts := render.Decode[appsv1.StatefulSet](t, m.MustGet(t, "StatefulSet", "commons", "commons-postgresql"))
	np := render.Decode[networkingv1.NetworkPolicy](t, m.MustGet(t, "NetworkPolicy", "commons", "commons-postgresql"))
	for k, v := range np.Spec.PodSelector.MatchLabels {
		assert.Equal(t, v, sts.Spec.Template.Labels[k], "the policy selects the PostgreSQL pod")
	}
}

// TestCredentialsFromSecretInit: the chart renders no Secret and reads none
// (no lookup): every credential Secret is written by the secret-init Job
// (here run on the rendered spec, as in a cluster), whose spec holds no
// value that is secret.
func TestCredentialsFromSecretInit(t *testing.T) {
	values := tenants(map[string]any{"namespace": "imaging", "buckets": []any{"dicom"}})
	plain := render.MustChart(t, commonsChart, render.Options{ReleaseName: "commons", Namespace: "commons", Values: values, NoSecretInit: true})
	assert.Empty(t, plain.ByKind("Secret"), "no Secret rendered")
	m := renderCommons(t, values)
	for _, id := range []string{"commons/commons-postgresql-admin", "commons/commons-provisioner", "commons/commons-minio-root",
		"commons/commons-tenant-s3-keys", "imaging/kommons-commons"} {
		ns, name, _ := strings.Cut(id, "/")
		o := m.MustGet(t, "Secret", ns, name)
		assert.Equal(t, render.SecretInitSource, o.Source, id)
		s := render.Decode[corev1.Secret](t, o)
		assert.Equal(t, "kommons-secret-init", s.Labels["app.kubernetes.io/managed-by"], id)
		for k, v := range s.Data {
			if slices.Contains([]string{"password", "rootPassword", "imaging", "imaging.secretKey", "PGPASSWORD", "S3_SECRET_ACCESS_KEY"}, k) {
				assert.GreaterOrEqual(t, len(v), 32, "%s key %s", id, k)
				assert.NotContains(t, plain.Raw, string(v), "%s key %s is in the rendered manifest", id, k)
			}
		}
	}
	tenant := secretData(t, m.MustGet(t, "Secret", "imaging", "kommons-commons"))
	assert.Equal(t, secretData(t, m.MustGet(t, "Secret", "commons", "commons-provisioner"))["imaging"], tenant["PGPASSWORD"])
	assert.Equal(t, secretData(t, m.MustGet(t, "Secret", "commons", "commons-tenant-s3-keys"))["imaging.secretKey"], tenant["S3_SECRET_ACCESS_KEY"])
	assert.Equal(t, plain.Raw, render.MustChart(t, commonsChart, render.Options{ReleaseName: "commons", Namespace: "commons", Values: values, NoSecretInit: true}).Raw,
		"two renders are identical: nothing random in the template")

	// No template of commons reads a Secret.
	files, err := filepath.Glob(filepath.Join(commonsChart, "templates", "*.*"))
	require.NoError(t, err)
	more, err := filepath.Glob(filepath.Join(commonsChart, "templates", "tests", "*"))
	require.NoError(t, err)
	for _, f := range append(files, more...) {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		assert.NotContains(t, string(b), "lookup", f)
		assert.NotContains(t, string(b), "kommons-common.secrets.value", f)
	}

	// The ServiceAccount gets and patches only the Secrets it writes or reads.
	role := render.Decode[rbacv1.Role](t, m.MustGet(t, "Role", "imaging", "commons-secret-init"))
	var named []string
	for _, r := range role.Rules {
		assert.NotContains(t, r.Verbs, "list")
		assert.NotContains(t, r.Verbs, "delete")
		named = append(named, r.ResourceNames...)
	}
	assert.Equal(t, []string{"kommons-commons"}, named)
}

// s3InitConfigMaps are the s3-init spec ConfigMaps of m.
func s3InitConfigMaps(m *render.Manifest) []*render.Object {
	var out []*render.Object
	for _, o := range m.ByKind("ConfigMap") {
		if strings.HasPrefix(o.Name, "commons-s3-init-") {
			out = append(out, o)
		}
	}
	return out
}

func TestProvisionerJob(t *testing.T) {
	two := tenants(map[string]any{"namespace": "imaging"}, map[string]any{"namespace": "lab-2"})
	m := renderCommons(t, two)
	o := m.One(t, "Job", "commons-provisioner-")
	assert.Regexp(t, `^commons-provisioner-[0-9a-f]{8}$`, o.Name)
	job := render.Decode[batchv1.Job](t, o)
	assert.NotContains(t, job.Annotations, "helm.sh/hook", "a plain Job, not a hook")
	assert.EqualValues(t, 86400, *job.Spec.TTLSecondsAfterFinished)
	assert.EqualValues(t, 6, *job.Spec.BackoffLimit)
	assert.EqualValues(t, 900, *job.Spec.ActiveDeadlineSeconds)
	pod := job.Spec.Template.Spec
	assert.Equal(t, corev1.RestartPolicyNever, pod.RestartPolicy)
	assert.True(t, *pod.SecurityContext.RunAsNonRoot)
	assert.NotNil(t, pod.SecurityContext.FSGroup, "the non-root user reads the 0440 Secret files through fsGroup")

	c := container(t, pod, "provisioner", false)
	assert.Equal(t, "ghcr.io/kommons/kommons-tools:0.1.0", c.Image, "tools tag defaults to appVersion")
	assert.Equal(t, []string{"pg-init"}, c.Command)
	assert.Equal(t, []string{"bootstrap-provisioner", "--tenants", "imaging=kommons_tenant_imaging,lab-2=kommons_tenant_lab_2",
		"--passwords-dir", "/secrets/provisioners", "--legacy-role", "kommons_provisioner"}, c.Args)
	env := envOf(c)
	assert.Equal(t, "commons-postgresql.commons.svc.cluster.local", env["PGHOST"].Value)
	assert.Equal(t, "5432", env["PGPORT"].Value)
	assert.Equal(t, "postgres", env["PGUSER"].Value)
	assert.Equal(t, "verify-full", env["PGSSLMODE"].Value, "the bundled server's certificate, verified (TLS on by default)")
	assert.Equal(t, "/etc/kommons/postgresql-ca/ca.crt", env["PGSSLROOTCERT"].Value)
	require.NotNil(t, env["PGPASSWORD"].ValueFrom)
	assert.Equal(t, "commons-postgresql-admin", env["PGPASSWORD"].ValueFrom.SecretKeyRef.Name)
	assert.Equal(t, "password", env["PGPASSWORD"].ValueFrom.SecretKeyRef.Key)
	var mounted []corev1.KeyToPath
	for _, v := range pod.Volumes {
		if v.Secret != nil && v.Secret.SecretName == "commons-provisioner" {
			mounted = v.Secret.Items
		}
	}
	assert.Equal(t, []corev1.KeyToPath{{Key: "imaging", Path: "imaging"}, {Key: "lab-2", Path: "lab-2"}}, mounted,
		"each tenant's password file comes from the provisioner Secret, named after its namespace")

	wait := container(t, pod, "wait-for-pg", true)
	assert.Equal(t, []string{"wait-for-pg"}, wait.Command)
	assert.Equal(t, []string{"--level", "auth", "--timeout", "10m"}, wait.Args)
	assert.Equal(t, env, envOf(wait), "the init container waits with the same admin connection")

	// The name hashes the pod template, which holds no password (the pod
	// reads them at run time): a render without the cluster names the same
	// Job, so a re-apply keeps the finished one; secretInit.revision (a
	// rotation) renames it.
	assert.NotContains(t, job.Spec.Template.Annotations, "kommons.io/provisioner-passwords")
	again := renderCommons(t, two).One(t, "Job", "commons-provisioner-")
	assert.Equal(t, o.Name, again.Name, "same inputs, same Job")
	rotated := renderCommons(t, merge(two, map[string]any{"secretInit": map[string]any{"revision": 1}})).One(t, "Job", "commons-provisioner-")
	assert.NotEqual(t, o.Name, rotated.Name, "a new revision runs the Job again")
	renamed := renderCommons(t, map[string]any{"provisioner": map[string]any{"rolePrefix": "platform_"}, "tenants": two["tenants"]}).One(t, "Job", "commons-provisioner-")
	assert.NotEqual(t, o.Name, renamed.Name)
	// Adding a tenant reruns the provisioner: it creates the new tenant's role.
	three := renderCommons(t, tenants(map[string]any{"namespace": "imaging"}, map[string]any{"namespace": "lab-2"}, map[string]any{"namespace": "x"})).One(t, "Job", "commons-provisioner-")
	assert.NotEqual(t, o.Name, three.Name)
	// No tenant, no provisioner Job.
	for _, j := range renderCommons(t, nil).ByKind("Job") {
		assert.False(t, strings.HasPrefix(j.Name, "commons-provisioner-"), j.Name)
	}
}

func s3InitJobs(t *testing.T, m *render.Manifest) map[string]*batchv1.Job {
	t.Helper()
	out := map[string]*batchv1.Job{}
	for _, o := range m.ByKind("Job") {
		if strings.HasPrefix(o.Name, "commons-s3-init-") {
			job := render.Decode[batchv1.Job](t, o)
			out[job.Labels["kommons.io/tenant"]] = job
		}
	}
	return out
}

// s3InitSpec returns the spec a rendered s3-init Job mounts, decoded and
// validated by s3-init's own parser.
func s3InitSpec(t *testing.T, m *render.Manifest, job *batchv1.Job) *s3provision.Spec {
	t.Helper()
	var cmName string
	for _, v := range job.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil {
			cmName = v.ConfigMap.Name
		}
	}
	cm := render.Decode[corev1.ConfigMap](t, m.MustGet(t, "ConfigMap", "commons", cmName))
	spec, err := s3provision.DecodeSpec("spec.yaml", []byte(cm.Data["spec.yaml"]))
	require.NoError(t, err, cm.Data["spec.yaml"])
	require.NoError(t, spec.Validate("spec.yaml"))
	return spec
}

func TestS3InitBundled(t *testing.T) {
	m := renderCommons(t, tenants(
		map[string]any{"namespace": "imaging", "buckets": []any{"dicom", "exports"}},
		map[string]any{"namespace": "sandbox-alice", "buckets": []any{"data"}},
		map[string]any{"namespace": "lab"},
	))
	jobs := s3InitJobs(t, m)
	require.Len(t, jobs, 2, "one s3-init Job per tenant with buckets")
	job := jobs["imaging"]
	require.NotNil(t, job)
	c := job.Spec.Template.Spec.Containers[0]
	assert.Equal(t, []string{"s3-init"}, c.Command)
	assert.Equal(t, []string{"--spec", "/config/spec.yaml"}, c.Args)
	assert.EqualValues(t, 86400, *job.Spec.TTLSecondsAfterFinished)
	env := envOf(c)
	assert.Equal(t, "http://commons-minio.commons.svc.cluster.local:9000", env["S3_ENDPOINT"].Value)
	assert.Equal(t, "true", env["S3_PATH_STYLE"].Value)
	assert.Equal(t, "true", env["S3_INIT_MINIO_ADMIN"].Value)
	assert.Equal(t, "/secrets/admin/accessKey", env["S3_ACCESS_KEY_FILE"].Value)

	spec := s3InitSpec(t, m, job)
	assert.Equal(t, "imaging", spec.Scope.Namespace)
	assert.Equal(t, "commons", spec.Scope.Release)
	require.Len(t, spec.Buckets, 2)
	assert.Equal(t, "dicom", spec.Buckets[0].Name)
	require.Len(t, spec.Users, 1)
	assert.Equal(t, "tenant", spec.Users[0].Name)
	assert.Equal(t, []string{"dicom", "exports"}, spec.Users[0].Buckets)
	assert.Equal(t, "/secrets/tenant/secretKey", spec.Users[0].SecretKeyFile)
	var tenantKey bool
	for _, v := range job.Spec.Template.Spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == "commons-tenant-s3-keys" {
			tenantKey = v.Secret.Items[0].Key == "imaging.secretKey" && v.Secret.Items[0].Path == "secretKey"
		}
	}
	assert.True(t, tenantKey, "the tenant's own secret key is mounted at the spec's secretKeyFile")

	// The names s3-init will create are the ones tenants are told about.
	s := secretData(t, m.MustGet(t, "Secret", "sandbox-alice", "kommons-commons"))
	want, err := s3names.Physical("sandbox-alice", "commons", "data")
	require.NoError(t, err)
	assert.Equal(t, want, s["S3_BUCKET_DATA"])
	wantKey, err := s3names.Physical("sandbox-alice", "commons", "tenant")
	require.NoError(t, err)
	assert.Equal(t, wantKey, s["S3_ACCESS_KEY_ID"])
	keys := secretData(t, m.MustGet(t, "Secret", "commons", "commons-tenant-s3-keys"))
	assert.Equal(t, s["S3_SECRET_ACCESS_KEY"], keys["sandbox-alice.secretKey"])
	assert.NotContains(t, keys, "lab.secretKey")

	// Adding a tenant leaves the other tenants' Jobs as they are.
	more := renderCommons(t, tenants(
		map[string]any{"namespace": "imaging", "buckets": []any{"dicom", "exports"}},
		map[string]any{"namespace": "sandbox-alice", "buckets": []any{"data"}},
		map[string]any{"namespace": "lab", "buckets": []any{"results"}},
	))
	moreJobs := s3InitJobs(t, more)
	require.Len(t, moreJobs, 3)
	assert.Equal(t, jobs["imaging"].Name, moreJobs["imaging"].Name)
	assert.Equal(t, jobs["sandbox-alice"].Name, moreJobs["sandbox-alice"].Name)
}

// TestS3NamesAgree: the chart computes physical bucket and access-key names
// exactly as s3-init does (internal/s3names.Physical).
func TestS3NamesAgree(t *testing.T) {
	cases := []struct{ release, namespace, bucket string }{
		{"commons", "imaging", "dicom"},
		{"commons", "imaging", "dicom-store"},
		{"commons", "team-a", "data"},
		{"data-layer", "imaging", "dicom"},
		{"commons", strings.Repeat("n", 60), "archive"},
		{"commons", "x", strings.Repeat("b", 32)},
		{"commons", "imaging", "x-s3alias"},
		{"commons", "xn--abc", "b"},
		{"s3", "amzn", "demo-bucket"},
		{"commons", "sthree", "bucket"},
		{"c0mm0ns", "a1", "b2-c3"},
	}
	for _, tc := range cases {
		m := render.MustChart(t, commonsChart, render.Options{ReleaseName: tc.release, Namespace: "commons",
			Values: tenants(map[string]any{"namespace": tc.namespace, "buckets": []any{tc.bucket}})})
		var data map[string]string
		for _, o := range m.ByKind("Secret") {
			if o.Namespace == tc.namespace {
				data = secretData(t, o)
			}
		}
		require.NotNil(t, data, "tenant Secret for %+v", tc)
		want, err := s3names.Physical(tc.namespace, tc.release, tc.bucket)
		require.NoError(t, err)
		assert.Equal(t, want, data["S3_BUCKETS"], "%+v", tc)
		require.NoError(t, s3names.ValidBucketName(data["S3_BUCKETS"]))
		wantKey, err := s3names.Physical(tc.namespace, tc.release, "tenant")
		require.NoError(t, err)
		assert.Equal(t, wantKey, data["S3_ACCESS_KEY_ID"], "%+v", tc)
	}
}

func TestExternalS3(t *testing.T) {
	external := map[string]any{"objectStorage": map[string]any{
		"bundled":  false,
		"external": map[string]any{"endpoint": "https://s3.eu-west-1.amazonaws.com", "region": "eu-west-1", "existingSecret": "s3-admin"},
	}}
	ten := tenants(map[string]any{"namespace": "imaging", "buckets": []any{"dicom"}})
	m := renderCommons(t, merge(external, ten))
	_, ok := m.Get("StatefulSet", "commons", "commons-minio")
	assert.False(t, ok, "no bundled object store")
	assert.Empty(t, s3InitConfigMaps(m), "no s3-init without provisionBuckets")
	s := secretData(t, m.MustGet(t, "Secret", "imaging", "kommons-commons"))
	assert.Equal(t, "https://s3.eu-west-1.amazonaws.com", s["S3_ENDPOINT"])
	assert.Equal(t, "virtual", s["S3_ADDRESSING"])
	assert.Equal(t, "imaging-commons-dicom", s["S3_BUCKET_DICOM"])
	assert.NotContains(t, s, "S3_SECRET_ACCESS_KEY", "the external admin credentials are never handed to tenants")

	jobsPolicy := render.Decode[networkingv1.NetworkPolicy](t, m.MustGet(t, "NetworkPolicy", "commons", "commons-jobs"))
	var ports []int32
	for _, r := range jobsPolicy.Spec.Egress {
		for _, p := range r.Ports {
			ports = append(ports, p.Port.IntVal)
		}
	}
	assert.Contains(t, ports, int32(443), "the Jobs may reach the https endpoint")

	ext := external["objectStorage"].(map[string]any)
	ext["provisionBuckets"] = true
	m = renderCommons(t, merge(external, ten))
	job := s3InitJobs(t, m)["imaging"]
	require.NotNil(t, job)
	env := envOf(job.Spec.Template.Spec.Containers[0])
	assert.Equal(t, "https://s3.eu-west-1.amazonaws.com", env["S3_ENDPOINT"].Value)
	assert.Equal(t, "eu-west-1", env["S3_REGION"].Value)
	assert.Equal(t, "false", env["S3_PATH_STYLE"].Value)
	assert.Equal(t, "false", env["S3_INIT_MINIO_ADMIN"].Value)
	spec := s3InitSpec(t, m, job)
	assert.Equal(t, "dicom", spec.Buckets[0].Name)
	assert.Empty(t, spec.Users, "access keys are created on the bundled store only")
	var adminSecret string
	for _, v := range job.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			adminSecret = v.Secret.SecretName
		}
	}
	assert.Equal(t, "s3-admin", adminSecret)
}

func TestExternalPostgreSQL(t *testing.T) {
	m := renderCommons(t, merge(map[string]any{"postgresql": map[string]any{
		"bundled":  false,
		"external": map[string]any{"host": "db.example.rds.amazonaws.com", "port": 6432, "sslmode": "verify-full", "existingSecret": "rds-admin"},
	}}, tenants(map[string]any{"namespace": "imaging"})))
	_, ok := m.Get("StatefulSet", "commons", "commons-postgresql")
	assert.False(t, ok)
	_, ok = m.Get("Secret", "commons", "commons-postgresql-admin")
	assert.False(t, ok, "the admin credentials come from the existing Secret")
	job := render.Decode[batchv1.Job](t, m.One(t, "Job", "commons-provisioner-"))
	env := envOf(container(t, job.Spec.Template.Spec, "provisioner", false))
	assert.Equal(t, "db.example.rds.amazonaws.com", env["PGHOST"].Value)
	assert.Equal(t, "6432", env["PGPORT"].Value)
	assert.Equal(t, "verify-full", env["PGSSLMODE"].Value)
	assert.Equal(t, "rds-admin", env["PGUSER"].ValueFrom.SecretKeyRef.Name)
	assert.Equal(t, "username", env["PGUSER"].ValueFrom.SecretKeyRef.Key)
	assert.Equal(t, "rds-admin", env["PGPASSWORD"].ValueFrom.SecretKeyRef.Name)
	s := secretData(t, m.MustGet(t, "Secret", "imaging", "kommons-commons"))
	assert.Equal(t, "db.example.rds.amazonaws.com", s["PGHOST"])
	assert.Equal(t, "6432", s["PGPORT"])
	assert.Equal(t, "verify-full", s["PGSSLMODE"])
}

func TestBackupCronJob(t *testing.T) {
	m := renderCommons(t, map[string]any{"backups": map[string]any{"enabled": true, "retentionDays": 5, "databases": []any{"a", "b"}}})
	cj := render.Decode[batchv1.CronJob](t, m.MustGet(t, "CronJob", "commons", "commons-backup"))
	assert.Equal(t, batchv1.ForbidConcurrent, cj.Spec.ConcurrencyPolicy)
	pod := cj.Spec.JobTemplate.Spec.Template.Spec
	dump := container(t, pod, "dump", true)
	assert.Equal(t, "docker.io/library/postgres:18.6", dump.Image, "pg_dump from the server's own image")
	assert.Equal(t, []string{"/bin/sh", "/scripts/dump.sh"}, dump.Command)
	assert.Equal(t, "a,b", envOf(dump)["BACKUP_DATABASES"].Value)
	upload := container(t, pod, "upload", false)
	assert.Equal(t, "docker.io/pgsty/silo:RELEASE.2026-09-16T00-00-00Z", upload.Image, "the object-store image bundles mcli")
	uenv := envOf(upload)
	assert.Equal(t, "5", uenv["RETENTION_DAYS"].Value)
	assert.Equal(t, "kommons-backups", uenv["BACKUP_BUCKET"].Value)
	cm := render.Decode[corev1.ConfigMap](t, m.MustGet(t, "ConfigMap", "commons", "commons-backup-scripts"))
	assert.Contains(t, cm.Data["dump.sh"], "pg_dump --format=custom")
	assert.Contains(t, cm.Data["upload.sh"], "RETENTION_DAYS") // behaviour: commons_backup_upload_test.go
}

func TestNotes(t *testing.T) {
	m := renderCommons(t, tenants(map[string]any{"namespace": "imaging", "buckets": []any{"dicom"}}))
	assert.Contains(t, m.Notes, "imaging: Secret kommons-commons")
	assert.Contains(t, m.Notes, "postgres-init")
	m = renderCommons(t, nil)
	assert.Contains(t, m.Notes, "- namespace: imaging")
}

// TestCIValuesRender renders every ci/*-values.yaml (the variants chartcheck lints).
func TestCIValuesRender(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(commonsChart, "ci", "*-values.yaml"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 4)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			m := render.MustChart(t, commonsChart, render.Options{ReleaseName: "commons", Namespace: "commons", ValuesFiles: []string{f}})
			m.One(t, "Job", "commons-provisioner-")
		})
	}
}

// TestCommonsKommonsToolsImageOnePlace: global.kommonsTools.image overrides
// the kommons-tools image of commons' Jobs (provisioner, s3-init).
func TestCommonsKommonsToolsImageOnePlace(t *testing.T) {
	digest := "sha256:" + strings.Repeat("c", 64)
	global := map[string]any{"kommonsTools": map[string]any{"image": map[string]any{"registry": "mirror.example", "tag": "9.9.9", "digest": digest}}}
	want := "mirror.example/kommons/kommons-tools:9.9.9@" + digest
	m := renderCommons(t, map[string]any{"global": global, "tenants": []any{map[string]any{"namespace": "imaging", "buckets": []any{"dicom"}}}})
	var jobs int
	for _, o := range m.ByKind("Job") {
		job := render.Decode[batchv1.Job](t, o)
		for _, c := range append(append([]corev1.Container{}, job.Spec.Template.Spec.InitContainers...), job.Spec.Template.Spec.Containers...) {
			assert.Equal(t, want, c.Image, "commons Job %s container %s", o.Name, c.Name)
		}
		jobs++
	}
	assert.Equal(t, 3, jobs, "the secret-init, provisioner and s3-init Jobs")
}
