// Package pgconfig builds a *pgx.ConnConfig from the places kommons users keep
// connection settings: a --dsn (URL or keyword/value), the libpq environment
// (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGPASSFILE, PGDATABASE, PGSSLMODE,
// PGCONNECT_TIMEOUT, read by pgx's ParseConfig) and an optional password file
// (a mounted Kubernetes Secret). It also renders a configuration without its
// password (Describe); package redact scrubs passwords from error text,
// because server messages and driver errors can echo their input.
package pgconfig

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kommons/kommons/internal/redact"
	"github.com/kommons/kommons/internal/secretfile"
)

// Source names where the connection settings come from. Empty fields are
// ignored; the libpq environment always fills in what the DSN leaves out.
type Source struct {
	// DSN is a connection string, URL (postgres://user@host:5432/db?sslmode=require)
	// or keyword/value (host=db user=app dbname=app). Empty: environment only.
	DSN string
	// PasswordFile is a file holding only the password, e.g. a mounted Secret,
	// read by secretfile.Read (a regular file of at most 64 KiB; one trailing
	// newline, \n or \r\n, is removed); it overrides any password from the
	// DSN, PGPASSWORD or PGPASSFILE.
	PasswordFile string
	// PasswordFileFlag names PasswordFile in errors, e.g. "--password-file".
	PasswordFileFlag string
	// Database, when set, overrides the database named by the DSN or PGDATABASE.
	Database string
}

// Load parses the DSN together with the libpq environment, applies the
// password file and database override, and returns the config. Errors name
// the offending source and never contain a password.
func Load(src Source) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(src.DSN)
	if err != nil {
		where := "--dsn"
		if strings.TrimSpace(src.DSN) == "" {
			where = "PG* environment"
		}
		return nil, fmt.Errorf("connection settings (%s): %s", where, parseErrorReason(err, src.DSN))
	}
	if src.PasswordFile != "" {
		pw, err := secretfile.Read(src.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("%s %w", orDefault(src.PasswordFileFlag, "password file"), err)
		}
		cfg.Password = pw
	}
	if src.Database != "" {
		cfg.Database = src.Database
	}
	if cfg.User == "" {
		return nil, errors.New("connection settings: no user (set PGUSER, user= in --dsn)")
	}
	return cfg, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// parseErrorReason returns pgx's reason for a parse failure without the
// connection string itself (which may hold a password).
func parseErrorReason(err error, dsn string) string {
	msg := err.Error()
	var pce *pgconn.ParseConfigError
	if errors.As(err, &pce) {
		if i := strings.Index(msg, "`: "); strings.HasPrefix(msg, "cannot parse `") && i > 0 {
			msg = msg[i+3:]
		}
	}
	return redact.String(msg, dsnPasswords(dsn)...)
}

// dsnPasswords returns password candidates from a (possibly invalid)
// connection string and the environment, for scrubbing error text.
func dsnPasswords(dsn string) []string {
	out := []string{os.Getenv("PGPASSWORD")}
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			out = append(out, p)
		}
		out = append(out, u.Query().Get("password"))
	}
	for _, f := range strings.Fields(dsn) {
		if v, ok := strings.CutPrefix(f, "password="); ok {
			out = append(out, strings.Trim(v, "'"))
		}
	}
	return out
}

// Describe renders where cfg connects, for logs: host(s), port, user,
// database and sslmode. It never includes the password.
func Describe(cfg *pgx.ConnConfig) string {
	if cfg == nil {
		return "<no connection config>"
	}
	hosts := []string{hostPort(cfg.Host, cfg.Port)}
	for _, fb := range cfg.Fallbacks {
		if hp := hostPort(fb.Host, fb.Port); !contains(hosts, hp) {
			hosts = append(hosts, hp)
		}
	}
	return fmt.Sprintf("host=%s user=%s database=%s sslmode=%s",
		strings.Join(hosts, ","), orNone(cfg.User), orNone(cfg.Database), SSLMode(&cfg.Config))
}

func hostPort(host string, port uint16) string {
	if strings.HasPrefix(host, "/") {
		return host + ":" + strconv.Itoa(int(port))
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func orNone(s string) string {
	if s == "" {
		return `""`
	}
	return s
}

// SSLMode reconstructs the effective libpq sslmode of a parsed config from
// its TLS settings (pgx keeps no sslmode field): disable, allow, prefer,
// require, verify-ca or verify-full.
func SSLMode(cfg *pgconn.Config) string {
	fallbackTLS, fallbackPlain := false, false
	for _, fb := range cfg.Fallbacks {
		if fb.Host != cfg.Host || fb.Port != cfg.Port {
			continue
		}
		if fb.TLSConfig == nil {
			fallbackPlain = true
		} else {
			fallbackTLS = true
		}
	}
	switch {
	case cfg.TLSConfig == nil && fallbackTLS:
		return "allow"
	case cfg.TLSConfig == nil:
		return "disable"
	case fallbackPlain:
		return "prefer"
	case !cfg.TLSConfig.InsecureSkipVerify:
		return "verify-full"
	case cfg.TLSConfig.VerifyPeerCertificate != nil || cfg.TLSConfig.VerifyConnection != nil:
		return "verify-ca"
	default:
		return "require"
	}
}
