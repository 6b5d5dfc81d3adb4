package postrender

import (
	"fmt"
	"reflect"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/kommons/kommons/pkg/postrender/policy"
)

// placementFilter merges the pool the policy chooses into the pod template
// of every workload in the workload table.
type placementFilter struct{ policy *policy.Policy }

func (f placementFilter) apply(c *docContext, o *objectInfo) error {
	if o.workload == nil {
		return nil
	}
	// Each step to the pod template must be a mapping when present; a
	// template that is absent or null (a custom resource may have none) is
	// left alone.
	tmpl, err := descend(o, o.workload.template, yaml.MappingNode)
	if err != nil || tmpl == nil {
		return err
	}
	path := o.path + strings.Join(o.workload.template, ".")
	if path != "" && !strings.HasSuffix(path, ".") {
		path += "."
	}
	return f.place(c, o, tmpl, path)
}

// choosePool returns the pool for a workload, the rule that chose it and
// whether conflicting nodeSelector values may be replaced; nil when the
// workload is left alone.
func (f placementFilter) choosePool(o *objectInfo, tmplLabels map[string]string) (*policy.Pool, string, bool) {
	p := f.policy
	view := policy.Object{Kind: o.kind, Name: o.name, Namespace: o.namespace, Labels: []map[string]string{o.labels, tmplLabels}}
	poolName, rule, override := p.Placement.DefaultPool, "placement.defaultPool", false
	for i, r := range p.Placement.Rules {
		if r.Match.Matches(view) {
			if r.Skip {
				return nil, "", false
			}
			poolName, rule, override = r.Pool, ruleLabel("placement.rules", i, r.Name), r.Override
			break
		}
	}
	for i := range p.Pools {
		if p.Pools[i].Name == poolName {
			return &p.Pools[i], fmt.Sprintf("%s -> pool %s", rule, poolName), override
		}
	}
	return nil, "", false
}

// place merges the chosen pool into the pod template tmpl (at path).
func (f placementFilter) place(c *docContext, o *objectInfo, tmpl *yaml.Node, path string) error {
	spec := get(tmpl, "spec")
	if err := wrongKind(o, spec, yaml.MappingNode, path+"spec"); err != nil {
		return err
	}
	if spec == nil || spec.Kind != yaml.MappingNode {
		return nil
	}
	tmplLabels := stringMap(get(get(tmpl, "metadata"), "labels"), "the pod template's labels")
	pool, rule, override := f.choosePool(o, tmplLabels)
	if pool == nil {
		return nil
	}
	pc := &placement{editor: editor{c: c, o: o, rule: rule}, spec: spec, path: path + "spec"}
	if err := pc.nodeSelector(pool.NodeSelector, override); err != nil {
		return err
	}
	if err := pc.tolerations(pool.Tolerations); err != nil {
		return err
	}
	if err := pc.affinity(pool.RequiredNodeAffinity, pool.PreferredNodeAffinity); err != nil {
		return err
	}
	return pc.spread(pool.TopologySpread, spreadLabels(o.node, tmplLabels))
}

// spreadLabels picks the labels a topology spread constraint selects the
// workload's pods by: the workload's own selector when it has one (stable
// across upgrades), else the pod template's labels without those that change
// with every release, so that old and new pods of a rollout count together.
func spreadLabels(obj *yaml.Node, tmplLabels map[string]string) map[string]string {
	if m := stringMap(getPath(obj, []string{"spec", "selector", "matchLabels"}), "spec.selector.matchLabels"); len(m) > 0 {
		return m
	}
	out := make(map[string]string, len(tmplLabels))
	for k, v := range tmplLabels {
		switch k {
		case "app.kubernetes.io/version", "helm.sh/chart", "pod-template-hash", "controller-revision-hash":
			continue
		}
		out[k] = v
	}
	return out
}

// placement merges one pool into one pod spec.
type placement struct {
	editor
	spec *yaml.Node
	path string
}

func (p *placement) nodeSelector(want map[string]string, override bool) error {
	if len(want) == 0 {
		return nil
	}
	ns, nsPath, err := p.lookupCreate(p.spec, p.path, []string{"nodeSelector"}, yaml.MappingNode, func() *yaml.Node { return mapNode(want) })
	if err != nil || ns == nil {
		return err
	}
	for _, k := range sortedKeys(want) {
		cur := get(ns, k)
		switch {
		case cur == nil:
			if err := p.set(ns, nsPath, k, strNode(want[k])); err != nil {
				return err
			}
		case cur.Kind == yaml.ScalarNode && cur.Value == want[k]:
		case !override:
			return errAt(cur.Line, "%s.%s is %q but the pool (%s) requires %q; set override: true on the placement rule to replace it", nsPath, k, flowText(cur), p.rule, want[k])
		default:
			if err := p.replace(ns, cur, nsPath+"."+k, want[k], ""); err != nil {
				return err
			}
		}
	}
	return nil
}

func normalizeToleration(t policy.Toleration) policy.Toleration {
	if t.Operator == "" {
		t.Operator = "Equal"
	}
	return t
}

func (p *placement) tolerations(want []policy.Toleration) error {
	if len(want) == 0 {
		return nil
	}
	cur := get(p.spec, "tolerations")
	var have []policy.Toleration
	if nonEmpty(cur, yaml.SequenceNode) {
		for _, it := range cur.Content {
			var t policy.Toleration
			if err := decodeJSON(resolve(it), &t); err == nil {
				have = append(have, normalizeToleration(t))
			}
		}
	}
	var add []*yaml.Node
	for _, w := range want {
		dup := false
		for _, h := range have {
			if reflect.DeepEqual(h, normalizeToleration(w)) {
				dup = true
				break
			}
		}
		if dup {
			continue
		}
		n, err := toNode(w)
		if err != nil {
			return err
		}
		add = append(add, n)
	}
	return p.appendCreate(p.spec, p.path, "tolerations", add)
}

const (
	requiredKey  = "requiredDuringSchedulingIgnoredDuringExecution"
	preferredKey = "preferredDuringSchedulingIgnoredDuringExecution"
)

// toNodes converts policy items to nodes.
func toNodes[T any](items []T) ([]*yaml.Node, error) {
	out := make([]*yaml.Node, 0, len(items))
	for _, it := range items {
		n, err := toNode(it)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// termsNode is a nodeSelectorTerms list of one term holding the requirements.
func termsNode(reqNodes []*yaml.Node) *yaml.Node {
	return seqNode(pairNode("matchExpressions", seqNode(reqNodes...)))
}

func (p *placement) affinity(required []policy.NodeSelectorRequirement, preferred []policy.PreferredSchedulingTerm) error {
	if len(required)+len(preferred) == 0 {
		return nil
	}
	reqNodes, err := toNodes(required)
	if err != nil {
		return err
	}
	prefNodes, err := toNodes(preferred)
	if err != nil {
		return err
	}
	na, naPath, err := p.lookupCreate(p.spec, p.path, []string{"affinity", "nodeAffinity"}, yaml.MappingNode, func() *yaml.Node {
		na := pairNode()
		if len(reqNodes) > 0 {
			na.Content = append(na.Content, strNode(requiredKey), pairNode("nodeSelectorTerms", termsNode(reqNodes)))
		}
		if len(prefNodes) > 0 {
			na.Content = append(na.Content, strNode(preferredKey), seqNode(prefNodes...))
		}
		return na
	})
	if err != nil || na == nil {
		return err
	}
	if len(reqNodes) > 0 {
		if err := p.required(na, naPath, reqNodes); err != nil {
			return err
		}
	}
	if len(prefNodes) == 0 {
		return nil
	}
	pref, prefPath, err := p.lookupCreate(na, naPath, []string{preferredKey}, yaml.SequenceNode, func() *yaml.Node { return seqNode(prefNodes...) })
	if err != nil || pref == nil {
		return err
	}
	var add []*yaml.Node
	for i, want := range preferred {
		if !containsEqual(pref.Content, want, new(policy.PreferredSchedulingTerm)) {
			add = append(add, prefNodes[i])
		}
	}
	return p.appendItems(pref, prefPath, add)
}

// required ANDs the requirements into every existing nodeSelectorTerm of
// the nodeAffinity na.
func (p *placement) required(na *yaml.Node, naPath string, reqNodes []*yaml.Node) error {
	ts, tsPath, err := p.lookupCreate(na, naPath, []string{requiredKey, "nodeSelectorTerms"}, yaml.SequenceNode, func() *yaml.Node { return termsNode(reqNodes) })
	if err != nil || ts == nil {
		return err
	}
	for i, t := range ts.Content {
		t = resolve(t)
		tPath := fmt.Sprintf("%s[%d]", tsPath, i)
		if t.Kind != yaml.MappingNode {
			return errAt(t.Line, "%s: not a mapping", tPath)
		}
		me := get(t, "matchExpressions")
		var add []*yaml.Node
		for _, rn := range reqNodes {
			var want policy.NodeSelectorRequirement
			if err := decodeJSON(rn, &want); err != nil {
				return err
			}
			if me == nil || !containsEqual(me.Content, want, new(policy.NodeSelectorRequirement)) {
				add = append(add, cloneNode(rn))
			}
		}
		if err := p.appendCreate(t, tPath, "matchExpressions", add); err != nil {
			return err
		}
	}
	return nil
}

func cloneNode(n *yaml.Node) *yaml.Node {
	c := *n
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, ch := range n.Content {
		c.Content[i] = cloneNode(ch)
	}
	return &c
}

// containsEqual reports whether any item decodes (through JSON into the
// type of scratch) to want.
func containsEqual[T any](items []*yaml.Node, want T, scratch *T) bool {
	for _, it := range items {
		var zero T
		*scratch = zero
		if err := decodeJSON(resolve(it), scratch); err == nil && reflect.DeepEqual(*scratch, want) {
			return true
		}
	}
	return false
}

func (p *placement) spread(want []policy.TopologySpreadConstraint, selector map[string]string) error {
	if len(want) == 0 {
		return nil
	}
	cur := get(p.spec, "topologySpreadConstraints")
	var add []*yaml.Node
	for _, w := range want {
		exists := false
		if cur != nil {
			for _, it := range cur.Content {
				if str(resolve(it), "topologyKey") == w.TopologyKey {
					exists = true
				}
			}
		}
		if exists {
			continue
		}
		if w.LabelSelector == nil && len(selector) > 0 {
			w.LabelSelector = &policy.LabelSelector{MatchLabels: selector}
		}
		n, err := toNode(w)
		if err != nil {
			return err
		}
		add = append(add, n)
	}
	return p.appendCreate(p.spec, p.path, "topologySpreadConstraints", add)
}
