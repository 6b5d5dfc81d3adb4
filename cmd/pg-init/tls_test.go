package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/testutil/pgtest"
)

// TestVerifyFull: pg-init against a server with ssl=on and a certificate
// for "localhost" from a test CA provisions over verify-full with that CA
// (PGSSLROOTCERT, as the charts set it); a wrong CA and a host name the
// certificate does not name fail at once (exit 1, no retry until the
// deadline) with the cause in the output.
func TestVerifyFull(t *testing.T) {
	v := pgtest.NewVerifyFull(t, t.TempDir())
	h := newHarness(t, pgtest.New(t, pgtest.Options{TLS: v.TLS}))
	spec := h.moduleSpec("tls", "app")
	args := []string{"--spec", spec, "--namespace", "tls", "--release", "r", "--deadline", "10m"}

	r := h.run(h.env("PGHOST=localhost", "PGSSLMODE=verify-full", "PGSSLROOTCERT="+v.RightCA), args...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stderr, "sslmode=verify-full")

	for _, f := range v.Failures() {
		r := h.run(h.env("PGHOST="+f.Host, "PGSSLMODE=verify-full", "PGSSLROOTCERT="+f.RootCert), args...)
		assert.Equal(t, 1, r.code, f.Name)
		assert.Contains(t, r.stderr, f.Cause, f.Name)
		assert.NotContains(t, r.stderr, "retrying", "%s: a certificate that fails verification is not retried", f.Name)
	}
}
