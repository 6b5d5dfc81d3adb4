package pgtest

import (
	"testing"

	"github.com/kommons/kommons/internal/testutil/testca"
)

// VerifyFull is the set-up of a test of sslmode=verify-full: a test CA, the
// server certificate it issued for "localhost" (start the server with
// Options{TLS: v.TLS}) and, as files a client's sslrootcert names, the CA's
// certificate and another CA's.
type VerifyFull struct {
	// CA issued the server certificate.
	CA *testca.CA
	// TLS is the server certificate for "localhost" and its key.
	TLS *TLS
	// RightCA is the path of the CA's certificate (ca.crt), WrongCA that of
	// a CA that did not sign the server's (other.crt).
	RightCA, WrongCA string
}

// VerifyFailure is one way verify-full refuses the server: the host the
// client connects to, its sslrootcert, the x509 error the refusal names
// (Cause) and what pgready.Hint says of it.
type VerifyFailure struct {
	Name, Host, RootCert, Cause, Hint string
}

// NewVerifyFull generates a CA, a server certificate for "localhost" and
// another CA, and writes ca.crt and other.crt into dir.
func NewVerifyFull(t testing.TB, dir string) *VerifyFull {
	t.Helper()
	ca := testca.New(t, "kommons test CA")
	leaf := ca.Server(t, "localhost")
	return &VerifyFull{
		CA:      ca,
		TLS:     &TLS{CertPEM: leaf.CertPEM, KeyPEM: leaf.KeyPEM},
		RightCA: ca.WriteCert(t, dir, "ca.crt"),
		WrongCA: testca.New(t, "another CA").WriteCert(t, dir, "other.crt"),
	}
}

// Failures lists the refusals every verify-full test checks: a CA that did
// not sign the server's certificate, and a host name (127.0.0.1) the
// certificate does not name, with the right CA.
func (v *VerifyFull) Failures() []VerifyFailure {
	return []VerifyFailure{
		{Name: "wrong CA", Host: "localhost", RootCert: v.WrongCA,
			Cause: "x509: certificate signed by unknown authority", Hint: "not signed by the CA in sslrootcert"},
		{Name: "wrong host name", Host: "127.0.0.1", RootCert: v.RightCA,
			Cause: "x509: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs", Hint: "does not name the host connected to"},
	}
}
