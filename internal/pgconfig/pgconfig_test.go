package pgconfig

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// clearPGEnv isolates a test from the caller's libpq environment.
func clearPGEnv(t *testing.T) {
	for _, k := range []string{"PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGPASSFILE", "PGDATABASE",
		"PGSSLMODE", "PGCONNECT_TIMEOUT", "PGSERVICE", "PGSERVICEFILE", "PGAPPNAME", "PGSSLROOTCERT"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

func TestLoadFromEnvironment(t *testing.T) {
	clearPGEnv(t)
	t.Setenv("PGHOST", "db.example")
	t.Setenv("PGPORT", "6543")
	t.Setenv("PGUSER", "app")
	t.Setenv("PGPASSWORD", "env-pw")
	t.Setenv("PGDATABASE", "appdb")
	t.Setenv("PGSSLMODE", "require")
	t.Setenv("PGCONNECT_TIMEOUT", "7")
	cfg, err := Load(Source{})
	require.NoError(t, err)
	require.Equal(t, "db.example", cfg.Host)
	require.Equal(t, uint16(6543), cfg.Port)
	require.Equal(t, "app", cfg.User)
	require.Equal(t, "env-pw", cfg.Password)
	require.Equal(t, "appdb", cfg.Database)
	require.Equal(t, 7*time.Second, cfg.ConnectTimeout)
	require.Equal(t, "host=db.example:6543 user=app database=appdb sslmode=require", Describe(cfg))
}

func TestDSNOverridesEnvironmentAndFileOverridesPassword(t *testing.T) {
	clearPGEnv(t)
	t.Setenv("PGHOST", "ignored.example")
	t.Setenv("PGPASSWORD", "env-pw")
	pwFile := filepath.Join(t.TempDir(), "password")
	require.NoError(t, os.WriteFile(pwFile, []byte("file pw \r\n"), 0o600))
	cfg, err := Load(Source{DSN: "host=db port=5433 user=u dbname=d sslmode=disable", PasswordFile: pwFile, Database: "other"})
	require.NoError(t, err)
	require.Equal(t, "db", cfg.Host)
	require.Equal(t, "file pw ", cfg.Password, "one trailing newline is removed, inner/trailing spaces kept")
	require.Equal(t, "other", cfg.Database)
	require.Equal(t, "host=db:5433 user=u database=other sslmode=disable", Describe(cfg))
}

func TestPasswordFileErrorsNameTheFile(t *testing.T) {
	clearPGEnv(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope")
	_, err := Load(Source{DSN: "postgres://u@h/d", PasswordFile: missing})
	require.ErrorContains(t, err, "password file "+missing)
	require.ErrorIs(t, err, os.ErrNotExist)

	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	_, err = Load(Source{DSN: "postgres://u@h/d", PasswordFile: empty})
	require.EqualError(t, err, "password file "+empty+": empty")
}

func TestInvalidDSNNamesSourceWithoutPassword(t *testing.T) {
	clearPGEnv(t)
	for _, dsn := range []string{
		"postgres://u:hunter2-secret@h:notaport/d",
		"host=h user=u password=hunter2-secret sslmode=bogus",
	} {
		_, err := Load(Source{DSN: dsn})
		require.Error(t, err, dsn)
		require.Contains(t, err.Error(), "connection settings (--dsn)")
		require.NotContains(t, err.Error(), "hunter2-secret")
	}
	t.Setenv("PGHOST", "db.example") // TLS settings are ignored for Unix sockets
	t.Setenv("PGUSER", "app")
	t.Setenv("PGSSLMODE", "sometimes")
	_, err := Load(Source{DSN: ""})
	require.ErrorContains(t, err, "connection settings (PG* environment)")
	require.ErrorContains(t, err, "sslmode")
}

func TestDescribeSSLModes(t *testing.T) {
	clearPGEnv(t)
	for mode, want := range map[string]string{"disable": "disable", "allow": "allow", "prefer": "prefer", "require": "require", "verify-full": "verify-full"} {
		cfg, err := Load(Source{DSN: "postgres://u:pw@h1:5432,h2:5433/d?sslmode=" + mode})
		require.NoError(t, err, mode)
		require.Equal(t, "host=h1:5432,h2:5433 user=u database=d sslmode="+want, Describe(cfg))
		require.NotContains(t, Describe(cfg), "pw")
	}
}

func TestPasswordPrecedence(t *testing.T) {
	clearPGEnv(t)
	dir := t.TempDir()
	passfile := filepath.Join(dir, "pgpass")
	require.NoError(t, os.WriteFile(passfile, []byte("db:5432:appdb:app:from-pgpass\n"), 0o600))
	t.Setenv("PGPASSFILE", passfile)
	src := Source{DSN: "host=db port=5432 user=app dbname=appdb sslmode=disable"}

	cfg, err := Load(src)
	require.NoError(t, err)
	require.Equal(t, "from-pgpass", cfg.Password, "PGPASSFILE when nothing else is set")

	t.Setenv("PGPASSWORD", "from-env")
	cfg, err = Load(src)
	require.NoError(t, err)
	require.Equal(t, "from-env", cfg.Password, "PGPASSWORD beats PGPASSFILE")

	cfg, err = Load(Source{DSN: src.DSN + " password=from-dsn"})
	require.NoError(t, err)
	require.Equal(t, "from-dsn", cfg.Password, "the DSN beats PGPASSWORD")

	file := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(file, []byte("from-file\n"), 0o600))
	cfg, err = Load(Source{DSN: src.DSN + " password=from-dsn", PasswordFile: file})
	require.NoError(t, err)
	require.Equal(t, "from-file", cfg.Password, "--password-file beats everything")
}
