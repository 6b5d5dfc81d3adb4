package pgready

import (
	"context"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/testutil/pgtest"
	"github.com/kommons/kommons/internal/testutil/testca"
)

// verifyFullDSN is the superuser's DSN to host with sslmode=verify-full and
// sslrootcert=rootCert.
func verifyFullDSN(s *pgtest.Server, host, rootCert string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(pgtest.AdminUser, s.AdminPassword()),
		Host: host + ":" + strconv.Itoa(s.Port()), Path: "/postgres",
		RawQuery: url.Values{"sslmode": {"verify-full"}, "sslrootcert": {rootCert}}.Encode()}
	return u.String()
}

// TestVerifyFull runs, on every major, a server with ssl=on and a
// certificate for "localhost" from a test CA: verify-full with that CA
// succeeds over TLS; a wrong CA and a host name the certificate does not
// name are permanent errors (one attempt, no retrying) that name the cause.
func TestVerifyFull(t *testing.T) {
	ca := testca.New(t, "kommons test CA")
	leaf := ca.Server(t, "localhost")
	other := testca.New(t, "another CA")
	dir := t.TempDir()
	rightCA, wrongCA := ca.WriteCert(t, dir, "ca.crt"), other.WriteCert(t, dir, "other.crt")
	pgtest.EachVersionWith(t, pgtest.Options{TLS: &pgtest.TLS{CertPEM: leaf.CertPEM, KeyPEM: leaf.KeyPEM}}, func(t *testing.T, s *pgtest.Server) {
		ctx := context.Background()
		cfg := parse(t, verifyFullDSN(s, "localhost", rightCA))
		res, err := Wait(ctx, cfg, Options{Timeout: time.Minute})
		require.NoError(t, err)
		require.True(t, res.Ready())
		conn, err := pgx.ConnectConfig(ctx, cfg)
		require.NoError(t, err)
		var ssl bool
		require.NoError(t, conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl))
		require.True(t, ssl, "the session is encrypted")
		require.NoError(t, conn.Close(ctx))

		for name, tc := range map[string]struct{ host, ca, cause, hint string }{
			"wrong CA":        {"localhost", wrongCA, "certificate signed by unknown authority", "not signed by the CA in sslrootcert"},
			"wrong host name": {"127.0.0.1", rightCA, "doesn't contain any IP SANs", "does not name the host connected to"},
		} {
			res, err := Wait(ctx, parse(t, verifyFullDSN(s, tc.host, tc.ca)), Options{Timeout: 10 * time.Minute})
			t.Logf("%s: %v (hint: %s)", name, err, Hint(err))
			require.ErrorIs(t, err, ErrPermanent, name)
			require.Equal(t, 1, res.Attempts, "%s: no retrying", name)
			require.ErrorContains(t, err, tc.cause, name)
			require.Contains(t, Hint(err), tc.hint, name)
			require.NotContains(t, err.Error(), s.AdminPassword())
		}
	})
}
