package splice

import (
	"fmt"

	yaml "go.yaml.in/yaml/v3"
)

// Start returns the byte offset where n starts (its anchor or tag, if any).
func (t *Text) Start(n *yaml.Node) int { return t.Offset(n.Line, n.Column) }

// valueStart skips node properties (anchor "&a", tag "!t") and the spaces
// after them, returning the offset of the node's content.
func (t *Text) valueStart(n *yaml.Node) int {
	i := t.Start(n)
	for i < len(t.src) && (t.src[i] == '&' || t.src[i] == '!') {
		if t.src[i] == '&' {
			// yaml.v3 (like libyaml) ends an anchor name at the first
			// character outside [0-9A-Za-z_-]: in "&a: {}" the anchor
			// "a" is on an empty key, and "{}" is that key's value.
			for i++; i < len(t.src) && isAnchorChar(t.src[i]); i++ {
			}
		} else {
			for i < len(t.src) && !isSpaceOrBreak(t.src[i]) {
				i++
			}
		}
		for i < len(t.src) && isSpaceOrBreak(t.src[i]) {
			i++
		}
	}
	return i
}

func isAnchorChar(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '-'
}

func isSpaceOrBreak(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
func isFlowIndicator(c byte) bool {
	return c == ',' || c == '[' || c == ']' || c == '{' || c == '}'
}

// isEmptyNull reports whether n is an implicit null with no text at all (as
// in "key:" followed by a line break); its position is not reliable.
func isEmptyNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Value == "" && n.Style == 0 && n.Tag == "!!null"
}

// End returns the offset just past the last character of n. parentIndent is
// the indentation (0-based column) of the block collection entry holding n
// (the key's column for a mapping value, the dash's column for a sequence
// item, -1 at the top level); flow tells whether n is inside a flow collection.
func (t *Text) End(n *yaml.Node, parentIndent int, flow bool) (int, error) {
	for _, s := range t.unbuilt {
		if s.Node == n {
			return s.End, nil
		}
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return 0, fmt.Errorf("empty document")
		}
		return t.End(n.Content[0], -1, false)
	case yaml.AliasNode:
		i := t.Start(n) + 1
		for i < len(t.src) && !isSpaceOrBreak(t.src[i]) && !isFlowIndicator(t.src[i]) {
			i++
		}
		return i, nil
	case yaml.ScalarNode:
		return t.scalarEnd(n, parentIndent, flow)
	case yaml.MappingNode, yaml.SequenceNode:
		if n.Style&yaml.FlowStyle != 0 || t.isFlowStart(n) {
			return t.flowEnd(n)
		}
		return t.blockEnd(n)
	}
	return 0, fmt.Errorf("unknown node kind %d at line %d", n.Kind, n.Line)
}

// isFlowStart reports whether the collection's text begins with a bracket.
func (t *Text) isFlowStart(n *yaml.Node) bool {
	i := t.valueStart(n)
	return i < len(t.src) && (t.src[i] == '{' || t.src[i] == '[')
}

// lastPositioned returns the index of the last child parsed from the text
// (children added by this package have Line 0), or -1.
func lastPositioned(content []*yaml.Node, step int) int {
	for i := len(content) - step; i >= 0; i -= step {
		if content[i].Line > 0 {
			return i
		}
	}
	return -1
}

func (t *Text) blockEnd(n *yaml.Node) (int, error) {
	if n.Kind == yaml.MappingNode {
		i := lastPositioned(n.Content, 2)
		if i < 0 {
			return 0, fmt.Errorf("empty block mapping at line %d", n.Line)
		}
		key, val := n.Content[i], n.Content[i+1]
		indent := t.column(t.Start(n.Content[0]))
		if isEmptyNull(val) {
			return t.keyColonEnd(key, false)
		}
		return t.End(val, indent, false)
	}
	i := lastPositioned(n.Content, 1)
	if i < 0 {
		return 0, fmt.Errorf("empty block sequence at line %d", n.Line)
	}
	dash, err := t.dashOffset(n.Content[i])
	if err != nil {
		return 0, err
	}
	item := n.Content[i]
	if isEmptyNull(item) {
		return dash + 1, nil
	}
	return t.End(item, t.column(dash), false)
}

// dashOffset finds the "-" indicator before a block sequence item.
func (t *Text) dashOffset(item *yaml.Node) (int, error) {
	i := t.Start(item) - 1
	for i >= 0 && isSpaceOrBreak(t.src[i]) {
		i--
	}
	if i < 0 || t.src[i] != '-' {
		return 0, fmt.Errorf("no sequence indicator before item at line %d", item.Line)
	}
	return i, nil
}

// keyColonEnd returns the offset just past the ":" following a mapping key
// (of a flow mapping when flow is true).
func (t *Text) keyColonEnd(key *yaml.Node, flow bool) (int, error) {
	e, err := t.keyEnd(key, flow)
	if err != nil {
		return 0, err
	}
	for e < len(t.src) && (t.src[e] == ' ' || t.src[e] == '\t') {
		e++
	}
	if e >= len(t.src) || t.src[e] != ':' {
		return 0, fmt.Errorf("no ':' after key %q at line %d", key.Value, key.Line)
	}
	return e + 1, nil
}

// keyEnd returns the end of a mapping key. A plain key ends at a ":"
// followed by a blank or, in a flow mapping only, by a flow indicator (in a
// block mapping "a:,b" is one plain scalar, as libyaml reads it).
func (t *Text) keyEnd(key *yaml.Node, flow bool) (int, error) {
	if key.Kind != yaml.ScalarNode {
		return 0, fmt.Errorf("complex key at line %d", key.Line)
	}
	if key.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
		return t.scalarEnd(key, 0, true)
	}
	i := t.valueStart(key)
	for i < len(t.src) {
		c := t.src[i]
		if c == '\n' || c == '\r' {
			break
		}
		if c == ':' && (i+1 >= len(t.src) || isSpaceOrBreak(t.src[i+1]) || flow && isFlowIndicator(t.src[i+1])) {
			break
		}
		i++
	}
	for i > 0 && (t.src[i-1] == ' ' || t.src[i-1] == '\t') {
		i--
	}
	return i, nil
}

// flowEnd finds the bracket closing the flow collection n, skipping quoted
// scalars and comments.
func (t *Text) flowEnd(n *yaml.Node) (int, error) {
	i := t.valueStart(n)
	depth := 0
	for i < len(t.src) {
		switch c := t.src[i]; c {
		case '[', '{':
			depth++
		case ']', '}':
			depth--
			if depth == 0 {
				return i + 1, nil
			}
		case '"':
			e, ok := doubleQuotedEnd(t.src, i)
			if !ok {
				return 0, fmt.Errorf("unterminated double-quoted scalar at line %d", t.Line(i))
			}
			i = e - 1
		case '\'':
			e, ok := singleQuotedEnd(t.src, i)
			if !ok {
				return 0, fmt.Errorf("unterminated single-quoted scalar at line %d", t.Line(i))
			}
			i = e - 1
		case '#':
			if i > 0 && isSpaceOrBreak(t.src[i-1]) {
				i = t.lineEnd(i) - 1
			}
		}
		i++
	}
	return 0, fmt.Errorf("unterminated flow collection starting at line %d", n.Line)
}

func doubleQuotedEnd(src []byte, i int) (int, bool) {
	for j := i + 1; j < len(src); j++ {
		switch src[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return 0, false
}

func singleQuotedEnd(src []byte, i int) (int, bool) {
	for j := i + 1; j < len(src); j++ {
		if src[j] == '\'' {
			if j+1 < len(src) && src[j+1] == '\'' {
				j++
				continue
			}
			return j + 1, true
		}
	}
	return 0, false
}

func (t *Text) scalarEnd(n *yaml.Node, parentIndent int, flow bool) (int, error) {
	i := t.valueStart(n)
	if i >= len(t.src) {
		return i, nil
	}
	switch t.src[i] {
	case '"':
		e, ok := doubleQuotedEnd(t.src, i)
		if !ok {
			return 0, fmt.Errorf("unterminated double-quoted scalar at line %d", n.Line)
		}
		return e, nil
	case '\'':
		e, ok := singleQuotedEnd(t.src, i)
		if !ok {
			return 0, fmt.Errorf("unterminated single-quoted scalar at line %d", n.Line)
		}
		return e, nil
	case '|', '>':
		if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
			return t.blockScalarEnd(i, parentIndent), nil
		}
	}
	return t.plainEnd(i, parentIndent, flow), nil
}

// plainEnd scans a plain scalar starting at i, following continuation lines
// in block context.
func (t *Text) plainEnd(i, parentIndent int, flow bool) int {
	end := t.plainLineEnd(i, flow)
	if flow {
		return end
	}
	for {
		// a comment ends a plain scalar
		if le := t.lineEnd(end); hasCommentBetween(t.src, end, le) {
			return end
		}
		next := t.nextLineStart(end)
		// skip empty lines
		for next >= 0 && isBlankLine(t.src, next, t.lineEnd(next)) {
			next = t.nextLineStart(next)
		}
		if next < 0 {
			return end
		}
		ind := t.indentAt(next)
		first := next + ind
		if ind <= parentIndent || first >= len(t.src) || t.src[first] == '#' || isMarkerLine(t.src[next:]) || t.src[first] == '\t' {
			return end
		}
		end = t.plainLineEnd(first, false)
	}
}

func isMarkerLine(b []byte) bool {
	return len(b) >= 3 && (string(b[:3]) == "---" || string(b[:3]) == "...") && (len(b) == 3 || isSpaceOrBreak(b[3]))
}

func hasCommentBetween(src []byte, from, to int) bool {
	for j := from; j < to; j++ {
		if src[j] == '#' && j > 0 && (src[j-1] == ' ' || src[j-1] == '\t') {
			return true
		}
	}
	return false
}

func isBlankLine(src []byte, from, to int) bool {
	for j := from; j < to; j++ {
		if src[j] != ' ' && src[j] != '\t' && src[j] != '\r' {
			return false
		}
	}
	return true
}

// plainLineEnd returns the end of a plain scalar's text on one line.
func (t *Text) plainLineEnd(i int, flow bool) int {
	j := i
	for j < len(t.src) {
		c := t.src[j]
		if c == '\n' || c == '\r' {
			break
		}
		if c == '#' && j > i && (t.src[j-1] == ' ' || t.src[j-1] == '\t') {
			break
		}
		if c == ':' && (j+1 >= len(t.src) || isSpaceOrBreak(t.src[j+1]) || flow && isFlowIndicator(t.src[j+1])) {
			break
		}
		if flow && isFlowIndicator(c) {
			break
		}
		j++
	}
	for j > i && (t.src[j-1] == ' ' || t.src[j-1] == '\t') {
		j--
	}
	return j
}

// blockScalarEnd returns the end of a literal or folded scalar whose
// indicator is at i.
func (t *Text) blockScalarEnd(i, parentIndent int) int {
	keep := false
	explicit := 0
	for j := i + 1; j < len(t.src) && !isSpaceOrBreak(t.src[j]) && t.src[j] != '#'; j++ {
		switch c := t.src[j]; {
		case c == '+':
			keep = true
		case c >= '1' && c <= '9':
			explicit = int(c - '0')
		}
	}
	headerEnd := t.lineEnd(i)
	contentIndent := -1
	if explicit > 0 {
		contentIndent = max(parentIndent, 0) + explicit
	}
	end := headerEnd
	for line := t.nextLineStart(i); line >= 0; line = t.nextLineStart(line) {
		le := t.lineEnd(line)
		ind := t.indentAt(line)
		blank := isBlankLine(t.src, line, le)
		if contentIndent < 0 && !blank {
			if ind <= parentIndent {
				break
			}
			contentIndent = ind
		}
		if blank && (contentIndent < 0 || ind < contentIndent || line+ind >= le) {
			if keep {
				end = le
			}
			continue
		}
		if ind < contentIndent {
			break
		}
		end = le
	}
	return end
}
