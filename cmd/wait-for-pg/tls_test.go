package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/testutil/pgtest"
)

// TestVerifyFull: wait-for-pg as the charts run it (PGSSLMODE=verify-full,
// PGSSLROOTCERT = the mounted ca.crt) against a server with ssl=on and a
// certificate for "localhost": ready with the right CA; a wrong CA and a
// host name the certificate does not name exit 2 (permanent) after one
// attempt, with the cause and a hint in the last log line.
func TestVerifyFull(t *testing.T) {
	v := pgtest.NewVerifyFull(t, t.TempDir())
	s := pgtest.New(t, pgtest.Options{TLS: v.TLS})
	env := func(host, rootCert string) []string {
		return append(envFor(s, pgtest.AdminUser, s.AdminPassword(), "postgres"),
			"PGHOST="+host, "PGSSLMODE=verify-full", "PGSSLROOTCERT="+rootCert)
	}

	p := start(t, env("localhost", v.RightCA), "--timeout", "2m")
	require.Equal(t, 0, p.exit(), p.stderr.String())
	require.Contains(t, p.stderr.String(), "sslmode=verify-full")

	for _, f := range v.Failures() {
		p := start(t, env(f.Host, f.RootCert), "--timeout", "10m")
		require.Equal(t, exitPermanent, p.exit(), "%s: %s", f.Name, p.stderr.String())
		last := p.lastLog()
		require.Equal(t, "PostgreSQL not ready: permanent error", last["msg"], f.Name)
		require.Equal(t, float64(1), last["attempts"], f.Name)
		require.Contains(t, last["error"], f.Cause, f.Name)
		require.Contains(t, last["hint"], f.Hint, f.Name)
		noPassword(t, p, s.AdminPassword())
	}
}
