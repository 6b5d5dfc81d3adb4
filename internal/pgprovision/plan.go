package pgprovision

import (
	"fmt"
	"os"

	"github.com/kommons/kommons/internal/pgnames"
	"github.com/kommons/kommons/internal/secretfile"
)

// Plan is a validated spec resolved to physical names, with passwords read.
type Plan struct {
	Scope     Scope
	Roles     []PlannedRole
	Databases []PlannedDatabase
}

// PlannedRole is a role with its physical name and password.
type PlannedRole struct {
	Role
	Physical string
	// Legacy is the name earlier kommons versions gave the role
	// (pgnames.Legacy), renamed to Physical when found; "" when the same.
	Legacy   string
	password string // never logged, printed or sent in plain text
}

// PlannedDatabase is a database with its physical name and its owner's.
type PlannedDatabase struct {
	Database
	Physical string
	// Legacy is the name earlier kommons versions gave the database
	// (pgnames.Legacy), renamed to Physical when found; "" when the same.
	Legacy        string
	OwnerPhysical string
}

// Secrets returns every password of the plan, for scrubbing output.
func (p *Plan) Secrets() []string {
	out := make([]string, 0, len(p.Roles))
	for _, r := range p.Roles {
		out = append(out, r.password)
	}
	return out
}

// ReadPassword reads a password file (secretfile.Read) and checks the
// password (CheckPassword); errors read "PATH: reason", never quoting it.
func ReadPassword(path string) (string, error) {
	pw, err := secretfile.Read(path)
	if err != nil {
		return "", err
	}
	if err := CheckPassword(pw); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return pw, nil
}

// ReadPasswordEnv reads a password from environment variable name and checks
// it (CheckPassword); errors name the variable, never quoting the value.
func ReadPasswordEnv(name string) (string, error) {
	pw, ok := os.LookupEnv(name)
	if !ok {
		return "", fmt.Errorf("environment variable %s is not set", name)
	}
	if pw == "" {
		return "", fmt.Errorf("environment variable %s is empty", name)
	}
	if err := CheckPassword(pw); err != nil {
		return "", fmt.Errorf("environment variable %s: %w", name, err)
	}
	return pw, nil
}

// rolePassword reads r's password from its file or environment variable and
// returns the spec field it came from (for errors).
func rolePassword(r Role) (pw, field string, err error) {
	if r.PasswordEnv != "" {
		pw, err = ReadPasswordEnv(r.PasswordEnv)
		return pw, "passwordEnv", err
	}
	pw, err = ReadPassword(r.PasswordFile)
	return pw, "passwordFile", err
}

// NewPlan validates spec (whose Scope must be set), derives physical names
// and reads the password files. Every problem is a *SpecError.
func NewPlan(source string, spec *Spec) (*Plan, error) {
	if err := spec.Validate(source); err != nil {
		return nil, err
	}
	p := &Plan{Scope: spec.Scope}
	var probs []string
	phys := func(path, logical string) string {
		n, err := pgnames.Physical(spec.Scope.Namespace, spec.Scope.Release, logical)
		if err != nil {
			probs = append(probs, fmt.Sprintf("%s: %v", path, err))
		}
		return n
	}
	legacy := func(logical string) string {
		n, _ := pgnames.Legacy(spec.Scope.Namespace, spec.Scope.Release, logical)
		return n
	}
	owners := map[string]string{}
	seen := map[string]string{}
	for i, r := range spec.Roles {
		path := fmt.Sprintf("roles[%d]", i)
		pr := PlannedRole{Role: r, Physical: phys(path+".name", r.Name), Legacy: legacy(r.Name)}
		if other, dup := seen[pr.Physical]; dup {
			probs = append(probs, fmt.Sprintf("%s.name: physical name %s clashes with %s", path, pr.Physical, other))
		}
		seen[pr.Physical] = path
		pw, field, err := rolePassword(r)
		if err != nil {
			probs = append(probs, fmt.Sprintf("%s.%s: %v", path, field, err))
		}
		pr.password = pw
		owners[r.Name] = pr.Physical
		p.Roles = append(p.Roles, pr)
	}
	seen = map[string]string{}
	for i, d := range spec.Databases {
		path := fmt.Sprintf("databases[%d]", i)
		pd := PlannedDatabase{Database: d, Physical: phys(path+".name", d.Name), Legacy: legacy(d.Name), OwnerPhysical: owners[d.Owner]}
		if other, dup := seen[pd.Physical]; dup {
			probs = append(probs, fmt.Sprintf("%s.name: physical name %s clashes with %s", path, pd.Physical, other))
		}
		seen[pd.Physical] = path
		p.Databases = append(p.Databases, pd)
	}
	if len(probs) > 0 {
		return nil, &SpecError{Source: source, Problems: probs}
	}
	return p, nil
}
