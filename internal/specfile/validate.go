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
