// Package blockyaml reads the block-style subset of YAML that Helm, kubectl
// and most generators emit, several times faster than go.yaml.in/yaml/v3
// (BenchmarkParse), and gives exactly the node tree yaml.v3 gives.
//
// It is a fast path, never a replacement: any input outside the subset, or
// that might be invalid, is answered with ok == false, and the caller parses
// it with yaml.v3, which then also produces the error messages. Within the
// subset a document is accepted only if yaml.v3 accepts it too (the
// differential tests and the fuzz target check both directions of that
// promise on every input they see).
//
// The subset: one document, optionally opened by a bare "---" line; a block
// mapping or block sequence at the root; block mappings and sequences
// (including sequences at their key's indentation and compact "- key: value"
// items); plain and single-line quoted keys; plain single-line scalars;
// single-line single- and double-quoted scalars; literal and folded block
// scalars without an indentation indicator; single-line flow collections of
// scalars; comments on their own lines or after a value. Outside it (so
// answered with ok == false): anchors, aliases, tags, directives, "..." and
// other document markers, multi-line plain, quoted or flow scalars, complex
// keys, tabs outside comments and block scalar text, CR and the Unicode line
// breaks (NEL, LS, PS), byte order marks, empty and scalar documents, block
// scalars that run into an end of input without a line break, duplicate
// keys, and anything yaml.v3 rejects.
package blockyaml

import (
	"bytes"
	"sync"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
)

// Parse returns the root node of the document in src as yaml.v3 decodes it
// (Kind, Style, Tag, Value, Line and Column; comments are not kept) and true,
// or nil and false when src is outside the subset, may be invalid, or has a
// duplicate mapping key (the caller's yaml.v3 path reports those). Scalar
// values share one copy of src.
func Parse(src []byte) (*yaml.Node, bool) {
	d, ok := ParseKeep(src, nil)
	if !ok {
		return nil, false
	}
	return d.Root, true
}

// Keep selects the subtrees ParseKeep builds. The value of a mapping key in
// Full is built completely; the value of a key in Path is built with its own
// entries selected by the same rule (so is the root); the value of any other
// key, when it is a collection, is read and validated but left unbuilt: a
// node with its Kind, Style, Tag, Line and Column and no Content, listed in
// Document.Unbuilt with its end. Scalars are always built.
type Keep struct {
	Path, Full map[string]bool
}

// Span is a collection left unbuilt and the offset just past its last
// character (comments and blank lines after it excluded).
type Span struct {
	Node *yaml.Node
	End  int
}

// Layout is the indentation of the document's block collections, found in
// document order: Indent is how far the first block mapping that is a
// mapping value is indented from its key (0: none), SeqIndent how far the
// "-" of the first block sequence that is a mapping value is (-1: none).
type Layout struct {
	Indent, SeqIndent int
}

// Document is the result of ParseKeep.
type Document struct {
	Root    *yaml.Node
	Unbuilt []Span
	Layout  Layout
}

// ParseKeep is Parse building only the subtrees keep selects (everything
// when keep is nil). Unbuilt subtrees are validated like the rest, duplicate
// keys included.
func ParseKeep(src []byte, keep *Keep) (doc *Document, ok bool) {
	p := newParser(src)
	defer p.release()
	p.build, p.str, p.keep = true, string(src), keep
	p.layout.SeqIndent = -1
	defer p.recover(&ok)
	root := p.document()
	if root == nil {
		return nil, false
	}
	return &Document{Root: root, Unbuilt: p.spans, Layout: p.layout}, true
}

// parsers keeps the scratch stacks of finished parsers for reuse.
var parsers = sync.Pool{New: func() any { return new(parser) }}

func newParser(src []byte) *parser {
	p := parsers.Get().(*parser)
	stack, keys := p.stack[:0], p.keys[:0]
	*p = parser{src: src, stack: stack, keys: keys}
	return p
}

// release returns the parser's scratch space to the pool; nothing else it
// holds may be kept by the pool (nodes and strings belong to the result).
func (p *parser) release() {
	clear(p.stack[:cap(p.stack)])
	clear(p.keys[:cap(p.keys)])
	*p = parser{stack: p.stack[:0], keys: p.keys[:0]}
	parsers.Put(p)
}

// Check reports whether src is a valid YAML document within the subset and
// has no duplicate mapping keys (as decoded values, whatever their tags). It
// builds no nodes. False means "ask yaml.v3", not necessarily "invalid".
func Check(src []byte) (ok bool) {
	_, ok = CheckRoot(src)
	return ok
}

// CheckRoot is Check that also returns the kind of the document's root
// collection: yaml.MappingNode or yaml.SequenceNode (the subset has no
// scalar roots), or 0 for a document without content. The kind is only
// meaningful when ok is true.
func CheckRoot(src []byte) (kind yaml.Kind, ok bool) {
	p := newParser(src)
	defer p.release()
	defer p.recover(&ok)
	p.document()
	return p.rootKind, true
}

// errUnsupported aborts parsing: the input is outside the subset.
type errUnsupported struct{}

func fail() { panic(errUnsupported{}) }

func (p *parser) recover(ok *bool) {
	if r := recover(); r != nil {
		if _, is := r.(errUnsupported); !is {
			panic(r)
		}
		*ok = false
	}
}

// maxDepth bounds nesting (yaml.v3 allows more; deeper input takes the slow
// path).
const maxDepth = 100

type parser struct {
	src   []byte
	str   string // src as a string; values are substrings of it (build mode)
	build bool

	pos  int // cursor
	ls   int // offset of the cursor's line
	line int // 1-based number of that line
	ind  int // indentation of the current content line; -1 at the end
	eof  bool

	keep    *Keep
	full    bool   // building everything below the current node
	spans   []Span // unbuilt collections
	lastEnd int    // end of the last value read (as splice.Text.End sees it)
	layout  Layout

	depth    int
	rootKind yaml.Kind    // kind of the root collection, 0 while none
	nodes    []yaml.Node  // node slab (build mode)
	ptrs     []*yaml.Node // slab for Content slices (build mode)
	stack    []*yaml.Node // children of the collections being parsed
	keys     [][]byte     // keys of the mappings being parsed (check mode)
}

// byte classes for validation
const (
	cText = iota // printable ASCII
	cBreak
	cTab
	cBad  // control characters, DEL, CR
	cHigh // start of a multi-byte sequence
)

var class = func() (t [256]byte) {
	for i := range t {
		switch {
		case i == '\n':
			t[i] = cBreak
		case i == '\t':
			t[i] = cTab
		case i < 0x20 || i == 0x7f:
			t[i] = cBad
		case i >= 0x80:
			t[i] = cHigh
		}
	}
	return t
}()

// runeAt validates the multi-byte character at i and returns its length.
// Accepted: what libyaml reads as printable and not as a line break, except
// U+FEFF (a byte order mark), which takes the slow path.
func (p *parser) runeAt(i int) int {
	r, size := utf8.DecodeRune(p.src[i:])
	switch {
	case r == utf8.RuneError && size <= 1:
		fail()
	case r >= 0xA0 && r <= 0xD7FF && r != 0x2028 && r != 0x2029:
	case r >= 0xE000 && r <= 0xFFFD && r != 0xFEFF:
	case r >= 0x10000 && r <= 0x10FFFF:
	default:
		fail()
	}
	return size
}

// text validates src[from:to] (one line's worth, no line break), allowing
// tabs when tabs is set.
func (p *parser) text(from, to int, tabs bool) {
	for i := from; i < to; {
		switch class[p.src[i]] {
		case cText:
			i++
		case cHigh:
			i += p.runeAt(i)
		case cTab:
			if !tabs {
				fail()
			}
			i++
		default:
			fail()
		}
	}
}

// lineEnd returns the offset of the line break at or after i, or len(src).
func (p *parser) lineEnd(i int) int {
	if j := bytes.IndexByte(p.src[i:], '\n'); j >= 0 {
		return i + j
	}
	return len(p.src)
}

func (p *parser) newLine(next int) {
	p.pos, p.ls = next, next
	p.line++
}

// comment validates the comment starting at i and returns the offset of the
// line break ending it (or len(src)).
func (p *parser) comment(i int) int {
	e := p.lineEnd(i)
	p.text(i, e, true)
	return e
}

// skipToContent moves from a line start past blank and comment lines to the
// first character of the next content line, setting ind, or sets eof.
func (p *parser) skipToContent() {
	n := len(p.src)
	for {
		i := p.pos
		for i < n && p.src[i] == ' ' {
			i++
		}
		if i >= n {
			p.pos, p.eof, p.ind = n, true, -1
			return
		}
		switch p.src[i] {
		case '\n':
			p.newLine(i + 1)
			continue
		case '#':
			if e := p.comment(i); e < n {
				p.newLine(e + 1)
				continue
			}
			p.pos, p.eof, p.ind = n, true, -1
			return
		case '\t', '\r':
			fail()
		}
		if i == p.ls && p.isMarker(i) {
			fail() // a document marker inside the document
		}
		p.pos, p.ind = i, i-p.ls
		return
	}
}

// isMarker reports whether a "---" or "..." marker starts at i.
func (p *parser) isMarker(i int) bool {
	s := p.src[i:]
	if len(s) < 3 || !(s[0] == '-' && s[1] == '-' && s[2] == '-' || s[0] == '.' && s[1] == '.' && s[2] == '.') {
		return false
	}
	return len(s) == 3 || s[3] == ' ' || s[3] == '\n' || s[3] == '\t' || s[3] == '\r'
}

// endOfLine finishes the line after a value (spaces, an optional comment)
// and moves to the next content line.
func (p *parser) endOfLine() {
	n := len(p.src)
	i := p.pos
	for i < n && p.src[i] == ' ' {
		i++
	}
	if i < n && p.src[i] == '#' {
		if i == p.pos {
			fail() // "#" must follow a space to start a comment
		}
		i = p.comment(i)
	}
	if i >= n {
		p.pos, p.eof, p.ind = n, true, -1
		return
	}
	if p.src[i] != '\n' {
		fail()
	}
	p.newLine(i + 1)
	p.skipToContent()
}

// column returns the 1-based column of offset i on the cursor's line,
// counted in characters as yaml.v3 counts them.
func (p *parser) column(i int) int {
	c := 1
	for j := p.ls; j < i; j++ {
		if p.src[j]&0xC0 != 0x80 {
			c++
		}
	}
	return c
}

func (p *parser) node(kind yaml.Kind, style yaml.Style, tag, value string, line, col int) *yaml.Node {
	if len(p.nodes) == cap(p.nodes) {
		p.nodes = make([]yaml.Node, 0, min(2*cap(p.nodes)+16, 256))
	}
	p.nodes = p.nodes[:len(p.nodes)+1]
	n := &p.nodes[len(p.nodes)-1]
	n.Kind, n.Style, n.Tag, n.Value, n.Line, n.Column = kind, style, tag, value, line, col
	return n
}

// content moves the children pushed since start into a Content slice whose
// capacity is its length, so appending to it never overwrites a neighbour.
func (p *parser) content(start int) []*yaml.Node {
	children := p.stack[start:]
	k := len(children)
	if cap(p.ptrs)-len(p.ptrs) < k {
		p.ptrs = make([]*yaml.Node, 0, max(k, 2*cap(p.ptrs)+16, 128))
	}
	off := len(p.ptrs)
	p.ptrs = append(p.ptrs, children...)
	p.stack = p.stack[:start]
	return p.ptrs[off : off+k : off+k]
}

func (p *parser) isSeqEntry() bool {
	i := p.pos
	return p.src[i] == '-' && (i+1 >= len(p.src) || p.src[i+1] == ' ' || p.src[i+1] == '\n')
}

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

// isIndicator lists the characters that cannot start a plain scalar.
var isIndicator = func() (t [256]bool) {
	for _, c := range "-?:,[]{}#&*!|>'\"%@`" {
		t[c] = true
	}
	return t
}()

// plainStart checks that a plain scalar may start at i.
func (p *parser) plainStart(i int) {
	c := p.src[i]
	if !isIndicator[c] {
		return
	}
	if c == '-' && i+1 < len(p.src) {
		if n := p.src[i+1]; n != ' ' && n != '\n' && n != '\t' && n != '\r' {
			return
		}
	}
	fail()
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

func (p *parser) value1(parent int, inSeq, unbuilt bool) *yaml.Node {
	n := len(p.src)
	after, line := p.pos, p.line
	i := after
	for i < n && p.src[i] == ' ' {
		i++
	}
	if i >= n || p.src[i] == '\n' || p.src[i] == '#' && i > after {
		// The value is on the following lines, or null.
		p.endOfLine()
		if !p.eof {
			if p.ind > parent || p.ind == parent && !inSeq && p.isSeqEntry() {
				if p.isSeqEntry() {
					if !inSeq && p.layout.SeqIndent < 0 {
						p.layout.SeqIndent = p.ind - parent
					}
					col := p.ind
					return p.collection(unbuilt, yaml.SequenceNode, 0, tagSeq, p.pos, func() *yaml.Node { return p.sequence(col) })
				}
				if !inSeq && p.layout.Indent == 0 {
					p.layout.Indent = p.ind - parent
				}
				col := p.ind
				return p.collection(unbuilt, yaml.MappingNode, 0, tagMap, p.pos, func() *yaml.Node { return p.mapping(col) })
			}
		}
		p.lastEnd = after
		if !p.build {
			return nil
		}
		return p.node(yaml.ScalarNode, 0, tagNull, "", line, p.columnOnLine(line, after))
	}
	if i == after && inSeq {
		fail() // "-x" is not an entry; callers only get here after "- " or "-\n"
	}
	p.pos = i
	var v *yaml.Node
	switch c := p.src[i]; c {
	case '|', '>':
		return p.blockScalar(parent)
	case '"', '\'':
		s, end, style := p.quoted(i, p.build)
		if inSeq && p.colonAfter(end) {
			return p.mapping(i - p.ls) // "- 'key': value"
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
			return p.mapping(i - p.ls) // compact mapping "- key: value"
		}
		if p.build {
			s := p.str[i:end]
			v = p.node(yaml.ScalarNode, 0, plainTag(s), s, p.line, p.column(i))
		}
		p.pos, p.lastEnd = end, end
	}
	p.endOfLine()
	if !p.eof && p.ind > parent {
		fail() // a continuation line (multi-line scalar) or bad indentation
	}
	return v
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

// plainEnd scans a single-line plain scalar in block context starting at i
// and returns its end (trailing spaces excluded) and whether it stopped at a
// ":" indicator (then it is a key).
func (p *parser) plainEnd(i int) (int, bool) {
	n := len(p.src)
	j := i
scan:
	for j < n {
		switch class[p.src[j]] {
		case cText:
			switch p.src[j] {
			case ':':
				if j+1 >= n || p.src[j+1] == ' ' || p.src[j+1] == '\n' {
					if j-i > maxKey {
						fail()
					}
					return j, true
				}
			case '#':
				if p.src[j-1] == ' ' {
					break scan
				}
			}
			j++
		case cHigh:
			j += p.runeAt(j)
		case cBreak:
			break scan
		default:
			fail()
		}
	}
	for j > i && p.src[j-1] == ' ' {
		j--
	}
	return j, false
}

// quoted scans a single-line quoted scalar starting at i and returns its
// value (when need is set), the offset after the closing quote and its style.
func (p *parser) quoted(i int, need bool) (string, int, yaml.Style) {
	n := len(p.src)
	if p.src[i] == '\'' {
		escaped := false
		j := i + 1
		for {
			if j >= n {
				fail()
			}
			switch class[p.src[j]] {
			case cText:
				if p.src[j] == '\'' {
					if j+1 < n && p.src[j+1] == '\'' {
						escaped = true
						j += 2
						continue
					}
					v := ""
					switch {
					case !need:
					case escaped:
						v = string(bytes.ReplaceAll(p.src[i+1:j], []byte("''"), []byte("'")))
					case p.build:
						v = p.str[i+1 : j]
					default:
						v = string(p.src[i+1 : j]) // a key in check mode
					}
					return v, j + 1, yaml.SingleQuotedStyle
				}
				j++
			case cHigh:
				j += p.runeAt(j)
			default:
				fail() // multi-line, tab, control character
			}
		}
	}
	var buf []byte
	escaped := false
	j := i + 1
	for {
		if j >= n {
			fail()
		}
		switch class[p.src[j]] {
		case cText:
			switch p.src[j] {
			case '"':
				var v string
				switch {
				case !need:
				case escaped:
					v = string(buf)
				case p.build:
					v = p.str[i+1 : j]
				default:
					v = string(p.src[i+1 : j])
				}
				return v, j + 1, yaml.DoubleQuotedStyle
			case '\\':
				if !escaped && need {
					buf = append(buf, p.src[i+1:j]...)
				}
				escaped = true
				j = p.escape(j, &buf, need)
				continue
			}
			if escaped && need {
				buf = append(buf, p.src[j])
			}
			j++
		case cHigh:
			size := p.runeAt(j)
			if escaped && need {
				buf = append(buf, p.src[j:j+size]...)
			}
			j += size
		default:
			fail()
		}
	}
}

// escape decodes the escape sequence at i (a backslash) into buf and
// returns the offset after it.
func (p *parser) escape(i int, buf *[]byte, need bool) int {
	if i+1 >= len(p.src) {
		fail()
	}
	b := *buf
	digits := 0
	switch p.src[i+1] {
	case '0':
		b = append(b, 0)
	case 'a':
		b = append(b, 7)
	case 'b':
		b = append(b, 8)
	case 't':
		b = append(b, 9)
	case 'n':
		b = append(b, 10)
	case 'v':
		b = append(b, 11)
	case 'f':
		b = append(b, 12)
	case 'r':
		b = append(b, 13)
	case 'e':
		b = append(b, 0x1b)
	case ' ', '"', '\'', '\\':
		b = append(b, p.src[i+1])
	case 'N':
		b = utf8.AppendRune(b, 0x85)
	case '_':
		b = utf8.AppendRune(b, 0xA0)
	case 'L':
		b = utf8.AppendRune(b, 0x2028)
	case 'P':
		b = utf8.AppendRune(b, 0x2029)
	case 'x':
		digits = 2
	case 'u':
		digits = 4
	case 'U':
		digits = 8
	default:
		fail() // unknown escape, escaped tab or line break
	}
	j := i + 2
	if digits > 0 {
		if j+digits > len(p.src) {
			fail()
		}
		v := 0
		for _, c := range p.src[j : j+digits] {
			switch {
			case c >= '0' && c <= '9':
				v = v<<4 | int(c-'0')
			case c >= 'a' && c <= 'f':
				v = v<<4 | int(c-'a'+10)
			case c >= 'A' && c <= 'F':
				v = v<<4 | int(c-'A'+10)
			default:
				fail()
			}
		}
		if v >= 0xD800 && v <= 0xDFFF || v > 0x10FFFF {
			fail()
		}
		b = utf8.AppendRune(b, rune(v))
		j += digits
	}
	if need {
		*buf = b
	}
	return j
}

// flowPlainStop lists the characters that end (or, being unsupported, abort)
// a plain scalar inside a flow collection.
var flowPlainStop = func() (t [256]bool) {
	for _, c := range ",[]{}:#'\"&*!|>%@`?" {
		t[c] = true
	}
	return t
}()

// flow parses a flow collection that opens and closes on the cursor's line.
func (p *parser) flow(i int) *yaml.Node {
	p.enter()
	n := len(p.src)
	open := p.src[i]
	isMap := open == '{'
	var f *yaml.Node
	if p.build {
		kind, tag := yaml.SequenceNode, tagSeq
		if isMap {
			kind, tag = yaml.MappingNode, tagMap
		}
		f = p.node(kind, yaml.FlowStyle, tag, "", p.line, p.column(i))
	}
	start, keysStart := len(p.stack), len(p.keys)
	j := p.skipSpaces(i + 1)
	closing := byte(']')
	if isMap {
		closing = '}'
	}
	if j < n && p.src[j] == closing {
		j++
	} else {
		for {
			if isMap {
				k, text, e := p.flowScalar(j)
				p.checkDuplicate(keysStart, text)
				e = p.skipSpaces(e)
				if e+1 >= n || p.src[e] != ':' || p.src[e+1] != ' ' {
					fail()
				}
				v, e2 := p.flowItem(p.skipSpaces(e + 1))
				if p.build {
					p.stack = append(p.stack, k, v)
				}
				j = e2
			} else {
				v, e := p.flowItem(j)
				if p.build {
					p.stack = append(p.stack, v)
				}
				j = e
			}
			j = p.skipSpaces(j)
			if j >= n {
				fail()
			}
			if p.src[j] == closing {
				j++
				break
			}
			if p.src[j] != ',' {
				fail()
			}
			j = p.skipSpaces(j + 1)
			if j >= n || p.src[j] == closing {
				fail() // trailing comma: valid YAML, but keep to the plain subset
			}
		}
	}
	p.keys = p.keys[:keysStart]
	if p.build {
		f.Content = p.content(start)
	}
	p.pos, p.lastEnd = j, j
	p.depth--
	return f
}

func (p *parser) skipSpaces(i int) int {
	for i < len(p.src) && p.src[i] == ' ' {
		i++
	}
	return i
}

// flowItem parses a scalar or nested collection inside a flow collection.
func (p *parser) flowItem(i int) (*yaml.Node, int) {
	if i >= len(p.src) {
		fail()
	}
	if c := p.src[i]; c == '[' || c == '{' {
		v := p.flow(i)
		return v, p.pos
	}
	v, _, e := p.flowScalar(i)
	return v, e
}

// flowScalar parses a quoted or plain scalar inside a flow collection and
// returns its node (build mode), its value (check mode) and its end.
func (p *parser) flowScalar(i int) (*yaml.Node, []byte, int) {
	n := len(p.src)
	if i >= n {
		fail()
	}
	c := p.src[i]
	if c == '"' || c == '\'' {
		v, end, style := p.quoted(i, true)
		if p.build {
			return p.node(yaml.ScalarNode, style, tagStr, v, p.line, p.column(i)), []byte(v), end
		}
		return nil, []byte(v), end
	}
	if flowPlainStop[c] || c == '-' && (i+1 >= n || p.src[i+1] == ' ' || flowPlainStop[p.src[i+1]]) {
		fail()
	}
	j := i
	for j < n {
		b := p.src[j]
		if flowPlainStop[b] {
			break
		}
		switch class[b] {
		case cText:
			j++
		case cHigh:
			j += p.runeAt(j)
		case cBreak:
			fail() // multi-line flow collection
		default:
			fail()
		}
	}
	e := j
	for e > i && p.src[e-1] == ' ' {
		e--
	}
	if e == i {
		fail()
	}
	if p.build {
		s := p.str[i:e]
		return p.node(yaml.ScalarNode, 0, plainTag(s), s, p.line, p.column(i)), p.src[i:e], j
	}
	return nil, p.src[i:e], j
}

// blockScalar parses a literal or folded scalar whose indicator is at the
// cursor; parent is the indentation of the collection holding it.
func (p *parser) blockScalar(parent int) *yaml.Node {
	n := len(p.src)
	i := p.pos
	line, col := p.line, 0
	if p.build {
		col = p.column(i)
	}
	literal := p.src[i] == '|'
	chomp := 0 // clip
	i++
	if i < n {
		switch p.src[i] {
		case '+':
			chomp = 1
			i++
		case '-':
			chomp = -1
			i++
		}
	}
	if i < n && p.src[i] >= '0' && p.src[i] <= '9' {
		fail() // explicit indentation
	}
	// The rest of the header line: spaces and an optional comment.
	j := p.skipSpaces(i)
	if j < n && p.src[j] == '#' {
		if j == i {
			fail()
		}
		j = p.comment(j)
	}
	if j < n && p.src[j] != '\n' {
		fail()
	}
	var buf []byte
	style := yaml.LiteralStyle
	if !literal {
		style = yaml.FoldedStyle
	}
	// lastEnd follows splice.Text.End: the end of the last line holding
	// more than spaces, or with keep chomping of the last line of any kind.
	keep := chomp == 1
	p.lastEnd = j
	if j >= n {
		fail() // see below: the input ends without a line break
	}
	p.newLine(j + 1)

	// Leading empty lines; the first content line sets the indentation.
	trailing, maxInd := 0, 0
	for {
		k := p.skipSpaces(p.pos)
		maxInd = max(maxInd, k-p.pos)
		if k < n && p.src[k] == '\n' {
			if keep {
				p.lastEnd = k
			}
			trailing++
			p.newLine(k + 1)
			continue
		}
		if k >= n && keep {
			p.lastEnd = n
		}
		if k < n && (p.src[k] == '\t' || p.src[k] == '\r') {
			fail()
		}
		break
	}
	indent := max(maxInd, parent+1, 1)
	lineInd := p.skipSpaces(p.pos) - p.pos
	if lineInd < maxInd && p.skipSpaces(p.pos) < n {
		fail() // a leading blank line indented deeper than the text
	}
	at := p.pos + min(lineInd, indent) // cursor after the indentation read
	leadingBreak, leadingBlank := false, false
	for at-p.pos == indent && at < n {
		c := p.src[at]
		trailingBlank := c == ' ' || c == '\t'
		if p.build {
			if !literal && leadingBreak && !leadingBlank && !trailingBlank {
				if trailing == 0 {
					buf = append(buf, ' ')
				}
			} else if leadingBreak {
				buf = append(buf, '\n')
			}
			for ; trailing > 0; trailing-- {
				buf = append(buf, '\n')
			}
		}
		leadingBreak, trailing = false, 0
		leadingBlank = trailingBlank
		e := p.lineEnd(at)
		p.text(at, e, true)
		if p.build {
			buf = append(buf, p.src[at:e]...)
		}
		if keep || !allSpaces(p.src[at:e]) {
			p.lastEnd = e
		}
		if e >= n {
			at = n
			break
		}
		leadingBreak = true
		p.newLine(e + 1)
		// Empty lines and the next line's indentation, up to indent.
		for {
			k := p.pos
			for k < n && p.src[k] == ' ' && k-p.pos < indent {
				k++
			}
			if k < n && k-p.pos < indent && (p.src[k] == '\t' || p.src[k] == '\r') {
				fail()
			}
			if k < n && p.src[k] == '\n' {
				if keep {
					p.lastEnd = k
				}
				trailing++
				p.newLine(k + 1)
				continue
			}
			if k >= n && keep {
				p.lastEnd = n
			}
			at = k
			break
		}
	}
	var v *yaml.Node
	if p.build {
		if chomp != -1 && leadingBreak {
			buf = append(buf, '\n')
		}
		if chomp == 1 {
			for ; trailing > 0; trailing-- {
				buf = append(buf, '\n')
			}
		}
		v = p.node(yaml.ScalarNode, style, tagStr, string(buf), line, col)
	}
	// The scalar ended at a less indented line or at the end of the input.
	// When the input ends without a line break inside the scalar, text
	// appended after it (an inserted key) needs that line break, and the
	// splice changes the scalar's header so that its value stays the same:
	// leave such documents to yaml.v3, so that the check of the edit
	// compares the whole tree, this scalar included.
	if at >= n && p.src[n-1] != '\n' {
		fail()
	}
	if at >= n {
		p.pos, p.eof, p.ind = n, true, -1
	} else {
		p.pos = p.ls
		p.skipToContent()
	}
	if !p.eof && p.ind > parent {
		fail()
	}
	return v
}

func allSpaces(b []byte) bool {
	for _, c := range b {
		if c != ' ' {
			return false
		}
	}
	return true
}
