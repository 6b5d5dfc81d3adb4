package pgprovision

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/kommons/kommons/internal/scope"
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

// Scope names the owner of provisioned objects (namespace and release),
// written into every object's ownership marker: package scope's.
type Scope = scope.Scope

// Role is a LOGIN role with a password from a mounted Secret (PasswordFile)
// or an environment variable (PasswordEnv, e.g. a Secret key the container's
// env references): exactly one of the two.
type Role struct {
	// Name is the logical name; the physical name is pgnames.Physical(scope, Name).
	Name string `json:"name"`
	// PasswordFile holds the password (one trailing newline is ignored).
	PasswordFile string `json:"passwordFile,omitempty"`
	// PasswordEnv names the environment variable holding the password.
	PasswordEnv string `json:"passwordEnv,omitempty"`
	// ConnectionLimit is the role's CONNECTION LIMIT, -1 to
	// MaxConnectionLimit; nil or -1 means none.
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

// MaxConnectionLimit is the largest connectionLimit a spec may set:
// PostgreSQL's MAX_BACKENDS (2^18-1), above which max_connections cannot be
// set, so a larger limit could never apply. PostgreSQL itself takes up to
// 2147483647 and fails with a syntax error past it.
const MaxConnectionLimit = 1<<18 - 1

// MaxLogicalNameLen bounds logical names (bytes); longer ones are refused,
// shorter ones are sanitized and hashed by pgnames as needed.
const MaxLogicalNameLen = specfile.MaxLogicalNameLen

// SpecError is an invalid spec or usage: the message names the document and
// the field path of each problem.
type SpecError = specfile.Error

// LoadSpecFile reads and strictly decodes a spec file.
func LoadSpecFile(path string) (*Spec, error) { return specfile.LoadAs[Spec](path) }

// DecodeSpec strictly decodes YAML (or JSON) into a Spec: unknown fields and
// duplicate keys are errors naming their path. source names the document in
// errors. It does not validate; call Validate.
func DecodeSpec(source string, data []byte) (*Spec, error) {
	return specfile.DecodeAs[Spec](source, data)
}

var (
	extensionName = regexp.MustCompile(`^[a-z0-9_][a-z0-9_-]{0,62}$`)
	schemaName    = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	envName       = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// IsSystemSchema reports whether a schema name belongs to the server:
// pg_catalog, pg_toast, pg_temp_N and every other pg_ name (reserved by
// PostgreSQL), and information_schema. A module role owning one of them
// could replace what a superuser later reads there.
func IsSystemSchema(name string) bool {
	return strings.HasPrefix(name, "pg_") || name == "information_schema"
}

// Validate applies defaults (reclaimPolicy retain, connectionLimit -1) and
// checks the spec; the error is a *SpecError listing every problem with its
// field path. The scope must be set (from the spec or flags) beforehand.
func (s *Spec) Validate(source string) error {
	var p specfile.Problems
	s.Scope.Check(&p)
	if len(s.Roles) == 0 && len(s.Databases) == 0 {
		p.Add("roles, databases", "nothing to provision (both empty)")
	}
	roles := map[string]bool{}
	for i := range s.Roles {
		r := &s.Roles[i]
		path := fmt.Sprintf("roles[%d]", i)
		p.LogicalName(path+".name", r.Name)
		p.Unique(roles, path+".name", "role", r.Name)
		switch {
		case r.PasswordFile == "" && r.PasswordEnv == "":
			p.Add(path+".passwordFile", "required (a file holding the password, e.g. a mounted Secret), or passwordEnv")
		case r.PasswordFile != "" && r.PasswordEnv != "":
			p.Add(path+".passwordEnv", "set passwordFile or passwordEnv, not both")
		case r.PasswordEnv != "" && !envName.MatchString(r.PasswordEnv):
			p.Add(path+".passwordEnv", "%q is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)", r.PasswordEnv)
		}
		if r.ConnectionLimit == nil {
			none := -1
			r.ConnectionLimit = &none
		} else if *r.ConnectionLimit < -1 || *r.ConnectionLimit > MaxConnectionLimit {
			p.Add(path+".connectionLimit", "%d: want -1 (no limit) to %d", *r.ConnectionLimit, MaxConnectionLimit)
		}
		p.Reclaim(path+".reclaimPolicy", &r.ReclaimPolicy)
	}
	dbs := map[string]bool{}
	for i := range s.Databases {
		d := &s.Databases[i]
		path := fmt.Sprintf("databases[%d]", i)
		p.LogicalName(path+".name", d.Name)
		p.Unique(dbs, path+".name", "database", d.Name)
		switch {
		case d.Owner == "":
			p.Add(path+".owner", "required (the logical name of a role in roles)")
		case !roles[d.Owner]:
			p.Add(path+".owner", "%q is not a role of this spec", d.Owner)
		}
		seen := map[string]bool{}
		for j, e := range d.Extensions {
			at := fmt.Sprintf("%s.extensions[%d]", path, j)
			if !extensionName.MatchString(e) {
				p.Add(at, "%q: want an extension name ([a-z0-9_-], at most 63 bytes)", e)
			}
			p.Unique(seen, at, "", e)
		}
		seen = map[string]bool{}
		for j, sc := range d.Schemas {
			at := fmt.Sprintf("%s.schemas[%d]", path, j)
			switch {
			case sc == "public":
				p.Add(at, "public exists already and belongs to the database owner")
			case IsSystemSchema(sc):
				p.Add(at, "%q: a system schema (pg_*, information_schema) is never created or taken over, with or without --adopt", sc)
			case !schemaName.MatchString(sc):
				p.Add(at, "%q: want a lower-case identifier ([a-z_][a-z0-9_]*, at most 63 bytes)", sc)
			}
			p.Unique(seen, at, "", sc)
		}
		p.Reclaim(path+".reclaimPolicy", &d.ReclaimPolicy)
	}
	return p.Err(source)
}
