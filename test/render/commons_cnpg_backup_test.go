package render_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/internal/s3names"
	"github.com/kommons/kommons/internal/testutil/miniotest"
	"github.com/kommons/kommons/test/render"
)

// secretKeyRef is CloudNativePG's (and barman-cloud's) SecretKeySelector.
type secretKeyRef struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// cnpgBackupCluster is the backup and recovery part of the Cluster the
// chart renders (decoded from the Cluster's spec.backup, spec.bootstrap and
// spec.externalClusters alone: cnpgCluster has the rest).
type cnpgBackupCluster struct {
	Spec struct {
		Backup *struct {
			RetentionPolicy   string            `json:"retentionPolicy"`
			Target            string            `json:"target"`
			BarmanObjectStore barmanObjectStore `json:"barmanObjectStore"`
		} `json:"backup"`
		Bootstrap *struct {
			Recovery struct {
				Source         string `json:"source"`
				RecoveryTarget *struct {
					TargetTime string `json:"targetTime"`
				} `json:"recoveryTarget"`
			} `json:"recovery"`
		} `json:"bootstrap"`
		ExternalClusters []struct {
			Name              string            `json:"name"`
			BarmanObjectStore barmanObjectStore `json:"barmanObjectStore"`
		} `json:"externalClusters"`
	} `json:"spec"`
}

// barmanObjectStore is barman-cloud's BarmanObjectStoreConfiguration, as
// far as the chart renders it.
type barmanObjectStore struct {
	ServerName      string        `json:"serverName"`
	DestinationPath string        `json:"destinationPath"`
	EndpointURL     string        `json:"endpointURL"`
	EndpointCA      *secretKeyRef `json:"endpointCA"`
	S3Credentials   struct {
		AccessKeyID     secretKeyRef  `json:"accessKeyId"`
		SecretAccessKey secretKeyRef  `json:"secretAccessKey"`
		Region          *secretKeyRef `json:"region"`
	} `json:"s3Credentials"`
	Wal struct {
		Compression string `json:"compression"`
		MaxParallel int    `json:"maxParallel"`
	} `json:"wal"`
	Data *struct {
		Compression string `json:"compression"`
	} `json:"data"`
}

// decodeClusterBackup decodes the spec.backup of a rendered Cluster.
func decodeClusterBackup(t *testing.T, o *render.Object) *cnpgBackupCluster {
	t.Helper()
	full := *render.Decode[map[string]any](t, o)
	spec, _ := full["spec"].(map[string]any)
	part := map[string]any{}
	for _, k := range []string{"backup", "bootstrap", "externalClusters"} {
		if v, ok := spec[k]; ok {
			part[k] = v
		}
	}
	raw, err := json.Marshal(map[string]any{"spec": part})
	require.NoError(t, err)
	var c cnpgBackupCluster
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&c), string(raw))
	return &c
}

type cnpgScheduledBackup struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Cluster struct {
			Name string `json:"name"`
		} `json:"cluster"`
		Method               string `json:"method"`
		Schedule             string `json:"schedule"`
		Immediate            *bool  `json:"immediate"`
		Suspend              *bool  `json:"suspend"`
		BackupOwnerReference string `json:"backupOwnerReference"`
	} `json:"spec"`
}

func cnpgBackupValues(backup map[string]any, more ...map[string]any) map[string]any {
	return cnpgValues(map[string]any{"cloudnativepg": map[string]any{"backup": merge(map[string]any{"enabled": true}, backup)}}, more...)
}

// backupS3InitJob returns the backup bucket's s3-init Job, or nil.
func backupS3InitJob(t *testing.T, m *render.Manifest) *batchv1.Job {
	t.Helper()
	for _, o := range m.ByKind("Job") {
		if strings.HasPrefix(o.Name, "commons-postgresql-backup-s3-init-") {
			return render.Decode[batchv1.Job](t, o)
		}
	}
	return nil
}

// TestCommonsCloudNativePGBackup: with postgresql.cloudnativepg.backup on
// the bundled MinIO, the Cluster archives to the bucket s3-init creates
// (scope: commons' namespace and release) with a generated key pair limited
// to it, a ScheduledBackup takes base backups, and the MinIO policy lets
// the instances in.
func TestCommonsCloudNativePGBackup(t *testing.T) {
	m := renderCommons(t, cnpgBackupValues(nil))
	c := decodeClusterBackup(t, m.MustGet(t, "Cluster", "commons", "commons-postgresql"))
	b := c.Spec.Backup
	require.NotNil(t, b, "spec.backup")
	bucket, err := s3names.Physical("commons", "commons", "postgresql-backups")
	require.NoError(t, err)
	assert.Equal(t, "30d", b.RetentionPolicy)
	assert.Equal(t, "prefer-standby", b.Target)
	o := b.BarmanObjectStore
	assert.Equal(t, "s3://"+bucket+"/", o.DestinationPath)
	assert.Equal(t, "http://commons-minio.commons.svc.cluster.local:9000", o.EndpointURL, "commons' MinIO Service")
	assert.Nil(t, o.EndpointCA)
	assert.Equal(t, secretKeyRef{"commons-postgresql-backup-s3", "ACCESS_KEY_ID"}, o.S3Credentials.AccessKeyID)
	assert.Equal(t, secretKeyRef{"commons-postgresql-backup-s3", "ACCESS_SECRET_KEY"}, o.S3Credentials.SecretAccessKey)
	require.NotNil(t, o.S3Credentials.Region)
	assert.Equal(t, secretKeyRef{"commons-postgresql-backup-s3", "REGION"}, *o.S3Credentials.Region)
	assert.Equal(t, "gzip", o.Wal.Compression)
	assert.Equal(t, 1, o.Wal.MaxParallel)
	require.NotNil(t, o.Data)
	assert.Equal(t, "gzip", o.Data.Compression)

	sb := render.Decode[cnpgScheduledBackup](t, m.MustGet(t, "ScheduledBackup", "commons", "commons-postgresql"))
	assert.Equal(t, "postgresql.cnpg.io/v1", sb.APIVersion)
	assert.Equal(t, "commons-postgresql", sb.Spec.Cluster.Name)
	assert.Equal(t, "barmanObjectStore", sb.Spec.Method)
	assert.Equal(t, "0 0 2 * * *", sb.Spec.Schedule, "six fields, seconds first")
	require.NotNil(t, sb.Spec.Immediate)
	assert.True(t, *sb.Spec.Immediate, "a first base backup at once: no recovery before one")
	require.NotNil(t, sb.Spec.Suspend)
	assert.False(t, *sb.Spec.Suspend)
	assert.Equal(t, "self", sb.Spec.BackupOwnerReference)

	sec := m.MustGet(t, "Secret", "commons", "commons-postgresql-backup-s3")
	data := secretData(t, sec)
	accessKey, err := s3names.Physical("commons", "commons", "postgresql-backup")
	require.NoError(t, err)
	assert.Equal(t, accessKey, data["ACCESS_KEY_ID"], "the access key id s3-init gives the user")
	assert.Len(t, data["ACCESS_SECRET_KEY"], 40)
	assert.Equal(t, "us-east-1", data["REGION"])
	meta := render.Decode[corev1.Secret](t, sec)
	assert.Equal(t, "kommons-secret-init", meta.Labels["app.kubernetes.io/managed-by"], "generated in the cluster by secret-init, never by the template")
	assert.Equal(t, "true", meta.Labels["cnpg.io/reload"])

	job := backupS3InitJob(t, m)
	require.NotNil(t, job, "the backup bucket's s3-init Job")
	assert.Equal(t, "s3-init", job.Labels["app.kubernetes.io/component"], "the Jobs' NetworkPolicy selects it")
	spec := s3InitSpec(t, m, job)
	assert.Equal(t, "commons", spec.Scope.Namespace)
	assert.Equal(t, "commons", spec.Scope.Release)
	require.Len(t, spec.Buckets, 1)
	assert.Equal(t, "postgresql-backups", spec.Buckets[0].Name)
	require.Len(t, spec.Users, 1)
	assert.Equal(t, "postgresql-backup", spec.Users[0].Name)
	assert.Equal(t, []string{"postgresql-backups"}, spec.Users[0].Buckets, "the key reaches the backup bucket only")
	assert.Equal(t, "true", envOf(job.Spec.Template.Spec.Containers[0])["S3_INIT_MINIO_ADMIN"].Value)
	assert.Equal(t, "0", job.Spec.Template.Annotations["kommons.io/secret-init-revision"],
		"a rotation (secretInit.revision) changes the Job, so that s3-init sets the new key")

	// The instances (pods labelled cnpg.io/cluster) reach MinIO's S3 port;
	// the Jobs' policy exists without tenants, for the s3-init Job.
	np := render.Decode[networkingv1.NetworkPolicy](t, m.MustGet(t, "NetworkPolicy", "commons", "commons-minio"))
	var cnpgPeer bool
	for _, in := range np.Spec.Ingress {
		for _, from := range in.From {
			if from.PodSelector != nil && from.NamespaceSelector == nil {
				for _, e := range from.PodSelector.MatchExpressions {
					cnpgPeer = cnpgPeer || (e.Key == "cnpg.io/cluster" && e.Operator == metav1.LabelSelectorOpExists && in.Ports[0].Port.String() == "s3")
				}
			}
		}
	}
	assert.True(t, cnpgPeer, "the MinIO policy admits the CloudNativePG instances on the S3 port")
	m.MustGet(t, "NetworkPolicy", "commons", "commons-jobs")

	// Off (the default): none of it.
	off := renderCommons(t, cnpgValues(nil))
	assert.Nil(t, decodeClusterBackup(t, off.MustGet(t, "Cluster", "commons", "commons-postgresql")).Spec.Backup)
	assert.Empty(t, off.ByKind("ScheduledBackup"))
	assert.Nil(t, backupS3InitJob(t, off))
	_, ok := off.Get("Secret", "commons", "commons-postgresql-backup-s3")
	assert.False(t, ok)
	assert.NotContains(t, string(off.MustGet(t, "NetworkPolicy", "commons", "commons-minio").YAML), "cnpg.io/cluster")
	// Outside cloudnativepg mode the value does nothing.
	bundled := renderCommons(t, map[string]any{"postgresql": map[string]any{"cloudnativepg": map[string]any{"backup": map[string]any{"enabled": true}}}})
	assert.Empty(t, bundled.ByKind("ScheduledBackup"))
	assert.Nil(t, backupS3InitJob(t, bundled))
}

// TestCommonsCloudNativePGBackupElsewhere: an existing bucket with a named
// Secret (no s3-init, no generated key), and external S3 with
// provisionBuckets (s3-init creates the bucket only).
func TestCommonsCloudNativePGBackupElsewhere(t *testing.T) {
	m := renderCommons(t, cnpgBackupValues(map[string]any{
		"destinationPath": "s3://acme-pg-backups/commons/", "endpointURL": "https://s3.eu-west-1.amazonaws.com",
		"existingSecret": "pg-backup-creds", "accessKeyKey": "id", "secretKeyKey": "secret", "regionKey": "region",
		"endpointCA":      map[string]any{"secretName": "s3-ca", "key": "bundle.pem"},
		"retentionPolicy": "8w", "schedule": "0 30 1 * * 0", "immediate": false, "target": "primary",
		"wal": map[string]any{"compression": "", "maxParallel": 4}, "data": map[string]any{"compression": ""},
	}))
	c := decodeClusterBackup(t, m.MustGet(t, "Cluster", "commons", "commons-postgresql"))
	b := c.Spec.Backup
	require.NotNil(t, b)
	assert.Equal(t, "8w", b.RetentionPolicy)
	assert.Equal(t, "primary", b.Target)
	o := b.BarmanObjectStore
	assert.Equal(t, "s3://acme-pg-backups/commons/", o.DestinationPath)
	assert.Equal(t, "https://s3.eu-west-1.amazonaws.com", o.EndpointURL)
	require.NotNil(t, o.EndpointCA)
	assert.Equal(t, secretKeyRef{"s3-ca", "bundle.pem"}, *o.EndpointCA)
	assert.Equal(t, secretKeyRef{"pg-backup-creds", "id"}, o.S3Credentials.AccessKeyID)
	assert.Equal(t, secretKeyRef{"pg-backup-creds", "secret"}, o.S3Credentials.SecretAccessKey)
	require.NotNil(t, o.S3Credentials.Region)
	assert.Equal(t, secretKeyRef{"pg-backup-creds", "region"}, *o.S3Credentials.Region)
	assert.Empty(t, o.Wal.Compression)
	assert.Equal(t, 4, o.Wal.MaxParallel)
	assert.Nil(t, o.Data, "no data compression: no data stanza")
	sb := render.Decode[cnpgScheduledBackup](t, m.MustGet(t, "ScheduledBackup", "commons", "commons-postgresql"))
	assert.Equal(t, "0 30 1 * * 0", sb.Spec.Schedule)
	assert.False(t, *sb.Spec.Immediate)
	assert.Nil(t, backupS3InitJob(t, m), "an existing bucket: nothing to create")
	_, ok := m.Get("Secret", "commons", "commons-postgresql-backup-s3")
	assert.False(t, ok, "no generated key with existingSecret")

	ext := renderCommons(t, cnpgBackupValues(map[string]any{"existingSecret": "pg-backup-creds"}, map[string]any{"objectStorage": map[string]any{
		"bundled": false, "provisionBuckets": true,
		"external": map[string]any{"endpoint": "https://s3.example.org", "existingSecret": "s3-admin"}}}))
	c = decodeClusterBackup(t, ext.MustGet(t, "Cluster", "commons", "commons-postgresql"))
	bucket, err := s3names.Physical("commons", "commons", "postgresql-backups")
	require.NoError(t, err)
	assert.Equal(t, "s3://"+bucket+"/", c.Spec.Backup.BarmanObjectStore.DestinationPath)
	assert.Equal(t, "https://s3.example.org", c.Spec.Backup.BarmanObjectStore.EndpointURL)
	assert.Nil(t, c.Spec.Backup.BarmanObjectStore.S3Credentials.Region, "no regionKey: no region")
	job := backupS3InitJob(t, ext)
	require.NotNil(t, job, "s3-init creates the bucket on the external store")
	spec := s3InitSpec(t, ext, job)
	assert.Empty(t, spec.Users, "no MinIO users on an external store")
	assert.Equal(t, "false", envOf(job.Spec.Template.Spec.Containers[0])["S3_INIT_MINIO_ADMIN"].Value)
}

// TestCommonsCloudNativePGBackupRefusals: wrong combinations are refused,
// each naming the value to set.
func TestCommonsCloudNativePGBackupRefusals(t *testing.T) {
	external := map[string]any{"objectStorage": map[string]any{"bundled": false}}
	for name, tc := range map[string]struct {
		values map[string]any
		want   string
	}{
		"no bucket commons can create": {cnpgBackupValues(nil, external), "set postgresql.cloudnativepg.backup.destinationPath to an existing bucket"},
		"existing bucket, no Secret":   {cnpgBackupValues(map[string]any{"destinationPath": "s3://acme/pg/"}, external), "postgresql.cloudnativepg.backup.existingSecret is required"},
		"bundled, own bucket, no key":  {cnpgBackupValues(map[string]any{"destinationPath": "s3://acme/pg/"}), "postgresql.cloudnativepg.backup.existingSecret is required"},
		"retention without unit":       {cnpgBackupValues(map[string]any{"retentionPolicy": "30"}), "/postgresql/cloudnativepg/backup/retentionPolicy"},
		"five-field cron":              {cnpgBackupValues(map[string]any{"schedule": "0 2 * * *"}), "/postgresql/cloudnativepg/backup/schedule"},
		"not an s3 URL":                {cnpgBackupValues(map[string]any{"destinationPath": "https://acme/pg"}), "/postgresql/cloudnativepg/backup/destinationPath"},
		"bad target":                   {cnpgBackupValues(map[string]any{"target": "standby"}), "/postgresql/cloudnativepg/backup/target"},
		"bad compression":              {cnpgBackupValues(map[string]any{"wal": map[string]any{"compression": "zip"}}), "/postgresql/cloudnativepg/backup/wal/compression"},
		"unknown key":                  {cnpgBackupValues(map[string]any{"bucketName": "x"}), "additional properties 'bucketName' not allowed"},
		"pg_dump CronJob instead":      {cnpgValues(nil, map[string]any{"backups": map[string]any{"enabled": true}}), "use postgresql.cloudnativepg.backup"},
	} {
		t.Run(name, func(t *testing.T) {
			m, err := render.Chart(commonsChart, render.Options{ReleaseName: "commons", Namespace: "commons", Values: tc.values})
			require.Error(t, err, "values %v must be rejected", tc.values)
			require.Nil(t, m)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestCommonsCloudNativePGRecovery: postgresql.cloudnativepg.recovery
// bootstraps the Cluster from the backups (by default its own, with the
// backup key pair) to a target time, and the recovered Cluster archives
// into a new folder; without a key pair, or archiving over its source, it
// is refused.
func TestCommonsCloudNativePGRecovery(t *testing.T) {
	m := renderCommons(t, cnpgBackupValues(map[string]any{"serverName": "commons-postgresql-2"}, map[string]any{"postgresql": map[string]any{
		"mode": "cloudnativepg", "cloudnativepg": map[string]any{
			"backup":   map[string]any{"enabled": true, "serverName": "commons-postgresql-2"},
			"recovery": map[string]any{"enabled": true, "targetTime": "2026-12-07T19:40:00.123456Z"}}}}))
	c := decodeClusterBackup(t, m.MustGet(t, "Cluster", "commons", "commons-postgresql"))
	require.NotNil(t, c.Spec.Bootstrap)
	assert.Equal(t, "commons-postgresql", c.Spec.Bootstrap.Recovery.Source)
	require.NotNil(t, c.Spec.Bootstrap.Recovery.RecoveryTarget)
	assert.Equal(t, "2026-12-07 19:40:00.123456+00", c.Spec.Bootstrap.Recovery.RecoveryTarget.TargetTime, "PostgreSQL notation: CloudNativePG would hand PostgreSQL \"...Z\", which it refuses")
	require.Len(t, c.Spec.ExternalClusters, 1)
	src := c.Spec.ExternalClusters[0]
	assert.Equal(t, "commons-postgresql", src.Name)
	bucket, err := s3names.Physical("commons", "commons", "postgresql-backups")
	require.NoError(t, err)
	assert.Equal(t, "commons-postgresql", src.BarmanObjectStore.ServerName, "the backed-up Cluster's folder")
	assert.Equal(t, "s3://"+bucket+"/", src.BarmanObjectStore.DestinationPath)
	assert.Equal(t, "http://commons-minio.commons.svc.cluster.local:9000", src.BarmanObjectStore.EndpointURL)
	assert.Equal(t, secretKeyRef{"commons-postgresql-backup-s3", "ACCESS_KEY_ID"}, src.BarmanObjectStore.S3Credentials.AccessKeyID)
	require.NotNil(t, src.BarmanObjectStore.S3Credentials.Region)
	assert.Nil(t, src.BarmanObjectStore.Data, "nothing to compress when reading")
	require.NotNil(t, c.Spec.Backup)
	assert.Equal(t, "commons-postgresql-2", c.Spec.Backup.BarmanObjectStore.ServerName, "the recovered Cluster archives into a new folder")

	// From elsewhere, with a named Secret and no backup of its own; all WAL.
	other := renderCommons(t, cnpgValues(map[string]any{"cloudnativepg": map[string]any{"recovery": map[string]any{
		"enabled": true, "serverName": "pg-old", "destinationPath": "s3://acme-pg/old/", "endpointURL": "https://s3.example.org",
		"existingSecret": "old-creds"}}}))
	c = decodeClusterBackup(t, other.MustGet(t, "Cluster", "commons", "commons-postgresql"))
	assert.Nil(t, c.Spec.Backup)
	require.NotNil(t, c.Spec.Bootstrap)
	assert.Equal(t, "pg-old", c.Spec.Bootstrap.Recovery.Source)
	assert.Nil(t, c.Spec.Bootstrap.Recovery.RecoveryTarget, "no target: all archived WAL")
	src = c.Spec.ExternalClusters[0]
	assert.Equal(t, "pg-old", src.BarmanObjectStore.ServerName)
	assert.Equal(t, "s3://acme-pg/old/", src.BarmanObjectStore.DestinationPath)
	assert.Equal(t, "https://s3.example.org", src.BarmanObjectStore.EndpointURL)
	assert.Equal(t, secretKeyRef{"old-creds", "ACCESS_SECRET_KEY"}, src.BarmanObjectStore.S3Credentials.SecretAccessKey)
	assert.Nil(t, src.BarmanObjectStore.S3Credentials.Region)

	off := decodeClusterBackup(t, renderCommons(t, cnpgBackupValues(nil)).MustGet(t, "Cluster", "commons", "commons-postgresql"))
	assert.Nil(t, off.Spec.Bootstrap, "initdb (the operator's default) without recovery")
	assert.Empty(t, off.Spec.ExternalClusters)

	for name, tc := range map[string]struct {
		values map[string]any
		want   string
	}{
		"no key pair": {cnpgValues(map[string]any{"cloudnativepg": map[string]any{"recovery": map[string]any{"enabled": true}}}),
			"postgresql.cloudnativepg.recovery needs the key pair of the backups"},
		"archive over the source": {cnpgValues(map[string]any{"cloudnativepg": map[string]any{"backup": map[string]any{"enabled": true},
			"recovery": map[string]any{"enabled": true}}}), "set backup.serverName to a new name (e.g. commons-postgresql-2)"},
		"bad target time": {cnpgValues(map[string]any{"cloudnativepg": map[string]any{"recovery": map[string]any{"enabled": true, "existingSecret": "s",
			"targetTime": "yesterday"}}}), "/postgresql/cloudnativepg/recovery/targetTime"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := render.Chart(commonsChart, render.Options{ReleaseName: "commons", Namespace: "commons", Values: tc.values})
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestRenderedBackupS3InitAgainstMinIO runs the backup bucket's s3-init Job
// as rendered against a real MinIO, then uses the rendered backup Secret as
// the instances would: the key writes and lists the backup bucket, and
// reaches no tenant's bucket; the tenant's key does not reach the backups.
func TestRenderedBackupS3InitAgainstMinIO(t *testing.T) {
	srv := miniotest.New(t, miniotest.Options{})
	bin := buildS3Init(t)
	m := renderCommons(t, cnpgBackupValues(nil, tenants(map[string]any{"namespace": "imaging", "buckets": []any{"dicom"}})))
	m2 := withRootSecret(m, srv)
	out, err := runRenderedS3Init(t, bin, m2, backupS3InitJob(t, m), srv)
	require.NoError(t, err, out)
	require.NotContains(t, out, srv.RootPassword())
	for ns, job := range s3InitJobs(t, m) {
		out, err := runRenderedS3Init(t, bin, m2, job, srv)
		require.NoError(t, err, "s3-init for %s:\n%s", ns, out)
	}

	ctx := context.Background()
	key := secretData(t, m.MustGet(t, "Secret", "commons", "commons-postgresql-backup-s3"))
	require.NotContains(t, out, key["ACCESS_SECRET_KEY"], "no secret key in s3-init's output")
	c := decodeClusterBackup(t, m.MustGet(t, "Cluster", "commons", "commons-postgresql"))
	bucket := strings.TrimSuffix(strings.TrimPrefix(c.Spec.Backup.BarmanObjectStore.DestinationPath, "s3://"), "/")
	backup := srv.ClientFor(t, key["ACCESS_KEY_ID"], key["ACCESS_SECRET_KEY"])
	_, err = backup.PutObject(ctx, bucket, "commons-postgresql/wals/0000000100000000/000000010000000000000001.gz", strings.NewReader("wal"), 3, minio.PutObjectOptions{})
	require.NoError(t, err, "the backup key writes the bucket the Cluster archives to")
	var keys []string
	for o := range backup.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		require.NoError(t, o.Err)
		keys = append(keys, o.Key)
	}
	assert.Len(t, keys, 1, "the backup key lists the bucket")

	tenant := secretData(t, m.MustGet(t, "Secret", "imaging", "kommons-commons"))
	_, err = backup.PutObject(ctx, tenant["S3_BUCKET_DICOM"], "x", strings.NewReader("x"), 1, minio.PutObjectOptions{})
	require.Error(t, err, "the backup key must not write a tenant's bucket")
	buckets, err := backup.ListBuckets(ctx)
	if err == nil { // MinIO lists only the buckets a key may use
		require.Len(t, buckets, 1, "the backup key sees no other bucket")
		require.Equal(t, bucket, buckets[0].Name)
	}
	tc := srv.ClientFor(t, tenant["S3_ACCESS_KEY_ID"], tenant["S3_SECRET_ACCESS_KEY"])
	_, err = tc.StatObject(ctx, bucket, keys[0], minio.StatObjectOptions{})
	require.Error(t, err, "the tenant's key must not read the backups")

	// Idempotent.
	out, err = runRenderedS3Init(t, bin, m2, backupS3InitJob(t, m), srv)
	require.NoError(t, err, out)
	require.NotContains(t, out, `"action":"created"`)
}
