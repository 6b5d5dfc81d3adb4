package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/testutil/pgtest"
	"github.com/kommons/kommons/internal/testutil/testca"
)

// TestVerifyFull: wait-for-pg as the charts run it (PGSSLMODE=verify-full,
// PGSSLROOTCERT = the mounted ca.crt) against a server with ssl=on and a
// certificate for "localhost": ready with the right CA; a wrong CA and a
// host name the certificate does not name exit 2 (permanent) after one
// attempt, with the cause and a hint in the last log line.
func TestVerifyFull(t *testing.T) {
	ca := testca.New(t, "kommons test CA")
	leaf := ca.Server(t, "localhost")
	s := pgtest.New(t, pgtest.Options{TLS: &pgtest.TLS{CertPEM: leaf.CertPEM, KeyPEM: leaf.KeyPEM}})
	dir := t.TempDir()
	rightCA := ca.WriteCert(t, dir, "ca.crt")
	wrongCA := testca.New(t, "another CA").WriteCert(t, dir, "other.crt")
	env := func(host, rootCert string) []string {
		return append(envFor(s, pgtest.AdminUser, s.AdminPassword(), "postgres"),
			"PGHOST="+host, "PGSSLMODE=verify-full", "PGSSLROOTCERT="+rootCert)
	}

	p := start(t, env("localhost", rightCA), "--timeout", "2m")
	require.Equal(t, 0, p.exit(), p.stderr.String())
	require.Contains(t, p.stderr.String(), "sslmode=verify-full")

	for name, tc := range map[string]struct{ host, ca, cause, hint string }{
		"wrong CA":        {"localhost", wrongCA, "x509: certificate signed by unknown authority", "not signed by the CA in sslrootcert"},
		"wrong host name": {"127.0.0.1", rightCA, "x509: cannot validate certificate for 127.0.0.1", "does not name the host connected to"},
	} {
		p := start(t, env(tc.host, tc.ca), "--timeout", "10m")
		require.Equal(t, exitPermanent, p.exit(), "%s: %s", name, p.stderr.String())
		last := p.lastLog()
		require.Equal(t, "PostgreSQL not ready: permanent error", last["msg"], name)
		require.Equal(t, float64(1), last["attempts"], name)
		require.Contains(t, last["error"], tc.cause, name)
		require.Contains(t, last["hint"], tc.hint, name)
		noPassword(t, p, s.AdminPassword())
	}
}
