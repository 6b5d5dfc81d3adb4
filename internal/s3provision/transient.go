package s3provision

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"
)

// transientCodes are S3 and MinIO error codes worth retrying: the server is
// starting, overloaded or briefly unable to answer.
var transientCodes = map[string]bool{
	"XMinioServerNotInitialized":         true,
	"XMinioIAMNotInitialized":            true,
	"XMinioBucketMetadataNotInitialized": true,
	"XMinioReadQuorum":                   true,
	"XMinioWriteQuorum":                  true,
	"ServiceUnavailable":                 true,
	"SlowDown":                           true,
	"InternalError":                      true,
	"RequestTimeout":                     true,
	"RequestTimeTooSkewed":               false,
}

// IsTransient reports whether err is worth retrying once the endpoint
// answers again: network failures, 5xx and 429 responses, and the codes
// MinIO returns while it starts. Authentication, authorization and
// validation errors are permanent. A cancelled context is not transient.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var me minio.ErrorResponse
	if errors.As(err, &me) {
		if me.StatusCode >= 500 || me.StatusCode == 429 {
			return true
		}
		return transientCodes[me.Code]
	}
	var ae madmin.ErrorResponse
	if errors.As(err, &ae) {
		// madmin puts the HTTP status ("503 Service Unavailable") in Code
		// when the body is not an error document.
		return transientCodes[ae.Code] || strings.HasPrefix(ae.Code, "5") || strings.HasPrefix(ae.Code, "429")
	}
	// A certificate the client does not trust will not become trusted by
	// waiting: fail at once (before the generic network-error case).
	var (
		verr  *tls.CertificateVerificationError
		uaerr x509.UnknownAuthorityError
		hnerr x509.HostnameError
		cierr x509.CertificateInvalidError
		rherr tls.RecordHeaderError
	)
	if errors.As(err, &verr) || errors.As(err, &uaerr) || errors.As(err, &hnerr) || errors.As(err, &cierr) || errors.As(err, &rherr) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// errorCode returns the S3 or MinIO admin error code of err, or "".
func errorCode(err error) string {
	var me minio.ErrorResponse
	if errors.As(err, &me) {
		return me.Code
	}
	var ae madmin.ErrorResponse
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}
