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
	v := pgtest.NewVerifyFull(t, t.TempDir())
	pgtest.EachVersionWith(t, pgtest.Options{TLS: v.TLS}, func(t *testing.T, s *pgtest.Server) {
		ctx := context.Background()
		cfg := parse(t, verifyFullDSN(s, "localhost", v.RightCA))
		res, err := Wait(ctx, cfg, Options{Timeout: time.Minute})
		require.NoError(t, err)
		require.True(t, res.Ready())
		conn, err := pgx.ConnectConfig(ctx, cfg)
		require.NoError(t, err)
		var ssl bool
		require.NoError(t, conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl))
		require.True(t, ssl, "the session is encrypted")
		require.NoError(t, conn.Close(ctx))

		for _, f := range v.Failures() {
			res, err := Wait(ctx, parse(t, verifyFullDSN(s, f.Host, f.RootCert)), Options{Timeout: 10 * time.Minute})
			t.Logf("%s: %v (hint: %s)", f.Name, err, Hint(err))
			require.ErrorIs(t, err, ErrPermanent, f.Name)
			require.Equal(t, 1, res.Attempts, "%s: no retrying", f.Name)
			require.ErrorContains(t, err, f.Cause, f.Name)
			require.Contains(t, Hint(err), f.Hint, f.Name)
			require.NotContains(t, err.Error(), s.AdminPassword())
		}
	})
}
