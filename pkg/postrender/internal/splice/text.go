// Package splice edits a YAML document in place: it locates nodes parsed by
// go.yaml.in/yaml/v3 in the original bytes and inserts or replaces only the
// text that changes, so key order, comments, quoting, block scalars,
// indentation and line endings of everything else are kept byte for byte.
//
// yaml.v3 nodes carry only a start position (line and column, counted in
// characters); the end of a node is found here by scanning the original text
// with the YAML rules for each node style (quoted, plain, block scalar, flow
// collection).
package splice

import (
	"bytes"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"

	"github.com/kommons/kommons/pkg/postrender/internal/blockyaml"
)

// Text is a document's bytes with an index of line starts.
type Text struct {
	src        []byte
	lineStarts []int
	// NL is the line ending used for inserted lines: "\r\n" when the document
	// uses CRLF, "\n" otherwise.
	NL string
	// unbuilt are the collections the fast parser read without building
	// them, with their ends.
	unbuilt []blockyaml.Span
}

// isUnbuilt reports whether n is a collection whose children were not built.
func (t *Text) isUnbuilt(n *yaml.Node) bool {
	for _, s := range t.unbuilt {
		if s.Node == n {
			return true
		}
	}
	return false
}

// NewText indexes src. Line breaks are counted as libyaml counts them (LF,
// CRLF, CR, and the Unicode NEL, LS and PS), so node positions map exactly.
func NewText(src []byte) *Text {
	if bytes.IndexByte(src, '\r') < 0 && bytes.IndexByte(src, 0xC2) < 0 && bytes.IndexByte(src, 0xE2) < 0 {
		// Only LF can break a line: index with a byte search.
		t := &Text{src: src, lineStarts: make([]int, 1, bytes.Count(src, []byte("\n"))+2), NL: "\n"}
		for i := 0; ; {
			j := bytes.IndexByte(src[i:], '\n')
			if j < 0 {
				return t
			}
			i += j + 1
			t.lineStarts = append(t.lineStarts, i)
		}
	}
	t := &Text{src: src, lineStarts: make([]int, 1, bytes.Count(src, []byte("\n"))+2), NL: "\n"}
	crlf := false
	for i := 0; i < len(src); i++ {
		switch c := src[i]; c {
		case '\n':
			t.lineStarts = append(t.lineStarts, i+1)
		case '\r':
			if i+1 < len(src) && src[i+1] == '\n' {
				crlf = true
				i++
			}
			t.lineStarts = append(t.lineStarts, i+1)
		case 0xC2: // NEL U+0085
			if i+1 < len(src) && src[i+1] == 0x85 {
				i++
				t.lineStarts = append(t.lineStarts, i+1)
			}
		case 0xE2: // LS U+2028, PS U+2029
			if i+2 < len(src) && src[i+1] == 0x80 && (src[i+2] == 0xA8 || src[i+2] == 0xA9) {
				i += 2
				t.lineStarts = append(t.lineStarts, i+1)
			}
		}
	}
	if crlf {
		t.NL = "\r\n"
	}
	return t
}

// Bytes returns the indexed text.
func (t *Text) Bytes() []byte { return t.src }

// Offset converts a yaml.v3 position (1-based line, 1-based column counted in
// characters) to a byte offset.
func (t *Text) Offset(line, col int) int {
	if line < 1 {
		return 0
	}
	if line > len(t.lineStarts) {
		return len(t.src)
	}
	off := t.lineStarts[line-1]
	for c := 1; c < col && off < len(t.src); c++ {
		_, size := utf8.DecodeRune(t.src[off:])
		off += size
	}
	return off
}

// Line returns the 1-based line containing offset.
func (t *Text) Line(off int) int {
	lo, hi := 0, len(t.lineStarts)-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if t.lineStarts[mid] <= off {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo + 1
}

// lineEnd returns the offset of the line break ending the line holding off
// (or the end of the text).
func (t *Text) lineEnd(off int) int {
	for i := off; i < len(t.src); i++ {
		if t.src[i] == '\n' || t.src[i] == '\r' {
			return i
		}
	}
	return len(t.src)
}

// nextLineStart returns the offset just after the line break ending the line
// holding off, or -1 when that line is the last one and has no line break.
func (t *Text) nextLineStart(off int) int {
	e := t.lineEnd(off)
	if e >= len(t.src) {
		return -1
	}
	if t.src[e] == '\r' && e+1 < len(t.src) && t.src[e+1] == '\n' {
		return e + 2
	}
	return e + 1
}

// indentAt returns the number of leading spaces of the line starting at off.
func (t *Text) indentAt(lineStart int) int {
	n := 0
	for lineStart+n < len(t.src) && t.src[lineStart+n] == ' ' {
		n++
	}
	return n
}

// column returns the 0-based column (in bytes, equal to characters for the
// ASCII indentation this is used on) of offset within its line.
func (t *Text) column(off int) int {
	return off - t.lineStarts[t.Line(off)-1]
}
