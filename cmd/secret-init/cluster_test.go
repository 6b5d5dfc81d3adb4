package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kommons/kommons/internal/kubeapi"
	"github.com/kommons/kommons/internal/secretinit"
	"github.com/kommons/kommons/internal/testutil/testcluster"
)

const appSpec = `
secrets:
  - name: app
    type: kubernetes.io/basic-auth
    labels: {team: a}
    data:
      password: {generate: {length: 32}}
      key: {generate: {bytes: 32}}
      username: {value: team_a_app}
      host: {fromSecret: {name: facts, key: PGHOST}}
      uri: {template: "postgresql://{{ .username }}:{{ urlquery .password }}@{{ .host }}/app"}
`

// TestCreateKeepReconcile: a missing Secret is created; a second run keeps
// every generated key; drifted facts and a removed label come back; a spec
// change of a fact is applied; the generated value survives all of it, and
// no value reaches the logs.
func TestCreateKeepReconcile(t *testing.T) {
	c := testcluster.Start(t)
	ns := c.Namespace(t, "si-keep")
	createSecret(t, c, ns, "facts", map[string]string{"PGHOST": "pg.commons.svc"})
	e := install(t, c, ns, appSpec)

	r := e.run(t)
	requireExit(t, r, 0)
	s := secret(t, c, ns, "app")
	require.Equal(t, "kubernetes.io/basic-auth", string(s.Type))
	require.Equal(t, secretinit.ManagedByValue, s.Labels[secretinit.ManagedByLabel])
	require.Equal(t, "a", s.Labels["team"])
	pw := string(s.Data["password"])
	require.Len(t, pw, 32)
	require.Len(t, s.Data["key"], 44)
	require.Equal(t, "team_a_app", string(s.Data["username"]))
	require.Equal(t, "postgresql://team_a_app:"+pw+"@pg.commons.svc/app", string(s.Data["uri"]))
	require.Contains(t, r.stderr, `"action":"created"`)
	requireNoValues(t, r.stderr, s)

	r = e.run(t)
	requireExit(t, r, 0)
	require.Contains(t, r.stderr, `"action":"unchanged"`)
	require.Equal(t, s.Data, secret(t, c, ns, "app").Data)

	// Drift: a fact changed by hand, the label removed, the source moved.
	ctx := context.Background()
	_, err := c.Client().CoreV1().Secrets(ns).Patch(ctx, "app", types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"team":null}},"stringData":{"username":"intruder","password":"`+pw+`"}}`), metav1.PatchOptions{})
	require.NoError(t, err)
	_, err = c.Client().CoreV1().Secrets(ns).Patch(ctx, "facts", types.MergePatchType,
		[]byte(`{"stringData":{"PGHOST":"pg2.commons.svc"}}`), metav1.PatchOptions{})
	require.NoError(t, err)
	r = e.run(t)
	requireExit(t, r, 0)
	require.Contains(t, r.stderr, `"action":"updated"`)
	got := secret(t, c, ns, "app")
	require.Equal(t, pw, string(got.Data["password"]), "generated key never overwritten")
	require.Equal(t, s.Data["key"], got.Data["key"])
	require.Equal(t, "team_a_app", string(got.Data["username"]))
	require.Equal(t, "pg2.commons.svc", string(got.Data["host"]))
	require.Equal(t, "postgresql://team_a_app:"+pw+"@pg2.commons.svc/app", string(got.Data["uri"]))
	require.Equal(t, "a", got.Labels["team"])
	requireNoValues(t, r.stderr, got)

	// An emptied generated key is generated again (nothing else is).
	_, err = c.Client().CoreV1().Secrets(ns).Patch(ctx, "app", types.MergePatchType,
		[]byte(`{"data":{"key":""}}`), metav1.PatchOptions{})
	require.NoError(t, err)
	requireExit(t, e.run(t), 0)
	got2 := secret(t, c, ns, "app")
	require.Len(t, got2.Data["key"], 44)
	require.NotEqual(t, got.Data["key"], got2.Data["key"])
	require.Equal(t, pw, string(got2.Data["password"]))
}

// TestAdopt: a same-named Secret written earlier (by Helm) is adopted: its
// generated keys kept, facts reconciled, the label added.
func TestAdopt(t *testing.T) {
	c := testcluster.Start(t)
	ns := c.Namespace(t, "si-adopt")
	createSecret(t, c, ns, "facts", map[string]string{"PGHOST": "pg"})
	createSecret(t, c, ns, "app", map[string]string{"password": "kept-from-helm-0123456789", "username": "old"})
	e := install(t, c, ns, appSpec)
	requireExit(t, e.run(t), 0)
	s := secret(t, c, ns, "app")
	require.Equal(t, "kept-from-helm-0123456789", string(s.Data["password"]))
	require.Equal(t, "team_a_app", string(s.Data["username"]))
	require.Equal(t, secretinit.ManagedByValue, s.Labels[secretinit.ManagedByLabel])
}

// TestCreateRace: runs started at once over the same missing Secrets all
// succeed and leave one value per key, which a later run keeps.
func TestCreateRace(t *testing.T) {
	c := testcluster.Start(t)
	ns := c.Namespace(t, "si-race")
	createSecret(t, c, ns, "facts", map[string]string{"PGHOST": "pg"})
	e := install(t, c, ns, appSpec+`
  - name: second
    data:
      password: {generate: {length: 24}}
      copy: {fromSecret: {name: app, key: password}}
`)
	var waits []func() result
	for range 4 {
		waits = append(waits, e.start(t))
	}
	for _, w := range waits {
		requireExit(t, w(), 0)
	}
	app, second := secret(t, c, ns, "app"), secret(t, c, ns, "second")
	require.Equal(t, app.Data["password"], second.Data["copy"], "the copy matches its source")
	require.Equal(t, "postgresql://team_a_app:"+string(app.Data["password"])+"@pg/app", string(app.Data["uri"]))
	requireExit(t, e.run(t), 0)
	require.Equal(t, app.Data, secret(t, c, ns, "app").Data)
	require.Equal(t, second.Data, secret(t, c, ns, "second").Data)
}

// TestFromSecretCrossNamespace: a Secret written into a tenant namespace
// copies a key of a Secret written earlier in the home namespace (the
// commons layout), through the Roles rendered for both namespaces.
func TestFromSecretCrossNamespace(t *testing.T) {
	c := testcluster.Start(t)
	home, tenant := c.Namespace(t, "si-home"), c.Namespace(t, "si-tenant")
	e := install(t, c, home, `
secrets:
  - name: provisioner
    data:
      `+tenant+`: {generate: {length: 32}}
  - name: tenant-creds
    namespace: `+tenant+`
    data:
      PGUSER: {value: prov_tenant}
      PGPASSWORD: {fromSecret: {name: provisioner, namespace: `+home+`, key: `+tenant+`}}
`)
	r := e.run(t)
	requireExit(t, r, 0)
	p, tc := secret(t, c, home, "provisioner"), secret(t, c, tenant, "tenant-creds")
	require.Len(t, p.Data[tenant], 32)
	require.Equal(t, p.Data[tenant], tc.Data["PGPASSWORD"])
	requireNoValues(t, r.stderr, p, tc)
}

// TestCertificates: a CA and a server certificate it signs, with the SANs,
// issued once.
func TestCertificates(t *testing.T) {
	c := testcluster.Start(t)
	ns := c.Namespace(t, "si-tls")
	e := install(t, c, ns, `
certificates:
  - name: pg-tls
    commonName: commons-postgresql
    dnsNames: [commons-postgresql, commons-postgresql.commons.svc, commons-postgresql.commons.svc.cluster.local]
    validityDays: 365
`)
	r := e.run(t)
	requireExit(t, r, 0)
	s := secret(t, c, ns, "pg-tls")
	require.Equal(t, "kubernetes.io/tls", string(s.Type))
	requireNoValues(t, r.stderr, s)
	caBlock, _ := pem.Decode(s.Data["ca.crt"])
	require.NotNil(t, caBlock)
	ca, err := x509.ParseCertificate(caBlock.Bytes)
	require.NoError(t, err)
	require.True(t, ca.IsCA)
	leafBlock, _ := pem.Decode(s.Data["tls.crt"])
	require.NotNil(t, leafBlock)
	leaf, err := x509.ParseCertificate(leafBlock.Bytes)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	for _, name := range []string{"commons-postgresql", "commons-postgresql.commons.svc", "commons-postgresql.commons.svc.cluster.local"} {
		_, err = leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		require.NoError(t, err, name)
	}
	_, err = leaf.Verify(x509.VerifyOptions{DNSName: "other.example", Roots: pool})
	require.Error(t, err, "a name not in the SANs")
	require.WithinDuration(t, time.Now().Add(365*24*time.Hour), leaf.NotAfter, 2*time.Hour)
	keyBlock, _ := pem.Decode(s.Data["tls.key"])
	require.NotNil(t, keyBlock)
	key, err := x509.ParsePKCS8PrivateKey(keyBlock.Bytes)
	require.NoError(t, err)
	require.NotNil(t, key)

	requireExit(t, e.run(t), 0)
	require.Equal(t, s.Data, secret(t, c, ns, "pg-tls").Data, "never re-issued")
}

// TestFromConfigMap: a key copied from a real ConfigMap (a CA bundle, in
// another namespace, as trust-manager writes it) through the rendered
// Role; waited for while the ConfigMap is missing; a changed ConfigMap is
// copied again on the next run.
func TestFromConfigMap(t *testing.T) {
	c := testcluster.Start(t)
	home, trust := c.Namespace(t, "si-cm"), c.Namespace(t, "si-cm-trust")
	e := install(t, c, home, `
secrets:
  - name: tenant
    data:
      ca.crt: {fromConfigMap: {name: bundle, namespace: `+trust+`, key: trust-bundle.pem}}
      PGSSLMODE: {value: verify-full}
`)
	r := e.run(t, "--deadline", "5s")
	requireExit(t, r, 1)
	require.Contains(t, r.stderr, `key \"trust-bundle.pem\" of ConfigMap `+trust+`/bundle`)

	createConfigMap(t, c, trust, "bundle", map[string]string{"trust-bundle.pem": "PEM one\n"})
	r = e.run(t)
	requireExit(t, r, 0)
	require.Contains(t, r.stderr, `"action":"created"`)
	require.Equal(t, "PEM one\n", string(secret(t, c, home, "tenant").Data["ca.crt"]))

	cm, err := c.Client().CoreV1().ConfigMaps(trust).Get(context.Background(), "bundle", metav1.GetOptions{})
	require.NoError(t, err)
	cm.Data["trust-bundle.pem"] = "PEM two\n"
	_, err = c.Client().CoreV1().ConfigMaps(trust).Update(context.Background(), cm, metav1.UpdateOptions{})
	require.NoError(t, err)
	r = e.run(t)
	requireExit(t, r, 0)
	require.Contains(t, r.stderr, `"keys":"ca.crt"`)
	require.Equal(t, "PEM two\n", string(secret(t, c, home, "tenant").Data["ca.crt"]))
}

// rbacSpec is appSpec plus a key copied from a ConfigMap.
const rbacSpec = appSpec + `      ca.crt: {fromConfigMap: {name: pg-ca, key: ca.crt}}
`

// TestRBAC: with the rendered Roles, the ServiceAccount's token gets and
// patches only the Secrets its spec names and gets only the ConfigMaps it
// reads: another Secret of the same namespace cannot be read, listed or
// patched, a Secret it only reads cannot be patched, another namespace's
// Secrets cannot be read, and no other ConfigMap can be read or listed.
func TestRBAC(t *testing.T) {
	c := testcluster.Start(t)
	home, other := c.Namespace(t, "si-rbac"), c.Namespace(t, "si-rbac-other")
	createSecret(t, c, home, "facts", map[string]string{"PGHOST": "pg"})
	createSecret(t, c, home, "unrelated", map[string]string{"password": "not-yours"})
	createSecret(t, c, other, "theirs", map[string]string{"password": "not-yours"})
	createConfigMap(t, c, home, "pg-ca", map[string]string{"ca.crt": "PEM"})
	createConfigMap(t, c, home, "unrelated-config", map[string]string{"x": "not-yours"})
	createConfigMap(t, c, other, "pg-ca", map[string]string{"ca.crt": "not-yours"})
	e := install(t, c, home, rbacSpec)
	requireExit(t, e.run(t), 0)
	require.Equal(t, "PEM", string(secret(t, c, home, "app").Data["ca.crt"]))
	cl := e.client(t)
	ctx := context.Background()

	_, err := cl.GetSecret(ctx, home, "app")
	require.NoError(t, err, "its own Secret")
	_, err = cl.GetSecret(ctx, home, "facts")
	require.NoError(t, err, "a Secret it reads")
	_, err = cl.GetConfigMap(ctx, home, "pg-ca")
	require.NoError(t, err, "a ConfigMap it reads")

	forbidden := map[string]func() error{
		"get another Secret": func() error { _, err := cl.GetSecret(ctx, home, "unrelated"); return err },
		"list Secrets":       func() error { _, err := cl.ListSecrets(ctx, home); return err },
		"patch another Secret": func() error {
			_, err := cl.PatchSecret(ctx, home, "unrelated", []byte(`{"data":{"password":"eA=="}}`))
			return err
		},
		"patch a Secret it only reads": func() error {
			_, err := cl.PatchSecret(ctx, home, "facts", []byte(`{"data":{"PGHOST":"eA=="}}`))
			return err
		},
		"get another namespace's Secret": func() error { _, err := cl.GetSecret(ctx, other, "theirs"); return err },
		"list another namespace":         func() error { _, err := cl.ListSecrets(ctx, other); return err },
		"create in another namespace": func() error {
			_, err := cl.CreateSecret(ctx, &kubeapi.Secret{Metadata: kubeapi.ObjectMeta{Name: "x", Namespace: other}})
			return err
		},
		"get another ConfigMap":                  func() error { _, err := cl.GetConfigMap(ctx, home, "unrelated-config"); return err },
		"get the namespace's kube-root-ca.crt":   func() error { _, err := cl.GetConfigMap(ctx, home, "kube-root-ca.crt"); return err },
		"get its spec's ConfigMap":               func() error { _, err := cl.GetConfigMap(ctx, home, "secret-init"); return err },
		"list ConfigMaps":                        func() error { _, err := cl.ListConfigMaps(ctx, home); return err },
		"get the same name in another namespace": func() error { _, err := cl.GetConfigMap(ctx, other, "pg-ca"); return err },
		"list another namespace's ConfigMaps":    func() error { _, err := cl.ListConfigMaps(ctx, other); return err },
	}
	for name, f := range forbidden {
		err := f()
		require.Error(t, err, name)
		require.True(t, kubeapi.IsForbidden(err), "%s: %v", name, err)
	}
	require.Equal(t, "not-yours", string(secret(t, c, home, "unrelated").Data["password"]))
	require.Equal(t, "pg", string(secret(t, c, home, "facts").Data["PGHOST"]))
}

// TestMissingSource: a fromSecret source that never appears fails the run
// at --deadline (exit 1) naming it; a forbidden write names the Role.
func TestMissingSource(t *testing.T) {
	c := testcluster.Start(t)
	ns := c.Namespace(t, "si-missing")
	e := install(t, c, ns, appSpec)
	r := e.run(t, "--deadline", "5s")
	requireExit(t, r, 1)
	require.Contains(t, r.stderr, `key \"PGHOST\" of Secret `+ns+`/facts`)
	require.Contains(t, r.stderr, "--deadline 5s reached")
}

// TestBadSpec: an invalid spec exits 2 naming the file and the field,
// before any API call.
func TestBadSpec(t *testing.T) {
	dir := t.TempDir()
	e := &env{ns: "n", spec: dir + "/spec.yaml", tokenFile: dir + "/token", caFile: dir + "/ca", server: "https://127.0.0.1:1"}
	for name, c := range map[string]struct{ spec, want string }{
		"unknown field":  {"secrets:\n  - name: a\n    data: {p: {generate: {lenght: 32}}}\n", `secrets[0].data.p.generate.lenght: unknown field`},
		"two sources":    {"secrets:\n  - name: a\n    data: {p: {value: x, template: z}}\n", `secrets[0].data.p: want exactly one of`},
		"bad name":       {"secrets:\n  - name: A_B\n    data: {p: {value: x}}\n", `secrets[0].name`},
		"label not text": {"secrets:\n  - name: a\n    labels: {x: 1}\n    data: {p: {value: x}}\n", `secrets[0].labels.x: must be a string`},
	} {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, writeFile(e.spec, c.spec))
			require.NoError(t, writeFile(e.tokenFile, "t"))
			require.NoError(t, writeFile(e.caFile, "x"))
			r := e.run(t)
			requireExit(t, r, 2)
			require.Contains(t, r.stderr, e.spec)
			require.Contains(t, r.stderr, c.want)
			require.False(t, strings.Contains(r.stderr, "kubeapi"), "no API call")
		})
	}
}
