// Package kubeapi is a tiny client of the Kubernetes API for the one thing
// secret-init does: get, create and merge-patch Secrets, get ConfigMaps. It speaks REST over
// net/http instead of linking client-go (which would grow the kommons-tools
// binaries tenfold), reads the in-cluster ServiceAccount credentials, and
// returns typed errors (NotFound, AlreadyExists, Conflict, Forbidden) that
// carry the API server's status code and message.
package kubeapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ServiceAccountDir is where the kubelet mounts a pod's ServiceAccount
// credentials (token, ca.crt, namespace).
const ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// Config says how to reach the API server.
type Config struct {
	// Server is the API server URL, https://host:port.
	Server string
	// Token is a bearer token; TokenFile, when set, is read before each
	// request instead (the kubelet rotates projected tokens).
	Token     string
	TokenFile string
	// CAData is the PEM bundle the server's certificate must chain to.
	CAData []byte
	// Namespace is the default namespace (the pod's own in a cluster).
	Namespace string
	// Timeout bounds one request; zero means 30 seconds.
	Timeout time.Duration
}

// InCluster is the Config of a pod: KUBERNETES_SERVICE_HOST/PORT and the
// ServiceAccount files under dir (ServiceAccountDir when empty).
func InCluster(dir string) (Config, error) {
	if dir == "" {
		dir = ServiceAccountDir
	}
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return Config{}, errors.New("kubeapi: not in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set")
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return Config{}, fmt.Errorf("kubeapi: read the cluster CA: %w", err)
	}
	ns, err := os.ReadFile(filepath.Join(dir, "namespace"))
	if err != nil {
		return Config{}, fmt.Errorf("kubeapi: read the pod's namespace: %w", err)
	}
	tokenFile := filepath.Join(dir, "token")
	if _, err := os.Stat(tokenFile); err != nil {
		return Config{}, fmt.Errorf("kubeapi: ServiceAccount token: %w (is automountServiceAccountToken false?)", err)
	}
	return Config{
		Server:    "https://" + net.JoinHostPort(host, port),
		TokenFile: tokenFile,
		CAData:    ca,
		Namespace: strings.TrimSpace(string(ns)),
	}, nil
}

// Client calls the API server.
type Client struct {
	cfg  Config
	http *http.Client
}

// New returns a client for cfg.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.Server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("kubeapi: server %q: want https://host[:port]", cfg.Server)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(cfg.CAData) {
		return nil, errors.New("kubeapi: the CA data holds no PEM certificate")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		Proxy:               http.ProxyFromEnvironment,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 4,
	}
	return &Client{cfg: cfg, http: &http.Client{Transport: tr, Timeout: cfg.Timeout}}, nil
}

// Namespace is the client's default namespace.
func (c *Client) Namespace() string { return c.cfg.Namespace }

// ObjectMeta is the part of metadata secret-init reads and writes.
type ObjectMeta struct {
	Name            string            `json:"name"`
	Namespace       string            `json:"namespace,omitempty"`
	ResourceVersion string            `json:"resourceVersion,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
	Annotations     map[string]string `json:"annotations,omitempty"`
}

// Secret is a core/v1 Secret (Data values are raw bytes; JSON carries them
// base64-encoded, as the API does).
type Secret struct {
	APIVersion string            `json:"apiVersion,omitempty"`
	Kind       string            `json:"kind,omitempty"`
	Metadata   ObjectMeta        `json:"metadata"`
	Type       string            `json:"type,omitempty"`
	Data       map[string][]byte `json:"data,omitempty"`
}

// GetSecret reads Secret namespace/name.
func (c *Client) GetSecret(ctx context.Context, namespace, name string) (*Secret, error) {
	var s Secret
	if err := c.do(ctx, "get", http.MethodGet, secretPath(namespace, name), "", nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// CreateSecret creates s in s.Metadata.Namespace.
func (c *Client) CreateSecret(ctx context.Context, s *Secret) (*Secret, error) {
	in := *s
	in.APIVersion, in.Kind = "v1", "Secret"
	body, err := json.Marshal(&in)
	if err != nil {
		return nil, fmt.Errorf("kubeapi: encode Secret %s/%s: %w", s.Metadata.Namespace, s.Metadata.Name, err)
	}
	var out Secret
	if err := c.do(ctx, "create", http.MethodPost, secretPath(s.Metadata.Namespace, ""), "application/json", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PatchSecret applies a JSON merge patch (RFC 7386) to namespace/name.
// A patch carrying metadata.resourceVersion fails with a Conflict error when
// the Secret changed since that version was read.
func (c *Client) PatchSecret(ctx context.Context, namespace, name string, patch []byte) (*Secret, error) {
	var out Secret
	if err := c.do(ctx, "patch", http.MethodPatch, secretPath(namespace, name), "application/merge-patch+json", patch, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListSecrets lists the Secrets of namespace (only their names and
// metadata are used by callers; tests use it to check RBAC).
func (c *Client) ListSecrets(ctx context.Context, namespace string) ([]Secret, error) {
	var out struct {
		Items []Secret `json:"items"`
	}
	if err := c.do(ctx, "list", http.MethodGet, secretPath(namespace, ""), "", nil, &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}

// ConfigMap is the part of a core/v1 ConfigMap secret-init reads.
type ConfigMap struct {
	Metadata   ObjectMeta        `json:"metadata"`
	Data       map[string]string `json:"data,omitempty"`
	BinaryData map[string][]byte `json:"binaryData,omitempty"`
}

// Value is key's value: from data, else from binaryData; ok is false when
// neither holds it.
func (c *ConfigMap) Value(key string) (v string, ok bool) {
	if v, ok := c.Data[key]; ok {
		return v, true
	}
	if b, ok := c.BinaryData[key]; ok {
		return string(b), true
	}
	return "", false
}

// GetConfigMap reads ConfigMap namespace/name.
func (c *Client) GetConfigMap(ctx context.Context, namespace, name string) (*ConfigMap, error) {
	var cm ConfigMap
	p := "/api/v1/namespaces/" + url.PathEscape(namespace) + "/configmaps/" + url.PathEscape(name)
	if err := c.do(ctx, "get", http.MethodGet, p, "", nil, &cm); err != nil {
		return nil, err
	}
	return &cm, nil
}

// ListConfigMaps lists the ConfigMaps of namespace (tests use it to check
// RBAC).
func (c *Client) ListConfigMaps(ctx context.Context, namespace string) ([]ConfigMap, error) {
	var out struct {
		Items []ConfigMap `json:"items"`
	}
	if err := c.do(ctx, "list", http.MethodGet, "/api/v1/namespaces/"+url.PathEscape(namespace)+"/configmaps", "", nil, &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}

func secretPath(namespace, name string) string {
	p := "/api/v1/namespaces/" + url.PathEscape(namespace) + "/secrets"
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

func (c *Client) token() (string, error) {
	if c.cfg.TokenFile == "" {
		return c.cfg.Token, nil
	}
	b, err := os.ReadFile(c.cfg.TokenFile)
	if err != nil {
		return "", fmt.Errorf("kubeapi: read the token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// do sends one request; verb and path name the call in errors.
func (c *Client) do(ctx context.Context, verb, method, path, contentType string, body []byte, out any) error {
	token, err := c.token()
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.cfg.Server, "/")+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("kubeapi: %s %s: %w", verb, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &TransportError{Verb: verb, Path: path, Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return &TransportError{Verb: verb, Path: path, Err: err}
	}
	if resp.StatusCode/100 != 2 {
		return newStatusError(verb, path, resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("kubeapi: %s %s: decode the answer: %w", verb, path, err)
	}
	return nil
}
