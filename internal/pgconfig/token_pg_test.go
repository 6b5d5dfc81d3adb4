package pgconfig_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/pgconfig"
	"github.com/kommons/kommons/internal/pgready"
	"github.com/kommons/kommons/internal/testutil/pgtest"
)

// TestPasswordFileIsReadPerConnection is the plumbing of short-lived token
// authentication against a real PostgreSQL, with a local token source: a
// file that "the token provider" rewrites while the role's password changes
// on the server, as an RDS IAM, Entra or Cloud SQL IAM token would. One
// parsed config connects with the first token, then with the second (each
// connection reads the file); a stale token fails with the server's
// password error (28P01), permanent for wait-for-pg --fail-fast-auth, and a
// vanished token file names the file.
func TestPasswordFileIsReadPerConnection(t *testing.T) {
	for _, k := range []string{"PGPASSWORD", "PGPASSFILE", "PGSERVICE", "PGSERVICEFILE", "PGSSLROOTCERT", "PGCONNECT_TIMEOUT"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	s := pgtest.New(t, pgtest.Options{})
	s.Exec(t, "CREATE ROLE token_user LOGIN PASSWORD 'token-one-0123456789'")
	tokenFile := filepath.Join(t.TempDir(), "token")
	write := func(tok string) { require.NoError(t, os.WriteFile(tokenFile, []byte(tok+"\n"), 0o600)) }
	write("token-one-0123456789")

	t.Setenv("PGHOST", s.Host())
	t.Setenv("PGPORT", strconv.Itoa(s.Port()))
	t.Setenv("PGUSER", "token_user")
	t.Setenv("PGDATABASE", "postgres")
	t.Setenv("PGSSLMODE", "disable")
	cfg, err := pgconfig.Load(pgconfig.Source{PasswordFile: tokenFile, PasswordFileFlag: "--password-file"})
	require.NoError(t, err)
	ctx := context.Background()
	connect := func() error {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			conn.Close(ctx)
		}
		return err
	}
	require.NoError(t, connect(), "the first token")

	// The provider renews the token: the server accepts only the new one.
	s.Exec(t, "ALTER ROLE token_user PASSWORD 'token-two-9876543210'")
	write("token-two-9876543210")
	require.NoError(t, connect(), "the renewed token, read at connect time from the same config")
	require.Equal(t, "token-one-0123456789", cfg.Password, "the parsed config is left as it was")
	// A copy for another role and its own password (pg-init checks a role's
	// password by logging in as it) keeps that password.
	s.Exec(t, "CREATE ROLE other_user LOGIN PASSWORD 'other-password-0123'")
	other := cfg.Copy()
	other.User, other.Password = "other_user", "other-password-0123"
	conn, err := pgx.ConnectConfig(ctx, other)
	require.NoError(t, err, "a derived config's own password is not replaced by the token")
	conn.Close(ctx)

	// An expired (stale) token: the server refuses it, and the error says so.
	s.Exec(t, "ALTER ROLE token_user PASSWORD 'token-three-1111111111'")
	err = connect()
	require.Error(t, err)
	require.Equal(t, "28P01", pgready.SQLState(err))
	require.ErrorContains(t, err, "password authentication failed for user \"token_user\"")
	res, err := pgready.Wait(ctx, cfg, pgready.Options{FailFastAuth: true, Timeout: 10 * time.Minute})
	require.ErrorIs(t, err, pgready.ErrPermanent)
	require.Equal(t, 1, res.Attempts)
	require.NotContains(t, err.Error(), "token-two-9876543210")

	// The provider has not written the file (yet): the error names it.
	require.NoError(t, os.Remove(tokenFile))
	err = connect()
	require.ErrorContains(t, err, "--password-file")
	require.ErrorContains(t, err, tokenFile)
}
