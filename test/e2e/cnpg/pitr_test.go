package cnpg

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/internal/s3names"
	"github.com/kommons/kommons/internal/testutil/testcluster"
)

// restoredCluster is the Cluster the point-in-time recovery creates next to
// commons' own, from commons' backups.
const restoredCluster = "commons-restored"

// inPlaceServerName is the archive folder of commons' Cluster once it is
// recovered in place (its old folder holds the backups it came from).
const inPlaceServerName = "commons-postgresql-2"

// pitr is the state of TestPointInTimeRecovery: commons in cloudnativepg
// mode with its bundled MinIO and postgresql.cloudnativepg.backup on, one
// tenant with a bucket (whose key must not reach the backups, nor the
// backup key its bucket).
type pitr struct {
	*scenario
	ns        string // commons' namespace (release "commons")
	tenant    string
	bucket    string    // the backup bucket s3-init creates (scope: commons' namespace and release)
	adminPW   string    // the Cluster's superuser password (commons' admin Secret)
	target    time.Time // the recovery target: server time between the two sets of rows
	before    []string  // the rows written before target
	after     []string  // the rows written after it
	backupEnd time.Time // when the base backup the recovery starts from ended
	values    []string  // commons' install values
	orthanc   pitrOrthanc
}

// TestPointInTimeRecovery proves postgresql.cloudnativepg.backup on the real
// node: charts/commons installed in cloudnativepg mode with its bundled
// MinIO and backups on; s3-init creates the backup bucket and a key limited
// to it; the Cluster archives WAL with that key (ContinuousArchiving); the
// ScheduledBackup's immediate base backup completes; then rows are written,
// the server's time noted, more rows written and the WAL switched and
// archived; a new Cluster bootstrapped by recovery from the object store
// with recoveryTarget.targetTime holds exactly the rows from before the
// time. docs/operations.md, "Backup and point-in-time recovery".
func TestPointInTimeRecovery(t *testing.T) {
	c := testcluster.StartNode(t)
	p := &pitr{scenario: &scenario{c: c, imgs: cnpgImages(t), tmp: t.TempDir()}}
	p.cm.charts = c.StageCharts(t)
	p.ns = c.Namespace(t, "pitr")
	p.tenant = c.Namespace(t, "pitr-tenant")
	var err error
	p.bucket, err = s3names.Physical(p.ns, "commons", "postgresql-backups")
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			p.dumpPITR(t)
		}
	})
	for _, step := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"operator", p.installOperator},
		{"commons-with-backup", p.installCommonsWithBackup},
		{"backup-key", p.backupKeyIsLimited},
		{"wal-archiving", p.walArchiving},
		{"base-backup", p.baseBackup},
		{"orthanc", p.installOrthanc},
		{"write-note-time-write", p.writeAroundTarget},
		{"restore-to-time", p.restoreToTime},
		{"restore-in-place-with-chart", p.restoreInPlace},
	} {
		if !t.Run(step.name, step.fn) {
			t.Fatalf("step %s failed; later steps depend on it", step.name)
		}
	}
}

// installCommonsWithBackup installs charts/commons in cloudnativepg mode
// (one instance: the point is the archive, not replication) with the
// bundled MinIO (the harness's image) and backups on, and waits for
// everything, the backup bucket's s3-init Job included.
func (p *pitr) installCommonsWithBackup(t *testing.T) {
	values := []string{
		"--set", "postgresql.mode=cloudnativepg",
		"--set", "postgresql.cloudnativepg.instances=1",
		"--set", "postgresql.cloudnativepg.imageName=" + p.imgs.Operand.Ref(),
		"--set", "postgresql.cloudnativepg.storage.size=1Gi",
		"--set", "global.storageClass=standard",
		"--set", "postgresql.cloudnativepg.resources.requests.cpu=50m",
		"--set", "postgresql.cloudnativepg.resources.requests.memory=256Mi",
		"--set", "postgresql.cloudnativepg.parameters.shared_buffers=128MB",
		"--set", "postgresql.cloudnativepg.backup.enabled=true",
		"--set", "objectStorage.minio.persistence.size=1Gi",
		"--set", "tenants[0].namespace=" + p.tenant,
		"--set", "tenants[0].buckets[0]=dicom",
	}
	values = append(values, testcluster.ImageValues("tools.image", p.c.Images.Tools)...)
	values = append(values, testcluster.ImageValues("objectStorage.minio.image", p.c.Images.MinIO)...)
	p.values = values
	start := time.Now()
	out := p.c.Helm3(t, append([]string{"install", "commons", filepath.Join(p.cm.charts, "charts", "commons"), "-n", p.ns,
		"--wait", "--wait-for-jobs", "--timeout", "15m"}, values...)...)
	t.Logf("helm install commons (cloudnativepg mode, bundled MinIO, backup on) --wait --wait-for-jobs: %.1fs", time.Since(start).Seconds())
	require.Contains(t, out, "STATUS: deployed")
	p.kubectl(t, "wait", "-n", p.ns, "cluster/"+commonsCluster, "--for=condition=Ready", "--timeout=10m")

	ctx := context.Background()
	jobs, err := p.c.Client().BatchV1().Jobs(p.ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=s3-init"})
	require.NoError(t, err)
	var backupJob string
	for _, j := range jobs.Items {
		require.EqualValues(t, 1, j.Status.Succeeded, "s3-init Job %s", j.Name)
		if strings.HasPrefix(j.Name, "commons-postgresql-backup-s3-init-") {
			backupJob = j.Name
		}
	}
	require.NotEmpty(t, backupJob, "the backup bucket's s3-init Job")
	logs := p.kubectl(t, "logs", "-n", p.ns, "job/"+backupJob)
	t.Logf("backup bucket's s3-init:\n%s", strings.TrimSpace(logs))
	assert.Contains(t, logs, `"msg":"bucket created","kind":"bucket","action":"created","name":"postgresql-backups","physicalName":"`+p.bucket+`"`)
	assert.Contains(t, logs, `"msg":"user created","kind":"user","action":"created","name":"postgresql-backup"`)

	admin, err := p.c.Client().CoreV1().Secrets(p.ns).Get(ctx, commonsCluster+"-admin", metav1.GetOptions{})
	require.NoError(t, err)
	p.adminPW = string(admin.Data["password"])
}

// minioClient is a client of the bundled MinIO by pod IP (the node reaches
// pod addresses) with the key pair of Secret name (keys accessKey,
// secretKey).
func (p *pitr) minioClient(t *testing.T, secret, accessKey, secretKey string) *minio.Client {
	t.Helper()
	ctx := context.Background()
	s, err := p.c.Client().CoreV1().Secrets(p.ns).Get(ctx, secret, metav1.GetOptions{})
	require.NoError(t, err)
	pods, err := p.c.Client().CoreV1().Pods(p.ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=object-store"})
	require.NoError(t, err)
	require.Len(t, pods.Items, 1)
	cl, err := minio.New(pods.Items[0].Status.PodIP+":9000", &minio.Options{
		Creds: credentials.NewStaticV4(string(s.Data[accessKey]), string(s.Data[secretKey]), ""), Region: "us-east-1"})
	require.NoError(t, err)
	return cl
}

// backupKeyIsLimited: the generated backup key pair writes the backup bucket
// and nothing else; the tenant's key does not reach the backups.
func (p *pitr) backupKeyIsLimited(t *testing.T) {
	ctx := context.Background()
	bucket := p.bucket
	backup := p.minioClient(t, "commons-postgresql-backup-s3", "ACCESS_KEY_ID", "ACCESS_SECRET_KEY")
	_, err := backup.PutObject(ctx, bucket, "kommons-test/probe", strings.NewReader("x"), 1, minio.PutObjectOptions{})
	require.NoError(t, err, "the backup key writes the backup bucket")
	require.NoError(t, backup.RemoveObject(ctx, bucket, "kommons-test/probe", minio.RemoveObjectOptions{}))
	tenantBucket, err := s3names.Physical(p.tenant, "commons", "dicom")
	require.NoError(t, err)
	_, err = backup.PutObject(ctx, tenantBucket, "x", strings.NewReader("x"), 1, minio.PutObjectOptions{})
	require.Error(t, err, "the backup key must not write the tenant's bucket")
	t.Logf("backup key on %s: %v", tenantBucket, err)
	if buckets, err := backup.ListBuckets(ctx); err == nil { // MinIO lists only the buckets a key may use
		require.Len(t, buckets, 1, "the backup key sees no other bucket")
		require.Equal(t, bucket, buckets[0].Name)
	}

	tenant := p.minioClient(t, "commons-tenant-s3-keys", p.tenant+".accessKey", p.tenant+".secretKey")
	_, err = tenant.PutObject(ctx, bucket, "x", strings.NewReader("x"), 1, minio.PutObjectOptions{})
	require.Error(t, err, "the tenant's key must not write the backups")
	_, err = tenant.StatObject(ctx, bucket, "x", minio.StatObjectOptions{})
	require.Error(t, err, "the tenant's key must not read the backups")
	t.Logf("tenant key on %s: %v", bucket, err)
}

// conn is a verify-full session as the superuser to the -rw Service of
// Cluster name in commons' namespace, with that Cluster's CA.
func (p *pitr) conn(t *testing.T, name string) *pgx.Conn {
	t.Helper()
	rw := fmt.Sprintf("%s-rw.%s.svc", name, p.ns)
	cfg := p.clusterConnConfig(t, p.ns, name, rw, "postgres", p.adminPW, "postgres")
	var conn *pgx.Conn
	require.Eventually(t, func() bool {
		var err error
		conn, err = pgx.ConnectConfig(context.Background(), cfg)
		if err != nil {
			t.Logf("connect %s: %v", rw, err)
		}
		return err == nil
	}, 2*time.Minute, 2*time.Second, "connect to %s as postgres with verify-full", rw)
	return conn
}

// switchAndArchive switches to a new WAL segment and waits until the server
// reports the closed one archived (pg_stat_archiver), returning its name.
func (p *pitr) switchAndArchive(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	ctx := context.Background()
	var seg string
	require.NoError(t, conn.QueryRow(ctx, "SELECT pg_walfile_name(pg_switch_wal())").Scan(&seg))
	start := time.Now()
	require.Eventually(t, func() bool {
		var last string
		var failed int64
		if err := conn.QueryRow(ctx, "SELECT coalesce(last_archived_wal, ''), failed_count FROM pg_stat_archiver").Scan(&last, &failed); err != nil {
			t.Logf("pg_stat_archiver: %v", err)
			return false
		}
		return last >= seg
	}, 5*time.Minute, time.Second, "WAL segment %s archived", seg)
	t.Logf("WAL segment %s archived %.1fs after pg_switch_wal", seg, time.Since(start).Seconds())
	return seg
}

// walArchiving: a WAL segment is archived with the backup key, and the
// operator reports the Cluster's ContinuousArchiving condition True.
func (p *pitr) walArchiving(t *testing.T) {
	conn := p.conn(t, commonsCluster)
	seg := p.switchAndArchive(t, conn)
	conn.Close(context.Background())
	p.kubectl(t, "wait", "-n", p.ns, "cluster/"+commonsCluster, "--for=condition=ContinuousArchiving=True", "--timeout=5m")
	cond := p.kubectl(t, "get", "-n", p.ns, "cluster/"+commonsCluster, "-o", `jsonpath={.status.conditions[?(@.type=="ContinuousArchiving")]}`)
	t.Logf("ContinuousArchiving: %s", cond)

	// The segment is in the bucket, below the Cluster's name (serverName).
	ctx := context.Background()
	backup := p.minioClient(t, "commons-postgresql-backup-s3", "ACCESS_KEY_ID", "ACCESS_SECRET_KEY")
	var found []string
	for o := range backup.ListObjects(ctx, p.bucket, minio.ListObjectsOptions{Prefix: commonsCluster + "/wals/", Recursive: true}) {
		require.NoError(t, o.Err)
		found = append(found, o.Key)
	}
	require.NotEmpty(t, found)
	var has bool
	for _, k := range found {
		has = has || strings.Contains(k, seg)
	}
	assert.True(t, has, "segment %s in the archive: %v", seg, found)
	t.Logf("archive holds %d WAL objects, e.g. %s", len(found), found[len(found)-1])
}

// backupStatus is the part of a Backup's status the test reads.
type backupStatus struct {
	Metadata struct {
		Name            string `json:"name"`
		OwnerReferences []struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
		} `json:"ownerReferences"`
	} `json:"metadata"`
	Status struct {
		Phase     string    `json:"phase"`
		BackupID  string    `json:"backupId"`
		Error     string    `json:"error"`
		StartedAt time.Time `json:"startedAt"`
		StoppedAt time.Time `json:"stoppedAt"`
		Method    string    `json:"method"`
		Instance  struct {
			PodName string `json:"podName"`
		} `json:"instanceID"`
	} `json:"status"`
}

// baseBackup waits for the Backup the ScheduledBackup created at once
// (immediate) to complete.
func (p *pitr) baseBackup(t *testing.T) {
	// No require inside the condition: it runs in another goroutine.
	var b backupStatus
	kubectl := filepath.Join(p.c.Tools.KubeBin, "kubectl")
	require.Eventually(t, func() bool {
		out, err := p.c.Exec(kubectl, "get", "-n", p.ns, "backups.postgresql.cnpg.io", "-o", "json")
		var list struct {
			Items []backupStatus `json:"items"`
		}
		if err == nil {
			err = json.Unmarshal([]byte(out), &list)
		}
		if err != nil {
			t.Logf("backups: %v: %s", err, out)
			return false
		}
		for _, it := range list.Items {
			for _, o := range it.Metadata.OwnerReferences {
				if o.Kind == "ScheduledBackup" && o.Name == commonsCluster {
					b = it
				}
			}
		}
		return b.Status.Phase == "completed" || b.Status.Phase == "failed"
	}, 10*time.Minute, 3*time.Second, "the ScheduledBackup's immediate Backup completes")
	require.Equal(t, "completed", b.Status.Phase, "Backup %s: %s", b.Metadata.Name, b.Status.Error)
	p.backupEnd = b.Status.StoppedAt
	t.Logf("Backup %s completed on %s: backupId %s, method %s, %s to %s (%.0fs)", b.Metadata.Name, b.Status.Instance.PodName, b.Status.BackupID, b.Status.Method,
		b.Status.StartedAt.Format(time.RFC3339), b.Status.StoppedAt.Format(time.RFC3339), b.Status.StoppedAt.Sub(b.Status.StartedAt).Seconds())
}

// writeAroundTarget writes rows, notes the server's time, writes more, and
// switches the WAL so that the segment with the later commits is archived
// (recovery to a time stops at the first commit after it, which must be in
// the archive).
func (p *pitr) writeAroundTarget(t *testing.T) {
	ctx := context.Background()
	conn := p.conn(t, commonsCluster)
	defer conn.Close(ctx)
	_, err := conn.Exec(ctx, "CREATE TABLE pitr_rows (id serial PRIMARY KEY, note text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())")
	require.NoError(t, err)
	insert := func(note string) {
		_, err := conn.Exec(ctx, "INSERT INTO pitr_rows (note) VALUES ($1)", note) // one transaction each
		require.NoError(t, err)
	}
	for i := 1; i <= 5; i++ {
		p.before = append(p.before, fmt.Sprintf("before %d", i))
		insert(p.before[i-1])
	}
	p.orthanc.before = p.uploadInstances(t, 1, 3)
	time.Sleep(1500 * time.Millisecond)
	require.NoError(t, conn.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&p.target))
	time.Sleep(1500 * time.Millisecond)
	for i := 1; i <= 5; i++ {
		p.after = append(p.after, fmt.Sprintf("after %d", i))
		insert(p.after[i-1])
	}
	p.orthanc.after = p.uploadInstances(t, 4, 3)
	p.requireOrthancHolds(t, append(slices.Clone(p.orthanc.before), p.orthanc.after...), "Orthanc lists the 6 instances")
	require.True(t, p.backupEnd.Before(p.target), "the base backup (ended %s) precedes the target %s", p.backupEnd, p.target)
	seg := p.switchAndArchive(t, conn)
	var n int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM pitr_rows").Scan(&n))
	require.Equal(t, 10, n)
	t.Logf("5 rows and 3 DICOM instances, target %s (server time), 5 rows and 3 instances; WAL up to %s archived", p.target.UTC().Format(rfc3339Micro), seg)
}

const rfc3339Micro = "2006-01-02T15:04:05.000000Z07:00"

// restoreManifest is a new Cluster bootstrapped by recovery up to
// targetTime from store (the backed-up Cluster's
// spec.backup.barmanObjectStore, as JSON) as an external cluster named
// after the backed-up Cluster (its serverName in the bucket): the runbook of
// docs/operations.md with the test's image, sizes and storage class.
func (p *pitr) restoreManifest(targetTime, store string) string {
	return fmt.Sprintf(`apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata:
  name: %[1]s
  namespace: %[2]s
spec:
  instances: 1
  imageName: %[3]s
  storage:
    size: 1Gi
    storageClass: standard
  resources:
    requests: {cpu: 50m, memory: 256Mi}
  postgresql:
    parameters:
      shared_buffers: 128MB
  enableSuperuserAccess: true
  superuserSecret:
    name: %[4]s-admin
  bootstrap:
    recovery:
      source: %[4]s
      recoveryTarget:
        targetTime: %[5]q
  externalClusters:
    - name: %[4]s
      barmanObjectStore: %[6]s
`, restoredCluster, p.ns, p.imgs.Operand.Ref(), commonsCluster, targetTime, store)
}

// restoreToTime creates the recovered Cluster and compares its rows with
// the rows written before the target.
func (p *pitr) restoreToTime(t *testing.T) {
	// PostgreSQL's notation, as the runbook says: CloudNativePG 1.27 turns an
	// RFC 3339 UTC time into "...Z", which PostgreSQL refuses in
	// recovery_target_time (the chart converts; here the manifest is raw).
	target := p.target.UTC().Format("2006-01-02 15:04:05.000000-07")
	start := time.Now()
	store := p.kubectl(t, "get", "-n", p.ns, "cluster/"+commonsCluster, "-o", "jsonpath={.spec.backup.barmanObjectStore}")
	var obj map[string]any
	require.NoError(t, json.Unmarshal([]byte(store), &obj), store)
	obj["serverName"] = commonsCluster
	storeJSON, err := json.Marshal(obj)
	require.NoError(t, err)
	manifest := p.restoreManifest(target, string(storeJSON))
	t.Logf("restore manifest:\n%s", manifest)
	out, err := p.apply(manifest)
	require.NoError(t, err, out)
	p.kubectl(t, "wait", "-n", p.ns, "cluster/"+restoredCluster, "--for=condition=Ready", "--timeout=15m")
	t.Logf("Cluster %s recovered to %s and Ready %.1fs after apply", restoredCluster, target, time.Since(start).Seconds())

	ctx := context.Background()
	conn := p.conn(t, restoredCluster)
	defer conn.Close(ctx)
	got := rowNotes(t, conn)
	assert.Equal(t, p.before, got, "exactly the rows committed before %s", target)
	var inRecovery bool
	require.NoError(t, conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery))
	assert.False(t, inRecovery, "the recovered Cluster is promoted")
	indexed := p.indexedInstances(t, restoredCluster)
	assert.Equal(t, sortedCopy(p.orthanc.before), indexed, "Orthanc's index in the recovered Cluster: exactly the instances stored before %s", target)
	t.Logf("Orthanc's index in the recovered Cluster: %d instances %v (stored before the target: %v; after: %v)", len(indexed), indexed, p.orthanc.before, p.orthanc.after)
	t.Logf("recovered Cluster holds %v (the source holds %d rows: %v then %v)", got, len(p.before)+len(p.after), p.before, p.after)
}

// rowNotes returns the notes of the test's rows, in the order written.
func rowNotes(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT note FROM pitr_rows ORDER BY id")
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return got
}

// restoreInPlace is the chart's runbook for restoring commons' own Cluster
// to the target: the Cluster deleted (its volumes go with it), then helm
// upgrade with postgresql.cloudnativepg.recovery (targetTime) and a new
// backup.serverName and a new secretInit.revision (the recreated Cluster's
// new CA copied into the tenant Secrets); the Cluster comes back with exactly the rows from
// before the target, the tenant's provisioner still logs in with the
// password in its tenant Secret (roles come back with the data), and the
// recovered Cluster archives WAL into its new folder.
func (p *pitr) restoreInPlace(t *testing.T) {
	ctx := context.Background()
	p.kubectl(t, "delete", "-n", p.ns, "cluster/"+restoredCluster, "--wait=false")
	p.scaleOrthanc(t, 0) // the runbook: writers stopped first
	start := time.Now()
	p.kubectl(t, "delete", "-n", p.ns, "cluster/"+commonsCluster, "--timeout=5m")
	require.Eventually(t, func() bool {
		pvcs, err := p.c.Client().CoreV1().PersistentVolumeClaims(p.ns).List(ctx, metav1.ListOptions{LabelSelector: "cnpg.io/cluster=" + commonsCluster})
		return err == nil && len(pvcs.Items) == 0
	}, 5*time.Minute, 2*time.Second, "the deleted Cluster's volumes are gone")
	t.Logf("Cluster %s and its volumes deleted in %.1fs", commonsCluster, time.Since(start).Seconds())

	target := p.target.UTC().Format(rfc3339Micro)
	start = time.Now()
	out := p.c.Helm3(t, append([]string{"upgrade", "commons", filepath.Join(p.cm.charts, "charts", "commons"), "-n", p.ns,
		"--wait", "--wait-for-jobs", "--timeout", "15m"}, append(p.values,
		"--set", "postgresql.cloudnativepg.recovery.enabled=true",
		"--set", "postgresql.cloudnativepg.recovery.targetTime="+target,
		"--set", "postgresql.cloudnativepg.backup.serverName="+inPlaceServerName,
		// The recreated Cluster has a new CA: a new revision reruns
		// secret-init, which copies it into the tenant Secret again.
		"--set", "secretInit.revision=1")...)...)
	require.Contains(t, out, "STATUS: deployed")
	p.kubectl(t, "wait", "-n", p.ns, "cluster/"+commonsCluster, "--for=condition=Ready", "--timeout=15m")
	t.Logf("helm upgrade with recovery to %s: Cluster %s Ready %.1fs after the upgrade started", target, commonsCluster, time.Since(start).Seconds())

	conn := p.conn(t, commonsCluster)
	defer conn.Close(ctx)
	assert.Equal(t, p.before, rowNotes(t, conn), "commons' Cluster recovered in place: exactly the rows committed before %s", target)

	// The tenant's provisioner, recovered with the data, logs in with the
	// password its tenant Secret holds; the Secret carries the new CA.
	ts, err := p.c.Client().CoreV1().Secrets(p.tenant).Get(ctx, "kommons-commons", metav1.GetOptions{})
	require.NoError(t, err)
	ca, err := p.c.Client().CoreV1().Secrets(p.ns).Get(ctx, commonsCluster+"-ca", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, string(ca.Data["ca.crt"]), string(ts.Data["ca.crt"]), "the tenant Secret holds the recreated Cluster's CA")
	rw := fmt.Sprintf("%s-rw.%s.svc", commonsCluster, p.ns)
	tc, err := pgx.ConnectConfig(ctx, p.clusterConnConfig(t, p.ns, commonsCluster, rw, string(ts.Data["PGUSER"]), string(ts.Data["PGPASSWORD"]), "postgres"))
	require.NoError(t, err, "the tenant's provisioner %s logs in to the recovered Cluster", ts.Data["PGUSER"])
	tc.Close(ctx)

	// Orthanc, started again, lists exactly the instances stored before the target.
	p.scaleOrthanc(t, 1)
	p.requireOrthancHolds(t, p.orthanc.before, "Orthanc on the recovered Cluster: exactly the instances stored before "+target)
	t.Logf("Orthanc restarted on the recovered Cluster lists the %d instances stored before the target", len(p.orthanc.before))

	// The recovered Cluster archives into its new folder.
	seg := p.switchAndArchive(t, conn)
	p.kubectl(t, "wait", "-n", p.ns, "cluster/"+commonsCluster, "--for=condition=ContinuousArchiving=True", "--timeout=5m")
	backup := p.minioClient(t, "commons-postgresql-backup-s3", "ACCESS_KEY_ID", "ACCESS_SECRET_KEY")
	var has bool
	for o := range backup.ListObjects(ctx, p.bucket, minio.ListObjectsOptions{Prefix: inPlaceServerName + "/wals/", Recursive: true}) {
		require.NoError(t, o.Err)
		has = has || strings.Contains(o.Key, seg)
	}
	assert.True(t, has, "segment %s archived under %s/", seg, inPlaceServerName)
}

func (p *pitr) dumpPITR(t *testing.T) {
	kubectl := filepath.Join(p.c.Tools.KubeBin, "kubectl")
	for _, args := range [][]string{
		{"get", "pods,jobs,pvc,clusters.postgresql.cnpg.io,backups.postgresql.cnpg.io,scheduledbackups.postgresql.cnpg.io", "-n", p.ns, "-o", "wide"},
		{"get", "clusters.postgresql.cnpg.io", "-n", p.ns, "-o", "yaml"},
		{"get", "backups.postgresql.cnpg.io", "-n", p.ns, "-o", "yaml"},
		{"get", "events", "-n", p.ns, "--sort-by=.lastTimestamp"},
		{"logs", "-n", operatorNamespace, "deployment/cnpg-controller-manager", "--tail", "80"},
	} {
		out, _ := p.c.Exec(kubectl, args...)
		t.Logf("kubectl %s:\n%s", strings.Join(args, " "), out)
	}
	pods, err := p.c.Client().CoreV1().Pods(p.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return
	}
	for _, pod := range pods.Items {
		for _, c := range append(append(pod.Spec.InitContainers[:0:0], pod.Spec.InitContainers...), pod.Spec.Containers...) {
			out, _ := p.c.Exec(kubectl, "logs", "-n", p.ns, pod.Name, "-c", c.Name, "--tail", "80")
			t.Logf("logs %s[%s]:\n%s", pod.Name, c.Name, out)
		}
	}
	t.Logf("cluster logs: %s", filepath.Join(p.c.Dir, "logs"))
}
