package specfile

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Reclaim policies shared by every spec: what --prune may do with an object
// the spec no longer lists.
const (
	ReclaimRetain = "retain" // never removed (the default)
	ReclaimDelete = "delete" // removed by --prune once unlisted
)

// MaxLogicalNameLen bounds logical names (bytes); longer ones are refused,
// shorter ones are sanitized and hashed into physical names as needed.
const MaxLogicalNameLen = 256

// DefaultReclaim sets an empty reclaim policy to retain and rejects any
// value other than retain or delete.
func DefaultReclaim(p *string) error {
	switch *p {
	case "":
		*p = ReclaimRetain
	case ReclaimRetain, ReclaimDelete:
	default:
		return fmt.Errorf("%q: want retain or delete", *p)
	}
	return nil
}

// CheckLogicalName accepts any non-empty valid UTF-8 text without control
// characters, at most MaxLogicalNameLen bytes: the naming packages turn it
// into a safe physical name.
func CheckLogicalName(v string) error {
	switch {
	case v == "":
		return fmt.Errorf("required")
	case !utf8.ValidString(v):
		return fmt.Errorf("not valid UTF-8")
	case len(v) > MaxLogicalNameLen:
		return fmt.Errorf("%d bytes: at most %d", len(v), MaxLogicalNameLen)
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return fmt.Errorf("%q: control characters are not allowed", v)
		}
	}
	return nil
}

// Problems collects what is wrong with a spec, each problem prefixed with
// the field path it is about, so that Validate methods report every
// problem at once.
type Problems struct {
	list []string
}

// Add records a problem at path (e.g. "roles[2].name").
func (p *Problems) Add(path, format string, args ...any) {
	p.list = append(p.list, path+": "+fmt.Sprintf(format, args...))
}

// LogicalName records a problem at path unless v is a valid logical name
// (see CheckLogicalName).
func (p *Problems) LogicalName(path, v string) {
	if err := CheckLogicalName(v); err != nil {
		p.Add(path, "%v", err)
	}
}

// Reclaim defaults the reclaim policy at path to retain and records a
// problem when it is neither retain nor delete (see DefaultReclaim).
func (p *Problems) Reclaim(path string, policy *string) {
	if err := DefaultReclaim(policy); err != nil {
		p.Add(path, "%v", err)
	}
}

// Unique records name in seen and a problem at path (`duplicate <what>
// "name"`, or `duplicate "name"` when what is empty) when seen already had
// it.
func (p *Problems) Unique(seen map[string]bool, path, what, name string) {
	if seen[name] {
		if what != "" {
			what += " "
		}
		p.Add(path, "duplicate %s%q", what, name)
	}
	seen[name] = true
}

// Err returns nil without problems, else an *Error naming source.
func (p *Problems) Err(source string) error {
	if len(p.list) == 0 {
		return nil
	}
	return &Error{Source: source, Problems: p.list}
}

// FromFlag sets the spec's field at path (e.g. "scope.release") from the
// value of the flag --name: an empty field takes the flag's value; a flag
// that contradicts the spec is a problem. An empty flag changes nothing.
func (p *Problems) FromFlag(field *string, path, name, flagValue string) {
	switch {
	case flagValue == "":
	case *field == "":
		*field = flagValue
	case *field != flagValue:
		p.Add(path, "%q contradicts --%s %q", *field, name, flagValue)
	}
}
