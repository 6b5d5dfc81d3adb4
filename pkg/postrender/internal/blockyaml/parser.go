package blockyaml

import (
	"bytes"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
)

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
