package postrender

import (
	"fmt"

	yaml "go.yaml.in/yaml/v3"
)

// editor makes the edits of one filter on one object through the spliced
// document: each edit is refused inside a node shared through an alias,
// spliced into the text and recorded with the filter's rule.
type editor struct {
	c    *docContext
	o    *objectInfo
	rule string
}

// set adds key to mapping m (absent, null or empty), recording the change.
func (ed *editor) set(m *yaml.Node, mPath, key string, value *yaml.Node) error {
	if err := ed.c.editable(m, mPath); err != nil {
		return err
	}
	old := get(m, key)
	line := m.Line
	if old != nil && old.Line > 0 {
		line = old.Line
	}
	if err := ed.c.doc.SetKey(m, key, value); err != nil {
		return errAt(line, "%s.%s: %v", mPath, key, err)
	}
	ed.c.record(ed.o, line, mPath+"."+key, old, value, ed.rule, "")
	return nil
}

// appendItems appends to a non-empty sequence, recording the change.
func (ed *editor) appendItems(seq *yaml.Node, seqPath string, items []*yaml.Node) error {
	if len(items) == 0 {
		return nil
	}
	if err := ed.c.editable(seq, seqPath); err != nil {
		return err
	}
	n := len(seq.Content)
	if err := ed.c.doc.Append(seq, items...); err != nil {
		return errAt(seq.Line, "%s: %v", seqPath, err)
	}
	for i, it := range items {
		ed.c.record(ed.o, seq.Line, fmt.Sprintf("%s[%d]", seqPath, n+i), nil, it, ed.rule, "")
	}
	return nil
}

// replace replaces the scalar cur, a value of mapping parent, with the
// string value (an override), recording the change.
func (ed *editor) replace(parent, cur *yaml.Node, path, value, warning string) error {
	if err := ed.c.editable(cur, path); err != nil {
		return err
	}
	old := *cur
	if err := ed.c.doc.ReplaceScalar(cur, columnOf(parent), ed.c.doc.IsFlow(parent), strNode(value)); err != nil {
		return errAt(cur.Line, "%s: %v", path, err)
	}
	ed.c.record(ed.o, old.Line, path, &old, cur, ed.rule+" (override)", warning)
	return nil
}

// lookupCreate descends from mapping m (at mPath) through keys, each step a
// non-empty mapping and the last a non-empty node of kind last. When a step
// is absent, null or empty, it sets that step to the rest of the path
// (nested mappings ending in build()) in one edit and returns nil; else it
// returns the node reached and its path, for the caller to merge into.
// build is called only when something is created.
func (ed *editor) lookupCreate(m *yaml.Node, mPath string, keys []string, last yaml.Kind, build func() *yaml.Node) (*yaml.Node, string, error) {
	for i, k := range keys {
		want := yaml.MappingNode
		if i == len(keys)-1 {
			want = last
		}
		next := get(m, k)
		if !nonEmpty(next, want) {
			value := build()
			for j := len(keys) - 1; j > i; j-- {
				value = pairNode(keys[j], value)
			}
			return nil, "", ed.set(m, mPath, k, value)
		}
		m, mPath = next, mPath+"."+k
	}
	return m, mPath, nil
}

// appendCreate appends items to the sequence at key of mapping m, creating
// it (or filling it when empty) as needed.
func (ed *editor) appendCreate(m *yaml.Node, mPath, key string, items []*yaml.Node) error {
	if len(items) == 0 {
		return nil
	}
	seq, seqPath, err := ed.lookupCreate(m, mPath, []string{key}, yaml.SequenceNode, func() *yaml.Node { return seqNode(items...) })
	if err != nil || seq == nil {
		return err
	}
	return ed.appendItems(seq, seqPath, items)
}

func nonEmpty(n *yaml.Node, kind yaml.Kind) bool {
	return n != nil && n.Kind == kind && len(n.Content) > 0
}

// columnOf returns the key column of a block mapping (0-based), used as the
// parent indentation of its values.
func columnOf(m *yaml.Node) int {
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
