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
	"sync"

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
