package postrender

import (
	"fmt"
	"reflect"

	yaml "go.yaml.in/yaml/v3"

	"github.com/kommons/kommons/pkg/postrender/policy"
)

// choosePool returns the pool for a workload, the rule that chose it and
// whether conflicting nodeSelector values may be replaced; nil when the
// workload is left alone.
func (c *docContext) choosePool(o objectInfo, tmplLabels map[string]string) (*policy.Pool, string, bool) {
	p := c.engine.policy
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

// place merges the chosen pool into the pod template tmpl.
func (c *docContext) place(o objectInfo, tmpl *yaml.Node, path string) error {
	spec := get(tmpl, "spec")
	if o.kind == "Pod" && path == "" {
		spec = get(o.node, "spec")
	}
	if err := wrongKind(o, spec, yaml.MappingNode, path+"spec"); err != nil {
		return err
	}
	if spec == nil || spec.Kind != yaml.MappingNode {
		return nil
	}
	tmplLabels := stringMap(get(get(tmpl, "metadata"), "labels"), "the pod template's labels")
	pool, rule, override := c.choosePool(o, tmplLabels)
	if pool == nil {
		return nil
	}
	specPath := path + "spec"
	pc := &placement{docContext: c, o: o, spec: spec, path: specPath, rule: rule}
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

type placement struct {
	*docContext
	o    objectInfo
	spec *yaml.Node
	path string
	rule string
}

// set adds key to mapping m (absent, null or empty), recording the change.
func (p *placement) set(m *yaml.Node, mPath, key string, value *yaml.Node) error {
	if err := p.editable(m, mPath); err != nil {
		return err
	}
	old := get(m, key)
	line := m.Line
	if old != nil && old.Line > 0 {
		line = old.Line
	}
	if err := p.doc.SetKey(m, key, value); err != nil {
		return errAt(line, "%s.%s: %v", mPath, key, err)
	}
	p.record(p.o, line, mPath+"."+key, old, value, p.rule, "")
	return nil
}

// appendItems appends to a non-empty sequence, recording the change.
func (p *placement) appendItems(seq *yaml.Node, seqPath string, items []*yaml.Node) error {
	if len(items) == 0 {
		return nil
	}
	if err := p.editable(seq, seqPath); err != nil {
		return err
	}
	n := len(seq.Content)
	if err := p.doc.Append(seq, items...); err != nil {
		return errAt(seq.Line, "%s: %v", seqPath, err)
	}
	for i, it := range items {
		p.record(p.o, seq.Line, fmt.Sprintf("%s[%d]", seqPath, n+i), nil, it, p.rule, "")
	}
	return nil
}

func nonEmpty(n *yaml.Node, kind yaml.Kind) bool {
	return n != nil && n.Kind == kind && len(n.Content) > 0
}

func (p *placement) nodeSelector(want map[string]string, override bool) error {
	if len(want) == 0 {
		return nil
	}
	ns := get(p.spec, "nodeSelector")
	nsPath := p.path + ".nodeSelector"
	if !nonEmpty(ns, yaml.MappingNode) {
		return p.set(p.spec, p.path, "nodeSelector", mapNode(want))
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
			if err := p.editable(cur, nsPath+"."+k); err != nil {
				return err
			}
			old := *cur
			if err := p.doc.ReplaceScalar(cur, p.columnOf(ns), p.doc.IsFlow(ns), strNode(want[k])); err != nil {
				return errAt(cur.Line, "%s.%s: %v", nsPath, k, err)
			}
			p.record(p.o, old.Line, nsPath+"."+k, &old, cur, p.rule+" (override)", "")
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
	if len(add) == 0 {
		return nil
	}
	if nonEmpty(cur, yaml.SequenceNode) {
		return p.appendItems(cur, p.path+".tolerations", add)
	}
	return p.set(p.spec, p.path, "tolerations", seqNode(add...))
}

func (p *placement) affinity(required []policy.NodeSelectorRequirement, preferred []policy.PreferredSchedulingTerm) error {
	if len(required)+len(preferred) == 0 {
		return nil
	}
	reqNodes := make([]*yaml.Node, 0, len(required))
	for _, r := range required {
		n, err := toNode(r)
		if err != nil {
			return err
		}
		reqNodes = append(reqNodes, n)
	}
	prefNodes := make([]*yaml.Node, 0, len(preferred))
	for _, t := range preferred {
		n, err := toNode(t)
		if err != nil {
			return err
		}
		prefNodes = append(prefNodes, n)
	}
	const reqKey, prefKey = "requiredDuringSchedulingIgnoredDuringExecution", "preferredDuringSchedulingIgnoredDuringExecution"
	newNodeAffinity := func() *yaml.Node {
		na := pairNode()
		if len(reqNodes) > 0 {
			na.Content = append(na.Content, strNode(reqKey), pairNode("nodeSelectorTerms", seqNode(pairNode("matchExpressions", seqNode(reqNodes...)))))
		}
		if len(prefNodes) > 0 {
			na.Content = append(na.Content, strNode(prefKey), seqNode(prefNodes...))
		}
		return na
	}
	aff := get(p.spec, "affinity")
	affPath := p.path + ".affinity"
	if !nonEmpty(aff, yaml.MappingNode) {
		return p.set(p.spec, p.path, "affinity", pairNode("nodeAffinity", newNodeAffinity()))
	}
	na := get(aff, "nodeAffinity")
	naPath := affPath + ".nodeAffinity"
	if !nonEmpty(na, yaml.MappingNode) {
		return p.set(aff, affPath, "nodeAffinity", newNodeAffinity())
	}
	if len(reqNodes) > 0 {
		if err := p.required(na, naPath+"."+reqKey, reqNodes); err != nil {
			return err
		}
	}
	if len(prefNodes) > 0 {
		pref := get(na, prefKey)
		if !nonEmpty(pref, yaml.SequenceNode) {
			return p.set(na, naPath, prefKey, seqNode(prefNodes...))
		}
		var add []*yaml.Node
		for i, want := range preferred {
			if !containsEqual(pref.Content, want, new(policy.PreferredSchedulingTerm)) {
				add = append(add, prefNodes[i])
			}
		}
		return p.appendItems(pref, naPath+"."+prefKey, add)
	}
	return nil
}

// required ANDs the requirements into every existing nodeSelectorTerm.
func (p *placement) required(na *yaml.Node, reqPath string, reqNodes []*yaml.Node) error {
	terms := func() *yaml.Node {
		return pairNode("nodeSelectorTerms", seqNode(pairNode("matchExpressions", seqNode(reqNodes...))))
	}
	req := get(na, "requiredDuringSchedulingIgnoredDuringExecution")
	if !nonEmpty(req, yaml.MappingNode) {
		return p.set(na, reqPath[:len(reqPath)-len(".requiredDuringSchedulingIgnoredDuringExecution")], "requiredDuringSchedulingIgnoredDuringExecution", terms())
	}
	ts := get(req, "nodeSelectorTerms")
	if !nonEmpty(ts, yaml.SequenceNode) {
		return p.set(req, reqPath, "nodeSelectorTerms", seqNode(pairNode("matchExpressions", seqNode(reqNodes...))))
	}
	for i, t := range ts.Content {
		t = resolve(t)
		tPath := fmt.Sprintf("%s.nodeSelectorTerms[%d]", reqPath, i)
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
		if len(add) == 0 {
			continue
		}
		if nonEmpty(me, yaml.SequenceNode) {
			if err := p.appendItems(me, tPath+".matchExpressions", add); err != nil {
				return err
			}
		} else if err := p.set(t, tPath, "matchExpressions", seqNode(add...)); err != nil {
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
	if len(add) == 0 {
		return nil
	}
	if nonEmpty(cur, yaml.SequenceNode) {
		return p.appendItems(cur, p.path+".topologySpreadConstraints", add)
	}
	return p.set(p.spec, p.path, "topologySpreadConstraints", seqNode(add...))
}
