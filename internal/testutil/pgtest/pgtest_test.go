package pgtest_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
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

// TestVersions starts every tested major version (KOMMONS_PG_MAJORS selects
// a subset): the server is that version and contrib's pg_trgm works. Under
// KOMMONS_REQUIRE_PG=1 (or CI=true) a version that is not installed fails.
func TestVersions(t *testing.T) {
	pgtest.EachVersion(t, func(t *testing.T, s *pgtest.Server) {
		ctx := context.Background()
		conn := pgtest.Connect(t, s.AdminDSN())
		var num int
		require.NoError(t, conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&num))
		major, err := strconv.Atoi(strings.TrimPrefix(t.Name()[strings.LastIndex(t.Name(), "/")+1:], "pg"))
		require.NoError(t, err)
		require.Equal(t, major, num/10000, "SHOW server_version_num is %d", num)
		require.Equal(t, num, s.VersionNum())
		require.Equal(t, major, s.Major())
		require.True(t, strings.HasPrefix(s.Version(), fmt.Sprintf("PostgreSQL %d.", major)), s.Version())

		_, err = conn.Exec(ctx, "CREATE EXTENSION pg_trgm")
		require.NoError(t, err)
		var sim float64
		require.NoError(t, conn.QueryRow(ctx, "SELECT similarity('kommons', 'commons')").Scan(&sim))
		require.Greater(t, sim, 0.3)
		t.Logf("%s (server_version_num %d) in %s", s.Version(), num, s.BinDir())
	})
}

// TestSharedVersions: one shared server per version, the same one on every call.
func TestSharedVersions(t *testing.T) {
	pgtest.EachSharedVersion(t, func(t *testing.T, s *pgtest.Server) {
		require.Same(t, s, pgtest.SharedVersion(t, s.Major()))
		db := s.NewDatabase(t, "shared")
		conn := pgtest.Connect(t, s.DSN(pgtest.AdminUser, s.AdminPassword(), db))
		var one int
		require.NoError(t, conn.QueryRow(context.Background(), "SELECT 1").Scan(&one))
		require.Equal(t, 1, one)
	})
}

func TestMajors(t *testing.T) {
	require.Equal(t, []int{15, 16, 17, 18}, pgtest.Majors())

	t.Setenv("KOMMONS_PG_MAJORS", "")
	ms, err := pgtest.SelectedMajors()
	require.NoError(t, err)
	require.Equal(t, pgtest.Majors(), ms)

	t.Setenv("KOMMONS_PG_MAJORS", "18, pg15,18")
	ms, err = pgtest.SelectedMajors()
	require.NoError(t, err)
	require.Equal(t, []int{15, 18}, ms)

	t.Setenv("KOMMONS_PG_MAJORS", "14")
	_, err = pgtest.SelectedMajors()
	require.ErrorContains(t, err, `"14" is not one of [15 16 17 18]`)

	_, err = pgtest.BinDirFor(14)
	require.Error(t, err)
}

// TestMissingVersion: a version found nowhere is ErrNotInstalled, and the
// error names the version and how to install it.
func TestMissingVersion(t *testing.T) {
	t.Setenv("KOMMONS_CACHE", t.TempDir())
	_, err := pgtest.BinDirFor(18)
	if err == nil {
		t.Skip("PostgreSQL 18 is installed under /usr/lib/postgresql/18")
	}
	require.ErrorIs(t, err, pgtest.ErrNotInstalled)
	require.ErrorContains(t, err, "PostgreSQL 18 not installed")
	require.ErrorContains(t, err, "make tools")
	require.ErrorContains(t, err, "KOMMONS_PG18_BIN")

	t.Setenv("KOMMONS_PG17_BIN", t.TempDir())
	_, err = pgtest.Start(pgtest.Options{Major: 17})
	require.ErrorIs(t, err, pgtest.ErrNotInstalled)
	require.ErrorContains(t, err, "KOMMONS_PG17_BIN")
}

// Testpgtest.DefaultMajorEnv: KOMMONS_PG_DEFAULT_MAJOR makes a server started
// without Options.Major run that version (make test reruns the
// provisioning packages with it); a value that is not a known major fails.
func TestDefaultMajorEnv(t *testing.T) {
	t.Setenv(pgtest.DefaultMajorEnv, "18")
	s := pgtest.New(t, pgtest.Options{})
	if s.Major() != 18 {
		t.Fatalf("%s=18 started %s", pgtest.DefaultMajorEnv, s.Version())
	}
	t.Setenv(pgtest.DefaultMajorEnv, "14")
	if _, err := pgtest.Start(pgtest.Options{}); err == nil || !strings.Contains(err.Error(), pgtest.DefaultMajorEnv) {
		t.Fatalf("an unknown major: got %v", err)
	}
}
