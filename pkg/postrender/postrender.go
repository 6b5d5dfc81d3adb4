// Package postrender is a Helm post-renderer that sets storage classes and
// node-pool placement on rendered manifests according to a policy, and leaves
// everything else exactly as it was.
//
// The public API is New, Options, Engine (whose Run implements
// helm.sh/helm/v3/pkg/postrender.PostRenderer), Result, Change and
// DocumentError; policies come from package policy. Inside, the stream is
// split into documents (internal/yamlstream); documents whose kind is in no
// table (workloads.go) are only validated and copied. Others are parsed into
// partial yaml.v3 trees (internal/splice over internal/blockyaml, yaml.v3
// for anything unusual), one walk hands every object to the registered
// filters (storage, placement), whose edits are spliced into the original
// text and checked by re-parsing it.
package postrender

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"

	yaml "go.yaml.in/yaml/v3"

	"github.com/kommons/kommons/pkg/postrender/internal/blockyaml"
	"github.com/kommons/kommons/pkg/postrender/internal/splice"
	"github.com/kommons/kommons/pkg/postrender/internal/yamlstream"
	"github.com/kommons/kommons/pkg/postrender/policy"
)

// Options tune an Engine.
type Options struct {
	// Namespace is the release namespace, used for namespace matching of
	// manifests that set none (Helm's HELM_NAMESPACE).
	Namespace string
	// Workers is the number of documents processed in parallel (default
	// GOMAXPROCS).
	Workers int
}

// Engine applies a policy to manifest streams. It is safe for concurrent use.
type Engine struct {
	policy    *policy.Policy
	opts      Options
	workloads []workload // built-in kinds, then the policy's podTemplatePaths
	filters   []filter   // applied in order to every object
	keywords  [][]byte
	kinds     map[string]bool
	keep      *blockyaml.Keep
}

// New returns an Engine for a validated policy.
func New(p *policy.Policy, opts Options) (*Engine, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	e := &Engine{policy: p, opts: opts, workloads: workloadTable(p), kinds: map[string]bool{}}
	e.keep = readKeys(e.workloads)
	e.filters = []filter{storageFilter{&p.Storage}, placementFilter{p}}
	// Every kind the engine edits contains one of these words; a document
	// without any of them (and without escapes) cannot be affected.
	for _, k := range editedKinds(e.workloads) {
		e.keywords = append(e.keywords, []byte(k))
		e.kinds[k] = true
	}
	e.keywords = append(e.keywords, []byte(`\`))
	return e, nil
}

// Change is one edit, as listed by --report.
type Change struct {
	Document int    `json:"document"`
	Source   string `json:"source,omitempty"`
	Line     int    `json:"line"`
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	Path     string `json:"path"`
	Old      string `json:"old,omitempty"`
	New      string `json:"new"`
	Rule     string `json:"rule"`
	Warning  string `json:"warning,omitempty"`
}

// Result is the outcome of processing a stream. The edited stream is
// assembled from the input and the changed documents only when asked for
// (Bytes or WriteTo), so no second copy of a large stream is needed.
type Result struct {
	// Changes lists every edit in stream order.
	Changes []Change
	// Documents is the number of documents in the stream; Parsed how many
	// of them were parsed into a node tree (the others could not be
	// affected by the policy and were only validated).
	Documents, Parsed int

	in   []byte
	docs []yamlstream.Document
	outs [][]byte // edited text per document, nil when unchanged
	size int
}

// Changed reports whether any document was edited.
func (r *Result) Changed() bool { return len(r.Changes) > 0 }

// Bytes returns the edited stream (the input itself when nothing changed).
func (r *Result) Bytes() []byte {
	if !r.Changed() {
		return r.in
	}
	out := make([]byte, 0, r.size)
	for i := range r.docs {
		if r.outs[i] != nil {
			out = append(out, r.outs[i]...)
		} else {
			out = append(out, r.docs[i].Raw...)
		}
	}
	return out
}

// WriteTo writes the edited stream to w.
func (r *Result) WriteTo(w io.Writer) (int64, error) {
	if !r.Changed() {
		n, err := w.Write(r.in)
		return int64(n), err
	}
	var total int64
	for i := range r.docs {
		b := r.outs[i]
		if b == nil {
			b = r.docs[i].Raw
		}
		n, err := w.Write(b)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// DocumentError locates an error in the input stream.
type DocumentError struct {
	Index  int    // document index, from 0
	Source string // template file (# Source: or Helm 4's filename annotation)
	Line   int    // line in the stream, from 1
	Err    error
}

func (e *DocumentError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "document %d", e.Index)
	if e.Source != "" {
		fmt.Fprintf(&b, " (# Source: %s)", e.Source)
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, " line %d", e.Line)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *DocumentError) Unwrap() error { return e.Err }

// Run implements Helm's PostRenderer: it returns the edited stream, or an
// error and no output.
func (e *Engine) Run(rendered *bytes.Buffer) (*bytes.Buffer, error) {
	res, err := e.Process(rendered.Bytes())
	if err != nil {
		return nil, err
	}
	return bytes.NewBuffer(res.Bytes()), nil
}

type docResult struct {
	out     []byte
	changes []Change
	parsed  bool
	err     error
}

// Process applies the policy to a manifest stream. On error nothing is
// returned but the error, which names the first failing document.
func (e *Engine) Process(in []byte) (*Result, error) {
	docs := yamlstream.Split(in)
	results := make([]docResult, len(docs))
	work := make(chan int, len(docs))
	for i := range docs {
		work <- i
	}
	close(work)
	var wg sync.WaitGroup
	for w := 0; w < min(e.opts.Workers, len(docs)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				results[i] = e.processDocument(&docs[i])
			}
		}()
	}
	wg.Wait()
	res := &Result{Documents: len(docs), in: in, docs: docs, outs: make([][]byte, len(docs))}
	for i := range results {
		r := &results[i]
		if r.err != nil {
			return nil, r.err
		}
		if r.parsed {
			res.Parsed++
		}
		if r.out != nil {
			res.outs[i] = r.out
			res.size += len(r.out)
		} else {
			res.size += len(docs[i].Raw)
		}
		res.Changes = append(res.Changes, r.changes...)
	}
	return res, nil
}

// relevant reports whether a document may be affected by the policy. A
// block-style object has exactly one "kind:" line at column 0 whose value
// decides; anything else (JSON, flow style, tags, escapes) falls back to a
// search for the words of every kind the engine edits.
func (e *Engine) relevant(raw []byte) bool {
	if kind, ok := topLevelKind(raw); ok {
		return e.kinds[kind] || strings.HasSuffix(kind, "List")
	}
	for _, k := range e.keywords {
		if bytes.Contains(raw, k) {
			return true
		}
	}
	return false
}

// topLevelKind finds the value of a single column-0 "kind:" line holding a
// plain or quoted identifier.
func topLevelKind(raw []byte) (string, bool) {
	kind, found := "", false
	for i := 0; i < len(raw); {
		j := bytes.Index(raw[i:], []byte("kind:"))
		if j < 0 {
			break
		}
		k := i + j
		i = k + 5
		if k > 0 && raw[k-1] != '\n' {
			continue
		}
		if found {
			return "", false // two kind lines: let the parser decide
		}
		end := bytes.IndexByte(raw[i:], '\n')
		if end < 0 {
			end = len(raw) - i
		}
		v := bytes.TrimSpace(raw[i : i+end])
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		if len(v) == 0 {
			return "", false
		}
		for _, c := range v {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				return "", false
			}
		}
		kind, found = string(v), true
	}
	return kind, found
}

var (
	yamlLine = regexp.MustCompile(`line (\d+)`)
	// yaml.v3 reports parser (not scanner) errors with a 0-based line.
	parserError = regexp.MustCompile(`did not find expected (<document start>|node content|key|'-' indicator|',' or '[\]}]')|found undefined tag handle|found duplicate %|found incompatible YAML`)
)

func (e *Engine) processDocument(d *yamlstream.Document) (r docResult) {
	defer func() {
		if p := recover(); p != nil {
			if m, ok := p.(mergeRefusal); ok {
				r = docResult{err: &DocumentError{Index: d.Index, Source: d.Source, Line: d.Line + m.line - 1, Err: m.lineError}}
				return
			}
			r = docResult{err: &DocumentError{Index: d.Index, Source: d.Source, Line: d.Line, Err: fmt.Errorf("internal error: %v", p)}}
		}
	}()
	docErr := func(line int, err error) docResult {
		return docResult{err: &DocumentError{Index: d.Index, Source: d.Source, Line: line, Err: err}}
	}
	if !e.relevant(d.Raw) {
		if kind, ok := blockyaml.CheckRoot(d.Raw); ok {
			if kind == yaml.SequenceNode {
				// Not an object; a block sequence root starts on its first content line.
				return docErr(d.Line+firstContentLine(d.Raw)-1, errNotObject("the document", "a sequence"))
			}
			return docResult{} // valid, no duplicate keys, nothing to edit
		}
	}
	// A document the policy may affect, or one the fast check leaves to
	// yaml.v3 (outside its subset, or invalid: the parser reports why).
	doc, err := splice.ParseKeep(d.Raw, e.keep)
	if err != nil {
		// yaml.v3 reports lines relative to the document; make them absolute.
		line := d.Line
		shift := 0
		if parserError.MatchString(err.Error()) {
			shift = 1
		}
		msg := yamlLine.ReplaceAllStringFunc(err.Error(), func(s string) string {
			n, _ := strconv.Atoi(s[len("line "):])
			n += shift
			line = d.Line + n - 1
			return "line " + strconv.Itoa(line)
		})
		msg = strings.TrimPrefix(msg, "yaml: ")
		msg = strings.TrimPrefix(msg, "line "+strconv.Itoa(line)+": ")
		return docErr(line, fmt.Errorf("invalid YAML: %s", msg))
	}
	if doc.Root == nil {
		return docResult{parsed: true}
	}
	if err := checkDuplicates(doc.Root); err != nil {
		return docErr(d.Line+err.line-1, err)
	}
	c := &docContext{engine: e, doc: doc, stream: d}
	if err := c.object(doc.Root, ""); err != nil {
		line := d.Line
		if le, ok := err.(*lineError); ok {
			line = d.Line + le.line - 1
		}
		return docErr(line, err)
	}
	if !doc.Changed() {
		return docResult{parsed: true}
	}
	out, err := doc.Result()
	if err != nil {
		return docErr(d.Line, err)
	}
	return docResult{out: out, changes: c.changes, parsed: true}
}

// firstContentLine returns the line (from 1) of the first line of raw that
// is neither blank, a comment nor a "---" marker without content.
func firstContentLine(raw []byte) int {
	line := 1
	for len(raw) > 0 {
		end := bytes.IndexByte(raw, '\n')
		if end < 0 {
			end = len(raw)
		}
		l := bytes.TrimSpace(raw[:end])
		if bytes.HasPrefix(l, []byte("---")) {
			l = bytes.TrimSpace(l[3:])
		}
		if len(l) > 0 && l[0] != '#' {
			return line
		}
		if end == len(raw) {
			break
		}
		raw, line = raw[end+1:], line+1
	}
	return line
}

// lineError is an error at a line of the current document (from 1).
type lineError struct {
	line int
	msg  string
}

func (e *lineError) Error() string { return e.msg }

func errAt(line int, format string, a ...any) *lineError {
	return &lineError{line: line, msg: fmt.Sprintf(format, a...)}
}
