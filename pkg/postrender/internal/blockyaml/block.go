package blockyaml

import (
	"bytes"

	yaml "go.yaml.in/yaml/v3"
)

// document parses the whole input; the root is nil in check mode.
func (p *parser) document() *yaml.Node {
	p.line = 1
	if p.isMarker(0) {
		if p.src[0] != '-' {
			fail()
		}
		p.pos = 3
		p.endOfLine()
	} else {
		p.skipToContent()
	}
	if p.eof {
		if p.build {
			fail() // yaml.v3 gives a null root or none at all; not needed
		}
		return nil
	}
	var root *yaml.Node
	if p.isSeqEntry() {
		p.rootKind = yaml.SequenceNode
		root = p.sequence(p.ind)
	} else {
		p.rootKind = yaml.MappingNode
		root = p.mapping(p.ind)
	}
	if !p.eof {
		fail() // content after the root collection ended
	}
	return root
}

func (p *parser) enter() {
	if p.depth++; p.depth > maxDepth {
		fail()
	}
}

// mapping parses a block mapping whose first key is at the cursor, column col.
func (p *parser) mapping(col int) *yaml.Node {
	p.enter()
	var m *yaml.Node
	if p.build {
		m = p.node(yaml.MappingNode, 0, tagMap, "", p.line, p.column(p.pos))
	}
	start, keysStart := len(p.stack), len(p.keys)
	for {
		k, text := p.key()
		p.checkDuplicate(keysStart, text)
		v := p.value(col, false, text)
		if p.build {
			p.stack = append(p.stack, k, v)
		}
		if p.eof || p.ind < col {
			break
		}
		if p.ind > col || p.isSeqEntry() {
			fail()
		}
	}
	p.keys = p.keys[:keysStart]
	if p.build {
		m.Content = p.content(start)
	}
	p.depth--
	return m
}

func (p *parser) checkDuplicate(start int, key []byte) {
	for _, k := range p.keys[start:] {
		if bytes.Equal(k, key) {
			fail() // let yaml.v3 and the caller report it
		}
	}
	p.keys = append(p.keys, key)
}

// sequence parses a block sequence whose first "-" is at the cursor, column col.
func (p *parser) sequence(col int) *yaml.Node {
	p.enter()
	var s *yaml.Node
	if p.build {
		s = p.node(yaml.SequenceNode, 0, tagSeq, "", p.line, p.column(p.pos))
	}
	start := len(p.stack)
	for {
		p.pos++ // the "-"
		v := p.value(col, true, nil)
		if p.build {
			p.stack = append(p.stack, v)
		}
		if p.eof || p.ind < col {
			break
		}
		if p.ind > col {
			fail()
		}
		if !p.isSeqEntry() {
			break // a key of the mapping holding this sequence at its indentation
		}
	}
	if p.build {
		s.Content = p.content(start)
	}
	p.depth--
	return s
}

// maxKey is the longest simple key accepted (libyaml's limit is 1024).
const maxKey = 1000

// key parses a mapping key at the cursor through its ":" and returns its
// node (build mode) or its value (check mode).
func (p *parser) key() (*yaml.Node, []byte) {
	i, n := p.pos, len(p.src)
	line, col := p.line, 0
	if p.build {
		col = p.column(i)
	}
	c := p.src[i]
	if c == '"' || c == '\'' {
		v, end, style := p.quoted(i, true)
		j := end
		for j < n && p.src[j] == ' ' {
			j++
		}
		if j >= n || p.src[j] != ':' || j+1 < n && p.src[j+1] != ' ' && p.src[j+1] != '\n' || j-i > maxKey {
			fail()
		}
		p.pos = j + 1
		if p.build {
			return p.node(yaml.ScalarNode, style, tagStr, v, line, col), []byte(v)
		}
		return nil, []byte(v)
	}
	p.plainStart(i)
	j := i
	for {
		if j >= n {
			fail()
		}
		switch class[p.src[j]] {
		case cText:
			switch p.src[j] {
			case ':':
				if j+1 >= n || p.src[j+1] == ' ' || p.src[j+1] == '\n' {
					goto colon
				}
			case '#':
				if p.src[j-1] == ' ' {
					fail()
				}
			}
			j++
		case cHigh:
			j += p.runeAt(j)
		default:
			fail() // line break before ":", tab, control character
		}
	}
colon:
	if j-i > maxKey {
		fail()
	}
	e := j
	for e > i && p.src[e-1] == ' ' {
		e--
	}
	p.pos = j + 1
	if p.build {
		v := p.str[i:e]
		return p.node(yaml.ScalarNode, 0, plainTag(v), v, line, col), p.src[i:e]
	}
	return nil, p.src[i:e]
}

// value parses the value after a ":" (inSeq false, key its text) or a "-"
// (inSeq true) indicator that ends at the cursor; parent is the column of
// the key or the "-". It leaves the cursor on the next content line.
func (p *parser) value(parent int, inSeq bool, key []byte) *yaml.Node {
	full := p.full
	unbuilt := false
	if p.build && !p.full && p.keep != nil && !inSeq {
		switch {
		case p.keep.Full[string(key)]:
			p.full = true
		case !p.keep.Path[string(key)]:
			unbuilt = true
		}
	}
	v := p.value1(parent, inSeq, unbuilt)
	p.full = full
	return v
}

// collection parses a collection with fn, or, when unbuilt is set, reads it
// with fn without building it and returns a childless node in its place.
func (p *parser) collection(unbuilt bool, kind yaml.Kind, style yaml.Style, tag string, at int, fn func() *yaml.Node) *yaml.Node {
	if !unbuilt {
		return fn()
	}
	n := p.node(kind, style, tag, "", p.line, p.column(at))
	p.build = false
	fn()
	p.build = true
	p.spans = append(p.spans, Span{Node: n, End: p.lastEnd})
	return n
}

// value1 parses a value; unbuilt says to read a collection without
// building it.
func (p *parser) value1(parent int, inSeq, unbuilt bool) *yaml.Node {
	n := len(p.src)
	after := p.pos
	i := after
	for i < n && p.src[i] == ' ' {
		i++
	}
	if i >= n || p.src[i] == '\n' || p.src[i] == '#' && i > after {
		return p.valueBelow(parent, inSeq, unbuilt, after)
	}
	if i == after && inSeq {
		fail() // "-x" is not an entry; callers only get here after "- " or "-\n"
	}
	p.pos = i
	v, complete := p.inlineValue(i, parent, inSeq, unbuilt)
	if complete {
		return v
	}
	p.endOfLine()
	if !p.eof && p.ind > parent {
		fail() // a continuation line (multi-line scalar) or bad indentation
	}
	return v
}

// valueBelow parses a value that is not on its indicator's line (after is
// the offset right after the indicator): a block collection on the
// following lines, or null.
func (p *parser) valueBelow(parent int, inSeq, unbuilt bool, after int) *yaml.Node {
	line := p.line
	p.endOfLine()
	if !p.eof && (p.ind > parent || p.ind == parent && !inSeq && p.isSeqEntry()) {
		col := p.ind
		if p.isSeqEntry() {
			if !inSeq && p.layout.SeqIndent < 0 {
				p.layout.SeqIndent = p.ind - parent
			}
			return p.collection(unbuilt, yaml.SequenceNode, 0, tagSeq, p.pos, func() *yaml.Node { return p.sequence(col) })
		}
		if !inSeq && p.layout.Indent == 0 {
			p.layout.Indent = p.ind - parent
		}
		return p.collection(unbuilt, yaml.MappingNode, 0, tagMap, p.pos, func() *yaml.Node { return p.mapping(col) })
	}
	p.lastEnd = after
	if !p.build {
		return nil
	}
	return p.node(yaml.ScalarNode, 0, tagNull, "", line, p.columnOnLine(line, after))
}

// inlineValue parses a value starting at i on its indicator's line. It
// returns complete when the value was a block scalar or a compact mapping
// (the cursor is already on the next content line); otherwise the cursor
// is after the value, on its line.
func (p *parser) inlineValue(i, parent int, inSeq, unbuilt bool) (v *yaml.Node, complete bool) {
	switch c := p.src[i]; c {
	case '|', '>':
		return p.blockScalar(parent), true
	case '"', '\'':
		s, end, style := p.quoted(i, p.build)
		if inSeq && p.colonAfter(end) {
			return p.mapping(i - p.ls), true // "- 'key': value"
		}
		if p.build {
			v = p.node(yaml.ScalarNode, style, tagStr, s, p.line, p.column(i))
		}
		p.pos, p.lastEnd = end, end
	case '[', '{':
		kind, tag := yaml.SequenceNode, tagSeq
		if c == '{' {
			kind, tag = yaml.MappingNode, tagMap
		}
		v = p.collection(unbuilt, kind, yaml.FlowStyle, tag, i, func() *yaml.Node { return p.flow(i) })
	default:
		p.plainStart(i)
		end, colon := p.plainEnd(i)
		if colon {
			if !inSeq {
				fail() // "a: b: c"
			}
			return p.mapping(i - p.ls), true // compact mapping "- key: value"
		}
		if p.build {
			s := p.str[i:end]
			v = p.node(yaml.ScalarNode, 0, plainTag(s), s, p.line, p.column(i))
		}
		p.pos, p.lastEnd = end, end
	}
	return v, false
}

// columnOnLine is column for a position on an earlier line (the null
// value's position right after its indicator).
func (p *parser) columnOnLine(line, i int) int {
	if line == p.line {
		return p.column(i)
	}
	ls := i
	for ls > 0 && p.src[ls-1] != '\n' {
		ls--
	}
	c := 1
	for j := ls; j < i; j++ {
		if p.src[j]&0xC0 != 0x80 {
			c++
		}
	}
	return c
}

// colonAfter reports whether a ":" mapping indicator follows at or after
// spaces from i.
func (p *parser) colonAfter(i int) bool {
	for i < len(p.src) && p.src[i] == ' ' {
		i++
	}
	return i < len(p.src) && p.src[i] == ':' && (i+1 >= len(p.src) || p.src[i+1] == ' ' || p.src[i+1] == '\n')
}
