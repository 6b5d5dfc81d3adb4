package render_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/kommons/kommons/internal/testutil/hostalias"
	"github.com/kommons/kommons/internal/testutil/pgtest"
	"github.com/kommons/kommons/test/render"
)

// renderedDump returns the backup CronJob's dump script and the env of its
// dump container, as charts/commons renders them.
func renderedDump(t *testing.T, values map[string]any) (string, map[string]corev1.EnvVar) {
	t.Helper()
	m := renderCommons(t, values)
	cm := render.Decode[corev1.ConfigMap](t, m.MustGet(t, "ConfigMap", "commons", "commons-backup-scripts"))
	cj := render.Decode[batchv1.CronJob](t, m.MustGet(t, "CronJob", "commons", "commons-backup"))
	dump := container(t, cj.Spec.JobTemplate.Spec.Template.Spec, "dump", true)
	require.Equal(t, []string{"/bin/sh", "/scripts/dump.sh"}, dump.Command)
	return cm.Data["dump.sh"], envOf(dump)
}

// runDump runs the rendered script with /bin/sh, the PostgreSQL client tools
// of the throwaway server on PATH, the rendered env with the credentials and
// port of that server (a bundledServer): PGHOST stays the Service name,
// resolved to the server (hostalias), and libpq verifies the server with the
// rendered PGSSLMODE (verify-full) and the bundled CA at PGSSLROOTCERT.
func runDump(t *testing.T, s *pgtest.Server, script string, env map[string]corev1.EnvVar, out string) (string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dump.sh")
	require.NoError(t, os.WriteFile(path, []byte(script), 0o755))
	bin, err := pgtest.BinDir()
	require.NoError(t, err)
	require.Equal(t, bundledHost, env["PGHOST"].Value)
	require.Equal(t, "verify-full", env["PGSSLMODE"].Value)
	require.Equal(t, "/etc/kommons/postgresql-ca/ca.crt", env["PGSSLROOTCERT"].Value)
	ca := filepath.Join(t.TempDir(), "ca.crt")
	require.NoError(t, os.WriteFile(ca, bundledTLSSecret(t).Data["ca.crt"], 0o600))
	cmd := hostalias.Command(t, context.Background(), map[string]string{bundledHost: s.Host()}, "/bin/sh", path)
	cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "BACKUP_DIR=" + out, "BACKUP_DATABASES=" + env["BACKUP_DATABASES"].Value,
		"PGHOST=" + bundledHost, "PGSSLMODE=" + env["PGSSLMODE"].Value, "PGSSLROOTCERT=" + ca}
	for _, e := range s.Env() { // PGPORT, PGUSER, PGPASSWORD, PGDATABASE of the test server
		name, _, _ := strings.Cut(e, "=")
		require.Contains(t, env, name, "the rendered dump container sets %s", name)
		if name != "PGHOST" && name != "PGSSLMODE" {
			cmd.Env = append(cmd.Env, e)
		}
	}
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err = cmd.Run()
	return buf.String(), err
}

// TestBackupDumpAndRestore runs the rendered backup dump against a real
// PostgreSQL, then restores a dump with pg_restore into a fresh database.
func TestBackupDumpAndRestore(t *testing.T) {
	s := bundledServer(t, pgtest.Options{})
	for _, db := range []string{"imaging_orthanc_orthanc", "lab_lims_main"} {
		s.Exec(t, "CREATE DATABASE "+db)
		conn := pgtest.Connect(t, s.DSN(pgtest.AdminUser, s.AdminPassword(), db))
		_, err := conn.Exec(context.Background(), `CREATE TABLE studies (id int PRIMARY KEY, uid text NOT NULL);
			INSERT INTO studies SELECT g, 'uid-' || g FROM generate_series(1, 250) g`)
		require.NoError(t, err)
	}

	t.Run("every database", func(t *testing.T) {
		script, env := renderedDump(t, map[string]any{"backups": map[string]any{"enabled": true}})
		out := t.TempDir()
		log, err := runDump(t, s, script, env, out)
		require.NoError(t, err, log)
		stamps, err := os.ReadDir(out)
		require.NoError(t, err)
		require.Len(t, stamps, 1)
		dir := filepath.Join(out, stamps[0].Name())
		require.Regexp(t, `^[0-9]{8}T[0-9]{6}Z$`, stamps[0].Name())
		complete, err := os.ReadFile(filepath.Join(dir, ".complete"))
		require.NoError(t, err)
		require.Equal(t, "2\n", string(complete))
		for _, db := range []string{"imaging_orthanc_orthanc", "lab_lims_main"} {
			require.FileExists(t, filepath.Join(dir, db+".dump"))
		}
		_, err = os.Stat(filepath.Join(dir, "postgres.dump"))
		require.True(t, os.IsNotExist(err), "the maintenance database is not dumped")

		// Restore as documented in the README and compare.
		s.Exec(t, "CREATE DATABASE restored")
		bin, err := pgtest.BinDir()
		require.NoError(t, err)
		cmd := exec.Command(filepath.Join(bin, "pg_restore"), "--clean", "--if-exists", "--no-owner",
			"--dbname=restored", filepath.Join(dir, "imaging_orthanc_orthanc.dump"))
		cmd.Env = append(os.Environ(), s.Env()...)
		restoreOut, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", restoreOut)
		conn := pgtest.Connect(t, s.DSN(pgtest.AdminUser, s.AdminPassword(), "restored"))
		var n int
		var last string
		require.NoError(t, conn.QueryRow(context.Background(), "SELECT count(*), max(uid) FROM studies").Scan(&n, &last))
		require.Equal(t, 250, n)
		require.Equal(t, "uid-99", last)
	})

	t.Run("a failing dump uploads nothing", func(t *testing.T) {
		script, env := renderedDump(t, map[string]any{"backups": map[string]any{"enabled": true,
			"databases": []any{"lab_lims_main", "missing_db"}}})
		out := t.TempDir()
		log, err := runDump(t, s, script, env, out)
		require.Error(t, err, log)
		require.Contains(t, log, "pg_dump of missing_db failed")
		stamps, err := os.ReadDir(out)
		require.NoError(t, err)
		require.Len(t, stamps, 1)
		dir := filepath.Join(out, stamps[0].Name())
		_, err = os.Stat(filepath.Join(dir, ".complete"))
		require.True(t, os.IsNotExist(err), "no completion marker: the upload step refuses the set")
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		for _, e := range entries {
			require.False(t, strings.HasSuffix(e.Name(), ".partial"), "partial dump %s left behind", e.Name())
		}
		require.NotContains(t, log, s.AdminPassword())
	})
}
