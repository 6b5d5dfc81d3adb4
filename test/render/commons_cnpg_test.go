package render_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/internal/secretinit"
	"github.com/kommons/kommons/internal/specfile"
	"github.com/kommons/kommons/test/render"
)

// cnpgCluster is the part of a CloudNativePG Cluster the chart renders (the
// module does not depend on CloudNativePG's API types).
type cnpgCluster struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Instances             int    `json:"instances"`
		ImageName             string `json:"imageName"`
		ImagePullPolicy       string `json:"imagePullPolicy"`
		MinSyncReplicas       *int   `json:"minSyncReplicas"`
		MaxSyncReplicas       *int   `json:"maxSyncReplicas"`
		EnableSuperuserAccess bool   `json:"enableSuperuserAccess"`
		SuperuserSecret       struct {
			Name string `json:"name"`
		} `json:"superuserSecret"`
		InheritedMetadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"inheritedMetadata"`
		PostgreSQL struct {
			Parameters map[string]string `json:"parameters"`
		} `json:"postgresql"`
		Affinity struct {
			EnablePodAntiAffinity *bool               `json:"enablePodAntiAffinity"`
			PodAntiAffinityType   string              `json:"podAntiAffinityType"`
			TopologyKey           string              `json:"topologyKey"`
			NodeSelector          map[string]string   `json:"nodeSelector"`
			Tolerations           []corev1.Toleration `json:"tolerations"`
		} `json:"affinity"`
		Storage    *cnpgStorage                `json:"storage"`
		WalStorage *cnpgStorage                `json:"walStorage"`
		Resources  corev1.ResourceRequirements `json:"resources"`
	} `json:"spec"`
}

type cnpgStorage struct {
	Size         string  `json:"size"`
	StorageClass *string `json:"storageClass"`
}

func cnpgValues(pg map[string]any, more ...map[string]any) map[string]any {
	pg = merge(map[string]any{"mode": "cloudnativepg"}, pg)
	return merge(append([]map[string]any{{"postgresql": pg}}, more...)...)
}

// TestCommonsCloudNativePGCluster: cloudnativepg mode renders a Cluster with the
// values' fields and no bundled StatefulSet, Services or NetworkPolicy.
func TestCommonsCloudNativePGCluster(t *testing.T) {
	m := renderCommons(t, cnpgValues(nil, tenants(map[string]any{"namespace": "imaging"})))
	o := m.MustGet(t, "Cluster", "commons", "commons-postgresql")
	assert.Equal(t, "postgresql.cnpg.io/v1", o.APIVersion)
	c := render.Decode[cnpgCluster](t, o)
	assert.Equal(t, 3, c.Spec.Instances, "instances default 3")
	assert.Equal(t, "database", c.Metadata.Labels["app.kubernetes.io/component"])
	assert.Equal(t, "ghcr.io/cloudnative-pg/postgresql:17.12-system-trixie", c.Spec.ImageName)
	require.NotNil(t, c.Spec.MinSyncReplicas)
	require.NotNil(t, c.Spec.MaxSyncReplicas)
	assert.Equal(t, 0, *c.Spec.MinSyncReplicas, "asynchronous by default")
	assert.Equal(t, 0, *c.Spec.MaxSyncReplicas)
	assert.True(t, c.Spec.EnableSuperuserAccess)
	assert.Equal(t, "commons-postgresql-admin", c.Spec.SuperuserSecret.Name)
	assert.Equal(t, "database", c.Spec.InheritedMetadata.Labels["kommons.io/workload-class"], "the instance pods carry the workload class")
	assert.Equal(t, "300", c.Spec.PostgreSQL.Parameters["max_connections"])
	require.NotNil(t, c.Spec.Affinity.EnablePodAntiAffinity)
	assert.True(t, *c.Spec.Affinity.EnablePodAntiAffinity)
	assert.Equal(t, "preferred", c.Spec.Affinity.PodAntiAffinityType)
	assert.Equal(t, "kubernetes.io/hostname", c.Spec.Affinity.TopologyKey)
	require.NotNil(t, c.Spec.Storage)
	assert.Equal(t, "10Gi", c.Spec.Storage.Size)
	assert.Nil(t, c.Spec.Storage.StorageClass, "the cluster default class")
	assert.Nil(t, c.Spec.WalStorage, "WAL on the data volume by default")
	assert.Equal(t, "512Mi", c.Spec.Resources.Requests.Memory().String())

	for _, kind := range []string{"StatefulSet", "Service", "PodDisruptionBudget", "NetworkPolicy"} {
		_, ok := m.Get(kind, "commons", "commons-postgresql")
		assert.False(t, ok, "no bundled %s in cloudnativepg mode", kind)
	}
	// The admin Secret is the Cluster's superuserSecret.
	admin := render.Decode[corev1.Secret](t, m.MustGet(t, "Secret", "commons", "commons-postgresql-admin"))
	assert.Equal(t, corev1.SecretTypeBasicAuth, admin.Type)
	assert.Equal(t, "postgres", string(admin.Data["username"]))
	assert.Len(t, admin.Data["password"], 32)
	assert.Equal(t, "kommons-secret-init", admin.Labels["app.kubernetes.io/managed-by"], "generated in the cluster")

	// The Jobs may reach the Cluster's pods.
	np := render.Decode[networkingv1.NetworkPolicy](t, m.MustGet(t, "NetworkPolicy", "commons", "commons-jobs"))
	var toCluster bool
	for _, e := range np.Spec.Egress {
		for _, to := range e.To {
			if to.PodSelector != nil && to.PodSelector.MatchLabels["cnpg.io/cluster"] == "commons-postgresql" {
				toCluster = len(e.Ports) == 1 && e.Ports[0].Port.IntValue() == 5432
			}
		}
	}
	assert.True(t, toCluster, "the Jobs' egress reaches the Cluster's pods on 5432")
}

func TestCommonsCloudNativePGClusterValues(t *testing.T) {
	m := renderCommons(t, cnpgValues(map[string]any{"cloudnativepg": map[string]any{
		"instances": 5, "imageName": "registry.example/pg:17.6-x", "minSyncReplicas": 1, "maxSyncReplicas": 2,
		"affinity": map[string]any{"podAntiAffinityType": "required", "topologyKey": "topology.kubernetes.io/zone",
			"nodeSelector": map[string]any{"kommons.io/pool": "db"},
			"tolerations":  []any{map[string]any{"key": "kommons.io/pool", "operator": "Equal", "value": "db", "effect": "NoSchedule"}}},
		"storage":    map[string]any{"size": "50Gi", "storageClass": "ssd"},
		"walStorage": map[string]any{"size": "5Gi"},
	}}, map[string]any{"global": map[string]any{"storageClass": "standard"}}))
	c := render.Decode[cnpgCluster](t, m.MustGet(t, "Cluster", "commons", "commons-postgresql"))
	assert.Equal(t, 5, c.Spec.Instances)
	assert.Equal(t, "registry.example/pg:17.6-x", c.Spec.ImageName)
	assert.Equal(t, 1, *c.Spec.MinSyncReplicas)
	assert.Equal(t, 2, *c.Spec.MaxSyncReplicas)
	assert.Equal(t, "required", c.Spec.Affinity.PodAntiAffinityType)
	assert.Equal(t, "topology.kubernetes.io/zone", c.Spec.Affinity.TopologyKey)
	assert.Equal(t, map[string]string{"kommons.io/pool": "db"}, c.Spec.Affinity.NodeSelector)
	require.Len(t, c.Spec.Affinity.Tolerations, 1)
	assert.Equal(t, corev1.TaintEffectNoSchedule, c.Spec.Affinity.Tolerations[0].Effect)
	assert.Equal(t, "50Gi", c.Spec.Storage.Size)
	assert.Equal(t, "ssd", *c.Spec.Storage.StorageClass, "the value's own class wins")
	require.NotNil(t, c.Spec.WalStorage)
	assert.Equal(t, "5Gi", c.Spec.WalStorage.Size)
	assert.Equal(t, "standard", *c.Spec.WalStorage.StorageClass, "global.storageClass when the WAL class is empty")

	dash := renderCommons(t, cnpgValues(map[string]any{"cloudnativepg": map[string]any{"storage": map[string]any{"size": "1Gi", "storageClass": "-"}}}))
	c = render.Decode[cnpgCluster](t, dash.MustGet(t, "Cluster", "commons", "commons-postgresql"))
	require.NotNil(t, c.Spec.Storage.StorageClass)
	assert.Equal(t, "", *c.Spec.Storage.StorageClass, `"-" renders an empty class`)
}

// TestCommonsCloudNativePGJobs: the provisioner Job (and its wait-for-pg) connect
// to <cluster>-rw as the superuser with sslmode=verify-full and the
// operator's CA mounted; tenants get -rw with sslmode=verify-full, and the
// secret-init Job copies the operator's CA into their Secret (ca.crt, with
// PGSSLROOTCERT where postgres-init mounts it), so module pods verify the
// server too.
func TestCommonsCloudNativePGJobs(t *testing.T) {
	m := renderCommons(t, cnpgValues(nil, tenants(map[string]any{"namespace": "imaging"})))
	job := render.Decode[batchv1.Job](t, m.One(t, "Job", "commons-provisioner-"))
	pod := job.Spec.Template.Spec
	var ca *corev1.Volume
	for i := range pod.Volumes {
		if pod.Volumes[i].Name == "postgresql-ca" {
			ca = &pod.Volumes[i]
		}
	}
	require.NotNil(t, ca, "the CA volume")
	require.NotNil(t, ca.Secret)
	assert.Equal(t, "commons-postgresql-ca", ca.Secret.SecretName, "the operator-generated CA Secret")
	assert.Equal(t, []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}, ca.Secret.Items)
	for _, c := range []corev1.Container{container(t, pod, "wait-for-pg", true), container(t, pod, "provisioner", false)} {
		env := envOf(c)
		assert.Equal(t, "commons-postgresql-rw.commons.svc.cluster.local", env["PGHOST"].Value, c.Name)
		assert.Equal(t, "5432", env["PGPORT"].Value, c.Name)
		assert.Equal(t, "postgres", env["PGUSER"].Value, c.Name)
		assert.Equal(t, "postgres", env["PGDATABASE"].Value, c.Name)
		assert.Equal(t, "verify-full", env["PGSSLMODE"].Value, c.Name)
		assert.Equal(t, "/etc/kommons/postgresql-ca/ca.crt", env["PGSSLROOTCERT"].Value, c.Name)
		assert.Equal(t, "commons-postgresql-admin", env["PGPASSWORD"].ValueFrom.SecretKeyRef.Name, c.Name)
		assert.Contains(t, c.VolumeMounts, corev1.VolumeMount{Name: "postgresql-ca", MountPath: "/etc/kommons/postgresql-ca", ReadOnly: true}, c.Name)
	}
	s := secretData(t, m.MustGet(t, "Secret", "imaging", "kommons-commons"))
	assert.Equal(t, "commons-postgresql-rw.commons.svc.cluster.local", s["PGHOST"])
	assert.Equal(t, "5432", s["PGPORT"])
	assert.Equal(t, "verify-full", s["PGSSLMODE"])
	assert.Equal(t, operatorCAPEM, s["ca.crt"], "the operator's CA, copied by secret-init")
	assert.Equal(t, "/etc/kommons/postgres-ca/ca.crt", s["PGSSLROOTCERT"])
	// The secret-init Job may read the operator's CA Secret, and only by name.
	spec := secretInitSpecOf(t, m)
	found := false
	for _, sec := range spec.Secrets {
		if sec.Namespace == "imaging" {
			src := sec.Data["ca.crt"]
			require.NotNil(t, src.FromSecret)
			found = src.FromSecret.Name == "commons-postgresql-ca" && src.FromSecret.Namespace == "commons" && !src.FromSecret.Optional
		}
	}
	assert.True(t, found, "the tenant Secret's ca.crt comes from the operator's CA Secret")
	var role rbacv1.Role
	for _, o := range m.ByKind("Role") {
		if o.Namespace == "commons" && strings.Contains(o.Name, "secret-init") {
			role = *render.Decode[rbacv1.Role](t, o)
		}
	}
	readable := false
	for _, r := range role.Rules {
		if slices.Contains(r.Verbs, "get") && slices.Contains(r.ResourceNames, "commons-postgresql-ca") {
			readable = true
		}
	}
	assert.True(t, readable, "secret-init's Role gets commons-postgresql-ca by name: %+v", role.Rules)
	assert.Equal(t, "kommons_tenant_imaging", s["PGUSER"])

	// In bundled mode the CA is the issued Secret's, not the operator's.
	bundled := render.Decode[batchv1.Job](t, renderCommons(t, tenants(map[string]any{"namespace": "imaging"})).One(t, "Job", "commons-provisioner-"))
	for _, v := range bundled.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			assert.NotEqual(t, "commons-postgresql-ca", v.Secret.SecretName)
		}
	}
}

// TestCommonsCloudNativePGRefusesWrongValues: the mode's checks name the value to fix.
func TestCommonsCloudNativePGRefusesWrongValues(t *testing.T) {
	for name, tc := range map[string]struct {
		values map[string]any
		want   string
	}{
		"cloudnativepg and bundled":         {map[string]any{"postgresql": map[string]any{"mode": "cloudnativepg", "bundled": true}}, "/postgresql/mode"},
		"cloudnativepg and legacy external": {map[string]any{"postgresql": map[string]any{"mode": "cloudnativepg", "bundled": false}}, "/postgresql/mode"},
		"admin not postgres":                {cnpgValues(map[string]any{"auth": map[string]any{"adminUser": "admin"}}), `postgresql.auth.adminUser "admin"`},
		"password key":                      {cnpgValues(map[string]any{"auth": map[string]any{"passwordKey": "pw"}}), `postgresql.auth.passwordKey "pw"`},
		"min above max":                     {cnpgValues(map[string]any{"cloudnativepg": map[string]any{"minSyncReplicas": 2, "maxSyncReplicas": 1}}), "minSyncReplicas (2) exceeds maxSyncReplicas (1)"},
		"max not below instances":           {cnpgValues(map[string]any{"cloudnativepg": map[string]any{"instances": 2, "maxSyncReplicas": 2}}), "maxSyncReplicas (2) must be below instances (2)"},
		"pg_dump backups":                   {cnpgValues(nil, map[string]any{"backups": map[string]any{"enabled": true}}), "backups.enabled (the pg_dump CronJob) is not available in cloudnativepg mode"},
		"bad anti-affinity type":            {cnpgValues(map[string]any{"cloudnativepg": map[string]any{"affinity": map[string]any{"podAntiAffinityType": "hard"}}}), "/postgresql/cloudnativepg/affinity/podAntiAffinityType"},
		"storage size without unit":         {cnpgValues(map[string]any{"cloudnativepg": map[string]any{"storage": map[string]any{"size": "10"}}}), "/postgresql/cloudnativepg/storage/size"},
		"unknown key":                       {cnpgValues(map[string]any{"cloudnativepg": map[string]any{"replicas": 3}}), "additional properties 'replicas' not allowed"},
	} {
		t.Run(name, func(t *testing.T) {
			m, err := render.Chart(commonsChart, render.Options{ReleaseName: "commons", Namespace: "commons", Values: tc.values})
			require.Error(t, err, "values %v must be rejected", tc.values)
			require.Nil(t, m)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

// secretInitSpecOf decodes the rendered secret-init spec of commons.
func secretInitSpecOf(t *testing.T, m *render.Manifest) *secretinit.Spec {
	t.Helper()
	for _, o := range m.ByKind("ConfigMap") {
		cm := render.Decode[corev1.ConfigMap](t, o)
		if cm.Labels["app.kubernetes.io/component"] == "secret-init" {
			spec, err := specfile.DecodeAs[secretinit.Spec](cm.Name, []byte(cm.Data["spec.yaml"]))
			require.NoError(t, err)
			return spec
		}
	}
	t.Fatal("no secret-init spec rendered")
	return nil
}
