package orthanc_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/testutil/orthanctest"
	"github.com/kommons/kommons/internal/testutil/pgtest"
	"github.com/kommons/kommons/test/e2e/orthanc"
)

// writeFiles writes name -> content under dir and returns name -> path.
func writeFiles(t *testing.T, dir string, files map[string][]byte) map[string]string {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o700))
	out := map[string]string{}
	for name, content := range files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, content, 0o600))
		out[name] = p
	}
	return out
}

// TestDicomTLS runs the chart's dicomTls rendering on real Orthanc processes
// with a CA and certificates made here, and DCMTK as the modality: a TLS
// association with a certificate succeeds (C-ECHO, C-STORE), a plain one is
// refused, a client without a certificate or with one from another CA is
// refused (remoteCertificateRequired), and is accepted without that
// requirement. Renewal: a replaced Secret is served after a restart only.
func TestDicomTLS(t *testing.T) {
	orthanctest.Require(t)
	orthanctest.RequireDcmtk(t)
	pg := pgtest.Shared(t)

	ca := orthanctest.NewCA(t, "kommons test CA")
	serverCert, serverKey, firstSerial := ca.Issue(t, "pacs-orthanc")
	clientCert, clientKey, _ := ca.Issue(t, "modality")
	rogue := orthanctest.NewCA(t, "another CA")
	rogueCert, rogueKey, _ := rogue.Issue(t, "rogue")
	client := writeFiles(t, filepath.Join(t.TempDir(), "client"), map[string][]byte{
		"ca.crt": ca.PEM, "client.crt": clientCert, "client.key": clientKey, "rogue.crt": rogueCert, "rogue.key": rogueKey,
	})
	tlsSecret := map[string]string{"tls.crt": string(serverCert), "tls.key": string(serverKey), "ca.crt": string(ca.PEM)}

	start := func(t *testing.T, namespace string, required bool) (*orthanc.Stack, *orthanctest.Instance, orthanctest.Options) {
		s := orthanc.Provision(t, pg, namespace, map[string]any{
			"storage":      map[string]any{"type": "filesystem"},
			"replicaCount": 1,
			"dicomTls":     map[string]any{"enabled": true, "existingSecret": "dicom-tls", "remoteCertificateRequired": required},
		})
		s.Secrets["dicom-tls"] = tlsSecret // the Secret cert-manager (or the operator) provides
		cfg := s.OrthancConfig(t, "web")
		require.Equal(t, true, cfg["DicomTlsEnabled"])
		require.Equal(t, required, cfg["DicomTlsRemoteCertificateRequired"])
		s.RunWaitForPg(t, "web", orthanc.Fullname+"-tls")
		opts := s.ReplicaOptions(t, "web", orthanc.Fullname+"-tls", filepath.Join(t.TempDir(), "storage"))
		return s, orthanctest.Start(t, opts), opts
	}
	echo := func(in *orthanctest.Instance, tlsArgs ...string) orthanctest.DcmtkResult {
		args := append(append([]string{"-aet", "MODALITY", "-aec", "ORTHANC", "-to", "20", "-ta", "20"}, tlsArgs...), dicomAddr(in)...)
		return orthanctest.Dcmtk(t, "echoscu", args...)
	}
	addr := func(in *orthanctest.Instance) string {
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(in.DicomPort))
	}
	withCert := []string{"+tls", client["client.key"], client["client.crt"], "+cf", client["ca.crt"]}

	t.Run("remote certificate required", func(t *testing.T) {
		_, in, opts := start(t, "e2e-dicomtls", true)

		r := echo(in, withCert...)
		assert.True(t, r.OK(), "TLS C-ECHO with a certificate from the trusted CA: %s", r)

		files := writeDicomFiles(t, filepath.Join(t.TempDir(), "dicom"), []orthanctest.DicomSpec{{Run: "tls", Study: 1, Instance: 1}, {Run: "tls", Study: 1, Instance: 2}})
		r = orthanctest.Dcmtk(t, "storescu", append(append(append([]string{"-aet", "MODALITY", "-aec", "ORTHANC"}, withCert...), dicomAddr(in)...), files...)...)
		require.True(t, r.OK(), "TLS C-STORE: %s", r)
		st, err := in.Stats()
		require.NoError(t, err)
		assert.Equal(t, 2, st.CountInstances, "the instances stored over TLS")

		r = echo(in)
		assert.False(t, r.OK(), "a plain association to the TLS port was accepted: %s", r)
		r = echo(in, "+tla", "+cf", client["ca.crt"])
		assert.False(t, r.OK(), "a TLS client without a certificate was accepted: %s", r)
		r = echo(in, "+tls", client["rogue.key"], client["rogue.crt"], "+cf", client["ca.crt"])
		assert.False(t, r.OK(), "a client certificate from an untrusted CA was accepted: %s", r)
		r = echo(in, "+tls", client["client.key"], client["client.crt"], "+cf", client["rogue.crt"])
		assert.False(t, r.OK(), "the client trusted a server certificate it has no CA for: %s", r)

		// Renewal: the kubelet replaces the mounted files; the running process keeps the old certificate.
		assert.Equal(t, firstSerial, orthanctest.ServedSerial(t, addr(in), clientCert, clientKey))
		renewedCert, renewedKey, renewedSerial := ca.Issue(t, "pacs-orthanc")
		require.NoError(t, os.WriteFile(fmt.Sprint(opts.Config["DicomTlsCertificate"]), renewedCert, 0o600))
		require.NoError(t, os.WriteFile(fmt.Sprint(opts.Config["DicomTlsPrivateKey"]), renewedKey, 0o600))
		assert.Equal(t, firstSerial, orthanctest.ServedSerial(t, addr(in), clientCert, clientKey), "a running Orthanc still serves the certificate it read at start")
		// A restart (kubectl rollout restart) serves the renewed certificate.
		in.Stop()
		restarted := orthanctest.Start(t, opts)
		assert.Equal(t, renewedSerial, orthanctest.ServedSerial(t, addr(restarted), clientCert, clientKey), "after a restart the renewed certificate is served")
		r = echo(restarted, withCert...)
		assert.True(t, r.OK(), "TLS C-ECHO after the renewal: %s", r)
	})

	t.Run("remote certificate not required", func(t *testing.T) {
		_, in, _ := start(t, "e2e-dicomtls-anon", false)
		r := echo(in, "+tla", "+cf", client["ca.crt"])
		assert.True(t, r.OK(), "with remoteCertificateRequired false a client without a certificate is accepted: %s", r)
		r = echo(in)
		assert.False(t, r.OK(), "a plain association to the TLS port was accepted: %s", r)
	})
}
