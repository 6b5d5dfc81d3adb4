package pgprovision

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/kommons/kommons/internal/specfile"
)

// Spec is the declarative input of pg-init: the roles and databases one
// module needs, in logical names; physical names derive from the Scope.
type Spec struct {
	// Scope is the owner of everything in the spec; --namespace/--release may supply it instead.
	Scope Scope `json:"scope,omitempty"`
	// Roles are login roles, one per application user.
	Roles []Role `json:"roles,omitempty"`
	// Databases are owned by one of Roles.
	Databases []Database `json:"databases,omitempty"`
}

// Scope names the owner of provisioned objects: a Kubernetes namespace and
// a Helm release. It is written into every object's ownership marker.
type Scope struct {
	Namespace string `json:"namespace,omitempty"`
	Release   string `json:"release,omitempty"`
}

// String renders the scope as namespace/release.
func (s Scope) String() string { return s.Namespace + "/" + s.Release }

// Role is a LOGIN role with a password from a mounted Secret.
type Role struct {
	// Name is the logical name; the physical name is pgnames.Physical(scope, Name).
	Name string `json:"name"`
	// PasswordFile holds the password (one trailing newline is ignored).
	PasswordFile string `json:"passwordFile"`
	// ConnectionLimit is the role's CONNECTION LIMIT; nil or -1 means none.
	ConnectionLimit *int `json:"connectionLimit,omitempty"`
	// ReclaimPolicy: retain (default) or delete; delete lets --prune drop
	// the role once the spec no longer lists it.
	ReclaimPolicy string `json:"reclaimPolicy,omitempty"`
}

// Database is a database owned by one role of the spec.
type Database struct {
	// Name is the logical name; the physical name is pgnames.Physical(scope, Name).
	Name string `json:"name"`
	// Owner is the logical name of a role in Spec.Roles.
	Owner string `json:"owner"`
	// Extensions are created with CREATE EXTENSION IF NOT EXISTS.
	Extensions []string `json:"extensions,omitempty"`
	// Schemas are created owned by Owner.
	Schemas []string `json:"schemas,omitempty"`
	// ReclaimPolicy: retain (default) or delete; delete lets --prune drop
	// the database once the spec no longer lists it.
	ReclaimPolicy string `json:"reclaimPolicy,omitempty"`
}

// Reclaim policies.
const (
	ReclaimRetain = specfile.ReclaimRetain
	ReclaimDelete = specfile.ReclaimDelete
)

// MaxLogicalNameLen bounds logical names (bytes); longer ones are refused,
// shorter ones are sanitized and hashed by pgnames as needed.
const MaxLogicalNameLen = specfile.MaxLogicalNameLen

// SpecError is an invalid spec or usage: the message names the document and
// the field path of each problem.
type SpecError = specfile.Error

// LoadSpecFile reads and strictly decodes a spec file.
func LoadSpecFile(path string) (*Spec, error) {
	var s Spec
	if err := specfile.Load(path, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// DecodeSpec strictly decodes YAML (or JSON) into a Spec: unknown fields and
// duplicate keys are errors naming their path. source names the document in
// errors. It does not validate; call Validate.
func DecodeSpec(source string, data []byte) (*Spec, error) {
	var s Spec
	if err := specfile.Decode(source, data, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

var (
	extensionName = regexp.MustCompile(`^[a-z0-9_][a-z0-9_-]{0,62}$`)
	schemaName    = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
)

// Validate applies defaults (reclaimPolicy retain, connectionLimit -1) and
// checks the spec; the error is a *SpecError listing every problem with its
// field path. The scope must be set (from the spec or flags) beforehand.
func (s *Spec) Validate(source string) error {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	checkName := func(path, v string) {
		if err := specfile.CheckLogicalName(v); err != nil {
			add("%s: %v", path, err)
		}
	}
	checkName("scope.namespace", s.Scope.Namespace)
	checkName("scope.release", s.Scope.Release)
	if len(s.Roles) == 0 && len(s.Databases) == 0 {
		add("roles, databases: nothing to provision (both empty)")
	}
	roles := map[string]bool{}
	for i := range s.Roles {
		r := &s.Roles[i]
		path := fmt.Sprintf("roles[%d]", i)
		checkName(path+".name", r.Name)
		if roles[r.Name] {
			add("%s.name: duplicate role %q", path, r.Name)
		}
		roles[r.Name] = true
		if r.PasswordFile == "" {
			add("%s.passwordFile: required (a file holding the password, e.g. a mounted Secret)", path)
		}
		if r.ConnectionLimit == nil {
			none := -1
			r.ConnectionLimit = &none
		} else if *r.ConnectionLimit < -1 {
			add("%s.connectionLimit: %d: want -1 (no limit) or more", path, *r.ConnectionLimit)
		}
		if err := specfile.DefaultReclaim(&r.ReclaimPolicy); err != nil {
			add("%s.reclaimPolicy: %v", path, err)
		}
	}
	dbs := map[string]bool{}
	for i := range s.Databases {
		d := &s.Databases[i]
		path := fmt.Sprintf("databases[%d]", i)
		checkName(path+".name", d.Name)
		if dbs[d.Name] {
			add("%s.name: duplicate database %q", path, d.Name)
		}
		dbs[d.Name] = true
		switch {
		case d.Owner == "":
			add("%s.owner: required (the logical name of a role in roles)", path)
		case !roles[d.Owner]:
			add("%s.owner: %q is not a role of this spec", path, d.Owner)
		}
		seen := map[string]bool{}
		for j, e := range d.Extensions {
			if !extensionName.MatchString(e) {
				add("%s.extensions[%d]: %q: want an extension name ([a-z0-9_-], at most 63 bytes)", path, j, e)
			}
			if seen[e] {
				add("%s.extensions[%d]: duplicate %q", path, j, e)
			}
			seen[e] = true
		}
		seen = map[string]bool{}
		for j, sc := range d.Schemas {
			switch {
			case sc == "public":
				add("%s.schemas[%d]: public exists already and belongs to the database owner", path, j)
			case strings.HasPrefix(sc, "pg_"):
				add("%s.schemas[%d]: %q: the pg_ prefix is reserved", path, j, sc)
			case !schemaName.MatchString(sc):
				add("%s.schemas[%d]: %q: want a lower-case identifier ([a-z_][a-z0-9_]*, at most 63 bytes)", path, j, sc)
			}
			if seen[sc] {
				add("%s.schemas[%d]: duplicate %q", path, j, sc)
			}
			seen[sc] = true
		}
		if err := specfile.DefaultReclaim(&d.ReclaimPolicy); err != nil {
			add("%s.reclaimPolicy: %v", path, err)
		}
	}
	if len(p) > 0 {
		return &SpecError{Source: source, Problems: p}
	}
	return nil
}
