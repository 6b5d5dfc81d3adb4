package render_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/kommons/kommons/internal/kubeapi"
	"github.com/kommons/kommons/internal/pgready"
	"github.com/kommons/kommons/internal/testutil/pgtest"
	"github.com/kommons/kommons/internal/testutil/testca"
	"github.com/kommons/kommons/test/render"
)

// externalTLS renders commons in external mode against s (host localhost,
// the name its certificate lists) with caPEM as postgresql.external.tls.ca.
func externalTLS(t *testing.T, s *pgtest.Server, caPEM []byte) *render.Manifest {
	return renderCommons(t, merge(tenants(map[string]any{"namespace": "imaging"}), map[string]any{
		"postgresql": map[string]any{"mode": "external", "external": map[string]any{
			"host": "localhost", "port": s.Port(), "existingSecret": "pg-admin",
			"tls": map[string]any{"ca": string(caPEM)},
		}},
		"objectStorage": map[string]any{"bundled": false, "external": map[string]any{"endpoint": "https://s3.example", "existingSecret": "s3"}},
	}))
}

// TestExternalCAVerifyFull: external mode with postgresql.external.tls.ca on
// a real PostgreSQL with ssl=on and a certificate from a test CA. The
// rendered provisioner Job (wait-for-pg, then pg-init) connects with
// verify-full and the CA from the rendered ConfigMap; the tenant Secret
// carries PGSSLMODE=verify-full, PGSSLROOTCERT and ca.crt, and commons'
// helm test Pod logs in with them from the tenant namespace. With a CA that
// did not sign the server's certificate, the Job's wait-for-pg exits 2 at
// once, naming the cause.
func TestExternalCAVerifyFull(t *testing.T) {
	ca := testca.New(t, "kommons test CA")
	leaf := ca.Server(t, "localhost")
	s := pgtest.New(t, pgtest.Options{TLS: &pgtest.TLS{CertPEM: leaf.CertPEM, KeyPEM: leaf.KeyPEM}})
	bin := buildTools(t, "wait-for-pg", "pg-init")
	extra := map[string]map[string]string{"Secret/pg-admin": {"username": pgtest.AdminUser, "password": s.AdminPassword()}}

	m := externalTLS(t, s, ca.CertPEM)
	cm := render.Decode[corev1.ConfigMap](t, m.MustGet(t, "ConfigMap", "commons", "commons-postgresql-ca"))
	assert.Equal(t, string(ca.CertPEM), cm.Data["ca.crt"])
	job := render.Decode[batchv1.Job](t, m.One(t, "Job", "commons-provisioner-"))
	pod := job.Spec.Template.Spec
	for _, c := range []corev1.Container{pod.InitContainers[0], container(t, pod, "provisioner", false)} {
		assert.Contains(t, m.Env(t, "commons", c, extra), "PGSSLMODE=verify-full", c.Name)
		out, err := runContainer(t, bin, m, pod, c, s, extra)
		require.NoError(t, err, "%s:\n%s", c.Name, out)
		require.Contains(t, out, "sslmode=verify-full", c.Name)
	}

	tenant := secretData(t, m.MustGet(t, "Secret", "imaging", "kommons-commons"))
	assert.Equal(t, "verify-full", tenant["PGSSLMODE"])
	assert.Equal(t, "/etc/kommons/postgres-ca/ca.crt", tenant["PGSSLROOTCERT"])
	assert.Equal(t, string(ca.CertPEM), tenant["ca.crt"])
	assert.Equal(t, "localhost", tenant["PGHOST"])
	assert.Equal(t, strconv.Itoa(s.Port()), tenant["PGPORT"])
	hooks := testHooks(t, m)
	require.Len(t, hooks, 1)
	login := podContainer(t, hooks[0], "provisioner-login")
	out, err := runContainerIn(t, "imaging", bin, m, hooks[0].Spec, login, s, nil)
	require.NoError(t, err, "the tenant's provisioner over verify-full with the tenant Secret's CA:\n%s", out)

	wrong := externalTLS(t, s, testca.New(t, "another CA").CertPEM)
	job = render.Decode[batchv1.Job](t, wrong.One(t, "Job", "commons-provisioner-"))
	out, err = runContainer(t, bin, wrong, job.Spec.Template.Spec, job.Spec.Template.Spec.InitContainers[0], s, extra)
	require.Error(t, err)
	assert.Contains(t, out, "certificate signed by unknown authority")
	assert.Contains(t, out, "permanent error")
	assert.NotContains(t, out, s.AdminPassword())
}

// TestExternalCARefusesNonPEM: a CA that is not PEM fails the render with
// the value's name.
func TestExternalCARefusesNonPEM(t *testing.T) {
	_, err := render.Chart(commonsChart, render.Options{ReleaseName: "commons", Namespace: "commons", Values: map[string]any{
		"postgresql": map[string]any{"mode": "external", "external": map[string]any{
			"host": "db.example", "existingSecret": "pg-admin", "tls": map[string]any{"ca": "MIIB..."},
		}},
	}})
	require.ErrorContains(t, err, "tls")
}

// TestBundledTLS: bundled mode's default, TLS on. The rendered secret-init
// spec issues the server certificate (run here through the real
// reconciler), the StatefulSet runs ssl=on with it and with the rendered
// pg_hba.conf, and a real PostgreSQL started with that certificate and that
// pg_hba.conf is verified (verify-full) by the provisioner Job's settings
// and by a tenant's, each with its mounted CA, under the client Service's
// name (resolved here to the test server); a name the certificate does not
// list is refused, permanently for wait-for-pg; a client without TLS
// (sslmode=disable) is refused by the server, unless tls.allowPlaintext.
func TestBundledTLS(t *testing.T) {
	m := renderCommons(t, tenants(map[string]any{"namespace": "imaging"}))
	issued := secretData(t, m.MustGet(t, "Secret", "commons", "commons-postgresql-tls"))
	require.NotEmpty(t, issued["tls.crt"])
	sts := render.Decode[appsv1.StatefulSet](t, m.MustGet(t, "StatefulSet", "commons", "commons-postgresql"))
	pgc := container(t, sts.Spec.Template.Spec, "postgresql", false)
	assert.Contains(t, pgc.Args, "ssl=on")
	assert.Contains(t, pgc.Args, "ssl_cert_file=/etc/postgresql-tls/tls.crt")
	assert.Contains(t, pgc.Args, "ssl_key_file=/etc/postgresql-tls/tls.key")
	assert.Contains(t, pgc.Args, "hba_file=/etc/postgresql-hba/pg_hba.conf")
	assert.Contains(t, pgc.VolumeMounts, corev1.VolumeMount{Name: "tls", MountPath: "/etc/postgresql-tls", ReadOnly: true})
	assert.Contains(t, pgc.VolumeMounts, corev1.VolumeMount{Name: "hba", MountPath: "/etc/postgresql-hba", ReadOnly: true})
	var hbaFrom string
	for _, v := range sts.Spec.Template.Spec.Volumes {
		if v.Name == "hba" && v.ConfigMap != nil {
			hbaFrom = v.ConfigMap.Name
		}
	}
	require.Equal(t, "commons-postgresql-hba", hbaFrom, "the StatefulSet mounts the rendered pg_hba.conf")
	hba := []byte(render.Decode[corev1.ConfigMap](t, m.MustGet(t, "ConfigMap", "commons", hbaFrom)).Data["pg_hba.conf"])

	s := pgtest.New(t, pgtest.Options{TLS: &pgtest.TLS{CertPEM: []byte(issued["tls.crt"]), KeyPEM: []byte(issued["tls.key"])}})
	admin := pgtest.Connect(t, s.AdminDSN()) // opened before the rendered rules, which refuse its plain connection
	useHBA(t, s, admin, hba)
	const host = bundledHost
	connect := func(t *testing.T, host, caFile string) error {
		cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=postgres sslmode=verify-full sslrootcert=%s",
			host, s.Port(), pgtest.AdminUser, s.AdminPassword(), caFile))
		require.NoError(t, err)
		cfg.LookupFunc = func(context.Context, string) ([]string, error) { return []string{s.Host()}, nil } // the Service's name, in a cluster
		if _, err := pgready.Wait(context.Background(), cfg, pgready.Options{Timeout: 5 * time.Minute}); err != nil {
			return err
		}
		conn, err := pgx.ConnectConfig(context.Background(), cfg)
		require.NoError(t, err)
		defer conn.Close(context.Background())
		var ssl bool
		require.NoError(t, conn.QueryRow(context.Background(), "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl))
		require.True(t, ssl)
		return nil
	}

	job := render.Decode[batchv1.Job](t, m.One(t, "Job", "commons-provisioner-"))
	pod := job.Spec.Template.Spec
	c := container(t, pod, "provisioner", false)
	env := m.Env(t, "commons", c, nil)
	assert.Contains(t, env, "PGHOST="+host)
	assert.Contains(t, env, "PGSSLMODE=verify-full")
	assert.Contains(t, env, "PGSSLROOTCERT=/etc/kommons/postgresql-ca/ca.crt")
	mounts := m.MountFiles(t, "commons", pod, c.Name, t.TempDir(), nil)
	require.NoError(t, connect(t, host, filepath.Join(mounts["/etc/kommons/postgresql-ca"], "ca.crt")), "the provisioner Job's CA")

	tenant := secretData(t, m.MustGet(t, "Secret", "imaging", "kommons-commons"))
	assert.Equal(t, "verify-full", tenant["PGSSLMODE"])
	assert.Equal(t, issued["ca.crt"], tenant["ca.crt"], "the tenant Secret carries the issued CA")
	assert.Equal(t, "/etc/kommons/postgres-ca/ca.crt", tenant["PGSSLROOTCERT"])
	tenantCA := filepath.Join(t.TempDir(), "ca.crt")
	require.NoError(t, os.WriteFile(tenantCA, []byte(tenant["ca.crt"]), 0o600))
	require.NoError(t, connect(t, tenant["PGHOST"], tenantCA), "a tenant with its Secret's CA")

	err := connect(t, "commons-postgresql.elsewhere.svc.cluster.local", tenantCA)
	require.ErrorIs(t, err, pgready.ErrPermanent)
	assert.Contains(t, err.Error(), "x509: certificate is valid for")

	// Adversarial: the right password without TLS is refused by the server.
	plain := fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=postgres sslmode=disable", s.Host(), s.Port(), pgtest.AdminUser, s.AdminPassword())
	_, err = pgx.Connect(context.Background(), plain)
	require.Error(t, err, "sslmode=disable against the rendered pg_hba.conf")
	assert.Contains(t, err.Error(), "no pg_hba.conf entry")
	assert.Contains(t, err.Error(), "no encryption")

	// The transition value admits it again.
	transition := renderCommons(t, map[string]any{"postgresql": map[string]any{"tls": map[string]any{"allowPlaintext": true}}})
	cm := render.Decode[corev1.ConfigMap](t, transition.MustGet(t, "ConfigMap", "commons", "commons-postgresql-hba"))
	useHBA(t, s, admin, []byte(cm.Data["pg_hba.conf"]))
	conn, err := pgx.Connect(context.Background(), plain)
	require.NoError(t, err, "sslmode=disable with postgresql.tls.allowPlaintext")
	conn.Close(context.Background())
}

// useHBA makes hba the server's pg_hba.conf and reloads it through conn, a
// session opened before (the new rules may refuse pgtest's own plain
// connections), and checks PostgreSQL parsed every line.
func useHBA(t *testing.T, s *pgtest.Server, conn *pgx.Conn, hba []byte) {
	t.Helper()
	// Overwriting keeps the file's owner (the server's user).
	require.NoError(t, os.WriteFile(filepath.Join(s.DataDir(), "pg_hba.conf"), hba, 0o600))
	ctx := context.Background()
	_, err := conn.Exec(ctx, "SELECT pg_reload_conf()")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM pg_hba_file_rules WHERE error IS NULL AND type = 'hostssl'").Scan(&n))
		return n == 1
	}, 10*time.Second, 50*time.Millisecond, "the server reads the rendered pg_hba.conf")
	var errs int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL").Scan(&errs))
	require.Zero(t, errs, "every line of the rendered pg_hba.conf parses:\n%s", hba)
}

// TestBundledTLSOff: postgresql.tls.enabled=false still works: no
// certificate, no ssl, no pg_hba.conf of the chart; the provisioner Job and
// tenants use sslmode=disable against a server without TLS.
func TestBundledTLSOff(t *testing.T) {
	m := render.MustChart(t, commonsChart, render.Options{ReleaseName: "commons", Namespace: "commons",
		Values:   merge(tenants(map[string]any{"namespace": "imaging"}), map[string]any{"postgresql": map[string]any{"tls": map[string]any{"enabled": false}}}),
		Existing: []*kubeapi.Secret{operatorCA()}})
	_, ok := m.Get("Secret", "commons", "commons-postgresql-tls")
	assert.False(t, ok, "no certificate issued")
	_, ok = m.Get("ConfigMap", "commons", "commons-postgresql-hba")
	assert.False(t, ok, "no pg_hba.conf")
	sts := render.Decode[appsv1.StatefulSet](t, m.MustGet(t, "StatefulSet", "commons", "commons-postgresql"))
	for _, a := range container(t, sts.Spec.Template.Spec, "postgresql", false).Args {
		assert.NotContains(t, a, "ssl", "no TLS argument")
		assert.NotContains(t, a, "hba_file")
	}
	tenant := secretData(t, m.MustGet(t, "Secret", "imaging", "kommons-commons"))
	assert.Equal(t, "disable", tenant["PGSSLMODE"])
	assert.NotContains(t, tenant, "ca.crt")
	assert.NotContains(t, tenant, "PGSSLROOTCERT")

	s := pgtest.New(t, pgtest.Options{})
	bin := buildTools(t, "wait-for-pg", "pg-init")
	job := render.Decode[batchv1.Job](t, m.One(t, "Job", "commons-provisioner-"))
	pod := job.Spec.Template.Spec
	extra := map[string]map[string]string{"Secret/commons-postgresql-admin": {"username": pgtest.AdminUser, "password": s.AdminPassword()}}
	for _, c := range []corev1.Container{pod.InitContainers[0], container(t, pod, "provisioner", false)} {
		assert.Contains(t, m.Env(t, "commons", c, extra), "PGSSLMODE=disable", c.Name)
		out, err := runContainer(t, bin, m, pod, c, s, extra)
		require.NoError(t, err, "%s:\n%s", c.Name, out)
	}
}
