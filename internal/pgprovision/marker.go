package pgprovision

import (
	"encoding/json"
	"strings"
)

// ManagedBy is the managedBy value of every ownership marker.
const ManagedBy = "kommons/pg-init"

// Marker is the ownership record pg-init writes as the COMMENT of every
// role and database it manages, as compact JSON, e.g.
// {"managedBy":"kommons/pg-init","namespace":"imaging","release":"orthanc","name":"orthanc","reclaimPolicy":"retain"}.
//
// A marker names the logical object and its reclaim policy; it never makes
// an object a scope's on its own. A role's comment can be written by anyone
// holding ADMIN OPTION on it (any CREATEROLE holder before PostgreSQL 16), a
// database's by its owner, so pg-init decides ownership from the server
// (see decideRoleOwnership and decideDatabaseOwnership in ownership.go).
type Marker struct {
	ManagedBy     string `json:"managedBy"`
	Namespace     string `json:"namespace"`
	Release       string `json:"release"`
	Name          string `json:"name"`
	ReclaimPolicy string `json:"reclaimPolicy"`
}

// NewMarker is the marker of logical object name in scope.
func NewMarker(scope Scope, name, reclaimPolicy string) Marker {
	return Marker{ManagedBy: ManagedBy, Namespace: scope.Namespace, Release: scope.Release, Name: name, ReclaimPolicy: reclaimPolicy}
}

// String is the comment text.
func (m Marker) String() string {
	b, _ := json.Marshal(m) // cannot fail: strings only
	return string(b)
}

// ParseMarker reads a comment; ok is false when it is not a pg-init marker.
func ParseMarker(comment string) (Marker, bool) {
	if !strings.HasPrefix(comment, "{") {
		return Marker{}, false
	}
	var m Marker
	if err := json.Unmarshal([]byte(comment), &m); err != nil || m.ManagedBy != ManagedBy {
		return Marker{}, false
	}
	return m, true
}

// markedFor reports whether comment is scope's marker for logical name.
func markedFor(comment *string, scope Scope, name string) bool {
	if comment == nil {
		return false
	}
	m, ok := ParseMarker(*comment)
	return ok && m.InScope(scope) && m.Name == name
}

// InScope reports whether the marker belongs to scope.
func (m Marker) InScope(s Scope) bool { return m.Namespace == s.Namespace && m.Release == s.Release }

// describeOwner explains, for refusal messages, whom a comment says an object belongs to.
func describeOwner(comment *string) string {
	if comment == nil || *comment == "" {
		return "it has no kommons ownership marker"
	}
	m, ok := ParseMarker(*comment)
	if !ok {
		return "its comment is not a kommons ownership marker"
	}
	return "its marker names scope " + m.Namespace + "/" + m.Release + " object " + m.Name
}
