package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/testutil/pgtest"
	"github.com/kommons/kommons/internal/testutil/testca"
)

// TestVerifyFull: pg-init against a server with ssl=on and a certificate
// for "localhost" from a test CA provisions over verify-full with that CA
// (PGSSLROOTCERT, as the charts set it); a wrong CA and a host name the
// certificate does not name fail at once (exit 1, no retry until the
// deadline) with the cause in the output.
func TestVerifyFull(t *testing.T) {
	ca := testca.New(t, "kommons test CA")
	leaf := ca.Server(t, "localhost")
	srv := pgtest.New(t, pgtest.Options{TLS: &pgtest.TLS{CertPEM: leaf.CertPEM, KeyPEM: leaf.KeyPEM}})
	h := newHarness(t, srv)
	rightCA := ca.WriteCert(t, h.dir, "ca.crt")
	wrongCA := testca.New(t, "another CA").WriteCert(t, h.dir, "other.crt")
	spec := h.moduleSpec("tls", "app")
	args := []string{"--spec", spec, "--namespace", "tls", "--release", "r", "--deadline", "10m"}

	r := h.run(h.env("PGHOST=localhost", "PGSSLMODE=verify-full", "PGSSLROOTCERT="+rightCA), args...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stderr, "sslmode=verify-full")

	for name, tc := range map[string]struct{ host, ca, cause string }{
		"wrong CA":        {"localhost", wrongCA, "x509: certificate signed by unknown authority"},
		"wrong host name": {"127.0.0.1", rightCA, "x509: cannot validate certificate for 127.0.0.1"},
	} {
		r := h.run(h.env("PGHOST="+tc.host, "PGSSLMODE=verify-full", "PGSSLROOTCERT="+tc.ca), args...)
		assert.Equal(t, 1, r.code, name)
		assert.Contains(t, r.stderr, tc.cause, name)
		assert.NotContains(t, r.stderr, "retrying", "%s: a certificate that fails verification is not retried", name)
	}
}
