package s3provision

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Connection says where the object store is and how to authenticate.
type Connection struct {
	// Endpoint is the S3 API URL: http(s)://host[:port], no path.
	Endpoint string
	// Region is the bucket region (empty: us-east-1, MinIO's default).
	Region string
	// PathStyle selects path-style addressing (MinIO); false selects
	// virtual-host style (bucket.host, AWS's preference).
	PathStyle bool
	// Insecure skips TLS certificate verification.
	Insecure bool
	// CAFile adds PEM CA certificates to trust for TLS.
	CAFile string
	// AccessKey, SecretKey and SessionToken are the admin credentials.
	AccessKey, SecretKey, SessionToken string
	// RequestTimeout bounds how long one request waits for response
	// headers (0: 30s), so a hung server is retried rather than waited on.
	RequestTimeout time.Duration
}

// ParseEndpoint splits an endpoint URL into minio-go's host[:port] and
// secure flag. It refuses anything but a bare http or https origin.
func ParseEndpoint(raw string) (host string, secure bool, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", false, fmt.Errorf("endpoint %q: %w", raw, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", false, fmt.Errorf("endpoint %q: want http://host[:port] or https://host[:port]", raw)
	case u.Host == "":
		return "", false, fmt.Errorf("endpoint %q: no host", raw)
	case u.User != nil:
		return "", false, fmt.Errorf("endpoint: credentials in the URL are not accepted (use the key files)")
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return "", false, fmt.Errorf("endpoint %q: must not have a path, query or fragment", raw)
	}
	return u.Host, u.Scheme == "https", nil
}

func (c Connection) transport(secure bool) (*http.Transport, error) {
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	timeout := c.RequestTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	tr.ResponseHeaderTimeout = timeout
	if secure {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.Insecure} //nolint:gosec // --insecure is the user's explicit choice
		if c.CAFile != "" {
			pool, err := LoadCertPool(c.CAFile)
			if err != nil {
				return nil, err
			}
			cfg.RootCAs = pool
		}
		tr.TLSClientConfig = cfg
	}
	return tr, nil
}

// S3Client returns a minio-go client with the connection's credentials.
func (c Connection) S3Client() (*minio.Client, error) {
	return c.s3ClientAs(credentials.NewStaticV4(c.AccessKey, c.SecretKey, c.SessionToken))
}

func (c Connection) s3ClientAs(creds *credentials.Credentials) (*minio.Client, error) {
	host, secure, err := ParseEndpoint(c.Endpoint)
	if err != nil {
		return nil, err
	}
	tr, err := c.transport(secure)
	if err != nil {
		return nil, err
	}
	lookup := minio.BucketLookupDNS
	if c.PathStyle {
		lookup = minio.BucketLookupPath
	}
	// MaxRetries 1: Run retries whole reconciles with its own backoff and
	// deadline instead of minio-go's fixed 10 attempts per request.
	cl, err := minio.New(host, &minio.Options{Creds: creds, Secure: secure, Transport: tr,
		Region: c.Region, BucketLookup: lookup, MaxRetries: 1})
	if err != nil {
		return nil, fmt.Errorf("S3 client: %w", err)
	}
	cl.SetAppInfo("kommons-s3-init", "1")
	return cl, nil
}

// AdminClient returns a MinIO admin API client with the connection's credentials.
func (c Connection) AdminClient() (*madmin.AdminClient, error) {
	host, secure, err := ParseEndpoint(c.Endpoint)
	if err != nil {
		return nil, err
	}
	tr, err := c.transport(secure)
	if err != nil {
		return nil, err
	}
	adm, err := madmin.NewWithOptions(host, &madmin.Options{
		Creds: credentials.NewStaticV4(c.AccessKey, c.SecretKey, c.SessionToken), Secure: secure, Transport: tr})
	if err != nil {
		return nil, fmt.Errorf("MinIO admin client: %w", err)
	}
	adm.SetAppInfo("kommons-s3-init", "1")
	return adm, nil
}

// LoadCertPool returns the system's trusted certificates plus the PEM
// certificates of file.
func LoadCertPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate found", file)
	}
	return pool, nil
}
