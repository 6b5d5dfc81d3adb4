package splice

import (
	"bytes"
	"encoding/json"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// insertStyle is the layout used for text this package generates in block
// context, detected from the document so that insertions look like their
// surroundings.
type insertStyle struct {
	// Indent is the number of spaces a nested mapping is indented by.
	Indent int
	// SeqIndent is how far a block sequence's "-" is indented relative to its
	// parent key: 0 (the kubectl/Helm toYaml style) or Indent.
	SeqIndent int
	// NL is the line ending.
	NL string
}

// safePlain reports whether s matches ^[A-Za-z_/][A-Za-z0-9_./-]*$: text
// that reads back as the same string when written plain (YAML 1.1 and 1.2
// special words aside).
func safePlain(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == '/':
		case i > 0 && (c >= '0' && c <= '9' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// yaml11Special lists plain scalars that a YAML 1.1 or 1.2 parser reads as
// something other than a string.
var yaml11Special = map[string]bool{
	"y": true, "n": true, "yes": true, "no": true, "on": true, "off": true,
	"true": true, "false": true, "null": true, "~": true,
}

// scalarText renders a scalar so any YAML 1.1 or 1.2 parser reads it back
// with the same type and value.
func scalarText(n *yaml.Node) string {
	if n.ShortTag() != "!!str" {
		return n.Value
	}
	if safePlain(n.Value) && !yaml11Special[strings.ToLower(n.Value)] {
		return n.Value
	}
	return jsonString(n.Value)
}

func jsonString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimRight(b.String(), "\n")
}

// flowText renders n as single-line JSON, which is valid YAML flow syntax.
func flowText(n *yaml.Node) string {
	var b strings.Builder
	writeFlow(&b, n)
	return b.String()
}

func writeFlow(b *strings.Builder, n *yaml.Node) {
	switch n.Kind {
	case yaml.MappingNode:
		b.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(jsonString(n.Content[i].Value))
			b.WriteString(": ")
			writeFlow(b, n.Content[i+1])
		}
		b.WriteByte('}')
	case yaml.SequenceNode:
		b.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				b.WriteString(", ")
			}
			writeFlow(b, c)
		}
		b.WriteByte(']')
	default:
		if n.ShortTag() == "!!str" {
			b.WriteString(jsonString(n.Value))
		} else {
			b.WriteString(n.Value)
		}
	}
}

// blockValue renders the value part following "key:" for a key at column
// keyCol: " scalar" or a line break followed by nested lines. The result
// never ends with a line break.
func (s insertStyle) blockValue(n *yaml.Node, keyCol int) string {
	switch {
	case n.Kind == yaml.MappingNode && len(n.Content) > 0:
		return s.NL + s.mapping(n, keyCol+s.Indent)
	case n.Kind == yaml.SequenceNode && len(n.Content) > 0:
		return s.NL + s.sequence(n, keyCol+s.SeqIndent)
	case n.Kind == yaml.MappingNode:
		return " {}"
	case n.Kind == yaml.SequenceNode:
		return " []"
	}
	return " " + scalarText(n)
}

// mapping renders a block mapping at column col, without a final line break.
func (s insertStyle) mapping(n *yaml.Node, col int) string {
	var b strings.Builder
	for i := 0; i+1 < len(n.Content); i += 2 {
		if i > 0 {
			b.WriteString(s.NL)
			b.WriteString(strings.Repeat(" ", col))
		} else {
			b.WriteString(strings.Repeat(" ", col))
		}
		b.WriteString(scalarText(n.Content[i]))
		b.WriteByte(':')
		b.WriteString(s.blockValue(n.Content[i+1], col))
	}
	return b.String()
}

// sequence renders a block sequence with dashes at column col, without a
// final line break.
func (s insertStyle) sequence(n *yaml.Node, col int) string {
	var b strings.Builder
	for i, item := range n.Content {
		if i > 0 {
			b.WriteString(s.NL)
		}
		b.WriteString(s.item(item, col))
	}
	return b.String()
}

// item renders one block sequence item with its dash at column col.
func (s insertStyle) item(n *yaml.Node, col int) string {
	pad := strings.Repeat(" ", col)
	switch {
	case n.Kind == yaml.MappingNode && len(n.Content) > 0:
		inner := s.mapping(n, col+2)
		return pad + "- " + inner[col+2:]
	case n.Kind == yaml.SequenceNode && len(n.Content) > 0:
		inner := s.sequence(n, col+2)
		return pad + "- " + inner[col+2:]
	case n.Kind == yaml.MappingNode:
		return pad + "- {}"
	case n.Kind == yaml.SequenceNode:
		return pad + "- []"
	}
	return pad + "- " + scalarText(n)
}
