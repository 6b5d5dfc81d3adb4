package pgready

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// SQLState returns the SQLSTATE of the first PostgreSQL error in err's
// chain, or "" when there is none.
func SQLState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// levelOfConnectError is how far a failed connect got: a server error tells
// by its SQLSTATE; otherwise it got to tcp when a dial succeeded.
func levelOfConnectError(err error, dialed bool) Level {
	switch code := SQLState(err); {
	case code == "57P03" || strings.HasPrefix(code, "53"):
		// cannot_connect_now (starting up, shutting down, recovering), too many clients, out of resources
		return LevelTCP
	case strings.HasPrefix(code, "28"):
		// invalid_authorization_specification (28000: no pg_hba entry, role missing), invalid_password (28P01)
		return LevelAccepting
	case code == "3D000" || code == "42501":
		// invalid_catalog_name (database missing), insufficient_privilege (no CONNECT on the database)
		return LevelAuth
	case code != "":
		return LevelTCP
	}
	if dialed {
		return LevelTCP
	}
	return LevelNone
}

// IsAuthError reports whether err is an authentication failure (SQLSTATE
// class 28: wrong password, unknown role, no pg_hba.conf entry).
func IsAuthError(err error) bool { return strings.HasPrefix(SQLState(err), "28") }

// IsPermanent reports whether retrying err cannot help because the client is
// configured wrong: TLS verification failed (wrong CA, a host name the
// certificate does not name, an expired certificate), TLS required but
// refused, invalid connection options. Authentication failures are not
// included (the role may not exist yet). pg-init uses it to stop at once
// instead of retrying until its deadline.
func IsPermanent(err error) bool { return isPermanent(err, false) }

// isPermanent reports whether retrying err cannot help: configuration
// mistakes on the client side (TLS verification against the wrong CA or
// host name, TLS required but refused, invalid connection options) and, with
// failFastAuth, authentication failures. Everything else, including errors
// not recognised, is transient: waiting is the safe default for a gate.
func isPermanent(err error, failFastAuth bool) bool {
	if err == nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	if failFastAuth && IsAuthError(err) {
		return true
	}
	switch code := SQLState(err); {
	case code == "22023" || code == "42601" || code == "42602" || code == "0A000":
		// invalid_parameter_value, syntax_error, invalid_name: a bad --require-* value or unsupported option
		return true
	case code != "":
		return false
	}
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
	)
	if errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid) {
		return true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return false // the Service may not exist yet
	}
	msg := err.Error()
	for _, s := range permanentMessages {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// permanentMessages are pgconn failures without an exported error type that
// no amount of waiting fixes.
var permanentMessages = []string{
	"server refused TLS connection",
	"invalid sslcertmode",
	"invalid max_protocol_version",
	"invalid min_protocol_version",
	"invalid require_auth",
	"require_auth check failed",
	"channel binding check failed",
	"sslcertmode check failed",
	"tls: failed to verify certificate",
}

// errorKey identifies an error for "log only when it changes": the SQLSTATE,
// else the message without addresses that vary between attempts.
func errorKey(err error) string {
	if err == nil {
		return ""
	}
	if code := SQLState(err); code != "" {
		return code
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Err != nil {
		return opErr.Op + ": " + opErr.Err.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return err.Error()
}
