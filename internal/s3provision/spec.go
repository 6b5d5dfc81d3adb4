// Package s3provision creates the S3 buckets one module needs (and, on
// MinIO, a per-module access key whose policy is limited to those buckets)
// from a declarative spec, idempotently, with ownership markers, on an
// object store shared by many modules and sandboxes. It is the engine of
// cmd/s3-init; see docs/s3-init.md.
package s3provision

import (
	"fmt"
	"regexp"

	"github.com/kommons/kommons/internal/scope"
	"github.com/kommons/kommons/internal/specfile"
)

// Spec is the declarative input of s3-init: the buckets and (MinIO only)
// users one module needs, in logical names; physical names derive from the
// Scope (see package s3names).
type Spec struct {
	// Scope is the owner of everything in the spec; --namespace/--release may supply it instead.
	Scope Scope `json:"scope,omitempty"`
	// Buckets are created if missing and marked as the scope's.
	Buckets []Bucket `json:"buckets,omitempty"`
	// Users are MinIO users (access keys) limited to some of Buckets;
	// they need --minio-admin.
	Users []User `json:"users,omitempty"`
}

// Scope names the owner of provisioned objects (namespace and release),
// written into every object's ownership marker: package scope's.
type Scope = scope.Scope

// Bucket is one bucket of the module.
type Bucket struct {
	// Name is the logical name; the bucket is s3names.Physical(scope, Name).
	Name string `json:"name"`
	// Versioning: true enables object versioning, false suspends it if it
	// is enabled, unset leaves the bucket's setting alone.
	Versioning *bool `json:"versioning,omitempty"`
	// ReclaimPolicy: retain (default) or delete. s3-init never deletes a
	// bucket; the policy is recorded in the bucket's marker for cleanup tools.
	ReclaimPolicy string `json:"reclaimPolicy,omitempty"`
}

// User is a MinIO user whose access key is s3names.Physical(scope, Name),
// with read-write access to Buckets and nothing else.
type User struct {
	// Name is the logical name.
	Name string `json:"name"`
	// SecretKeyFile holds the secret key (redact.MinSecretLen (12) to
	// MaxSecretKeyLen (40) characters; one trailing newline is ignored), e.g.
	// a mounted Secret. Changing it rotates the key.
	SecretKeyFile string `json:"secretKeyFile"`
	// Buckets are logical names of Spec.Buckets the user may read and write.
	Buckets []string `json:"buckets"`
	// ReclaimPolicy: retain (default) or delete, recorded in the user's
	// policy marker; s3-init never deletes a user.
	ReclaimPolicy string `json:"reclaimPolicy,omitempty"`
}

// Reclaim policies.
const (
	ReclaimRetain = specfile.ReclaimRetain
	ReclaimDelete = specfile.ReclaimDelete
)

// MaxLogicalNameLen bounds logical names (bytes); longer ones are refused,
// shorter ones are sanitized and hashed by s3names as needed.
const MaxLogicalNameLen = specfile.MaxLogicalNameLen

// SpecError is an invalid spec or usage: the message names the document and
// the field path of each problem.
type SpecError = specfile.Error

// LoadSpecFile reads and strictly decodes a spec file.
func LoadSpecFile(path string) (*Spec, error) { return specfile.LoadAs[Spec](path) }

// DecodeSpec strictly decodes YAML (or JSON) into a Spec: unknown fields,
// duplicate keys and wrong shapes are errors naming their path. source
// names the document in errors. It does not validate; call Validate.
func DecodeSpec(source string, data []byte) (*Spec, error) {
	return specfile.DecodeAs[Spec](source, data)
}

var (
	// namespaceName is a Kubernetes namespace (DNS-1123 label).
	namespaceName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	// releaseName is a Helm release name (DNS-1123 subdomain, at most 53 bytes).
	releaseName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,51}[a-z0-9])?$`)
)

// checkMarkableScope records in p a scope part that s3-init's markers
// cannot carry: they hold the scope as "<namespace>/<release>" in a bucket
// tag and a policy statement's Sid, where a part with a "/" would make two
// scopes' markers equal and S3 allows tag values few characters. So on top
// of Scope.Check, an s3-init scope is a Kubernetes namespace name and a
// Helm release name (pg-init's markers are JSON and carry any scope).
func checkMarkableScope(p *specfile.Problems, s Scope) {
	if s.Namespace != "" && specfile.CheckLogicalName(s.Namespace) == nil && !namespaceName.MatchString(s.Namespace) {
		p.Add("scope.namespace", "%q: want a Kubernetes namespace name ([a-z0-9-], at most 63, starting and ending with a letter or digit)", s.Namespace)
	}
	if s.Release != "" && specfile.CheckLogicalName(s.Release) == nil && !releaseName.MatchString(s.Release) {
		p.Add("scope.release", "%q: want a Helm release name ([a-z0-9.-], at most 53, starting and ending with a letter or digit)", s.Release)
	}
}

// Validate applies defaults (reclaimPolicy retain) and checks the spec;
// the error is a *SpecError listing every problem with its field path. The
// scope must be set (from the spec or flags) beforehand.
func (s *Spec) Validate(source string) error {
	var p specfile.Problems
	s.Scope.Check(&p)
	checkMarkableScope(&p, s.Scope)
	if len(s.Buckets) == 0 && len(s.Users) == 0 {
		p.Add("buckets, users", "nothing to provision (both empty)")
	}
	buckets := map[string]bool{}
	for i := range s.Buckets {
		b := &s.Buckets[i]
		path := fmt.Sprintf("buckets[%d]", i)
		p.LogicalName(path+".name", b.Name)
		p.Unique(buckets, path+".name", "bucket", b.Name)
		p.Reclaim(path+".reclaimPolicy", &b.ReclaimPolicy)
	}
	users := map[string]bool{}
	for i := range s.Users {
		u := &s.Users[i]
		path := fmt.Sprintf("users[%d]", i)
		p.LogicalName(path+".name", u.Name)
		p.Unique(users, path+".name", "user", u.Name)
		if u.SecretKeyFile == "" {
			p.Add(path+".secretKeyFile", "required (a file holding the secret key, e.g. a mounted Secret)")
		}
		if len(u.Buckets) == 0 {
			p.Add(path+".buckets", "required (logical names of buckets in buckets)")
		}
		seen := map[string]bool{}
		for j, b := range u.Buckets {
			at := fmt.Sprintf("%s.buckets[%d]", path, j)
			if !buckets[b] {
				p.Add(at, "%q is not a bucket of this spec", b)
				continue
			}
			p.Unique(seen, at, "", b)
		}
		p.Reclaim(path+".reclaimPolicy", &u.ReclaimPolicy)
	}
	return p.Err(source)
}
