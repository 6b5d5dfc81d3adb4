package postrender

import (
	"fmt"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/kommons/kommons/pkg/postrender/internal/splice"
	"github.com/kommons/kommons/pkg/postrender/internal/yamlstream"
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
	node       *yaml.Node
	path       string // prefix for report paths ("items[2]." inside a List)
	kind       string
	apiVersion string
	group      string
	name       string
	namespace  string
	labels     map[string]string
	workload   *workload // nil: no pod template
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
func wrongKind(o *objectInfo, n *yaml.Node, want yaml.Kind, field string) error {
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

// filter is one kind of edit. The engine registers its filters in New and
// the walk applies each, in order, to every object of a document (the
// items of a List are objects too).
type filter interface {
	apply(c *docContext, o *objectInfo) error
}

// object walks one object: it checks that it is a mapping, describes it,
// walks the items of a List, and applies the engine's filters.
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
	o := c.describeObject(n, path)
	if strings.HasSuffix(o.kind, "List") {
		if walked, err := c.list(o); walked || err != nil {
			return err
		}
	}
	for _, f := range c.engine.filters {
		if err := f.apply(c, o); err != nil {
			return err
		}
	}
	return nil
}

// describeObject reads what the filters match on and finds the object's
// entry in the workload table.
func (c *docContext) describeObject(n *yaml.Node, path string) *objectInfo {
	meta := get(n, "metadata")
	o := &objectInfo{
		node:       n,
		path:       path,
		kind:       str(n, "kind"),
		apiVersion: str(n, "apiVersion"),
		name:       str(meta, "name"),
		namespace:  str(meta, "namespace"),
		labels:     stringMap(get(meta, "labels"), "metadata.labels"),
	}
	if o.name == "" {
		o.name = str(meta, "generateName")
	}
	if o.namespace == "" {
		o.namespace = c.engine.opts.Namespace
	}
	if i := strings.LastIndex(o.apiVersion, "/"); i >= 0 {
		o.group = o.apiVersion[:i]
	}
	o.workload = c.engine.lookupWorkload(o.kind, o.group, o.apiVersion)
	return o
}

// list walks the items of a List kind; false when it has no item sequence
// (the filters then see the object itself).
func (c *docContext) list(o *objectInfo) (bool, error) {
	items := get(o.node, "items")
	if err := wrongKind(o, items, yaml.SequenceNode, o.path+"items"); err != nil {
		return false, err
	}
	if items == nil || items.Kind != yaml.SequenceNode {
		return false, nil
	}
	if c.visited == nil {
		c.visited = map[*yaml.Node]bool{}
	}
	if c.visited[items] {
		return true, errAt(items.Line, "%sitems refers to itself through a YAML alias", o.path)
	}
	c.visited[items] = true
	for i, it := range items.Content {
		if err := c.object(resolve(it), fmt.Sprintf("%sitems[%d].", o.path, i)); err != nil {
			return true, err
		}
	}
	return true, nil
}

// descend follows keys from the object, each step a mapping and the last
// of kind last, refusing a step of another kind (see wrongKind). It returns
// the node reached, or nil when a step is absent or null.
func descend(o *objectInfo, keys []string, last yaml.Kind) (*yaml.Node, error) {
	n := o.node
	for i, k := range keys {
		want := yaml.MappingNode
		if i == len(keys)-1 {
			want = last
		}
		n = get(n, k)
		if err := wrongKind(o, n, want, o.path+strings.Join(keys[:i+1], ".")); err != nil {
			return nil, err
		}
		if n == nil {
			return nil, nil
		}
	}
	if n.Kind != last {
		return nil, nil // null
	}
	return n, nil
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

func (c *docContext) record(o *objectInfo, line int, path string, old, new *yaml.Node, rule, warning string) {
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
