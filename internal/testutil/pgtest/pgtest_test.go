package pgtest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestRoundTrip proves the harness is a real server: SQL goes in, rows come
// back, scram-sha-256 rejects a wrong password.
func TestRoundTrip(t *testing.T) {
	s := pgtest.Shared(t)
	db := s.NewDatabase(t, "smoke")
	conn := pgtest.Connect(t, s.DSN(pgtest.AdminUser, s.AdminPassword(), db))
	ctx := context.Background()
	_, err := conn.Exec(ctx, "CREATE TABLE t (id int primary key, v text)")
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "INSERT INTO t VALUES ($1, $2)", 7, "seven")
	require.NoError(t, err)
	var v string
	require.NoError(t, conn.QueryRow(ctx, "SELECT v FROM t WHERE id = 7").Scan(&v))
	require.Equal(t, "seven", v)

	var method string
	require.NoError(t, conn.QueryRow(ctx, "SELECT auth_method FROM pg_hba_file_rules WHERE type = 'host' LIMIT 1").Scan(&method))
	require.Equal(t, "scram-sha-256", method)

	_, err = pgx.Connect(ctx, s.DSN(pgtest.AdminUser, "wrong", db))
	require.ErrorContains(t, err, "password authentication failed")
}

// TestStopKillRestart exercises the fault-test controls on a private server:
// the port survives restarts, committed data survives a SIGKILL.
func TestStopKillRestart(t *testing.T) {
	s := pgtest.New(t, pgtest.Options{})
	ctx := context.Background()
	s.Exec(t, "CREATE TABLE survives (x int)")
	s.Exec(t, "INSERT INTO survives VALUES (42)")
	port := s.Port()

	s.Stop()
	require.False(t, s.Running())
	_, err := pgx.Connect(ctx, s.AdminDSN())
	require.Error(t, err, "a stopped server must refuse connections")

	require.NoError(t, s.Start())
	require.Equal(t, port, s.Port())

	s.Kill()
	require.NoError(t, s.Start(), "start after SIGKILL runs crash recovery")
	conn := pgtest.Connect(t, s.AdminDSN())
	var x int
	require.NoError(t, conn.QueryRow(ctx, "SELECT x FROM survives").Scan(&x))
	require.Equal(t, 42, x)
}
