package pgprovision

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// Action is what a run did to one object.
type Action string

// The actions logged, one line per object.
const (
	Created   Action = "created"
	Unchanged Action = "unchanged"
	Updated   Action = "updated"
	Refused   Action = "refused"
	Deleted   Action = "deleted"
	Retained  Action = "retained" // not in the spec any more, kept (reclaimPolicy retain, or no --prune)
)

// Object kinds.
const (
	KindRole      = "role"
	KindDatabase  = "database"
	KindExtension = "extension"
	KindSchema    = "schema"
)

// ObjectResult is the outcome for one object.
type ObjectResult struct {
	Kind     string   `json:"kind"`
	Name     string   `json:"name"`               // logical name (extension/schema: its own name)
	Physical string   `json:"physicalName"`       // role or database name in PostgreSQL
	Database string   `json:"database,omitempty"` // for extensions and schemas
	Action   Action   `json:"action"`
	Changes  []string `json:"changes,omitempty"` // what an update changed
	Reason   string   `json:"reason,omitempty"`  // why refused or retained
}

// Report is the outcome of a run.
type Report struct {
	Objects []ObjectResult
	Pruned  []ObjectResult
}

// Count returns how many objects (including pruned ones) got action a.
func (r *Report) Count(a Action) int {
	n := 0
	for _, o := range append(append([]ObjectResult(nil), r.Objects...), r.Pruned...) {
		if o.Action == a {
			n++
		}
	}
	return n
}

// Find returns the result for the object of kind and physical name (for
// extensions and schemas: name within database).
func (r *Report) Find(kind, physical string) (ObjectResult, bool) {
	for _, o := range r.Objects {
		if o.Kind == kind && o.Physical == physical {
			return o, true
		}
	}
	return ObjectResult{}, false
}

func logResult(log *slog.Logger, o ObjectResult) {
	attrs := []any{"kind", o.Kind, "action", string(o.Action), "name", o.Name, "physicalName", o.Physical}
	if o.Database != "" {
		attrs = append(attrs, "database", o.Database)
	}
	if len(o.Changes) > 0 {
		attrs = append(attrs, "changes", strings.Join(o.Changes, ", "))
	}
	if o.Reason != "" {
		attrs = append(attrs, "reason", o.Reason)
	}
	level := slog.LevelInfo
	if o.Action == Refused {
		level = slog.LevelWarn
	}
	log.Log(context.Background(), level, o.Kind+" "+string(o.Action), attrs...)
}

// ConflictError reports objects pg-init refused to take over: they exist
// but carry another scope's ownership marker or none. --adopt overrides.
type ConflictError struct {
	Refused []ObjectResult
}

func (e *ConflictError) Error() string {
	parts := make([]string, len(e.Refused))
	for i, o := range e.Refused {
		parts[i] = fmt.Sprintf("%s %s: %s", o.Kind, o.Physical, o.Reason)
	}
	return "ownership conflict: " + strings.Join(parts, "; ")
}
