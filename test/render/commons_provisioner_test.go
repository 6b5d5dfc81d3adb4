package render_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/kommons/kommons/internal/testutil/hostalias"
	"github.com/kommons/kommons/internal/testutil/pgtest"
	"github.com/kommons/kommons/test/render"
)

// buildTools builds the named cmd/ binaries into one temporary directory.
func buildTools(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	args := []string{"build", "-o", dir + "/"}
	for _, n := range names {
		args = append(args, "./cmd/"+n)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go %s:\n%s", strings.Join(args, " "), out)
	return dir
}

// runContainer runs a rendered container's command from bin with its args
// (mount paths rebased under root) and resolved env, the PostgreSQL host and
// port pointed at the test server.
func runContainer(t *testing.T, bin string, m *render.Manifest, pod corev1.PodSpec, c corev1.Container,
	s *pgtest.Server, extra map[string]map[string]string) (string, error) {
	t.Helper()
	return runContainerIn(t, "commons", bin, m, pod, c, s, extra)
}

// runContainerIn is runContainer for a pod in namespace ns (its Secrets and
// ConfigMaps are read there).
func runContainerIn(t *testing.T, ns, bin string, m *render.Manifest, pod corev1.PodSpec, c corev1.Container,
	s *pgtest.Server, extra map[string]map[string]string) (string, error) {
	t.Helper()
	root := t.TempDir()
	mounts := m.MountFiles(t, ns, pod, c.Name, root, extra)
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		args[i] = a
		flag, val, isFlag := strings.Cut(a, "=") // --spec=/etc/... as well as /etc/...
		if !isFlag || !strings.HasPrefix(flag, "-") {
			flag, val = "", a
		}
		for mp, dir := range mounts {
			if val == mp || strings.HasPrefix(val, mp+"/") {
				args[i] = dir + strings.TrimPrefix(val, mp)
				if flag != "" {
					args[i] = flag + "=" + args[i]
				}
			}
		}
	}
	rebaseMountedFiles(t, mounts)
	env := []string{"PATH=/usr/bin:/bin", "HOME=" + root}
	external := false // an external server's host and port are the test server's already
	for _, e := range m.Env(t, ns, c, extra) {
		if e == "PGHOST=localhost" || e == "PGHOST="+s.Host() {
			external = true
		}
	}
	for _, e := range m.Env(t, ns, c, extra) {
		name, val, _ := strings.Cut(e, "=")
		switch {
		case name == "PGHOST" && !external:
			// The Service name stays (verify-full checks it against the
			// certificate); it resolves to the test server (hostalias).
			require.Equal(t, "PGHOST="+bundledHost, e)
		case name == "PGPORT" && !external:
			require.Equal(t, "PGPORT=5432", e)
			e = "PGPORT=" + strconv.Itoa(s.Port())
		}
		for mp, dir := range mounts { // e.g. PGSSLROOTCERT, a file in a mounted volume
			if strings.HasPrefix(val, mp+"/") {
				e = name + "=" + dir + strings.TrimPrefix(val, mp)
			}
		}
		env = append(env, e)
	}
	require.Len(t, c.Command, 1)
	cmd := hostalias.Command(t, context.Background(), map[string]string{bundledHost: s.Host()}, filepath.Join(bin, filepath.Base(c.Command[0])), args...)
	cmd.Env = env
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), err
}

// TestRenderedProvisionerAgainstPostgreSQL runs the provisioner Job's
// wait-for-pg init container and pg-init container, as rendered, against a
// real PostgreSQL with the admin credentials, then logs in with the
// credentials a tenant Secret carries.
func TestRenderedProvisionerAgainstPostgreSQL(t *testing.T) {
	s := bundledServer(t, pgtest.Options{})
	bin := buildTools(t, "wait-for-pg", "pg-init")
	m := renderCommons(t, tenants(map[string]any{"namespace": "imaging"}))
	job := render.Decode[batchv1.Job](t, m.One(t, "Job", "commons-provisioner-"))
	pod := job.Spec.Template.Spec
	// The rendered admin Secret holds a random password; the server has its own.
	extra := map[string]map[string]string{"Secret/commons-postgresql-admin": {"username": pgtest.AdminUser, "password": s.AdminPassword()}}

	out, err := runContainer(t, bin, m, pod, pod.InitContainers[0], s, extra)
	require.NoError(t, err, "wait-for-pg init container:\n%s", out)
	require.NotContains(t, out, s.AdminPassword())

	c := container(t, pod, "provisioner", false)
	out, err = runContainer(t, bin, m, pod, c, s, extra)
	require.NoError(t, err, "provisioner container:\n%s", out)
	require.NotContains(t, out, s.AdminPassword())
	out, err = runContainer(t, bin, m, pod, c, s, extra)
	require.NoError(t, err, "rerun (idempotent):\n%s", out)

	tenant := secretData(t, m.MustGet(t, "Secret", "imaging", "kommons-commons"))
	conn := pgtest.Connect(t, s.DSN(tenant["PGUSER"], tenant["PGPASSWORD"], tenant["PGDATABASE"]))
	var super, createDB, createRole bool
	require.NoError(t, conn.QueryRow(context.Background(),
		"SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user").Scan(&super, &createDB, &createRole))
	require.False(t, super, "the provisioner is not a superuser")
	require.True(t, createDB)
	require.True(t, createRole)
}

// TestRenderedProvisionerMigratesTheSharedProvisioner upgrades an
// installation of the previous chart as the rendered provisioner Job does,
// on PostgreSQL 18 (the chart's default major): a module role and database
// that the shared kommons_provisioner created for tenant imaging (as the
// old pg-init did) are handed to imaging's own provisioner, the module's
// password keeps working, and the shared role can no longer log in or
// administer anything.
func TestRenderedProvisionerMigratesTheSharedProvisioner(t *testing.T) {
	s := bundledServer(t, pgtest.Options{Major: 18})
	bin := buildTools(t, "wait-for-pg", "pg-init")
	ctx := context.Background()
	const legacyPW, modulePW = "legacy-password-123", "module-password-123"
	s.Exec(t, "CREATE ROLE kommons_provisioner LOGIN NOSUPERUSER CREATEDB CREATEROLE PASSWORD '"+legacyPW+"'")
	legacy := pgtest.Connect(t, s.DSN("kommons_provisioner", legacyPW, "postgres"))
	for _, sql := range []string{
		"CREATE ROLE imaging_pacs_orthanc LOGIN PASSWORD '" + modulePW + "'",
		"GRANT imaging_pacs_orthanc TO CURRENT_USER",
		`COMMENT ON ROLE imaging_pacs_orthanc IS '{"managedBy":"kommons/pg-init","namespace":"imaging","release":"pacs","name":"orthanc","reclaimPolicy":"retain"}'`,
		"CREATE DATABASE imaging_pacs_orthanc OWNER imaging_pacs_orthanc",
	} {
		_, err := legacy.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}
	legacy.Close(ctx)

	m := renderCommons(t, tenants(map[string]any{"namespace": "imaging"}))
	job := render.Decode[batchv1.Job](t, m.One(t, "Job", "commons-provisioner-"))
	pod := job.Spec.Template.Spec
	extra := map[string]map[string]string{"Secret/commons-postgresql-admin": {"username": pgtest.AdminUser, "password": s.AdminPassword()}}
	out, err := runContainer(t, bin, m, pod, container(t, pod, "provisioner", false), s, extra)
	require.NoError(t, err, "provisioner container:\n%s", out)
	require.Contains(t, out, "handed from kommons_provisioner to kommons_tenant_imaging")

	tenant := secretData(t, m.MustGet(t, "Secret", "imaging", "kommons-commons"))
	admin := pgtest.Connect(t, s.AdminDSN())
	var members []string
	rows, err := admin.Query(ctx, `SELECT m.rolname || CASE WHEN a.admin_option THEN ' (admin)' ELSE '' END
		FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member WHERE a.roleid = 'imaging_pacs_orthanc'::regrole ORDER BY 1`)
	require.NoError(t, err)
	for rows.Next() {
		var m string
		require.NoError(t, rows.Scan(&m))
		members = append(members, m)
	}
	require.Equal(t, []string{tenant["PGUSER"] + " (admin)"}, members, "only the tenant's provisioner holds the module role")
	var canLogin bool
	require.NoError(t, admin.QueryRow(ctx, "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'kommons_provisioner'").Scan(&canLogin))
	require.False(t, canLogin, "the shared provisioner is disabled")
	// The module's password still works, and its tenant's provisioner manages it.
	pgtest.Connect(t, s.DSN("imaging_pacs_orthanc", modulePW, "imaging_pacs_orthanc")).Close(ctx)
	prov := pgtest.Connect(t, s.DSN(tenant["PGUSER"], tenant["PGPASSWORD"], "postgres"))
	_, err = prov.Exec(ctx, "ALTER ROLE imaging_pacs_orthanc CONNECTION LIMIT 20")
	require.NoError(t, err, "the tenant's provisioner administers its migrated module role")
}

// rebaseMountedFiles rewrites, in every mounted file, the absolute paths
// under a mount (after a space, a quote or "=") to their directory under the
// test's root: a spec that names other mounted files (pg-init's password
// files) then works outside a pod.
func rebaseMountedFiles(t *testing.T, mounts map[string]string) {
	t.Helper()
	for _, dir := range mounts {
		require.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			orig := b
			for mp, to := range mounts {
				for _, lead := range []string{" ", `"`, "="} {
					b = bytes.ReplaceAll(b, []byte(lead+mp+"/"), []byte(lead+to+"/"))
				}
			}
			if bytes.Equal(b, orig) {
				return nil
			}
			return os.WriteFile(path, b, 0o600)
		}))
	}
}
