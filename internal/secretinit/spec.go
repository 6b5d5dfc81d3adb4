// Package secretinit creates and reconciles the credentials Secrets of the
// kommons charts inside the cluster, so that no chart renders a generated
// password: each generated key is created once and never overwritten, facts
// (literal values, values copied from other Secrets or ConfigMaps, templates) are
// reconciled on every run, and self-signed certificates are issued once.
// A run observes the cluster, decides with a pure function (Decide,
// DecideCertificate) and acts; see docs/secret-init.md.
package secretinit

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"text/template"

	"github.com/kommons/kommons/internal/specfile"
)

// ManagedByLabel marks every Secret secret-init writes.
const (
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "kommons-secret-init"
)

// Spec is the document secret-init reads (it holds no secret value).
type Spec struct {
	Secrets      []SecretSpec      `json:"secrets"`
	Certificates []CertificateSpec `json:"certificates"`
}

// SecretSpec is one Secret and the source of each of its keys.
type SecretSpec struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Type        string            `json:"type"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Data        map[string]Source `json:"data"`
}

// Source is where one key's value comes from: exactly one field is set.
type Source struct {
	// Generate is a credential: created once, never overwritten.
	Generate *Generate `json:"generate"`
	// Value is a literal fact.
	Value *string `json:"value"`
	// FromSecret copies a key of another Secret (a fact).
	FromSecret *SecretRef `json:"fromSecret"`
	// FromConfigMap copies a key of a ConfigMap (a fact): e.g. a CA bundle
	// a trust-manager Bundle writes.
	FromConfigMap *ConfigMapRef `json:"fromConfigMap"`
	// Template is a Go text/template over the Secret's other keys (a fact).
	Template *string `json:"template"`
}

// Generate is a random value: Length alphanumeric characters, or Bytes
// random bytes, base64-encoded (standard encoding, padded).
type Generate struct {
	Length int `json:"length"`
	Bytes  int `json:"bytes"`
}

// SecretRef names a key of another Secret.
type SecretRef struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Key       string `json:"key"`
	// Optional makes a missing Secret or key an empty value instead of
	// something to wait for.
	Optional bool `json:"optional"`
}

// ConfigMapRef names a key of a ConfigMap (its data, else its binaryData).
type ConfigMapRef struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Key       string `json:"key"`
	// Optional makes a missing ConfigMap or key an empty value instead of
	// something to wait for.
	Optional bool `json:"optional"`
}

// CertificateSpec is a self-signed CA and a server certificate it signs, in
// one kubernetes.io/tls Secret (tls.crt, tls.key, ca.crt), issued once.
type CertificateSpec struct {
	Name         string            `json:"name"`
	Namespace    string            `json:"namespace"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	CommonName   string            `json:"commonName"`
	DNSNames     []string          `json:"dnsNames"`
	ValidityDays int               `json:"validityDays"`
}

// Kinds of keys.
const (
	KindGenerate      = "generate"
	KindValue         = "value"
	KindFromSecret    = "fromSecret"
	KindFromConfigMap = "fromConfigMap"
	KindTemplate      = "template"
)

// Kind is the one source set ("" when none is, or several are).
func (s Source) Kind() string {
	var kinds []string
	if s.Generate != nil {
		kinds = append(kinds, KindGenerate)
	}
	if s.Value != nil {
		kinds = append(kinds, KindValue)
	}
	if s.FromSecret != nil {
		kinds = append(kinds, KindFromSecret)
	}
	if s.FromConfigMap != nil {
		kinds = append(kinds, KindFromConfigMap)
	}
	if s.Template != nil {
		kinds = append(kinds, KindTemplate)
	}
	if len(kinds) != 1 {
		return ""
	}
	return kinds[0]
}

// Limits of generated values.
const (
	MaxGenerateLength = 1024
	MaxGenerateBytes  = 1024
	DefaultValidity   = 3650
)

var (
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	secretKey    = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)
	dnsName      = regexp.MustCompile(`^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// Load reads and validates the spec file at path; namespace is the default
// namespace (the pod's own). Errors are *specfile.Error naming the file and
// each field.
func Load(path, namespace string) (*Spec, error) {
	s, err := specfile.LoadAs[Spec](path)
	if err != nil {
		return nil, err
	}
	if err := s.Validate(path, namespace); err != nil {
		return nil, err
	}
	return s, nil
}

// Validate checks s, fills defaults (namespace, type, validity) and returns
// a *specfile.Error listing every problem.
func (s *Spec) Validate(source, namespace string) error {
	var p specfile.Problems
	if len(s.Secrets) == 0 && len(s.Certificates) == 0 {
		p.Add("secrets", "the spec lists no Secret and no certificate")
	}
	seen := map[string]bool{}
	for i := range s.Secrets {
		sec := &s.Secrets[i]
		path := fmt.Sprintf("secrets[%d]", i)
		checkObject(&p, path, &sec.Name, &sec.Namespace, namespace, sec.Labels, sec.Annotations, seen)
		if sec.Type == "" {
			sec.Type = "Opaque"
		}
		if len(sec.Data) == 0 {
			p.Add(path+".data", "required: at least one key")
		}
		for _, k := range sortedKeys(sec.Data) {
			checkSource(&p, path+".data."+k, k, sec.Data[k], sec.Namespace)
		}
		checkTemplateRefs(&p, path+".data", sec.Data)
	}
	for i := range s.Certificates {
		c := &s.Certificates[i]
		path := fmt.Sprintf("certificates[%d]", i)
		checkObject(&p, path, &c.Name, &c.Namespace, namespace, c.Labels, c.Annotations, seen)
		if c.CommonName == "" {
			p.Add(path+".commonName", "required")
		} else if len(c.CommonName) > 64 {
			p.Add(path+".commonName", "%d bytes: at most 64", len(c.CommonName))
		}
		for j, d := range c.DNSNames {
			if !dnsName.MatchString(d) || len(d) > 253 {
				p.Add(fmt.Sprintf("%s.dnsNames[%d]", path, j), "%q is not a DNS name", d)
			}
		}
		switch {
		case c.ValidityDays == 0:
			c.ValidityDays = DefaultValidity
		case c.ValidityDays < 1 || c.ValidityDays > 36500:
			p.Add(path+".validityDays", "%d: want 1 to 36500", c.ValidityDays)
		}
	}
	return p.Err(source)
}

func checkObject(p *specfile.Problems, path string, name, ns *string, defaultNS string, labels, annotations map[string]string, seen map[string]bool) {
	if *name == "" {
		p.Add(path+".name", "required")
	} else if !dnsSubdomain.MatchString(*name) || len(*name) > 253 {
		p.Add(path+".name", "%q is not a valid Secret name (lowercase DNS subdomain)", *name)
	}
	if *ns == "" {
		*ns = defaultNS
	}
	if *ns == "" {
		p.Add(path+".namespace", "required (no default namespace: run in a pod or pass --namespace)")
	} else if !dnsLabel.MatchString(*ns) || len(*ns) > 63 {
		p.Add(path+".namespace", "%q is not a valid namespace name", *ns)
	}
	id := *ns + "/" + *name
	if *name != "" && seen[id] {
		p.Add(path+".name", "Secret %s is listed twice", id)
	}
	seen[id] = true
	if v, ok := labels[ManagedByLabel]; ok && v != ManagedByValue {
		p.Add(path+".labels."+ManagedByLabel, "is set by secret-init to %q", ManagedByValue)
	}
	_ = annotations
}

func checkSource(p *specfile.Problems, path, key string, src Source, ns string) {
	if !secretKey.MatchString(key) || len(key) > 253 {
		p.Add(path, "%q is not a valid Secret key (letters, digits, '-', '_', '.')", key)
	}
	switch src.Kind() {
	case "":
		p.Add(path, "want exactly one of generate, value, fromSecret, fromConfigMap, template")
	case KindGenerate:
		g := src.Generate
		switch {
		case (g.Length == 0) == (g.Bytes == 0):
			p.Add(path+".generate", "want exactly one of length, bytes")
		case g.Length < 0 || g.Length > MaxGenerateLength:
			p.Add(path+".generate.length", "%d: want 1 to %d", g.Length, MaxGenerateLength)
		case g.Length > 0 && g.Length < 16:
			p.Add(path+".generate.length", "%d: at least 16 characters", g.Length)
		case g.Bytes < 0 || g.Bytes > MaxGenerateBytes:
			p.Add(path+".generate.bytes", "%d: want 1 to %d", g.Bytes, MaxGenerateBytes)
		case g.Bytes > 0 && g.Bytes < 16:
			p.Add(path+".generate.bytes", "%d: at least 16 bytes", g.Bytes)
		}
	case KindFromSecret:
		r := src.FromSecret
		checkRef(p, path+".fromSecret", "Secret", r.Name, r.Key, &r.Namespace, ns)
	case KindFromConfigMap:
		r := src.FromConfigMap
		checkRef(p, path+".fromConfigMap", "ConfigMap", r.Name, r.Key, &r.Namespace, ns)
	case KindTemplate:
		if _, err := parseTemplate(key, *src.Template); err != nil {
			p.Add(path+".template", "%v", err)
		}
	}
}

// checkRef checks a fromSecret or fromConfigMap reference at path (kind
// names the object in messages) and defaults its namespace to ns.
func checkRef(p *specfile.Problems, path, kind, name, key string, namespace *string, ns string) {
	if name == "" {
		p.Add(path+".name", "required")
	} else if !dnsSubdomain.MatchString(name) || len(name) > 253 {
		p.Add(path+".name", "%q is not a valid %s name", name, kind)
	}
	if key == "" {
		p.Add(path+".key", "required")
	} else if !secretKey.MatchString(key) || len(key) > 253 {
		p.Add(path+".key", "%q is not a valid %s key", key, kind)
	}
	if *namespace == "" {
		*namespace = ns
	} else if !dnsLabel.MatchString(*namespace) || len(*namespace) > 63 {
		p.Add(path+".namespace", "%q is not a valid namespace name", *namespace)
	}
}

// checkTemplateRefs refuses templates whose references cannot all resolve
// (a key that does not exist, or a cycle of templates).
func checkTemplateRefs(p *specfile.Problems, path string, data map[string]Source) {
	probe := map[string]string{}
	templates := map[string]Source{}
	for k, s := range data {
		switch s.Kind() {
		case KindTemplate:
			if _, err := parseTemplate(k, *s.Template); err == nil {
				templates[k] = s
			}
		default:
			probe[k] = "x"
		}
	}
	if _, err := resolveTemplates(templates, probe); err != nil {
		p.Add(path, "%v", err)
	}
}

// Funcs are the functions templates have besides text/template's own.
var Funcs = template.FuncMap{
	// urlquery escapes for a URL's user info, path or query (spaces as %20).
	"urlquery": urlEscape,
	// pgpass escapes a .pgpass field (backslash and colon).
	"pgpass": func(s string) string {
		return strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(s)
	},
}

func parseTemplate(name, text string) (*template.Template, error) {
	return template.New(name).Option("missingkey=error").Funcs(Funcs).Parse(text)
}

func sortedKeys[V any](m map[string]V) []string {
	if len(m) == 0 {
		return nil
	}
	return slices.Sorted(maps.Keys(m))
}
