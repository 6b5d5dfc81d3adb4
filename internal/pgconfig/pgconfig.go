// Package pgconfig builds a *pgx.ConnConfig from the places kommons users keep
// connection settings: a --dsn (URL or keyword/value), the libpq environment
// (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGPASSFILE, PGDATABASE, PGSSLMODE,
// PGCONNECT_TIMEOUT, read by pgx's ParseConfig) and an optional password file
// (a mounted Kubernetes Secret). It also renders a configuration without its
// password (Describe); package redact scrubs passwords from error text,
// because server messages and driver errors can echo their input.
package pgconfig

import (
	"context"
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
	// DSN, PGPASSWORD or PGPASSFILE. It is read again for every connection
	// (see FreshPassword), so a short-lived token that another process
	// renews in the file (RDS IAM, Azure Entra, Cloud SQL IAM) is used as
	// it is at connect time.
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
		what := orDefault(src.PasswordFileFlag, "password file")
		pw, err := secretfile.Read(src.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("%s %w", what, err)
		}
		cfg.Password = pw
		FreshPassword(cfg, func(context.Context) (string, error) {
			pw, err := secretfile.Read(src.PasswordFile)
			if err != nil {
				return "", fmt.Errorf("%s %w", what, err)
			}
			return pw, nil
		})
	}
	if src.Database != "" {
		cfg.Database = src.Database
	}
	if cfg.User == "" {
		return nil, errors.New("connection settings: no user (set PGUSER, user= in --dsn)")
	}
	return cfg, nil
}

// PasswordFunc returns the password of one new connection, e.g. a
// short-lived authentication token read from where a token provider keeps it
// fresh.
type PasswordFunc func(ctx context.Context) (string, error)

// FreshPassword makes every connection opened with cfg (pgx.ConnectConfig,
// which works on a copy per connection) authenticate with the password get
// returns at that moment, instead of the one cfg held when it was parsed:
// the plug for token authentication, where a password lives minutes. It
// runs after the network (and TLS) connection is up, before the startup
// message; an error from get fails that connection attempt with it. A copy
// of cfg made for another user or password (pg-init logs in as a role to
// check its password) keeps its own: only connections still carrying cfg's
// user and password get the fresh one.
func FreshPassword(cfg *pgx.ConnConfig, get PasswordFunc) {
	next := cfg.AfterNetConnect
	user, parsed := cfg.User, cfg.Password
	cfg.AfterNetConnect = func(ctx context.Context, c *pgconn.Config, conn net.Conn) (net.Conn, error) {
		if c.User == user && c.Password == parsed {
			pw, err := get(ctx)
			if err != nil {
				return conn, err // pgconn closes conn
			}
			c.Password = pw // c is this connection's own copy of the config
		}
		if next != nil {
			return next(ctx, c, conn)
		}
		return conn, nil
	}
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
