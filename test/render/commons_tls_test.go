package render_test

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

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
