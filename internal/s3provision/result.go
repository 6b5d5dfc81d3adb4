package s3provision

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
	Deleted   Action = "deleted"  // --prune: gone from the spec, reclaimPolicy delete
	Retained  Action = "retained" // --prune: gone from the spec, kept (reclaimPolicy retain, or not empty)
)

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

// Object kinds.
const (
	KindBucket = "bucket"
	KindUser   = "user"
)

// ObjectResult is the outcome for one object.
type ObjectResult struct {
	Kind     string   `json:"kind"`
	Name     string   `json:"name"`         // logical name
	Physical string   `json:"physicalName"` // bucket name or access key
	Action   Action   `json:"action"`
	Changes  []string `json:"changes,omitempty"` // what a create or update did
	Reason   string   `json:"reason,omitempty"`  // why refused or retained
}

// Report is the outcome of a run.
type Report struct {
	Objects []ObjectResult
}

// merge records o, keeping the strongest action (and the union of
// changes) when a retried attempt reports the same object again.
func (r *Report) merge(o ObjectResult) {
	for i := range r.Objects {
		p := &r.Objects[i]
		if p.Kind != o.Kind || p.Physical != o.Physical {
			continue
		}
		changes := p.Changes
		for _, c := range o.Changes {
			if !contains(changes, c) {
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
	r.Objects = append(r.Objects, o)
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// Count returns how many objects got action a.
func (r *Report) Count(a Action) int {
	n := 0
	for _, o := range r.Objects {
		if o.Action == a {
			n++
		}
	}
	return n
}

// Find returns the result for the object of kind and physical name.
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

// ConflictError reports objects s3-init refused to take over: they exist
// but carry another scope's ownership marker or none. --adopt overrides
// (except for a bucket name another account owns).
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
