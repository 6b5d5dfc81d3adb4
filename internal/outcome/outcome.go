// Package outcome records what a provisioning run (pg-init, s3-init) did to
// each object it reconciles: the action, the changes, why something was
// refused or retained. It gives both tools one report shape, one log line
// per object and one ownership-conflict error, so that their output reads
// alike and a platform's log pipeline parses both the same way.
package outcome

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
)

// Action is what a run did to one object.
type Action string

// The actions, one log line per object.
const (
	Created   Action = "created"
	Unchanged Action = "unchanged"
	Updated   Action = "updated"
	Refused   Action = "refused"
	Deleted   Action = "deleted"  // --prune: gone from the spec, reclaimPolicy delete
	Retained  Action = "retained" // gone from the spec, kept (reclaimPolicy retain, no --prune, or not empty)
)

// pruning reports whether a is the outcome of an object the spec no longer
// lists.
func (a Action) pruning() bool { return a == Deleted || a == Retained }

// rank orders actions so that a retried run reports the strongest outcome
// an object had (created in attempt 1, unchanged in attempt 2: created).
func (a Action) rank() int {
	switch a {
	case Deleted:
		return 4
	case Refused:
		return 3
	case Created:
		return 2
	case Updated, Retained:
		return 1
	}
	return 0
}

// Result is the outcome for one object.
type Result struct {
	Kind     string   `json:"kind"`
	Name     string   `json:"name"`               // logical name (a PostgreSQL extension or schema: its own name)
	Physical string   `json:"physicalName"`       // the server's name: role, database, bucket, access key
	Database string   `json:"database,omitempty"` // PostgreSQL extensions and schemas: the database they are in
	Action   Action   `json:"action"`
	Changes  []string `json:"changes,omitempty"` // what a create or an update did
	Reason   string   `json:"reason,omitempty"`  // why refused or retained
}

// Report is the outcome of a run: the spec's objects, then those of the
// scope that the spec no longer lists.
type Report struct {
	Objects []Result
	Pruned  []Result
}

// Record adds o: to Pruned when it is deleted or retained, else to Objects.
// When a retried attempt reports an object again (same kind, physical name
// and database), the entry keeps the strongest action and the union of the
// changes.
func (r *Report) Record(o Result) {
	list := &r.Objects
	if o.Action.pruning() {
		list = &r.Pruned
	}
	for i := range *list {
		p := &(*list)[i]
		if p.Kind != o.Kind || p.Physical != o.Physical || p.Database != o.Database {
			continue
		}
		changes := p.Changes
		for _, c := range o.Changes {
			if !slices.Contains(changes, c) {
				changes = append(changes, c)
			}
		}
		if o.Action.rank() >= p.Action.rank() {
			*p = o
		}
		p.Changes = changes
		if p.Action == Unchanged && len(changes) > 0 {
			p.Action = Updated
		}
		return
	}
	*list = append(*list, o)
}

// Count returns how many objects, pruned ones included, got action a.
func (r *Report) Count(a Action) int {
	n := 0
	for _, l := range [][]Result{r.Objects, r.Pruned} {
		for _, o := range l {
			if o.Action == a {
				n++
			}
		}
	}
	return n
}

// Find returns the result for the spec's object of kind and physical name
// (for a PostgreSQL extension or schema, the first one of that name in any
// database).
func (r *Report) Find(kind, physical string) (Result, bool) {
	for _, o := range r.Objects {
		if o.Kind == kind && o.Physical == physical {
			return o, true
		}
	}
	return Result{}, false
}

// Log writes o as one line: message "<kind> <action>", attributes kind,
// action, name, physicalName and, when set, database, changes and reason.
// Refused and deleted objects are logged at WARN, the rest at INFO.
func Log(log *slog.Logger, o Result) {
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
	if o.Action == Refused || o.Action == Deleted {
		level = slog.LevelWarn
	}
	log.Log(context.Background(), level, o.Kind+" "+string(o.Action), attrs...)
}

// ConflictError reports objects a run refused to take over: they exist but
// carry another scope's ownership marker or none (--adopt overrides).
type ConflictError struct {
	Refused []Result
}

func (e *ConflictError) Error() string {
	parts := make([]string, len(e.Refused))
	for i, o := range e.Refused {
		parts[i] = fmt.Sprintf("%s %s: %s", o.Kind, o.Physical, o.Reason)
		if o.Database != "" {
			parts[i] = fmt.Sprintf("%s %s in database %s: %s", o.Kind, o.Physical, o.Database, o.Reason)
		}
	}
	return "ownership conflict: " + strings.Join(parts, "; ")
}
