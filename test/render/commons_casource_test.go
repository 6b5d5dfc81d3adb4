package render_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kommons/kommons/internal/kubeapi"
	"github.com/kommons/kommons/internal/pgready"
	"github.com/kommons/kommons/internal/secretinit"
	"github.com/kommons/kommons/internal/testutil/pgtest"
	"github.com/kommons/kommons/internal/testutil/testca"
	"github.com/kommons/kommons/test/render"
)

// caObject is the object the user names for the server's CA: a Secret
// (what a cert-manager Certificate writes: ca.crt next to tls.crt and
// tls.key) or a ConfigMap (what a trust-manager Bundle writes, under the
// Bundle's key).
type caObject struct {
	kind, name, key string
}

func (o caObject) values() map[string]any {
	field := map[string]string{"Secret": "caSecret", "ConfigMap": "caConfigMap"}[o.kind]
	return map[string]any{field: map[string]any{"name": o.name, "key": o.key}}
}

// existing is o holding pem, for the in-memory secret-init run (opts) and for
// the mounted files (extra, the form of m.MountFiles and runContainer).
func (o caObject) existing(pem []byte, opts *render.Options) map[string]map[string]string {
	data := map[string]string{o.key: string(pem)}
	if o.kind == "Secret" {
		data["tls.crt"], data["tls.key"] = "leaf", "key"
		s := &kubeapi.Secret{Type: "kubernetes.io/tls", Data: map[string][]byte{}}
		s.Metadata.Namespace, s.Metadata.Name = "commons", o.name
		for k, v := range data {
			s.Data[k] = []byte(v)
		}
		opts.Existing = append(opts.Existing, s)
	} else {
		cm := &kubeapi.ConfigMap{Data: data}
		cm.Metadata.Namespace, cm.Metadata.Name = "commons", o.name
		opts.ExistingConfigMaps = append(opts.ExistingConfigMaps, cm)
	}
	return map[string]map[string]string{o.kind + "/" + o.name: data}
}

// externalNamedCA renders commons in external mode against s (host
// localhost) with the CA taken from o, which holds caPEM.
func externalNamedCA(t *testing.T, s *pgtest.Server, o caObject, caPEM []byte) (*render.Manifest, map[string]map[string]string) {
	t.Helper()
	opts := render.Options{ReleaseName: "commons", Namespace: "commons", Values: merge(tenants(map[string]any{"namespace": "imaging"}), map[string]any{
		"postgresql": map[string]any{"mode": "external", "external": map[string]any{
			"host": "localhost", "port": s.Port(), "existingSecret": "pg-admin", "tls": o.values(),
		}},
		"objectStorage": map[string]any{"bundled": false, "external": map[string]any{"endpoint": "https://s3.example", "existingSecret": "s3"}},
	})}
	extra := o.existing(caPEM, &opts)
	extra["Secret/pg-admin"] = map[string]string{"username": pgtest.AdminUser, "password": s.AdminPassword()}
	return render.MustChart(t, commonsChart, opts), extra
}

// TestExternalCAFromNamedObject: external mode with the server's CA in a
// Secret (postgresql.external.tls.caSecret, cert-manager) or a ConfigMap
// (tls.caConfigMap, trust-manager) the user names, on a real PostgreSQL with
// ssl=on serving a certificate from a test CA. The provisioner Job mounts
// the named object's key as ca.crt and its wait-for-pg and pg-init pass
// with verify-full; the rendered spec run through the real reconciler copies
// the key into the tenant Secret (fromSecret / fromConfigMap), with which
// commons' helm test Pod logs in from the tenant namespace; secret-init may
// get that one object and no other; the refresh CronJob is rendered. With
// another CA in the named object the Job's wait-for-pg and the tenant are
// refused.
func TestExternalCAFromNamedObject(t *testing.T) {
	ca := testca.New(t, "kommons test CA")
	leaf := ca.Server(t, "localhost")
	s := pgtest.New(t, pgtest.Options{TLS: &pgtest.TLS{CertPEM: leaf.CertPEM, KeyPEM: leaf.KeyPEM}})
	bin := buildTools(t, "wait-for-pg", "pg-init")
	for _, o := range []caObject{
		{kind: "Secret", name: "db-server-cert", key: "ca.crt"},
		{kind: "ConfigMap", name: "db-trust", key: "trust-bundle.pem"},
	} {
		t.Run(o.kind, func(t *testing.T) {
			m, extra := externalNamedCA(t, s, o, ca.CertPEM)
			_, rendered := m.Get("ConfigMap", "commons", "commons-postgresql-ca")
			assert.False(t, rendered, "no inline CA ConfigMap")

			job := render.Decode[batchv1.Job](t, m.One(t, "Job", "commons-provisioner-"))
			pod := job.Spec.Template.Spec
			vol := volume(t, pod, "postgresql-ca")
			items := []corev1.KeyToPath{{Key: o.key, Path: "ca.crt"}}
			if o.kind == "Secret" {
				require.NotNil(t, vol.Secret, "the named Secret mounted directly")
				assert.Equal(t, o.name, vol.Secret.SecretName)
				assert.Equal(t, items, vol.Secret.Items)
			} else {
				require.NotNil(t, vol.ConfigMap, "the named ConfigMap mounted directly")
				assert.Equal(t, o.name, vol.ConfigMap.Name)
				assert.Equal(t, items, vol.ConfigMap.Items)
			}
			for _, c := range []corev1.Container{pod.InitContainers[0], container(t, pod, "provisioner", false)} {
				assert.Contains(t, m.Env(t, "commons", c, extra), "PGSSLMODE=verify-full", c.Name)
				out, err := runContainer(t, bin, m, pod, c, s, extra)
				require.NoError(t, err, "%s:\n%s", c.Name, out)
				require.Contains(t, out, "sslmode=verify-full", c.Name)
			}

			spec := secretInitSpecOf(t, m)
			var src secretinit.Source
			for _, sec := range spec.Secrets {
				if sec.Namespace == "imaging" {
					src = sec.Data["ca.crt"]
				}
			}
			if o.kind == "Secret" {
				require.NotNil(t, src.FromSecret, "the tenant's ca.crt is copied from the Secret")
				assert.Equal(t, secretinit.SecretRef{Name: o.name, Namespace: "commons", Key: o.key}, *src.FromSecret)
			} else {
				require.NotNil(t, src.FromConfigMap, "the tenant's ca.crt is copied from the ConfigMap")
				assert.Equal(t, secretinit.ConfigMapRef{Name: o.name, Namespace: "commons", Key: o.key}, *src.FromConfigMap)
			}
			role := render.Decode[rbacv1.Role](t, m.MustGet(t, "Role", "commons", "commons-secret-init"))
			var getOnly, configMaps []rbacv1.PolicyRule
			for _, r := range role.Rules {
				if len(r.Verbs) == 1 && r.Verbs[0] == "get" {
					getOnly = append(getOnly, r)
				}
				if slices.Contains(r.Resources, "configmaps") {
					configMaps = append(configMaps, r)
				}
			}
			resource := map[string]string{"Secret": "secrets", "ConfigMap": "configmaps"}[o.kind]
			assert.Contains(t, getOnly, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{resource},
				ResourceNames: []string{o.name}, Verbs: []string{"get"}}, "get on the named object, nothing else")
			if o.kind == "ConfigMap" {
				assert.Len(t, configMaps, 1, "no other ConfigMap rule")
			} else {
				assert.Empty(t, configMaps, "no ConfigMap readable")
			}
			_, ok := m.Get("CronJob", "commons", "commons-secret-init-refresh")
			assert.True(t, ok, "the refresh CronJob follows a renewed CA")

			tenant := secretData(t, m.MustGet(t, "Secret", "imaging", "kommons-commons"))
			assert.Equal(t, "verify-full", tenant["PGSSLMODE"])
			assert.Equal(t, "/etc/kommons/postgres-ca/ca.crt", tenant["PGSSLROOTCERT"])
			assert.Equal(t, string(ca.CertPEM), tenant["ca.crt"])
			hooks := testHooks(t, m)
			require.Len(t, hooks, 1)
			login := podContainer(t, hooks[0], "provisioner-login")
			out, err := runContainerIn(t, "imaging", bin, m, hooks[0].Spec, login, s, nil)
			require.NoError(t, err, "the tenant's provisioner over verify-full with the tenant Secret's CA:\n%s", out)

			wrong, wrongExtra := externalNamedCA(t, s, o, testca.New(t, "another CA").CertPEM)
			job = render.Decode[batchv1.Job](t, wrong.One(t, "Job", "commons-provisioner-"))
			out, err = runContainer(t, bin, wrong, job.Spec.Template.Spec, job.Spec.Template.Spec.InitContainers[0], s, wrongExtra)
			require.Error(t, err, "another CA in the named object")
			assert.Contains(t, out, "certificate signed by unknown authority")
			assert.Contains(t, out, "permanent error")
			assert.NotContains(t, out, s.AdminPassword())
			hooks = testHooks(t, wrong)
			out, err = runContainerIn(t, "imaging", bin, wrong, hooks[0].Spec, podContainer(t, hooks[0], "provisioner-login"), s, nil)
			require.Error(t, err, "the tenant with the wrong CA copied:\n%s", out)
			assert.Contains(t, out, "certificate signed by unknown authority")
		})
	}
}

// TestExternalCASourcesExclusive: at most one of tls.ca, tls.caSecret.name
// and tls.caConfigMap.name; the schema names the second one.
func TestExternalCASourcesExclusive(t *testing.T) {
	const pem = "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"
	for name, c := range map[string]struct {
		tls  map[string]any
		want string
	}{
		"ca and caSecret":          {map[string]any{"ca": pem, "caSecret": map[string]any{"name": "s"}}, "caSecret/name"},
		"ca and caConfigMap":       {map[string]any{"ca": pem, "caConfigMap": map[string]any{"name": "c"}}, "caConfigMap/name"},
		"caSecret and caConfigMap": {map[string]any{"caSecret": map[string]any{"name": "s"}, "caConfigMap": map[string]any{"name": "c"}}, "caConfigMap/name"},
		"bad key":                  {map[string]any{"caConfigMap": map[string]any{"name": "c", "key": "a/b"}}, "caConfigMap/key"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := render.Chart(commonsChart, render.Options{ReleaseName: "commons", Namespace: "commons", Values: map[string]any{
				"postgresql": map[string]any{"mode": "external", "external": map[string]any{
					"host": "db.example", "existingSecret": "pg-admin", "tls": c.tls,
				}},
			}})
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
	_, err := render.Chart(commonsChart, render.Options{ReleaseName: "commons", Namespace: "commons", Values: map[string]any{
		"postgresql": map[string]any{"tls": map[string]any{"enabled": false, "existingSecret": "pg-cert"}},
	}})
	require.ErrorContains(t, err, "postgresql.tls.existingSecret \"pg-cert\" is set but postgresql.tls.enabled is false")
}

// TestBundledTLSExistingSecret: postgresql.tls.existingSecret (a
// kubernetes.io/tls Secret as a cert-manager Certificate writes it) is
// served by the bundled server instead of an issued certificate: secret-init
// issues none, the StatefulSet mounts that Secret, the provisioner Job and a
// tenant (ca.crt copied by the rendered spec through the real reconciler)
// verify a real PostgreSQL serving the Secret's certificate with
// verify-full under the client Service's name; the refresh CronJob is
// rendered. A Secret whose ca.crt did not sign tls.crt is refused.
func TestBundledTLSExistingSecret(t *testing.T) {
	const host = "commons-postgresql.commons.svc.cluster.local"
	ca := testca.New(t, "cert-manager issuer CA")
	leaf := ca.Server(t, "commons-postgresql", "commons-postgresql.commons", "commons-postgresql.commons.svc", host)
	render1 := func(caPEM []byte) (*render.Manifest, map[string]map[string]string) {
		data := map[string]string{"tls.crt": string(leaf.CertPEM), "tls.key": string(leaf.KeyPEM), "ca.crt": string(caPEM)}
		sec := &kubeapi.Secret{Type: "kubernetes.io/tls", Data: map[string][]byte{}}
		sec.Metadata.Namespace, sec.Metadata.Name = "commons", "pg-server-cert"
		for k, v := range data {
			sec.Data[k] = []byte(v)
		}
		m := render.MustChart(t, commonsChart, render.Options{ReleaseName: "commons", Namespace: "commons", Existing: []*kubeapi.Secret{sec},
			Values: merge(tenants(map[string]any{"namespace": "imaging"}),
				map[string]any{"postgresql": map[string]any{"tls": map[string]any{"enabled": true, "existingSecret": "pg-server-cert"}}})})
		return m, map[string]map[string]string{"Secret/pg-server-cert": data}
	}
	m, extra := render1(ca.CertPEM)
	assert.Empty(t, secretInitSpecOf(t, m).Certificates, "no certificate issued")
	_, issued := m.Get("Secret", "commons", "commons-postgresql-tls")
	assert.False(t, issued)
	sts := render.Decode[appsv1.StatefulSet](t, m.MustGet(t, "StatefulSet", "commons", "commons-postgresql"))
	assert.Equal(t, "pg-server-cert", volume(t, sts.Spec.Template.Spec, "tls").Secret.SecretName)
	assert.Contains(t, container(t, sts.Spec.Template.Spec, "postgresql", false).Args, "ssl=on")
	_, ok := m.Get("CronJob", "commons", "commons-secret-init-refresh")
	assert.True(t, ok, "the refresh CronJob follows a renewed CA")

	// The server as the StatefulSet runs it: the Secret's tls.crt and tls.key.
	tlsVol := volume(t, sts.Spec.Template.Spec, "tls").Secret
	require.Equal(t, []corev1.KeyToPath{{Key: "tls.crt", Path: "tls.crt"}, {Key: "tls.key", Path: "tls.key"}}, tlsVol.Items)
	certPEM, keyPEM := []byte(extra["Secret/pg-server-cert"]["tls.crt"]), []byte(extra["Secret/pg-server-cert"]["tls.key"])
	s := pgtest.New(t, pgtest.Options{TLS: &pgtest.TLS{CertPEM: certPEM, KeyPEM: keyPEM}})
	connect := func(host, caFile string) error {
		cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=postgres sslmode=verify-full sslrootcert=%s",
			host, s.Port(), pgtest.AdminUser, s.AdminPassword(), caFile))
		require.NoError(t, err)
		cfg.LookupFunc = func(context.Context, string) ([]string, error) { return []string{s.Host()}, nil } // the Service's name, in a cluster
		_, err = pgready.Wait(context.Background(), cfg, pgready.Options{Timeout: 2 * time.Minute})
		return err
	}

	job := render.Decode[batchv1.Job](t, m.One(t, "Job", "commons-provisioner-"))
	pod := job.Spec.Template.Spec
	c := container(t, pod, "provisioner", false)
	env := m.Env(t, "commons", c, nil)
	assert.Contains(t, env, "PGHOST="+host)
	assert.Contains(t, env, "PGSSLMODE=verify-full")
	jobMounts := m.MountFiles(t, "commons", pod, c.Name, t.TempDir(), extra)
	require.NoError(t, connect(host, filepath.Join(jobMounts["/etc/kommons/postgresql-ca"], "ca.crt")), "the provisioner Job's CA: the Secret's ca.crt")

	tenant := secretData(t, m.MustGet(t, "Secret", "imaging", "kommons-commons"))
	assert.Equal(t, "verify-full", tenant["PGSSLMODE"])
	assert.Equal(t, string(ca.CertPEM), tenant["ca.crt"], "copied from the existing Secret")
	tenantCA := filepath.Join(t.TempDir(), "ca.crt")
	require.NoError(t, os.WriteFile(tenantCA, []byte(tenant["ca.crt"]), 0o600))
	require.NoError(t, connect(tenant["PGHOST"], tenantCA), "a tenant with its Secret's CA")

	wrong, _ := render1(testca.New(t, "another CA").CertPEM)
	wrongTenant := secretData(t, wrong.MustGet(t, "Secret", "imaging", "kommons-commons"))
	wrongCA := filepath.Join(t.TempDir(), "ca.crt")
	require.NoError(t, os.WriteFile(wrongCA, []byte(wrongTenant["ca.crt"]), 0o600))
	err := connect(wrongTenant["PGHOST"], wrongCA)
	require.ErrorIs(t, err, pgready.ErrPermanent)
	assert.Contains(t, err.Error(), "certificate signed by unknown authority")
}

func volume(t *testing.T, pod corev1.PodSpec, name string) corev1.Volume {
	t.Helper()
	for _, v := range pod.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no volume %q", name)
	return corev1.Volume{}
}
