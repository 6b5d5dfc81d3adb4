package render

// Rendered-manifest tests of charts/orthanc through the Helm SDK (schema
// validation, the postgres-init dependency with its alias, templates). The
// real-Orthanc tests of the same rendered configuration are in test/e2e/orthanc.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

const orthancNS = "imaging"

func orthancChartDir(t *testing.T) string {
	_, file, _, ok := runtime.Caller(0)
	require.True(t, ok)
	return filepath.Join(filepath.Dir(file), "..", "..", "charts", "orthanc")
}

func orthancRender(t *testing.T, values map[string]any) *Manifest {
	t.Helper()
	return MustChart(t, orthancChartDir(t), Options{ReleaseName: "pacs", Namespace: orthancNS, Values: values})
}

func orthancRenderErr(t *testing.T, values map[string]any) error {
	t.Helper()
	_, err := Chart(orthancChartDir(t), Options{ReleaseName: "pacs", Namespace: orthancNS, Values: values})
	return err
}

func orthancDeployment(t *testing.T, m *Manifest, name string) *appsv1.Deployment {
	t.Helper()
	return Decode[appsv1.Deployment](t, m.MustGet(t, "Deployment", orthancNS, name))
}

func orthancContainer(t *testing.T, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "orthanc" {
			return c
		}
	}
	t.Fatalf("Deployment %s has no orthanc container", d.Name)
	return corev1.Container{}
}

// orthancConfig decodes the orthanc.json of component (web or jobs). When the
// S3 addressing comes from the tenant Secret, the ConfigMap holds
// component-path.json and component-virtual.json instead: they must differ in
// AwsS3Storage.VirtualAddressing only (false and true), and the path one is
// returned (TestOrthancS3AddressingFromTenant checks which one a pod starts with).
func orthancConfig(t *testing.T, m *Manifest, component string) map[string]any {
	t.Helper()
	cm := Decode[corev1.ConfigMap](t, m.MustGet(t, "ConfigMap", orthancNS, "pacs-orthanc-config"))
	decode := func(key string) map[string]any {
		raw, ok := cm.Data[key]
		require.True(t, ok, "ConfigMap has no %s", key)
		var cfg map[string]any
		require.NoError(t, json.Unmarshal([]byte(raw), &cfg))
		return cfg
	}
	if _, ok := cm.Data[component+".json"]; ok {
		_, variant := cm.Data[component+"-path.json"]
		require.False(t, variant, "%s.json next to addressing variants", component)
		return decode(component + ".json")
	}
	path, virtual := decode(component+"-path.json"), decode(component+"-virtual.json")
	assert.Equal(t, false, path["AwsS3Storage"].(map[string]any)["VirtualAddressing"])
	assert.Equal(t, true, virtual["AwsS3Storage"].(map[string]any)["VirtualAddressing"])
	virtual["AwsS3Storage"].(map[string]any)["VirtualAddressing"] = false
	require.Equal(t, path, virtual, "the addressing variants differ only in VirtualAddressing")
	return path
}

func orthancEnv(c corev1.Container) map[string]corev1.EnvVar {
	out := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		out[e.Name] = e
	}
	return out
}

func TestOrthancDefaults(t *testing.T) {
	m := orthancRender(t, nil)
	d := orthancDeployment(t, m, "pacs-orthanc")
	require.NotNil(t, d.Spec.Replicas)
	assert.EqualValues(t, 2, *d.Spec.Replicas)
	assert.Equal(t, appsv1.RollingUpdateDeploymentStrategyType, d.Spec.Strategy.Type, "auto without a live Deployment: rolling")
	assert.Equal(t, "web", d.Spec.Selector.MatchLabels["app.kubernetes.io/component"])
	assert.Equal(t, "web", d.Spec.Template.Labels["app.kubernetes.io/component"])
	_, hasJobs := m.Get("Deployment", orthancNS, "pacs-orthanc-jobs")
	assert.False(t, hasJobs)

	pod := d.Spec.Template.Spec
	require.Len(t, pod.InitContainers, 2)
	assert.Equal(t, "wait-for-pg", pod.InitContainers[0].Name)
	assert.Contains(t, pod.InitContainers[0].Args, "--level=database")
	assert.Equal(t, "hostid", pod.InitContainers[1].Name, "a per-pod /etc/hostid for DCMTK's UIDs")
	assert.Contains(t, strings.Join(pod.InitContainers[1].Command, " "), "os.urandom(4)")
	require.Len(t, pod.TopologySpreadConstraints, 1)
	assert.Equal(t, "kubernetes.io/hostname", pod.TopologySpreadConstraints[0].TopologyKey)
	assert.False(t, *pod.AutomountServiceAccountToken)

	c := orthancContainer(t, d)
	assert.Equal(t, "docker.io/orthancteam/orthanc:26.8.1", c.Image)
	assert.Equal(t, []string{"/usr/local/bin/Orthanc", "/etc/orthanc/orthanc-$(ORTHANC_S3_ADDRESSING).json"}, c.Command,
		"the orthanc.json of the tenant Secret's S3 addressing")
	require.NotNil(t, c.SecurityContext)
	assert.True(t, *c.SecurityContext.ReadOnlyRootFilesystem)
	assert.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
	assert.Equal(t, []corev1.Capability{"ALL"}, c.SecurityContext.Capabilities.Drop)
	assert.NotEmpty(t, c.Resources.Requests)
	var hostid *corev1.VolumeMount
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].MountPath == "/etc/hostid" {
			hostid = &c.VolumeMounts[i]
		}
	}
	require.NotNil(t, hostid, "/etc/hostid mounted")
	assert.Equal(t, "hostid", hostid.SubPath)
	assert.True(t, hostid.ReadOnly)

	// Probes: exec of the mounted probe program on /system; no credential in the spec.
	for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		require.NotNil(t, p, name)
		require.NotNil(t, p.Exec, name)
		want := "http://127.0.0.1:8042/system"
		if name == "readiness" {
			want = "http://127.0.0.1:8042/changes?last" // reads the index
		}
		assert.Equal(t, []string{"python3", "/etc/orthanc/probe.py", want}, p.Exec.Command, name)
	}
	env := orthancEnv(c)
	assert.Equal(t, "pacs-orthanc-auth", env["ORTHANC_ADMIN_PASSWORD"].ValueFrom.SecretKeyRef.Name)
	assert.Equal(t, "metadata.name", env["POD_NAME"].ValueFrom.FieldRef.FieldPath)
	assert.Equal(t, "imaging_pacs_orthanc", env["PGUSER"].Value)
	assert.Equal(t, "imaging_pacs_orthanc", env["PGDATABASE"].Value)
	assert.Equal(t, "pacs-pg-orthanc", env["PGPASSWORD"].ValueFrom.SecretKeyRef.Name)
	for _, k := range []string{"PGHOST", "PGPORT", "PGSSLMODE"} {
		assert.NotNil(t, env[k].ValueFrom.SecretKeyRef, "%s from the provisioner Secret", k)
	}
	assert.NotNil(t, env["ORTHANC_S3_SECRET_ACCESS_KEY"].ValueFrom.SecretKeyRef, "default storage is s3")

	cfg := orthancConfig(t, m, "web")
	for k, want := range map[string]any{
		"SaveJobs": false, "CheckRevisions": true, "StorageCompression": false, "KeepAlive": true,
		"AuthenticationEnabled": true, "RemoteAccessAllowed": true, "DatabaseServerIdentifier": "${POD_NAME}",
		"DicomServerEnabled": true,
	} {
		assert.Equal(t, want, cfg[k], k)
	}
	assert.Equal(t, map[string]any{"${ORTHANC_ADMIN_USER}": "${ORTHANC_ADMIN_PASSWORD}"}, cfg["RegisteredUsers"])
	pg := cfg["PostgreSQL"].(map[string]any)
	assert.Equal(t, map[string]any{
		"EnableIndex": true, "EnableStorage": false, "Lock": false, "ConnectionUri": "postgresql://",
		"IndexConnectionsCount": 5.0, "MaximumConnectionRetries": 10.0, "ConnectionRetryInterval": 5.0,
	}, pg)
	assert.Equal(t, []any{
		"/usr/share/orthanc/plugins-available/libOrthancPostgreSQLIndex.so",
		"/usr/share/orthanc/plugins-available/libOrthancAwsS3Storage.so",
	}, cfg["Plugins"])
	s3 := cfg["AwsS3Storage"].(map[string]any)
	assert.Equal(t, "Disabled", s3["HybridMode"])
	assert.Equal(t, "${ORTHANC_S3_SECRET_ACCESS_KEY}", s3["SecretKey"])

	svc := Decode[corev1.Service](t, m.MustGet(t, "Service", orthancNS, "pacs-orthanc"))
	ports := map[string]int32{}
	for _, p := range svc.Spec.Ports {
		ports[p.Name] = p.Port
	}
	assert.Equal(t, map[string]int32{"http": 8042, "dicom": 4242}, ports)
	pdb := Decode[policyv1.PodDisruptionBudget](t, m.MustGet(t, "PodDisruptionBudget", orthancNS, "pacs-orthanc"))
	assert.Equal(t, 1, pdb.Spec.MaxUnavailable.IntValue())
	assert.Empty(t, m.ByKind("HorizontalPodAutoscaler"))
	assert.Empty(t, m.ByKind("Ingress"))
	assert.Empty(t, m.ByKind("PersistentVolumeClaim"), "s3 without hybrid mode needs no volume")
	m.MustGet(t, "NetworkPolicy", orthancNS, "pacs-orthanc")
}

// TestOrthancNoSecretOutsideSecrets: the chart renders no Secret (every
// credential is generated in the cluster), and none of the values its
// secret-init Jobs would generate could appear in what it renders.
func TestOrthancNoSecretOutsideSecrets(t *testing.T) {
	m := orthancRender(t, map[string]any{"storage": map[string]any{"type": "s3", "s3": map[string]any{"encryption": map[string]any{"enabled": true}}}})
	for _, o := range m.ByKind("Secret") {
		assert.Equal(t, SecretInitSource, o.Source, "Secret %s: generated in the cluster, never rendered", o.Name)
	}
	var secrets []string
	for _, data := range orthancGenerated(t, m, nil) {
		for k, v := range data {
			if k == "password" || k == "master-key" {
				secrets = append(secrets, v)
			}
		}
	}
	require.Len(t, secrets, 2, "the account's password and the master key")
	for _, o := range m.Objects {
		if o.Source == SecretInitSource {
			continue
		}
		for _, s := range secrets {
			assert.NotContains(t, string(o.YAML), s, "%s %s carries a secret value", o.Kind, o.Name)
			assert.NotContains(t, string(o.YAML), base64.StdEncoding.EncodeToString([]byte(s)), "%s %s carries a secret value (base64)", o.Kind, o.Name)
		}
	}
	assert.NotContains(t, string(m.MustGet(t, "Deployment", orthancNS, "pacs-orthanc").YAML), "Authorization")
}

func TestOrthancGeneratedSecrets(t *testing.T) {
	m := orthancRender(t, map[string]any{"storage": map[string]any{"s3": map[string]any{"encryption": map[string]any{"enabled": true, "keyId": 3}}}})
	generated := orthancGenerated(t, m, nil)
	auth := generated["Secret/pacs-orthanc-auth"]
	assert.Equal(t, "admin", auth["username"])
	assert.Regexp(t, `^[A-Za-z0-9]{32}$`, auth["password"])
	raw, err := base64.StdEncoding.DecodeString(generated["Secret/pacs-orthanc-s3-encryption"]["master-key"])
	require.NoError(t, err, "the master key file holds base64")
	assert.Len(t, raw, 32, "AES-256 key")

	cfg := orthancConfig(t, m, "web")
	enc := cfg["AwsS3Storage"].(map[string]any)["StorageEncryption"].(map[string]any)
	assert.Equal(t, []any{3.0, "/etc/orthanc-secrets/encryption/master-key"}, enc["MasterKey"])
	c := orthancContainer(t, orthancDeployment(t, m, "pacs-orthanc"))
	var mounted bool
	for _, vm := range c.VolumeMounts {
		mounted = mounted || (vm.Name == "encryption" && vm.MountPath == "/etc/orthanc-secrets/encryption" && vm.ReadOnly)
	}
	assert.True(t, mounted, "master key mounted where MasterKey points")

	// The secret-init Job: its own ServiceAccount, allowed to write only
	// these two Secrets; its pod is outside Orthanc's NetworkPolicy (it
	// talks to the API server) and under its own.
	job := Decode[batchv1.Job](t, m.One(t, "Job", "pacs-orthanc-secret-init-"))
	pod := job.Spec.Template.Spec
	assert.Equal(t, "pacs-orthanc-secret-init", pod.ServiceAccountName)
	require.NotNil(t, pod.AutomountServiceAccountToken)
	assert.False(t, *pod.AutomountServiceAccountToken, "only the secret-init container mounts a token")
	role := Decode[rbacv1.Role](t, m.MustGet(t, "Role", orthancNS, "pacs-orthanc-secret-init"))
	var names []string
	for _, r := range role.Rules {
		names = append(names, r.ResourceNames...)
	}
	assert.ElementsMatch(t, []string{"pacs-orthanc-auth", "pacs-orthanc-s3-encryption"}, names)
	np := Decode[networkingv1.NetworkPolicy](t, m.MustGet(t, "NetworkPolicy", orthancNS, "pacs-orthanc"))
	selected := true
	for k, v := range np.Spec.PodSelector.MatchLabels {
		selected = selected && job.Spec.Template.Labels[k] == v
	}
	assert.False(t, selected, "Orthanc's egress policy would cut secret-init off the API server")
	own := Decode[networkingv1.NetworkPolicy](t, m.MustGet(t, "NetworkPolicy", orthancNS, "pacs-orthanc-secret-init"))
	for k, v := range own.Spec.PodSelector.MatchLabels {
		assert.Equal(t, v, job.Spec.Template.Labels[k], k)
	}

	// With existing Secrets, nothing to generate: no Job.
	m = orthancRender(t, map[string]any{"auth": map[string]any{"existingSecret": "mine"}})
	_, ok := m.Get("ConfigMap", orthancNS, "pacs-orthanc-secret-init")
	assert.False(t, ok)
}

func TestOrthancConfigDeepMerge(t *testing.T) {
	m := orthancRender(t, map[string]any{"orthanc": map[string]any{"config": map[string]any{
		"DicomServerEnabled": false, // false overrides true (sprig's merge would drop it)
		"ConcurrentJobs":     0,
		"PostgreSQL":         map[string]any{"TransactionMode": "READ COMMITTED", "IndexConnectionsCount": 8},
		"Plugins":            []any{"/opt/only.so"}, // lists replace
	}}})
	cfg := orthancConfig(t, m, "web")
	assert.Equal(t, false, cfg["DicomServerEnabled"])
	assert.Equal(t, 0.0, cfg["ConcurrentJobs"])
	assert.Equal(t, []any{"/opt/only.so"}, cfg["Plugins"])
	pg := cfg["PostgreSQL"].(map[string]any)
	assert.Equal(t, "READ COMMITTED", pg["TransactionMode"])
	assert.Equal(t, 8.0, pg["IndexConnectionsCount"])
	assert.Equal(t, true, pg["EnableIndex"], "kept from the defaults")
	assert.Equal(t, false, pg["Lock"], "kept from the defaults")

	// A config change rolls the pods.
	before := orthancDeployment(t, orthancRender(t, nil), "pacs-orthanc").Spec.Template.Annotations["kommons.io/config-hash"]
	after := orthancDeployment(t, m, "pacs-orthanc").Spec.Template.Annotations["kommons.io/config-hash"]
	assert.NotEmpty(t, before)
	assert.NotEqual(t, before, after)
}

func TestOrthancPluginPathsOverridable(t *testing.T) {
	m := orthancRender(t, map[string]any{"storage": map[string]any{"type": "postgresql"}, "orthanc": map[string]any{"plugins": map[string]any{
		"directory": "/usr/share/orthanc/plugins/", "extra": []any{"libOrthancDicomWeb.so", "/opt/custom/libX.so"},
	}}})
	assert.Equal(t, []any{
		"/usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so",
		"/usr/share/orthanc/plugins/libOrthancPostgreSQLStorage.so",
		"/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
		"/opt/custom/libX.so",
	}, orthancConfig(t, m, "web")["Plugins"])
}

func TestOrthancStorageBackends(t *testing.T) {
	t.Run("filesystem", func(t *testing.T) {
		m := orthancRender(t, map[string]any{"storage": map[string]any{"type": "filesystem", "filesystem": map[string]any{"storageClassName": "nfs", "size": "5Gi"}}})
		pvc := Decode[corev1.PersistentVolumeClaim](t, m.MustGet(t, "PersistentVolumeClaim", orthancNS, "pacs-orthanc-storage"))
		assert.Equal(t, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}, pvc.Spec.AccessModes)
		assert.Equal(t, "nfs", *pvc.Spec.StorageClassName)
		assert.Equal(t, "5Gi", pvc.Spec.Resources.Requests.Storage().String())
		assert.Equal(t, "keep", pvc.Annotations["helm.sh/resource-policy"])
		cfg := orthancConfig(t, m, "web")
		assert.Equal(t, "/var/lib/orthanc/db", cfg["StorageDirectory"])
		assert.NotContains(t, cfg, "AwsS3Storage")
		assert.Equal(t, false, cfg["PostgreSQL"].(map[string]any)["EnableStorage"])
		d := orthancDeployment(t, m, "pacs-orthanc")
		var claim string
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.PersistentVolumeClaim != nil {
				claim = v.PersistentVolumeClaim.ClaimName
			}
		}
		assert.Equal(t, "pacs-orthanc-storage", claim)
		_, hasS3Env := orthancEnv(orthancContainer(t, d))["ORTHANC_S3_BUCKET"]
		assert.False(t, hasS3Env)
	})
	t.Run("postgresql", func(t *testing.T) {
		m := orthancRender(t, map[string]any{"storage": map[string]any{"type": "postgresql"}})
		assert.Equal(t, true, orthancConfig(t, m, "web")["PostgreSQL"].(map[string]any)["EnableStorage"])
		assert.Empty(t, m.ByKind("PersistentVolumeClaim"))
		assert.Contains(t, m.Notes, "WARNING: storage.type=postgresql")
	})
	t.Run("s3 hybrid", func(t *testing.T) {
		m := orthancRender(t, map[string]any{"storage": map[string]any{"s3": map[string]any{"hybridMode": "WriteToFileSystem", "rootPath": "pacs"}}})
		s3 := orthancConfig(t, m, "web")["AwsS3Storage"].(map[string]any)
		assert.Equal(t, "WriteToFileSystem", s3["HybridMode"])
		assert.Equal(t, "pacs", s3["RootPath"])
		m.MustGet(t, "PersistentVolumeClaim", orthancNS, "pacs-orthanc-storage")
		assert.NotContains(t, m.Notes, "WARNING")
	})
	t.Run("existingClaim", func(t *testing.T) {
		m := orthancRender(t, map[string]any{"replicaCount": 3, "storage": map[string]any{"type": "filesystem", "filesystem": map[string]any{"existingClaim": "nas", "accessModes": []any{"ReadWriteOnce"}}}})
		assert.Empty(t, m.ByKind("PersistentVolumeClaim"))
	})
}

func TestOrthancJobsInstance(t *testing.T) {
	m := orthancRender(t, map[string]any{
		"jobsInstance": map[string]any{"enabled": true, "config": map[string]any{"DicomModalities": map[string]any{"ct": []any{"CT", "ct.local", 104}}}},
		"ingress":      map[string]any{"enabled": true, "host": "pacs.example.org"},
	})
	web := orthancDeployment(t, m, "pacs-orthanc")
	jobs := orthancDeployment(t, m, "pacs-orthanc-jobs")
	assert.EqualValues(t, 1, *jobs.Spec.Replicas)
	assert.Equal(t, "jobs", jobs.Spec.Selector.MatchLabels["app.kubernetes.io/component"])
	assert.Equal(t, "jobs", jobs.Spec.Template.Labels["app.kubernetes.io/component"])
	assert.Equal(t, "web", web.Spec.Selector.MatchLabels["app.kubernetes.io/component"])

	webCfg, jobsCfg := orthancConfig(t, m, "web"), orthancConfig(t, m, "jobs")
	assert.Equal(t, false, webCfg["DicomServerEnabled"])
	assert.Equal(t, true, jobsCfg["DicomServerEnabled"])
	assert.NotContains(t, webCfg, "DicomModalities")
	assert.Contains(t, jobsCfg, "DicomModalities")
	jobsVolume := map[string]string{}
	for _, v := range jobs.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil {
			for _, it := range v.ConfigMap.Items {
				jobsVolume[it.Key] = it.Path
			}
		}
	}
	assert.Equal(t, map[string]string{"jobs-path.json": "orthanc-path.json", "jobs-virtual.json": "orthanc-virtual.json", "probe.py": "probe.py"}, jobsVolume)

	dicom := Decode[corev1.Service](t, m.MustGet(t, "Service", orthancNS, "pacs-orthanc-dicom"))
	assert.Equal(t, "jobs", dicom.Spec.Selector["app.kubernetes.io/component"])
	main := Decode[corev1.Service](t, m.MustGet(t, "Service", orthancNS, "pacs-orthanc"))
	require.Len(t, main.Spec.Ports, 1, "DICOM is the jobs instance's")
	assert.Equal(t, "http", main.Spec.Ports[0].Name)

	// The -jobs Service: the tested route to the jobs instance (test/e2e/realnode), its HTTP port only.
	jobsSvc := Decode[corev1.Service](t, m.MustGet(t, "Service", orthancNS, "pacs-orthanc-jobs"))
	assert.Equal(t, map[string]string{"app.kubernetes.io/name": "orthanc", "app.kubernetes.io/instance": "pacs", "app.kubernetes.io/component": "jobs"}, jobsSvc.Spec.Selector)
	require.Len(t, jobsSvc.Spec.Ports, 1)
	assert.Equal(t, "http", jobsSvc.Spec.Ports[0].Name)
	assert.EqualValues(t, 8042, jobsSvc.Spec.Ports[0].Port)
	assert.Equal(t, "http", jobsSvc.Spec.Ports[0].TargetPort.StrVal)

	// The Ingress (for a controller that honours it) sends /jobs, /modalities and /peers to that Service.
	assert.Equal(t, map[string]string{
		"/jobs": "pacs-orthanc-jobs:http", "/modalities": "pacs-orthanc-jobs:http", "/peers": "pacs-orthanc-jobs:http", "/": "pacs-orthanc:http",
	}, ingressRoutes(t, m))
	m = orthancRender(t, map[string]any{
		"jobsInstance": map[string]any{"enabled": true},
		"ingress":      map[string]any{"enabled": true, "path": "/pacs/", "pathType": "ImplementationSpecific"},
	})
	assert.Equal(t, map[string]string{
		"/pacs/jobs": "pacs-orthanc-jobs:http", "/pacs/modalities": "pacs-orthanc-jobs:http", "/pacs/peers": "pacs-orthanc-jobs:http", "/pacs/": "pacs-orthanc:http",
	}, ingressRoutes(t, m), "under a path prefix")
	// Without the jobs instance everything goes to the web replicas.
	m = orthancRender(t, map[string]any{"ingress": map[string]any{"enabled": true}})
	assert.Equal(t, map[string]string{"/": "pacs-orthanc:http"}, ingressRoutes(t, m))
	_, hasJobsSvc := m.Get("Service", orthancNS, "pacs-orthanc-jobs")
	assert.False(t, hasJobsSvc)
}

// ingressRoutes maps each path of the Orthanc Ingress to "service:port",
// every path carrying a pathType.
func ingressRoutes(t *testing.T, m *Manifest) map[string]string {
	t.Helper()
	ing := Decode[networkingv1.Ingress](t, m.MustGet(t, "Ingress", orthancNS, "pacs-orthanc"))
	require.Len(t, ing.Spec.Rules, 1)
	routes := map[string]string{}
	for _, p := range ing.Spec.Rules[0].HTTP.Paths {
		require.NotNil(t, p.PathType)
		routes[p.Path] = p.Backend.Service.Name + ":" + p.Backend.Service.Port.Name
	}
	return routes
}

func TestOrthancIngressTLS(t *testing.T) {
	m := orthancRender(t, map[string]any{"ingress": map[string]any{
		"enabled": true, "className": "nginx", "host": "pacs.example.org",
		"tls": map[string]any{"enabled": true, "clusterIssuer": "letsencrypt"},
	}})
	ing := Decode[networkingv1.Ingress](t, m.MustGet(t, "Ingress", orthancNS, "pacs-orthanc"))
	assert.Equal(t, "letsencrypt", ing.Annotations["cert-manager.io/cluster-issuer"])
	require.Len(t, ing.Spec.TLS, 1)
	assert.Equal(t, "pacs-orthanc-tls", ing.Spec.TLS[0].SecretName)
	assert.Equal(t, []string{"pacs.example.org"}, ing.Spec.TLS[0].Hosts)
	assert.Equal(t, "nginx", *ing.Spec.IngressClassName)
	assert.Contains(t, m.Notes, "https://pacs.example.org/")

	m = orthancRender(t, map[string]any{"ingress": map[string]any{"enabled": true, "tls": map[string]any{"enabled": true, "secretName": "wildcard"}}})
	ing = Decode[networkingv1.Ingress](t, m.MustGet(t, "Ingress", orthancNS, "pacs-orthanc"))
	assert.Equal(t, "wildcard", ing.Spec.TLS[0].SecretName)
	assert.Empty(t, ing.Annotations)
}

func TestOrthancExistingSecrets(t *testing.T) {
	m := orthancRender(t, map[string]any{
		"auth": map[string]any{"existingSecret": "admin", "usernameKey": "u", "passwordKey": "p"},
		"postgresInit": map[string]any{"roles": []any{map[string]any{
			"name": "orthanc", "existingSecret": "db", "existingSecretPasswordKey": "pw", "database": "orthanc", "connectionLimit": -1,
		}}},
	})
	_, generated := m.Get("Secret", orthancNS, "pacs-orthanc-auth")
	assert.False(t, generated)
	env := orthancEnv(orthancContainer(t, orthancDeployment(t, m, "pacs-orthanc")))
	assert.Equal(t, corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "admin"}, Key: "u"}, *env["ORTHANC_ADMIN_USER"].ValueFrom.SecretKeyRef)
	assert.Equal(t, corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "admin"}, Key: "p"}, *env["ORTHANC_ADMIN_PASSWORD"].ValueFrom.SecretKeyRef)
	assert.Equal(t, corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "pw"}, *env["PGPASSWORD"].ValueFrom.SecretKeyRef)
	assert.Contains(t, m.Notes, "get secret admin")
}

func TestOrthancAutoscalingAndStrategy(t *testing.T) {
	m := orthancRender(t, map[string]any{"autoscaling": map[string]any{"enabled": true, "minReplicas": 2, "maxReplicas": 6}, "updateStrategy": "Recreate"})
	d := orthancDeployment(t, m, "pacs-orthanc")
	assert.Nil(t, d.Spec.Replicas, "the HPA owns replicas")
	assert.Equal(t, appsv1.RecreateDeploymentStrategyType, d.Spec.Strategy.Type)
	assert.Nil(t, d.Spec.Strategy.RollingUpdate)
	hpa := Decode[autoscalingv2.HorizontalPodAutoscaler](t, m.MustGet(t, "HorizontalPodAutoscaler", orthancNS, "pacs-orthanc"))
	assert.EqualValues(t, 6, hpa.Spec.MaxReplicas)
	assert.Equal(t, "pacs-orthanc", hpa.Spec.ScaleTargetRef.Name)

	single := orthancRender(t, map[string]any{"replicaCount": 1})
	assert.Empty(t, single.ByKind("PodDisruptionBudget"), "a PDB on one replica would block node drains")
}

func TestOrthancDicomTLS(t *testing.T) {
	m := orthancRender(t, map[string]any{"dicomTls": map[string]any{"enabled": true, "existingSecret": "dicom-cert"}})
	cfg := orthancConfig(t, m, "web")
	assert.Equal(t, true, cfg["DicomTlsEnabled"])
	assert.Equal(t, "/etc/orthanc-secrets/dicom-tls/tls.key", cfg["DicomTlsPrivateKey"])
	var found bool
	for _, v := range orthancDeployment(t, m, "pacs-orthanc").Spec.Template.Spec.Volumes {
		found = found || (v.Secret != nil && v.Secret.SecretName == "dicom-cert")
	}
	assert.True(t, found)
}

// TestOrthancRejectsInconsistentValues: each case fails the render with a
// message naming the value (schema or template).
func TestOrthancRejectsInconsistentValues(t *testing.T) {
	rwo := []any{"ReadWriteOnce"}
	cases := []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"unknown storage type", map[string]any{"storage": map[string]any{"type": "nfs"}}, "/storage/type"},
		{"filesystem RWO with 2 replicas", map[string]any{"replicaCount": 2, "storage": map[string]any{"type": "filesystem", "filesystem": map[string]any{"accessModes": rwo}}}, "accessModes"},
		{"filesystem RWO with the jobs instance", map[string]any{"replicaCount": 1, "jobsInstance": map[string]any{"enabled": true}, "storage": map[string]any{"type": "filesystem", "filesystem": map[string]any{"accessModes": rwo}}}, "accessModes"},
		{"filesystem RWO with an HPA", map[string]any{"replicaCount": 1, "autoscaling": map[string]any{"enabled": true, "maxReplicas": 3}, "storage": map[string]any{"type": "filesystem", "filesystem": map[string]any{"accessModes": rwo}}}, "storage.filesystem.accessModes"},
		{"s3 hybrid RWO with 2 replicas", map[string]any{"storage": map[string]any{"s3": map[string]any{"hybridMode": "WriteToFileSystem"}, "filesystem": map[string]any{"accessModes": rwo}}}, "ReadWriteMany"},
		{"unknown hybrid mode", map[string]any{"storage": map[string]any{"s3": map[string]any{"hybridMode": "Both"}}}, "hybridMode"},
		{"unknown top-level value", map[string]any{"replicas": 3}, "replicas"},
		{"unknown nested value", map[string]any{"storage": map[string]any{"s3": map[string]any{"bucket": "x"}}}, "bucket"},
		{"zero index connections", map[string]any{"orthanc": map[string]any{"postgresql": map[string]any{"indexConnectionsCount": 0}}}, "indexConnectionsCount"},
		{"dicom TLS without its Secret", map[string]any{"dicomTls": map[string]any{"enabled": true}}, "existingSecret"},
		{"password in config", map[string]any{"orthanc": map[string]any{"config": map[string]any{"RegisteredUsers": map[string]any{"bob": "hunter2"}}}}, "orthanc.config.RegisteredUsers"},
		{"PostgreSQL password in config", map[string]any{"orthanc": map[string]any{"config": map[string]any{"PostgreSQL": map[string]any{"Password": "x"}}}}, "orthanc.config.PostgreSQL.Password"},
		{"Lock in config", map[string]any{"orthanc": map[string]any{"config": map[string]any{"PostgreSQL": map[string]any{"Lock": true}}}}, "orthanc.config.PostgreSQL.Lock"},
		{"SaveJobs in config", map[string]any{"orthanc": map[string]any{"config": map[string]any{"SaveJobs": true}}}, "orthanc.config.SaveJobs"},
		{"S3 secret in config", map[string]any{"orthanc": map[string]any{"config": map[string]any{"AwsS3Storage": map[string]any{"SecretKey": "x"}}}}, "orthanc.config.AwsS3Storage.SecretKey"},
		{"RegisteredUsers in jobs config", map[string]any{"jobsInstance": map[string]any{"enabled": true, "config": map[string]any{"RegisteredUsers": map[string]any{}}}}, "jobsInstance.config.RegisteredUsers"},
		{"connection budget", map[string]any{"replicaCount": 4, "postgresInit": map[string]any{"roles": []any{map[string]any{"name": "orthanc", "connectionLimit": 20, "database": "orthanc"}}}}, "connection budget 26"},
		{"unknown role", map[string]any{"orthanc": map[string]any{"postgresql": map[string]any{"role": "nope"}}}, "orthanc.postgresql.role"},
		{"bad update strategy", map[string]any{"updateStrategy": "BlueGreen"}, "updateStrategy"},
		{"bad digest", map[string]any{"image": map[string]any{"digest": "md5:abc"}}, "digest"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := orthancRenderErr(t, tc.values)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestOrthancCIValues renders every ci/*-values.yaml (what chart-testing installs).
func TestOrthancCIValues(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(orthancChartDir(t), "ci", "*-values.yaml"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 6)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			m := MustChart(t, orthancChartDir(t), Options{ReleaseName: "pacs", Namespace: orthancNS, ValuesFiles: []string{f}})
			for _, o := range m.ByKind("Deployment") {
				d := Decode[appsv1.Deployment](t, o)
				assert.NotEmpty(t, d.Spec.Template.Labels["app.kubernetes.io/component"])
			}
			for _, o := range m.ByKind("ConfigMap") {
				assert.NotContains(t, strings.ToLower(string(o.YAML)), "password\": \"", fmt.Sprintf("%s: a literal password", o.Name))
			}
			assert.Contains(t, m.Notes, "Upload a study")
		})
	}
}

// TestOrthancS3ConnectTimeout: the AWS S3 plugin (every version to 2.5.4)
// takes its connection timeout from AwsS3Storage.ConnectTimeout; 2.5.1-2.5.4
// also read ConnectionTimeout but discard the value. storage.s3.connectionTimeout
// must reach ConnectTimeout (and ConnectionTimeout carries the same value).
func TestOrthancS3ConnectTimeout(t *testing.T) {
	s3 := orthancConfig(t, orthancRender(t, map[string]any{"storage": map[string]any{"s3": map[string]any{"connectionTimeout": 7}}}), "web")["AwsS3Storage"].(map[string]any)
	assert.Equal(t, 7.0, s3["ConnectTimeout"], "the key the plugin reads")
	assert.Equal(t, 7.0, s3["ConnectionTimeout"], "the documented key, read but discarded by 2.5.1-2.5.4")
	s3 = orthancConfig(t, orthancRender(t, nil), "web")["AwsS3Storage"].(map[string]any)
	assert.Equal(t, 30.0, s3["ConnectTimeout"])
}

// TestOrthancRefusesHybridMigrationWithEncryption: hybridMode
// WriteToObjectStorage with encryption on makes the S3 plugin (2.5.4) decrypt
// the plaintext files already on the volume, and /move-storage copies them,
// still plaintext, into <uuid>.dcm.enc objects and deletes the volume copy:
// every later read fails. The render refuses the combination and names the
// migration order; the CI values do not ship it.
func TestOrthancRefusesHybridMigrationWithEncryption(t *testing.T) {
	err := orthancRenderErr(t, map[string]any{"storage": map[string]any{"s3": map[string]any{
		"hybridMode": "WriteToObjectStorage", "encryption": map[string]any{"enabled": true},
	}}})
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{
		"storage.s3.hybridMode WriteToObjectStorage", "storage.s3.encryption.enabled",
		"decrypt", "plaintext", "/move-storage", // why
		"first migrate with storage.s3.encryption.enabled false", "then set storage.s3.hybridMode Disabled", "enable encryption for new files", // the order
	} {
		assert.Contains(t, msg, want)
	}
	assert.Less(t, strings.Index(msg, "first migrate"), strings.Index(msg, "enable encryption for new files"))

	// Each half alone renders: the migration without encryption, encryption without the migration.
	orthancRender(t, map[string]any{"storage": map[string]any{"s3": map[string]any{"hybridMode": "WriteToObjectStorage"}}})
	orthancRender(t, map[string]any{"storage": map[string]any{"s3": map[string]any{"encryption": map[string]any{"enabled": true}}}})

	// The CI values render (and so do not combine them).
	m := MustChart(t, orthancChartDir(t), Options{ReleaseName: "pacs", Namespace: orthancNS,
		ValuesFiles: []string{filepath.Join(orthancChartDir(t), "ci", "s3-values.yaml")}})
	s3 := orthancConfig(t, m, "web")["AwsS3Storage"].(map[string]any)
	assert.False(t, s3["HybridMode"] == "WriteToObjectStorage" && s3["StorageEncryption"] != nil)
}

// orthancStartConfig is the orthanc.json an Orthanc container of Deployment
// name really starts with: its command's configuration argument with
// Kubernetes' $(VAR) expansion from the container's environment (Secrets
// resolved, secrets holds the ones the chart does not render), read from the
// files its ConfigMap volume mounts.
func orthancStartConfig(t *testing.T, m *Manifest, name string, secrets map[string]map[string]string) map[string]any {
	t.Helper()
	secrets = orthancGenerated(t, m, secrets)
	d := orthancDeployment(t, m, name)
	c := orthancContainer(t, d)
	env := map[string]string{}
	resolvable := c
	resolvable.Env = nil
	for _, e := range c.Env {
		if e.ValueFrom == nil || e.ValueFrom.FieldRef == nil { // the pod's own fields do not matter here
			resolvable.Env = append(resolvable.Env, e)
		}
	}
	for _, kv := range m.Env(t, orthancNS, resolvable, secrets) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	arg := c.Command[len(c.Command)-1]
	expanded := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).ReplaceAllStringFunc(arg, func(ref string) string {
		if v, ok := env[ref[2:len(ref)-1]]; ok {
			return v
		}
		return ref // Kubernetes leaves an unknown reference as it is
	})
	root := t.TempDir()
	m.MountFiles(t, orthancNS, d.Spec.Template.Spec, "orthanc", root, secrets)
	raw, err := os.ReadFile(filepath.Join(root, expanded))
	require.NoError(t, err, "the configuration file %s (from %s) is not mounted", expanded, arg)
	var cfg map[string]any
	require.NoError(t, json.Unmarshal(raw, &cfg))
	return cfg
}

// orthancGenerated adds to secrets ("Secret/<name>" -> data) the Secrets the
// chart's secret-init Job writes (the account, the S3 master key) and, when
// secrets holds the tenant Secret, the role's connection Secret the pg-init
// Job's init container writes, as runs on a cluster without them would.
func orthancGenerated(t *testing.T, m *Manifest, secrets map[string]map[string]string) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for k, v := range secrets {
		out[k] = v
	}
	existing := map[string]map[string]string{}
	for k, v := range secrets {
		existing[orthancNS+"/"+strings.TrimPrefix(k, "Secret/")] = v
	}
	// Orthanc's own (no source to read): render.Chart ran it (RunSecretInit).
	for _, o := range m.ByKind("Secret") {
		if o.Source == SecretInitSource {
			data := map[string]string{}
			for k, v := range Decode[corev1.Secret](t, o).Data {
				data[k] = string(v)
			}
			out["Secret/"+o.Name] = data
		}
	}
	// postgres-init's reads the tenant Secret: run when the test gives one.
	if _, ok := existing[orthancNS+"/kommons-commons"]; ok {
		for id, data := range m.SecretInitRun(t, orthancNS, "pacs-pg-secret-init", existing) {
			out["Secret/"+strings.TrimPrefix(id, orthancNS+"/")] = data
		}
	}
	return out
}

// TestOrthancS3AddressingFromTenant: storage.s3.virtualAddressing unset takes
// the addressing of the tenant Secret's S3_ADDRESSING (path or virtual, as
// commons writes it) at runtime; true or false overrides it.
func TestOrthancS3AddressingFromTenant(t *testing.T) {
	tenant := func(addressing string) map[string]map[string]string {
		return map[string]map[string]string{
			"Secret/kommons-commons": {"S3_BUCKET_DICOM": "dicom", "S3_ENDPOINT": "https://s3.eu-west-1.amazonaws.com", "S3_REGION": "eu-west-1",
				"S3_ACCESS_KEY_ID": "id", "S3_SECRET_ACCESS_KEY": "secret", "S3_ADDRESSING": addressing,
				"PGHOST": "pg", "PGPORT": "5432", "PGSSLMODE": "require"},
		}
	}
	for _, jobs := range []bool{false, true} {
		values := map[string]any{"jobsInstance": map[string]any{"enabled": jobs}}
		m := orthancRender(t, values)
		deployments := []string{"pacs-orthanc"}
		if jobs {
			deployments = append(deployments, "pacs-orthanc-jobs")
		}
		for _, d := range deployments {
			for addressing, virtual := range map[string]bool{"virtual": true, "path": false} {
				s3 := orthancStartConfig(t, m, d, tenant(addressing))["AwsS3Storage"].(map[string]any)
				assert.Equal(t, virtual, s3["VirtualAddressing"], "%s, tenant addressing %s", d, addressing)
			}
		}
	}
	// true/false override the tenant, whatever its Secret says.
	for _, override := range []bool{true, false} {
		m := orthancRender(t, map[string]any{"storage": map[string]any{"s3": map[string]any{"virtualAddressing": override}}})
		for _, addressing := range []string{"path", "virtual"} {
			s3 := orthancStartConfig(t, m, "pacs-orthanc", tenant(addressing))["AwsS3Storage"].(map[string]any)
			assert.Equal(t, override, s3["VirtualAddressing"], "override %v, tenant %s", override, addressing)
		}
	}
}

// orthancPodSpecs returns the pod spec of every workload the manifest renders
// (Deployments, StatefulSets, DaemonSets, Jobs, CronJobs, Pods), keyed "Kind/name".
func orthancPodSpecs(t *testing.T, m *Manifest) map[string]corev1.PodSpec {
	t.Helper()
	out := map[string]corev1.PodSpec{}
	for _, o := range m.Objects {
		var path []string
		switch o.Kind {
		case "Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet":
			path = []string{"spec", "template", "spec"}
		case "CronJob":
			path = []string{"spec", "jobTemplate", "spec", "template", "spec"}
		case "Pod":
			path = []string{"spec"}
		default:
			continue
		}
		var spec any = o.Fields
		for _, k := range path {
			spec = spec.(map[string]any)[k]
		}
		b, err := json.Marshal(spec)
		require.NoError(t, err)
		var ps corev1.PodSpec
		require.NoError(t, json.Unmarshal(b, &ps))
		out[o.Kind+"/"+o.Name] = ps
	}
	return out
}

// TestOrthancGlobalImagePullSecrets: global.imagePullSecrets reaches every
// pod the chart renders (web, jobs instance, pg-init Job), after the pod's own
// list (imagePullSecrets for the Orthanc pods, postgresInit.imagePullSecrets
// for the Job), each name once (issue #17).
func TestOrthancGlobalImagePullSecrets(t *testing.T) {
	refs := func(names ...string) []corev1.LocalObjectReference {
		var out []corev1.LocalObjectReference
		for _, n := range names {
			out = append(out, corev1.LocalObjectReference{Name: n})
		}
		return out
	}
	cases := []struct {
		name      string
		values    map[string]any
		want, job []corev1.LocalObjectReference
	}{
		{"global only", map[string]any{"global": map[string]any{"imagePullSecrets": []any{"mirror"}}},
			refs("mirror"), refs("mirror")},
		{"own and global", map[string]any{
			"imagePullSecrets": []any{"own", map[string]any{"name": "mirror"}},
			"postgresInit":     map[string]any{"imagePullSecrets": []any{"tools"}},
			"global":           map[string]any{"imagePullSecrets": []any{"mirror", "extra"}},
		}, refs("own", "mirror", "extra"), refs("tools", "mirror", "extra")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.values["jobsInstance"] = map[string]any{"enabled": true}
			pods := orthancPodSpecs(t, orthancRender(t, tc.values))
			for _, want := range []string{"Deployment/pacs-orthanc", "Deployment/pacs-orthanc-jobs"} {
				require.Contains(t, pods, want)
			}
			var jobs int
			for name, pod := range pods {
				want := tc.want
				if strings.HasPrefix(name, "Job/") || strings.HasPrefix(name, "Pod/") { // the kommons-tools pods: pg-init, helm test
					want = tc.job
				}
				if strings.HasPrefix(name, "Job/") {
					jobs++
				}
				assert.Equal(t, want, pod.ImagePullSecrets, name)
			}
			assert.Equal(t, 2, jobs, "the pg-init Job and the secret-init Job")
		})
	}
	for name, pod := range orthancPodSpecs(t, orthancRender(t, nil)) {
		assert.Empty(t, pod.ImagePullSecrets, name)
	}
}

// TestOrthancGlobalStorageClass: global.storageClass applies to every claim
// whose own class is empty; "-" (global or own) renders storageClassName ""
// (no dynamic provisioning), as in charts/commons (issue #17).
func TestOrthancGlobalStorageClass(t *testing.T) {
	str := func(s string) *string { return &s }
	cases := []struct {
		name          string
		global, own   string
		wantClassName *string
	}{
		{"neither", "", "", nil},
		{"global", "fast", "", str("fast")},
		{"own wins", "fast", "nfs", str("nfs")},
		{"global dash", "-", "", str("")},
		{"own dash", "fast", "-", str("")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, storage := range []map[string]any{
				{"type": "filesystem", "filesystem": map[string]any{"storageClassName": tc.own}},
				{"type": "s3", "s3": map[string]any{"hybridMode": "WriteToFileSystem"}, "filesystem": map[string]any{"storageClassName": tc.own}},
			} {
				m := orthancRender(t, map[string]any{"global": map[string]any{"storageClass": tc.global}, "storage": storage})
				claims := m.ByKind("PersistentVolumeClaim")
				require.NotEmpty(t, claims)
				for _, o := range claims {
					pvc := Decode[corev1.PersistentVolumeClaim](t, o)
					assert.Equal(t, tc.wantClassName, pvc.Spec.StorageClassName, "%s (storage %v)", o.Name, storage["type"])
				}
			}
		})
	}
}

// TestOrthancEgressNetworkPolicy: the NetworkPolicy of the Orthanc pods
// restricts egress too (kube-score's pod-networkpolicy): DNS, PostgreSQL, the
// object store (s3 storage only), the ports of the configured modalities,
// Orthanc peers and DICOMweb servers, and extra rules; egress.enabled false
// leaves egress unrestricted (ingress only).
func TestOrthancEgressNetworkPolicy(t *testing.T) {
	type rule struct {
		ports []string // "TCP/5432"
		to    int
	}
	rules := func(np *networkingv1.NetworkPolicy) []rule {
		var out []rule
		for _, r := range np.Spec.Egress {
			var ports []string
			for _, p := range r.Ports {
				ports = append(ports, fmt.Sprintf("%s/%s", *p.Protocol, p.Port.String()))
			}
			out = append(out, rule{ports, len(r.To)})
		}
		return out
	}
	policy := func(m *Manifest) *networkingv1.NetworkPolicy {
		np := Decode[networkingv1.NetworkPolicy](t, m.MustGet(t, "NetworkPolicy", orthancNS, "pacs-orthanc"))
		assert.Equal(t, map[string]string{"app.kubernetes.io/name": "orthanc", "app.kubernetes.io/instance": "pacs"}, np.Spec.PodSelector.MatchLabels, "web and jobs pods")
		return np
	}

	np := policy(orthancRender(t, nil))
	assert.Equal(t, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}, np.Spec.PolicyTypes)
	assert.Equal(t, []rule{
		{[]string{"UDP/53", "TCP/53"}, 0},
		{[]string{"TCP/5432"}, 0},
		{[]string{"TCP/443", "TCP/9000"}, 0},
		{[]string{"TCP/8042"}, 1}, // the helm test pod to the web pods (helm_test_hooks_test.go)
	}, rules(np), "DNS, PostgreSQL, object store; any destination by default")

	// Filesystem storage: no object-store rule. Destinations narrowed by values;
	// modalities, peers and DICOMweb servers from the configuration; extra rules.
	pgPeer := map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "commons"}}}
	np = policy(orthancRender(t, map[string]any{
		"storage":      map[string]any{"type": "filesystem"},
		"jobsInstance": map[string]any{"enabled": true, "config": map[string]any{"DicomModalities": map[string]any{"ct": []any{"CT", "ct.local", 104}, "mr": map[string]any{"AET": "MR", "Host": "mr.local", "Port": 11112}, "us": map[string]any{"AET": "US", "Host": "us.local"}}}},
		"orthanc": map[string]any{"config": map[string]any{
			"OrthancPeers": map[string]any{"a": []any{"https://a.example.org/"}, "b": map[string]any{"Url": "http://b.local:8042/"}, "c": []any{"http://c.local/orthanc/", "u", "p"}},
			"DicomWeb":     map[string]any{"Servers": map[string]any{"pacs": []any{"https://pacs.example.org:8443/dicom-web/"}}},
		}},
		"networkPolicy": map[string]any{"egress": map[string]any{
			"dns":        map[string]any{"to": []any{map[string]any{"namespaceSelector": map[string]any{}, "podSelector": map[string]any{"matchLabels": map[string]any{"k8s-app": "kube-dns"}}}}},
			"postgresql": map[string]any{"port": 6432, "to": []any{pgPeer}},
			"extra":      []any{map[string]any{"ports": []any{map[string]any{"port": 25, "protocol": "TCP"}}}},
		}},
	}))
	assert.Equal(t, []rule{
		{[]string{"UDP/53", "TCP/53"}, 1},
		{[]string{"TCP/6432"}, 1},
		{[]string{"TCP/8042"}, 1},
		{[]string{"TCP/80", "TCP/104", "TCP/443", "TCP/8042", "TCP/8443", "TCP/11112"}, 0},
		{[]string{"TCP/25"}, 0},
	}, rules(np))

	np = policy(orthancRender(t, map[string]any{"networkPolicy": map[string]any{"egress": map[string]any{"enabled": false}}}))
	assert.Equal(t, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}, np.Spec.PolicyTypes)
	assert.Empty(t, np.Spec.Egress)
	_, rendered := orthancRender(t, map[string]any{"networkPolicy": map[string]any{"enabled": false}}).Get("NetworkPolicy", orthancNS, "pacs-orthanc")
	assert.False(t, rendered)
}

// TestKommonsToolsImageOnePlace: global.kommonsTools.image overrides the
// kommons-tools image of every container that runs it in a module (the
// pg-init Job and every wait-for-pg init container, through the
// postgres-init subchart), field by field; Orthanc's own image is untouched.
// TestCommonsKommonsToolsImageOnePlace checks commons.
func TestKommonsToolsImageOnePlace(t *testing.T) {
	digest := "sha256:" + strings.Repeat("c", 64)
	global := map[string]any{"kommonsTools": map[string]any{"image": map[string]any{"registry": "mirror.example", "tag": "9.9.9", "digest": digest}}}
	want := "mirror.example/kommons/kommons-tools:9.9.9@" + digest
	var tools int
	for name, pod := range orthancPodSpecs(t, orthancRender(t, map[string]any{"global": global, "jobsInstance": map[string]any{"enabled": true}})) {
		for _, c := range append(append([]corev1.Container{}, pod.InitContainers...), pod.Containers...) {
			if strings.Contains(c.Image, "kommons-tools") {
				assert.Equal(t, want, c.Image, "%s container %s", name, c.Name)
				tools++
			} else {
				assert.NotContains(t, c.Image, "9.9.9", "%s container %s is not kommons-tools", name, c.Name)
			}
		}
	}
	assert.GreaterOrEqual(t, tools, 3, "the pg-init Job and the wait-for-pg init containers of both Deployments")
}
