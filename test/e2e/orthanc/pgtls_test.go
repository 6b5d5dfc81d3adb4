package orthanc_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/testutil/orthanctest"
	"github.com/kommons/kommons/internal/testutil/pgtest"
	"github.com/kommons/kommons/internal/testutil/testca"
	"github.com/kommons/kommons/test/e2e/orthanc"
)

// TestVerifiedTLSToPostgreSQL: PostgreSQL with ssl=on and a certificate for
// "localhost" from a test CA; the tenant Secret says PGHOST=localhost,
// PGSSLMODE=verify-full, PGSSLROOTCERT and ca.crt, as commons writes them.
// The rendered pg-init Job, the wait-for-pg init container and Orthanc's
// PostgreSQL plugin (Debian's orthanc-postgresql, libpq reading PGSSLMODE and
// PGSSLROOTCERT behind "ConnectionUri": "postgresql://") all connect with
// the mounted CA, over TLS; with another CA the same Orthanc does not start.
func TestVerifiedTLSToPostgreSQL(t *testing.T) {
	orthanctest.Require(t)
	ca := testca.New(t, "kommons test CA")
	leaf := ca.Server(t, "localhost")
	pg := pgtest.New(t, pgtest.Options{TLS: &pgtest.TLS{CertPEM: leaf.CertPEM, KeyPEM: leaf.KeyPEM}})
	values := map[string]any{"storage": map[string]any{"type": "filesystem"}}
	s := orthanc.ProvisionWith(t, pg, "e2e-tls", values,
		orthanc.TenantTLS{Host: "localhost", SSLMode: "verify-full", CAPEM: ca.CertPEM})

	env := s.PodEnv(t, "web", "tls-1")
	require.Equal(t, "verify-full", env["PGSSLMODE"])
	require.Equal(t, orthanc.CACertPath, env["PGSSLROOTCERT"], "the rendered env points at the mounted ca.crt")
	cfg := s.OrthancConfig(t, "web")
	require.Equal(t, "postgresql://", cfg["PostgreSQL"].(map[string]any)["ConnectionUri"])

	in := s.StartReplica(t, "web", "tls-1", t.TempDir()) // wait-for-pg first, then Orthanc
	spec := orthanctest.DicomSpec{Run: "tls", Study: 1, Instance: 1}
	r, err := in.Upload(orthanctest.DicomFile(spec))
	require.NoError(t, err)
	assert.Equal(t, "Success", r.Status)
	// Every session of the module's role is encrypted (pg_stat_ssl), and there is one.
	var total, encrypted int
	conn := pgtest.Connect(t, pg.AdminDSN())
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT count(*), count(*) FILTER (WHERE s.ssl)
		FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.usename = $1`, s.Role).Scan(&total, &encrypted))
	require.Positive(t, total, "Orthanc holds index connections")
	assert.Equal(t, total, encrypted, "every Orthanc session uses TLS")

	// The same pod with a CA that did not sign the server's certificate.
	opts := s.ReplicaOptions(t, "web", "tls-2", t.TempDir())
	wrong := testca.New(t, "another CA").WriteCert(t, t.TempDir(), "ca.crt")
	for i, kv := range opts.Env {
		if len(kv) > len("PGSSLROOTCERT=") && kv[:len("PGSSLROOTCERT=")] == "PGSSLROOTCERT=" {
			opts.Env[i] = "PGSSLROOTCERT=" + wrong
		}
	}
	opts.Config["PostgreSQL"].(map[string]any)["MaximumConnectionRetries"] = 0
	_, err = orthanctest.TryStart(t, opts)
	require.Error(t, err, "Orthanc must not start against a certificate its CA did not sign")
	t.Logf("with a wrong CA: %v", err)
	assert.Contains(t, fmt.Sprint(err), "certificate verify failed")
}
