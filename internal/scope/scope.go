// Package scope is the owner of everything a provisioning tool (pg-init,
// s3-init) creates: a Kubernetes namespace and a Helm release. It holds the
// one Scope type, its one validation rule and its one loader from a spec
// and the --namespace/--release flags.
package scope

import (
	"errors"
	"fmt"

	"github.com/kommons/kommons/internal/specfile"
)

// ErrEmpty is returned by RequireParts when a part of a name is empty.
var ErrEmpty = errors.New("empty name")

// RequireParts is the argument check of the naming packages (pgnames,
// s3names): it fails, naming the part, when the namespace, the release or
// the logical name is empty.
func RequireParts(namespace, release, logical string) error {
	switch {
	case namespace == "":
		return fmt.Errorf("namespace: %w", ErrEmpty)
	case release == "":
		return fmt.Errorf("release: %w", ErrEmpty)
	case logical == "":
		return fmt.Errorf("logical name: %w", ErrEmpty)
	}
	return nil
}

// Scope names the owner of provisioned objects: a Kubernetes namespace and
// a Helm release. It is written into every object's ownership marker.
type Scope struct {
	Namespace string `json:"namespace,omitempty"`
	Release   string `json:"release,omitempty"`
}

// String renders the scope as namespace/release.
func (s Scope) String() string { return s.Namespace + "/" + s.Release }

// Check records in p, at scope.namespace and scope.release, what is wrong
// with the scope: each part is required and must be a logical name
// (specfile.CheckLogicalName: valid UTF-8 without control characters, at
// most 256 bytes); the naming packages turn it into safe physical names.
func (s Scope) Check(p *specfile.Problems) {
	p.LogicalName("scope.namespace", s.Namespace)
	p.LogicalName("scope.release", s.Release)
}

// Load completes the scope of the spec file source from the --namespace
// and --release flags: an empty part takes the flag's value, a flag that
// contradicts the spec is refused, and a part still empty is refused naming
// the flag and its environment variable (<envPrefix>_NAMESPACE,
// <envPrefix>_RELEASE). The error is a *specfile.Error.
func (s *Scope) Load(source, namespace, release, envPrefix string) error {
	var p specfile.Problems
	p.FromFlag(&s.Namespace, "scope.namespace", "namespace", namespace)
	p.FromFlag(&s.Release, "scope.release", "release", release)
	if s.Namespace == "" {
		p.Add("scope.namespace", "required (in the spec, or --namespace / %s_NAMESPACE)", envPrefix)
	}
	if s.Release == "" {
		p.Add("scope.release", "required (in the spec, or --release / %s_RELEASE)", envPrefix)
	}
	return p.Err(source)
}
