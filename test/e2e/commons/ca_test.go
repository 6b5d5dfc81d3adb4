package commons

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/internal/testutil/testca"
	"github.com/kommons/kommons/internal/testutil/testcluster"
)

// TestNamedCACopied: commons in external mode with the server's CA in a
// ConfigMap the user names (a trust-manager Bundle's) and then in a Secret
// (a cert-manager Certificate's), installed with Helm on the real API
// server: the secret-init Job (the real binary, the chart's RBAC) copies the
// CA into the tenant Secret; after the ConfigMap changes, a run of the
// refresh CronJob copies the new one; an upgrade to the Secret copies that.
func TestNamedCACopied(t *testing.T) {
	c := testcluster.Start(t)
	ctx := context.Background()
	cs := c.Client()
	ns := c.Namespace(t, "commons-ca")
	tenant := c.Namespace(t, "ca-tenant")
	first, renewed := testca.New(t, "bundle one").CertPEM, testca.New(t, "bundle two").CertPEM
	issuer := testca.New(t, "issuer")
	leaf, fromSecret := issuer.Server(t, "db.example"), issuer.CertPEM

	_, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "pg-admin"},
		StringData: map[string]string{"username": "admin", "password": "not-used-here"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "db-trust"},
		Data: map[string]string{"trust-bundle.pem": string(first)}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db-cert"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": leaf.CertPEM, "tls.key": leaf.KeyPEM, "ca.crt": fromSecret}}, metav1.CreateOptions{})
	require.NoError(t, err)

	common := []string{"-n", ns, "--timeout", "3m",
		"--set", "postgresql.mode=external", "--set", "postgresql.external.host=db.example",
		"--set", "postgresql.external.existingSecret=pg-admin", "--set", "objectStorage.bundled=false",
		"--set", "tenants[0].namespace=" + tenant}
	c.Helm3(t, append([]string{"install", release, chartDir(t, c),
		"--set", "postgresql.external.tls.caConfigMap.name=db-trust", "--set", "postgresql.external.tls.caConfigMap.key=trust-bundle.pem"}, common...)...)
	generate(t, c, ns)
	tenantCA := func() string { return string(secret(t, c, tenant, "kommons-commons").Data["ca.crt"]) }
	require.Equal(t, string(first), tenantCA(), "copied from the ConfigMap")
	require.Equal(t, "verify-full", string(secret(t, c, tenant, "kommons-commons").Data["PGSSLMODE"]))

	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "db-trust", metav1.GetOptions{})
	require.NoError(t, err)
	cm.Data["trust-bundle.pem"] = string(renewed)
	_, err = cs.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
	require.NoError(t, err)
	time.Sleep(time.Second) // the refresh Job is the newest secret-init Job (creation timestamps are in seconds)
	c.Kubectl(t, "create", "job", "-n", ns, "--from=cronjob/commons-secret-init-refresh", "refresh-now")
	require.Equal(t, "refresh-now", generate(t, c, ns))
	require.Equal(t, string(renewed), tenantCA(), "the refresh CronJob's run copies the renewed bundle")

	time.Sleep(time.Second)
	c.Helm3(t, append([]string{"upgrade", release, chartDir(t, c), "--set", "postgresql.external.tls.caSecret.name=db-cert"}, common...)...)
	generate(t, c, ns)
	require.Eventually(t, func() bool { return tenantCA() == string(fromSecret) }, time.Minute, time.Second, "copied from the Secret after the upgrade")
	c.Helm3(t, "uninstall", release, "-n", ns, "--wait", "--timeout", "3m")
}
