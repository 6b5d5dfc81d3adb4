package postrender

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	yaml "go.yaml.in/yaml/v3"
)

// resolve follows an alias to its anchored node.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// isMergeKey reports whether k is a YAML merge key (a plain "<<", tagged
// !!merge; a quoted "<<" is an ordinary string key).
func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge"
}

// mergeRefusal aborts the processing of a document that has a YAML merge
// key where the engine reads; processDocument turns it into a DocumentError
// (exit 3).
//
// Merge keys are refused rather than resolved: Helm decodes manifests with
// sigs.k8s.io/yaml (yaml.v2), where a merge also replaces keys written
// before the "<<" (yaml.v3 keeps them), so reading a merged mapping the way
// the cluster will see it is subtle, and inserting a key next to a "<<"
// silently overrides the merged value (the chart's nodeSelector, tolerations
// or storageClassName "").
type mergeRefusal struct{ *lineError }

// refuseMerge panics with a mergeRefusal for the merge key k met while
// reading what.
func refuseMerge(k *yaml.Node, what string) {
	panic(mergeRefusal{errAt(k.Line, "YAML merge key \"<<\" where postrender reads (%s): refusing to edit around merged keys, because they would be ignored or overridden (the chart's nodeSelector, tolerations, labels or storageClassName); write the keys out instead of merging them", what)})
}

// get returns the value of key in mapping m (aliases resolved), or nil. A
// mapping with a merge key is refused (see mergeRefusal), whether or not key
// is written out: a later merge would replace it.
func get(m *yaml.Node, key string) *yaml.Node {
	m = resolve(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	var v *yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if isMergeKey(k) {
			refuseMerge(k, fmt.Sprintf("looking up %q", key))
		}
		if v == nil && k.Kind == yaml.ScalarNode && k.Value == key {
			v = resolve(m.Content[i+1])
		}
	}
	return v
}

// checkNoMerge refuses a merge key anywhere in the tree under n (aliases
// followed, each anchored node once), before the tree is decoded as a whole.
func checkNoMerge(n *yaml.Node, what string) {
	seen := map[*yaml.Node]bool{}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n == nil || seen[n] {
			return
		}
		seen[n] = true
		if n.Kind == yaml.AliasNode {
			walk(n.Alias)
			return
		}
		for i, c := range n.Content {
			if n.Kind == yaml.MappingNode && i%2 == 0 && isMergeKey(c) {
				refuseMerge(c, what)
			}
			walk(c)
		}
	}
	walk(n)
}

// getPath walks a dot path of mapping keys.
func getPath(m *yaml.Node, path []string) *yaml.Node {
	for _, k := range path {
		if m = get(m, k); m == nil {
			return nil
		}
	}
	return m
}

// str returns the string value of scalar key in m, or "".
func str(m *yaml.Node, key string) string {
	if v := get(m, key); v != nil && v.Kind == yaml.ScalarNode && v.ShortTag() != "!!null" {
		return v.Value
	}
	return ""
}

// isNull reports whether n is absent or null.
func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// stringMap reads a mapping of scalars (labels, nodeSelector); what names
// it for the refusal of a merge key.
func stringMap(n *yaml.Node, what string) map[string]string {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	out := make(map[string]string, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		if isMergeKey(n.Content[i]) {
			refuseMerge(n.Content[i], "reading "+what)
		}
		if v := resolve(n.Content[i+1]); v != nil && v.Kind == yaml.ScalarNode {
			out[n.Content[i].Value] = v.Value
		}
	}
	return out
}

// toNode converts a Go value to a yaml node, keeping struct field order.
// The same policy items are converted for every workload, so conversions
// are cached by their JSON form; callers get a copy they may change.
func toNode(v any) (*yaml.Node, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if n, ok := nodeCache.Load(string(data)); ok {
		return cloneNode(n.(*yaml.Node)), nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	n := doc.Content[0]
	clearPositions(n)
	if nodeCacheSize.Add(1) <= maxNodeCache {
		nodeCache.Store(string(data), cloneNode(n))
	}
	return n, nil
}

// nodeCache holds toNode results by JSON text, at most maxNodeCache of them
// (topology spread selectors differ per workload).
var (
	nodeCache     sync.Map
	nodeCacheSize atomic.Int64
)

const maxNodeCache = 1024

// clearPositions marks nodes as new (Line 0) and drops the JSON quoting style.
func clearPositions(n *yaml.Node) {
	n.Line, n.Column, n.Style = 0, 0, 0
	for _, c := range n.Content {
		clearPositions(c)
	}
}

func strNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

// mapNode builds a mapping of strings with sorted keys.
func mapNode(m map[string]string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, k := range sortedKeys(m) {
		n.Content = append(n.Content, strNode(k), strNode(m[k]))
	}
	return n
}

func seqNode(items ...*yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: items}
}

func pairNode(kv ...any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for i := 0; i+1 < len(kv); i += 2 {
		n.Content = append(n.Content, strNode(kv[i].(string)), kv[i+1].(*yaml.Node))
	}
	return n
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// decodeJSON converts a node to a Go value through JSON (for comparisons).
// A merge key in the tree is refused (see mergeRefusal).
func decodeJSON(n *yaml.Node, out any) error {
	checkNoMerge(n, "comparing an item with the pool's")
	var v any
	if err := n.Decode(&v); err != nil {
		return err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, out)
}

// flowText renders a node compactly for reports: the JSON of its decoded
// value (mapping keys sorted).
func flowText(n *yaml.Node) string {
	if n == nil {
		return ""
	}
	n = resolve(n)
	if n.Kind == yaml.ScalarNode {
		if n.ShortTag() == "!!null" {
			return "null"
		}
		return n.Value
	}
	if b, ok := appendStringJSON(nil, n); ok {
		return string(b)
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	return string(data)
}

// appendStringJSON appends what flowText's decode-and-marshal gives for a
// tree of mappings, sequences and !!str scalars without duplicate keys (what
// the policy inserts); false for anything else.
func appendStringJSON(b []byte, n *yaml.Node) ([]byte, bool) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag != "!!str" {
			return nil, false
		}
		s, err := json.Marshal(n.Value)
		return append(b, s...), err == nil
	case yaml.SequenceNode:
		b = append(b, '[')
		for i, c := range n.Content {
			if i > 0 {
				b = append(b, ',')
			}
			var ok bool
			if b, ok = appendStringJSON(b, c); !ok {
				return nil, false
			}
		}
		return append(b, ']'), true
	case yaml.MappingNode:
		order := make([]int, 0, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
				return nil, false
			}
			order = append(order, i)
		}
		sort.Slice(order, func(x, y int) bool { return n.Content[order[x]].Value < n.Content[order[y]].Value })
		b = append(b, '{')
		for j, i := range order {
			if j > 0 {
				if n.Content[order[j-1]].Value == n.Content[i].Value {
					return nil, false // duplicate key: the decoder's error text
				}
				b = append(b, ',')
			}
			var ok bool
			if b, ok = appendStringJSON(b, n.Content[i]); !ok {
				return nil, false
			}
			b = append(b, ':')
			if b, ok = appendStringJSON(b, n.Content[i+1]); !ok {
				return nil, false
			}
		}
		return append(b, '}'), true
	}
	return nil, false
}
