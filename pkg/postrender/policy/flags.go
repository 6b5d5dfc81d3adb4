package policy

import (
	"fmt"
	"strings"
)

// Shorthand holds the command-line shorthands that build or extend a policy
// without a file.
type Shorthand struct {
	// StorageClass is the default storage class (--storage-class).
	StorageClass string
	// Pools are --pool values: name=db,nodeSelector=k=v,taint=k=v:Effect,...
	Pools []string
	// Rules are --place values: pool=db,kind=StatefulSet,label=k=v,name=glob,namespace=glob
	Rules []string
	// DefaultPool is --default-pool.
	DefaultPool string
}

// Apply adds the shorthands to p (pools and rules after the file's, the
// storage class and default pool replacing the file's) and re-validates it.
func (s Shorthand) Apply(p *Policy) error {
	if s.StorageClass != "" {
		p.Storage.DefaultClass = s.StorageClass
	}
	for _, spec := range s.Pools {
		pool, err := ParsePool(spec)
		if err != nil {
			return fmt.Errorf("--pool %q: %w", spec, err)
		}
		p.Pools = append(p.Pools, pool)
	}
	for _, spec := range s.Rules {
		rule, err := ParsePlacementRule(spec)
		if err != nil {
			return fmt.Errorf("--place %q: %w", spec, err)
		}
		p.Placement.Rules = append(p.Placement.Rules, rule)
	}
	if s.DefaultPool != "" {
		p.Placement.DefaultPool = s.DefaultPool
	}
	return p.Validate()
}

func splitFields(spec string) ([][2]string, error) {
	var out [][2]string
	for _, part := range strings.Split(spec, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want field=value", part)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

// ParsePool parses a pool shorthand. Fields (repeatable except name):
//
//	name=db                         pool name (required)
//	nodeSelector=key=value          node label to select
//	taint=key=value:Effect          tolerate a taint (Equal); key:Effect tolerates any value (Exists)
//	toleration=...                  same as taint
//	spread=topologyKey              spread over a topology key (maxSkew 1, ScheduleAnyway)
//	require=key=v1|v2               required node affinity key In (v1, v2)
func ParsePool(spec string) (Pool, error) {
	var p Pool
	fields, err := splitFields(spec)
	if err != nil {
		return p, err
	}
	for _, f := range fields {
		switch f[0] {
		case "name":
			p.Name = f[1]
		case "nodeSelector":
			k, v, ok := strings.Cut(f[1], "=")
			if !ok || k == "" {
				return p, fmt.Errorf("nodeSelector=%q: want key=value", f[1])
			}
			if p.NodeSelector == nil {
				p.NodeSelector = map[string]string{}
			}
			p.NodeSelector[k] = v
		case "taint", "toleration":
			t, err := parseTaint(f[1])
			if err != nil {
				return p, err
			}
			p.Tolerations = append(p.Tolerations, t)
		case "spread":
			p.TopologySpread = append(p.TopologySpread, TopologySpreadConstraint{MaxSkew: 1, TopologyKey: f[1], WhenUnsatisfiable: "ScheduleAnyway"})
		case "require":
			k, v, ok := strings.Cut(f[1], "=")
			if !ok || k == "" || v == "" {
				return p, fmt.Errorf("require=%q: want key=value[|value...]", f[1])
			}
			p.RequiredNodeAffinity = append(p.RequiredNodeAffinity, NodeSelectorRequirement{Key: k, Operator: "In", Values: strings.Split(v, "|")})
		default:
			return p, fmt.Errorf("unknown field %q (want name, nodeSelector, taint, toleration, spread or require)", f[0])
		}
	}
	if p.Name == "" {
		return p, fmt.Errorf("name=... is required")
	}
	return p, nil
}

// parseTaint parses key=value:Effect or key:Effect (any value).
func parseTaint(s string) (Toleration, error) {
	kv, effect, ok := strings.Cut(s, ":")
	if !ok {
		return Toleration{}, fmt.Errorf("taint=%q: want key=value:Effect or key:Effect", s)
	}
	k, v, hasValue := strings.Cut(kv, "=")
	t := Toleration{Key: k, Operator: "Exists", Effect: effect}
	if hasValue {
		t.Operator, t.Value = "Equal", v
	}
	return t, nil
}

// ParsePlacementRule parses a rule shorthand. Fields (repeatable except pool):
//
//	pool=db | skip=true   target pool, or leave matches untouched
//	kind=StatefulSet      object kind
//	label=key=glob        label match
//	name=glob             object name
//	namespace=glob        namespace
//	override=true         replace conflicting nodeSelector values
func ParsePlacementRule(spec string) (PlacementRule, error) {
	var r PlacementRule
	fields, err := splitFields(spec)
	if err != nil {
		return r, err
	}
	for _, f := range fields {
		switch f[0] {
		case "pool":
			r.Pool = f[1]
		case "skip":
			r.Skip = f[1] == "true"
		case "override":
			r.Override = f[1] == "true"
		case "kind":
			r.Match.Kinds = append(r.Match.Kinds, f[1])
		case "name":
			r.Match.Names = append(r.Match.Names, f[1])
		case "namespace":
			r.Match.Namespaces = append(r.Match.Namespaces, f[1])
		case "label":
			k, v, ok := strings.Cut(f[1], "=")
			if !ok || k == "" {
				return r, fmt.Errorf("label=%q: want key=glob", f[1])
			}
			if r.Match.Labels == nil {
				r.Match.Labels = map[string]string{}
			}
			r.Match.Labels[k] = v
		default:
			return r, fmt.Errorf("unknown field %q (want pool, skip, override, kind, name, namespace or label)", f[0])
		}
	}
	return r, nil
}
