package pgready

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"syscall"
)

// Hint returns a one-line suggestion of what to check for err, as an
// operator would need it during a stuck rollout, or "" when there is none.
func Hint(err error) string {
	if err == nil {
		return ""
	}
	switch code := SQLState(err); {
	case code == "57P03":
		return "the server is starting up, shutting down or recovering; wait, or check its log"
	case code == "53300":
		return "the server has no free connection slots (max_connections); look for connection leaks"
	case code == "28P01":
		return "password rejected: the role may not exist yet (has pg-init run?) or the password Secret differs from the role's"
	case code == "28000":
		return "no pg_hba.conf entry for this client, or the role does not exist yet (has pg-init run?)"
	case code == "3D000":
		return "the database does not exist yet: has the module's pg-init Job run and succeeded?"
	case code == "42501":
		return "the role lacks a privilege (CONNECT on the database, or one a check needs): pg-init grants it"
	case code != "":
		return ""
	}
	var dnsErr *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	msg := err.Error()
	switch {
	case errors.As(err, &dnsErr):
		return "the host name does not resolve: check the Service name and namespace in PGHOST/--dsn"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "nothing listens on that address: is the PostgreSQL pod running and its Service pointing at it?"
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ETIMEDOUT) || errors.Is(err, syscall.EHOSTUNREACH):
		return "no answer within the connect timeout: check NetworkPolicies, the host and the port"
	case strings.Contains(msg, "server refused TLS connection"):
		return "sslmode requires TLS but the server has SSL off: use sslmode=prefer/disable or enable SSL on the server"
	case errors.As(err, &unknownCA):
		return "the server certificate is not signed by the CA in sslrootcert (PGSSLROOTCERT): mount the CA of the server's certificate (the tenant Secret's ca.crt)"
	case errors.As(err, &hostname):
		return "the server certificate does not name the host connected to (PGHOST): connect by a name the certificate lists, or reissue it with that name"
	case errors.As(err, &invalid):
		return "the server certificate is expired, not yet valid or not usable for a server: renew it (check the clocks too)"
	case strings.Contains(msg, "failed to verify certificate"):
		return "the server certificate failed verification: check sslrootcert and that the host name matches the certificate"
	case strings.HasPrefix(msg, "check "):
		return "connected, but a --primary/--require-* check fails: migrations or grants may not have run yet"
	}
	return ""
}
