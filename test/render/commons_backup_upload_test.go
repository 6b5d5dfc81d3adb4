package render_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/kommons/kommons/internal/testutil/miniotest"
	"github.com/kommons/kommons/internal/testutil/pgtest"
	"github.com/kommons/kommons/test/render"
)

// renderedBackup is the backup CronJob charts/commons renders for one set of values.
type renderedBackup struct {
	m    *render.Manifest
	pod  corev1.PodSpec
	dump string                   // dump.sh
	env  map[string]corev1.EnvVar // the dump container's env
}

func renderBackup(t *testing.T, values map[string]any) renderedBackup {
	t.Helper()
	m := renderCommons(t, values)
	cm := render.Decode[corev1.ConfigMap](t, m.MustGet(t, "ConfigMap", "commons", "commons-backup-scripts"))
	cj := render.Decode[batchv1.CronJob](t, m.MustGet(t, "CronJob", "commons", "commons-backup"))
	pod := cj.Spec.JobTemplate.Spec.Template.Spec
	return renderedBackup{m: m, pod: pod, dump: cm.Data["dump.sh"], env: envOf(container(t, pod, "dump", true))}
}

// mcliPath returns a PATH directory holding `mcli`, a symlink to the pinned
// MinIO client: the object-store image ships the client under that name.
func mcliPath(t *testing.T) string {
	t.Helper()
	mc := miniotest.RequireClient(t)
	dir := t.TempDir()
	require.NoError(t, os.Symlink(mc, filepath.Join(dir, "mcli")))
	return dir
}

// runUpload runs the rendered upload container as a process: its command
// and exactly its rendered env, its Secret and ConfigMap mounts materialized
// under a temporary root, its emptyDirs as directories (/backup is backupDir,
// the dump step's output), absolute paths in the env rebased onto them, and
// the S3 endpoint (a Service name that only resolves in a cluster) rewritten
// to wantEndpoint -> the test server. extra supplies Secrets the chart does
// not render (an existingSecret).
func runUpload(t *testing.T, b renderedBackup, m *render.Manifest, extra map[string]map[string]string,
	wantEndpoint, endpoint, pathDir, backupDir string) (string, error) {
	t.Helper()
	root := t.TempDir()
	mounts := m.MountFiles(t, "commons", b.pod, "upload", root, extra)
	require.Contains(t, mounts, "/scripts")
	require.Contains(t, mounts, "/secrets/s3")
	c := container(t, b.pod, "upload", false)
	for _, vm := range c.VolumeMounts {
		if _, ok := mounts[vm.MountPath]; ok {
			continue
		}
		dir := filepath.Join(root, vm.MountPath)
		if vm.MountPath == "/backup" {
			dir = backupDir
		}
		require.NoError(t, os.MkdirAll(dir, 0o700))
		mounts[vm.MountPath] = dir
	}
	rebase := func(s string) string {
		for mp, dir := range mounts {
			if s == mp {
				return dir
			}
			if strings.HasPrefix(s, mp+"/") {
				return dir + strings.TrimPrefix(s, mp)
			}
		}
		return s
	}
	env := []string{"PATH=" + pathDir + ":/usr/bin:/bin"}
	for _, e := range m.Env(t, "commons", c, extra) {
		name, v, _ := strings.Cut(e, "=")
		require.NotEqual(t, "PATH", name)
		if name == "S3_ENDPOINT" {
			require.Equal(t, wantEndpoint, v)
			v = endpoint
		}
		env = append(env, name+"="+rebase(v))
	}
	require.Len(t, c.Command, 2)
	require.Equal(t, "/bin/sh", c.Command[0])
	cmd := exec.CommandContext(context.Background(), "/bin/sh", rebase(c.Command[1]))
	cmd.Env = env
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), err
}

// keys lists the object keys under prefix, sorted.
func keys(t *testing.T, c *minio.Client, bucket, prefix string) []string {
	t.Helper()
	var out []string
	for o := range c.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		require.NoError(t, o.Err)
		out = append(out, o.Key)
	}
	sort.Strings(out)
	return out
}

// dumpSet runs the rendered dump script into a fresh directory and returns
// it with the stamp of the set it wrote.
func dumpSet(t *testing.T, s *pgtest.Server, b renderedBackup) (dir, stamp string) {
	t.Helper()
	dir = t.TempDir()
	log, err := runDump(t, s, b.dump, b.env, dir)
	require.NoError(t, err, log)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	return dir, entries[0].Name()
}

// stampAfter waits until the clock's UTC second differs from stamp, so the
// next dump set gets a new name (sets are stamped to the second).
func stampAfter(t *testing.T, stamp string) {
	t.Helper()
	require.Eventually(t, func() bool { return time.Now().UTC().Format("20060102T150405Z") > stamp },
		10*time.Second, 20*time.Millisecond)
}

func seedDatabases(t *testing.T, s *pgtest.Server, dbs ...string) {
	t.Helper()
	for _, db := range dbs {
		s.Exec(t, "CREATE DATABASE "+db)
		conn := pgtest.Connect(t, s.DSN(pgtest.AdminUser, s.AdminPassword(), db))
		_, err := conn.Exec(context.Background(), `CREATE TABLE studies (id int PRIMARY KEY, uid text NOT NULL);
			INSERT INTO studies SELECT g, 'uid-' || g FROM generate_series(1, 250) g`)
		require.NoError(t, err)
	}
}

const bundledEndpoint = "http://commons-minio.commons.svc.cluster.local:9000"

// TestBackupUploadRetentionRestore runs the rendered backup CronJob's two
// containers as real processes: the dump script against a real PostgreSQL,
// then the upload script with the real MinIO client against a real MinIO
// (the bundled store's root credentials, as rendered). It checks the object
// layout, that a second run adds a set, that retention removes the sets
// whose stamp is older than retentionDays and nothing else, and restores a
// database from the uploaded object as the README documents.
func TestBackupUploadRetentionRestore(t *testing.T) {
	pathDir := mcliPath(t)
	srv := miniotest.New(t, miniotest.Options{})
	s := bundledServer(t, pgtest.Options{})
	dbs := []string{"imaging_orthanc_orthanc", "lab_lims_main"}
	seedDatabases(t, s, dbs...)
	b := renderBackup(t, map[string]any{"backups": map[string]any{"enabled": true, "retentionDays": 3}})
	m := withRootSecret(b.m, srv)
	c := srv.Client(t)
	ctx := context.Background()
	const bucket, prefix = "kommons-backups", "postgresql/"

	// Run 1: the bucket does not exist yet; the script creates it.
	dir1, stamp1 := dumpSet(t, s, b)
	log, err := runUpload(t, b, m, nil, bundledEndpoint, srv.Endpoint(), pathDir, dir1)
	require.NoError(t, err, log)
	require.NotContains(t, log, srv.RootPassword())
	require.Contains(t, log, "uploaded 2 dump(s) to kommons-backups/postgresql/"+stamp1+"/")
	set1 := []string{prefix + stamp1 + "/.complete", prefix + stamp1 + "/imaging_orthanc_orthanc.dump", prefix + stamp1 + "/lab_lims_main.dump"}
	require.Equal(t, set1, keys(t, c, bucket, prefix))
	for _, db := range dbs { // byte for byte what pg_dump wrote
		local, err := os.ReadFile(filepath.Join(dir1, stamp1, db+".dump"))
		require.NoError(t, err)
		obj, err := c.GetObject(ctx, bucket, prefix+stamp1+"/"+db+".dump", minio.GetObjectOptions{})
		require.NoError(t, err)
		var remote bytes.Buffer
		_, err = remote.ReadFrom(obj)
		require.NoError(t, err)
		require.Equal(t, local, remote.Bytes(), db)
	}

	// Sets stamped 10 and 2 days ago (retentionDays is 3), and keys that are
	// not sets: only the 10-day-old set may go.
	now := time.Now().UTC()
	old := prefix + now.Add(-10*24*time.Hour).Format("20060102T150405Z") + "/lab_lims_main.dump"
	recent := prefix + now.Add(-2*24*time.Hour).Format("20060102T150405Z") + "/lab_lims_main.dump"
	foreign := []string{prefix + "manual/keep.dump", prefix + "20200101T000000Z.dump", "other/20200101T000000Z/x.dump"}
	for _, k := range append([]string{old, recent}, foreign...) {
		_, err := c.PutObject(ctx, bucket, k, strings.NewReader("x"), 1, minio.PutObjectOptions{})
		require.NoError(t, err)
	}

	// Run 2: a new set, then the retention.
	stampAfter(t, stamp1)
	dir2, stamp2 := dumpSet(t, s, b)
	require.NotEqual(t, stamp1, stamp2)
	log, err = runUpload(t, b, m, nil, bundledEndpoint, srv.Endpoint(), pathDir, dir2)
	require.NoError(t, err, log)
	require.Contains(t, log, "retention: 1 set(s) older than 3 days removed")
	want := append(append([]string{}, set1...),
		prefix+stamp2+"/.complete", prefix+stamp2+"/imaging_orthanc_orthanc.dump", prefix+stamp2+"/lab_lims_main.dump",
		recent, prefix+"manual/keep.dump", prefix+"20200101T000000Z.dump")
	sort.Strings(want)
	require.Equal(t, want, keys(t, c, bucket, prefix))
	require.Equal(t, []string{"other/20200101T000000Z/x.dump"}, keys(t, c, bucket, "other/"))

	t.Run("restore from the uploaded object as documented", func(t *testing.T) {
		// README: mcli alias set, mcli ls, mcli cp, pg_restore --clean --if-exists --no-owner --role.
		home := t.TempDir()
		mcEnv := []string{"PATH=" + pathDir + ":/usr/bin:/bin", "HOME=" + home, "MC_CONFIG_DIR=" + filepath.Join(home, ".mc")}
		mcli := func(args ...string) string {
			cmd := exec.Command(filepath.Join(pathDir, "mcli"), args...)
			cmd.Env = mcEnv
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "mcli %s:\n%s", args[0], out)
			return string(out)
		}
		mcli("alias", "set", "backup", srv.Endpoint(), srv.RootUser(), srv.RootPassword())
		require.Contains(t, mcli("ls", "backup/kommons-backups/postgresql/"), " "+stamp2+"/\n")
		mcli("cp", "backup/kommons-backups/postgresql/"+stamp2+"/imaging_orthanc_orthanc.dump", home+"/")

		// The database as a module would have it: owned by its role, emptied.
		s.Exec(t, "CREATE ROLE restored_owner LOGIN")
		s.Exec(t, "CREATE DATABASE restored OWNER restored_owner")
		bin, err := pgtest.BinDir()
		require.NoError(t, err)
		cmd := exec.Command(filepath.Join(bin, "pg_restore"), "--clean", "--if-exists", "--no-owner",
			"--role=restored_owner", "--dbname=restored", filepath.Join(home, "imaging_orthanc_orthanc.dump"))
		cmd.Env = append(os.Environ(), s.Env()...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		conn := pgtest.Connect(t, s.DSN(pgtest.AdminUser, s.AdminPassword(), "restored"))
		var n int
		var last, owner string
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*), max(uid), (SELECT tableowner FROM pg_tables WHERE tablename = 'studies') FROM studies`).
			Scan(&n, &last, &owner))
		require.Equal(t, 250, n)
		require.Equal(t, "uid-99", last)
		require.Equal(t, "restored_owner", owner, "--role makes the module's role own the restored objects")
	})
}

// TestBackupUploadExternalLeastPrivilege points the chart at an external S3
// service (here the real MinIO, path addressing) whose existingSecret holds
// a key limited to the backup bucket, which already exists: the upload and
// the retention work with only list/get/put/delete on that bucket.
func TestBackupUploadExternalLeastPrivilege(t *testing.T) {
	pathDir := mcliPath(t)
	srv := miniotest.New(t, miniotest.Options{})
	s := bundledServer(t, pgtest.Options{})
	seedDatabases(t, s, "imaging_orthanc_orthanc")
	ctx := context.Background()
	const bucket = "site-backups"
	require.NoError(t, srv.Client(t).MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: miniotest.Region}))
	adm := srv.Admin(t)
	policy := `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":["s3:ListBucket","s3:GetBucketLocation"],"Resource":["arn:aws:s3:::site-backups"]},
		{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject","s3:DeleteObject"],"Resource":["arn:aws:s3:::site-backups/*"]}]}`
	require.NoError(t, adm.AddCannedPolicy(ctx, "backup-only", []byte(policy)))
	require.NoError(t, adm.AddUser(ctx, "backup-writer", "backup-writer-secret-123"))
	require.NoError(t, adm.SetPolicy(ctx, "backup-only", "backup-writer", false))

	b := renderBackup(t, map[string]any{
		"objectStorage": map[string]any{"bundled": false, "external": map[string]any{
			"endpoint": srv.Endpoint(), "region": miniotest.Region, "addressing": "path", "existingSecret": "s3-admin"}},
		"backups": map[string]any{"enabled": true, "bucket": bucket, "prefix": "pg/nightly", "databases": []any{"imaging_orthanc_orthanc"}},
	})
	extra := map[string]map[string]string{"Secret/s3-admin": {"accessKey": "backup-writer", "secretKey": "backup-writer-secret-123"}}
	c := srv.Client(t)
	old := "pg/nightly/20200101T000000Z/imaging_orthanc_orthanc.dump"
	_, err := c.PutObject(ctx, bucket, old, strings.NewReader("x"), 1, minio.PutObjectOptions{})
	require.NoError(t, err)

	dir, stamp := dumpSet(t, s, b)
	log, err := runUpload(t, b, b.m, extra, srv.Endpoint(), srv.Endpoint(), pathDir, dir)
	require.NoError(t, err, log)
	require.NotContains(t, log, "backup-writer-secret-123")
	require.Equal(t, []string{"pg/nightly/" + stamp + "/.complete", "pg/nightly/" + stamp + "/imaging_orthanc_orthanc.dump"},
		keys(t, c, bucket, "pg/"), "the 2020 set is past the 14-day default retention")
}

// TestBackupUploadRefuses checks what the upload step does not do: upload a
// set the dump step did not complete, or print a secret key the client
// rejects.
func TestBackupUploadRefuses(t *testing.T) {
	pathDir := mcliPath(t)
	srv := miniotest.New(t, miniotest.Options{})
	b := renderBackup(t, map[string]any{"backups": map[string]any{"enabled": true}})
	m := withRootSecret(b.m, srv)
	c := srv.Client(t)

	t.Run("an incomplete set", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "20261122T021700Z"), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "20261122T021700Z", "a.dump"), []byte("PGDMP"), 0o600))
		log, err := runUpload(t, b, m, nil, bundledEndpoint, srv.Endpoint(), pathDir, dir)
		require.Error(t, err, log)
		require.Equal(t, 1, err.(*exec.ExitError).ExitCode(), log)
		require.Contains(t, log, "dump set 20261122T021700Z is incomplete (no .complete): nothing uploaded")
		buckets, err := c.ListBuckets(context.Background())
		require.NoError(t, err)
		require.Empty(t, buckets, "nothing was created or uploaded")
	})

	t.Run("a malformed secret key is not logged", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "20261122T021700Z"), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "20261122T021700Z", ".complete"), []byte("0\n"), 0o600))
		short := &render.Object{APIVersion: "v1", Kind: "Secret", Namespace: "commons", Name: "commons-minio-root",
			YAML: []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: commons-minio-root, namespace: commons}\nstringData:\n" +
				"  rootUser: " + srv.RootUser() + "\n  rootPassword: s3cr3t\n")}
		bad := *m
		bad.Objects = nil
		for _, o := range m.Objects {
			if !(o.Kind == "Secret" && o.Name == "commons-minio-root") {
				bad.Objects = append(bad.Objects, o)
			}
		}
		bad.Objects = append(bad.Objects, short)
		log, err := runUpload(t, b, &bad, nil, bundledEndpoint, srv.Endpoint(), pathDir, dir)
		require.Error(t, err, log)
		require.Equal(t, 2, err.(*exec.ExitError).ExitCode(), log)
		require.Contains(t, log, "cannot use the S3 credentials for "+srv.Endpoint())
		require.NotContains(t, log, "s3cr3t")
	})
}
