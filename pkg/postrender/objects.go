package postrender

import (
	"fmt"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/kommons/kommons/pkg/postrender/policy"
	"github.com/kommons/kommons/pkg/postrender/splice"
	"github.com/kommons/kommons/pkg/postrender/yamlstream"
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

func (c *docContext) object(n *yaml.Node, path string) error {
	if n.Kind != yaml.MappingNode {
		return nil // not an object; passed through
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
		if items := get(n, "items"); items != nil && items.Kind == yaml.SequenceNode {
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
		if spec := get(n, "spec"); spec != nil && spec.Kind == yaml.MappingNode {
			if err := c.claim(o, spec, path+"spec", o.name, o.labels, false); err != nil {
				return err
			}
		}
	case o.kind == "StatefulSet" && isGroup(o.group, "apps"):
		if vcts := get(get(n, "spec"), "volumeClaimTemplates"); vcts != nil && vcts.Kind == yaml.SequenceNode {
			for i, t := range vcts.Content {
				t = resolve(t)
				spec := get(t, "spec")
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
		tmpl := getPath(n, tmplPath)
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
