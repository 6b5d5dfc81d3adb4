package postrender

import (
	"fmt"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/kommons/kommons/pkg/postrender/internal/splice"
	"github.com/kommons/kommons/pkg/postrender/internal/yamlstream"
	"github.com/kommons/kommons/pkg/postrender/policy"
)

// checkDuplicates reports the first duplicate mapping key, as Kubernetes
// rejects them.
func checkDuplicates(n *yaml.Node) *lineError {
	if n == nil {
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		var seen map[string]bool // only for large mappings; small ones are scanned
		if len(n.Content) > 32 {
			seen = make(map[string]bool, len(n.Content)/2)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; k.Kind == yaml.ScalarNode {
				dup := false
				if seen != nil {
					id := k.Tag + ":" + k.Value
					dup = seen[id]
					seen[id] = true
				} else {
					for j := 0; j < i; j += 2 {
						if p := n.Content[j]; p.Kind == yaml.ScalarNode && p.Value == k.Value && p.Tag == k.Tag {
							dup = true
							break
						}
					}
				}
				if dup {
					return errAt(k.Line, "duplicate key %q (Kubernetes rejects duplicate keys)", k.Value)
				}
			}
			if err := checkDuplicates(n.Content[i+1]); err != nil {
				return err
			}
		}
	case yaml.SequenceNode, yaml.DocumentNode:
		for _, c := range n.Content {
			if err := checkDuplicates(c); err != nil {
				return err
			}
		}
	}
	return nil
}

// docContext carries the state of one document being processed.
type docContext struct {
	engine  *Engine
	doc     *splice.Doc
	stream  *yamlstream.Document
	changes []Change
	shared  map[*yaml.Node]bool // nodes reachable through an alias
	visited map[*yaml.Node]bool // List items already walked (alias cycles)
}

// objectInfo describes the Kubernetes object being edited.
type objectInfo struct {
	node      *yaml.Node
	path      string // prefix for report paths ("items[2]." inside a List)
	kind      string
	group     string
	name      string
	namespace string
	labels    map[string]string
}

// errNotObject is the error for a document or List item that is not a
// mapping: Kubernetes cannot apply it and the policy cannot be applied to
// it, so it is refused rather than copied.
func errNotObject(where, is string) error {
	return fmt.Errorf("%s is %s, not a Kubernetes object (a mapping with apiVersion and kind); refusing to pass it through unplaced", where, is)
}

// describe names what a node is, for errors ("a string (\"abc\")", "a
// sequence").
func describe(n *yaml.Node) string {
	n = resolve(n)
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a sequence"
	case yaml.ScalarNode:
		v := n.Value
		if r := []rune(v); len(r) > 40 {
			v = string(r[:37]) + "..."
		}
		switch n.ShortTag() {
		case "!!str":
			return fmt.Sprintf("a string (%q)", v)
		case "!!int":
			return fmt.Sprintf("an integer (%s)", v)
		case "!!null":
			return "null"
		default:
			return fmt.Sprintf("a %s scalar (%q)", strings.TrimPrefix(n.ShortTag(), "!!"), v)
		}
	}
	return "not a mapping"
}

// wrongKind returns an error when n is present and not null but not of
// kind want, naming the object and the field: such a document is refused
// rather than passed through unplaced. Absent and null fields are left to
// the caller (they are legitimately missing in some kinds).
func wrongKind(o objectInfo, n *yaml.Node, want yaml.Kind, field string) error {
	if isNull(n) || resolve(n).Kind == want {
		return nil
	}
	name := o.name
	if name == "" {
		name = "(no name)"
	}
	wantText := "a mapping"
	if want == yaml.SequenceNode {
		wantText = "a sequence"
	}
	return errAt(n.Line, "%s %s: %s is %s, not %s; refusing to pass it through unplaced", o.kind, name, field, describe(n), wantText)
}

func (c *docContext) object(n *yaml.Node, path string) error {
	if n.Kind != yaml.MappingNode {
		if isNull(n) {
			return nil // an empty document or item, as Helm and kubectl skip it
		}
		where := "the document"
		if path != "" {
			where = strings.TrimSuffix(path, ".")
		}
		return errAt(n.Line, "%v", errNotObject(where, describe(n)))
	}
	meta := get(n, "metadata")
	o := objectInfo{
		node:      n,
		path:      path,
		kind:      str(n, "kind"),
		name:      str(meta, "name"),
		namespace: str(meta, "namespace"),
		labels:    stringMap(get(meta, "labels"), "metadata.labels"),
	}
	if o.name == "" {
		o.name = str(meta, "generateName")
	}
	if o.namespace == "" {
		o.namespace = c.engine.opts.Namespace
	}
	apiVersion := str(n, "apiVersion")
	if i := strings.LastIndex(apiVersion, "/"); i >= 0 {
		o.group = apiVersion[:i]
	}
	if strings.HasSuffix(o.kind, "List") {
		items := get(n, "items")
		if err := wrongKind(o, items, yaml.SequenceNode, path+"items"); err != nil {
			return err
		}
		if items != nil && items.Kind == yaml.SequenceNode {
			if c.visited == nil {
				c.visited = map[*yaml.Node]bool{}
			}
			if c.visited[items] {
				return errAt(items.Line, "%sitems refers to itself through a YAML alias", path)
			}
			c.visited[items] = true
			for i, it := range items.Content {
				if err := c.object(resolve(it), fmt.Sprintf("%sitems[%d].", path, i)); err != nil {
					return err
				}
			}
			return nil
		}
	}
	switch {
	case o.kind == "PersistentVolumeClaim" && o.group == "":
		spec := get(n, "spec")
		if err := wrongKind(o, spec, yaml.MappingNode, path+"spec"); err != nil {
			return err
		}
		if spec != nil && spec.Kind == yaml.MappingNode {
			if err := c.claim(o, spec, path+"spec", o.name, o.labels, false); err != nil {
				return err
			}
		}
	case o.kind == "StatefulSet" && isGroup(o.group, "apps"):
		stsSpec := get(n, "spec")
		if err := wrongKind(o, stsSpec, yaml.MappingNode, path+"spec"); err != nil {
			return err
		}
		vcts := get(stsSpec, "volumeClaimTemplates")
		if err := wrongKind(o, vcts, yaml.SequenceNode, path+"spec.volumeClaimTemplates"); err != nil {
			return err
		}
		if vcts != nil && vcts.Kind == yaml.SequenceNode {
			for i, t := range vcts.Content {
				t = resolve(t)
				tPath := fmt.Sprintf("%sspec.volumeClaimTemplates[%d]", path, i)
				if err := wrongKind(o, t, yaml.MappingNode, tPath); err != nil {
					return err
				}
				spec := get(t, "spec")
				if err := wrongKind(o, spec, yaml.MappingNode, tPath+".spec"); err != nil {
					return err
				}
				if spec == nil || spec.Kind != yaml.MappingNode {
					continue
				}
				tmeta := get(t, "metadata")
				if err := c.claim(o, spec, fmt.Sprintf("%sspec.volumeClaimTemplates[%d].spec", path, i), str(tmeta, "name"), stringMap(get(tmeta, "labels"), "volumeClaimTemplate labels"), true); err != nil {
					return err
				}
			}
		}
	}
	if tmplPath, ok := c.templatePath(o, apiVersion); ok {
		// Each step to the pod template must be a mapping when present; a
		// template that is absent or null (a custom resource may have none)
		// is left alone.
		tmpl := n
		for i, k := range tmplPath {
			tmpl = get(tmpl, k)
			if err := wrongKind(o, tmpl, yaml.MappingNode, path+strings.Join(tmplPath[:i+1], ".")); err != nil {
				return err
			}
			if tmpl == nil {
				break
			}
		}
		if tmpl != nil && tmpl.Kind == yaml.MappingNode {
			p := path + strings.Join(tmplPath, ".")
			if p != "" && !strings.HasSuffix(p, ".") {
				p += "."
			}
			return c.place(o, tmpl, p)
		}
	}
	return nil
}

func isGroup(group string, want ...string) bool {
	g := group
	if i := strings.Index(g, "/"); i >= 0 {
		g = g[:i]
	}
	for _, w := range want {
		if g == w {
			return true
		}
	}
	return false
}

// templatePath returns the path of the object's pod template ("" for a Pod).
func (c *docContext) templatePath(o objectInfo, apiVersion string) ([]string, bool) {
	switch o.kind {
	case "Pod":
		if o.group == "" {
			return nil, true
		}
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet":
		if isGroup(o.group, "apps", "extensions") {
			return []string{"spec", "template"}, true
		}
	case "ReplicationController":
		if o.group == "" {
			return []string{"spec", "template"}, true
		}
	case "Job":
		if isGroup(o.group, "batch") {
			return []string{"spec", "template"}, true
		}
	case "CronJob":
		if isGroup(o.group, "batch") {
			return []string{"spec", "jobTemplate", "spec", "template"}, true
		}
	}
	for _, t := range c.engine.custom[o.kind] {
		if t.APIVersion == "" || t.APIVersion == apiVersion {
			return strings.Split(t.Path, "."), true
		}
	}
	return nil, false
}

// editable refuses edits inside a node shared through a YAML alias: editing
// the anchored text would change every object that refers to it.
func (c *docContext) editable(n *yaml.Node, what string) error {
	if c.shared == nil {
		c.shared = map[*yaml.Node]bool{}
		var mark func(n *yaml.Node, inShared bool)
		seen := map[*yaml.Node]bool{}
		mark = func(n *yaml.Node, inShared bool) {
			if n == nil {
				return
			}
			if n.Kind == yaml.AliasNode {
				if !seen[n.Alias] {
					seen[n.Alias] = true
					mark(n.Alias, true)
				}
				return
			}
			if inShared {
				c.shared[n] = true
			}
			for _, ch := range n.Content {
				mark(ch, inShared)
			}
		}
		mark(c.doc.Root, false)
	}
	if c.shared[n] {
		return errAt(n.Line, "%s is shared through a YAML alias (anchor &%s or an enclosing one); refusing to edit it because the edit would change every object that refers to it", what, n.Anchor)
	}
	return nil
}

func (c *docContext) record(o objectInfo, line int, path string, old, new *yaml.Node, rule, warning string) {
	// Strings taken from the document are copied: a substring would keep
	// the parser's copy of the whole document alive as long as the report.
	ch := Change{
		Document: c.stream.Index,
		Source:   c.stream.Source,
		Line:     c.stream.Line + line - 1,
		Kind:     strings.Clone(o.kind),
		Name:     strings.Clone(o.name),
		Path:     path,
		New:      flowText(new),
		Rule:     rule,
		Warning:  warning,
	}
	if old != nil {
		ch.Old = strings.Clone(flowText(old))
	}
	c.changes = append(c.changes, ch)
}

// claim applies the storage rules to a PersistentVolumeClaim spec or a
// volumeClaimTemplate spec.
func (c *docContext) claim(o objectInfo, spec *yaml.Node, path, claimName string, claimLabels map[string]string, template bool) error {
	st := c.engine.policy.Storage
	view := policy.Object{Kind: o.kind, Name: o.name, Namespace: o.namespace, Labels: []map[string]string{o.labels, claimLabels}, ClaimName: claimName}
	var rule *policy.StorageRule
	ruleName := ""
	for i := range st.Rules {
		if st.Rules[i].Match.Matches(view) {
			rule = &st.Rules[i]
			ruleName = ruleLabel("storage.rules", i, rule.Name)
			break
		}
	}
	current := get(spec, "storageClassName")
	fieldPath := path + ".storageClassName"
	if !isNull(current) {
		if current.Kind != yaml.ScalarNode || current.Value == "" || rule == nil || !rule.Override || current.Value == rule.StorageClass {
			return nil // explicit class (including "") is kept
		}
		if err := c.editable(current, fieldPath); err != nil {
			return err
		}
		old := *current
		warning := ""
		if template {
			warning = "volumeClaimTemplates are immutable: upgrading an existing release with a changed storageClassName fails; delete the StatefulSet with --cascade=orphan first"
		}
		if err := c.doc.ReplaceScalar(current, c.columnOf(spec), c.doc.IsFlow(spec), strNode(rule.StorageClass)); err != nil {
			return errAt(current.Line, "%s: %v", fieldPath, err)
		}
		c.record(o, old.Line, fieldPath, &old, current, ruleName+" (override)", warning)
		return nil
	}
	class := st.DefaultClass
	if rule != nil {
		class = rule.StorageClass
	} else {
		ruleName = "storage.defaultClass"
	}
	if class == "" {
		return nil
	}
	if err := c.editable(spec, path); err != nil {
		return err
	}
	value := strNode(class)
	if err := c.doc.SetKey(spec, "storageClassName", value); err != nil {
		return errAt(spec.Line, "%s: %v", fieldPath, err)
	}
	c.record(o, spec.Line, fieldPath, nil, value, ruleName, "")
	return nil
}

// columnOf returns the key column of a block mapping (0-based), used as the
// parent indentation of its values.
func (c *docContext) columnOf(m *yaml.Node) int {
	if len(m.Content) == 0 || m.Content[0].Line == 0 {
		return 0
	}
	return m.Content[0].Column - 1
}

func ruleLabel(prefix string, i int, name string) string {
	if name != "" {
		return fmt.Sprintf("%s[%d] %s", prefix, i, name)
	}
	return fmt.Sprintf("%s[%d]", prefix, i)
}
