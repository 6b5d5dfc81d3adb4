package blockyaml

import (
	"bytes"

	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"

	"github.com/kommons/kommons/pkg/postrender/internal/yamlstream"
	"github.com/kommons/kommons/test/bench/postrender/manifestgen"
)

// reference decodes src with yaml.v3 as a single document.
func reference(src []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var n yaml.Node
	if err := dec.Decode(&n); err == io.EOF {
		return nil, nil // no document at all: comments or nothing
	} else if err != nil {
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return nil, fmt.Errorf("second document: %v", err)
	}
	if len(n.Content) == 0 {
		return nil, nil
	}
	return n.Content[0], nil
}

// diff returns the path of the first difference between two trees.
func diff(a, b *yaml.Node, path string) string {
	if a == nil || b == nil {
		if a != b {
			return path + ": one is nil"
		}
		return ""
	}
	if a.Kind != b.Kind || a.Style != b.Style || a.Tag != b.Tag || a.Value != b.Value ||
		a.Line != b.Line || a.Column != b.Column || a.Anchor != b.Anchor || len(a.Content) != len(b.Content) {
		return fmt.Sprintf("%s: {kind %d style %d tag %s value %q at %d:%d, %d children} vs yaml.v3 {kind %d style %d tag %s value %q at %d:%d, %d children}",
			path, a.Kind, a.Style, a.Tag, a.Value, a.Line, a.Column, len(a.Content), b.Kind, b.Style, b.Tag, b.Value, b.Line, b.Column, len(b.Content))
	}
	for i := range a.Content {
		if d := diff(a.Content[i], b.Content[i], fmt.Sprintf("%s[%d]", path, i)); d != "" {
			return d
		}
	}
	return ""
}

// hasDuplicate reports equal scalar key values in any mapping.
func hasDuplicate(n *yaml.Node) bool {
	if n == nil {
		return false
	}
	if n.Kind == yaml.MappingNode {
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; k.Kind == yaml.ScalarNode {
				if seen[k.Value] {
					return true
				}
				seen[k.Value] = true
			}
		}
	}
	for _, c := range n.Content {
		if hasDuplicate(c) {
			return true
		}
	}
	return false
}

// differential checks the package's promises on src against yaml.v3 and
// reports whether the fast path accepted it.
func differential(t *testing.T, src []byte) (parsed, checked bool) {
	t.Helper()
	root, parsed := Parse(src)
	checked = Check(src)
	ref, err := reference(src)
	if parsed {
		if err != nil {
			t.Fatalf("Parse accepted input yaml.v3 rejects (%v):\n%q", err, src)
		}
		if d := diff(root, ref, "root"); d != "" {
			t.Fatalf("tree differs from yaml.v3 at %s\ninput: %q", d, src)
		}
		if !checked || hasDuplicate(ref) {
			t.Fatalf("Parse accepted, Check = %v, duplicates = %v:\n%q", checked, hasDuplicate(ref), src)
		}
	}
	if checked {
		if err != nil {
			t.Fatalf("Check accepted input yaml.v3 rejects (%v):\n%q", err, src)
		}
		if hasDuplicate(ref) {
			t.Fatalf("Check accepted duplicate keys:\n%q", src)
		}
		if !parsed && ref != nil && !(ref.Kind == yaml.ScalarNode && ref.Tag == "!!null" && ref.Value == "") {
			t.Fatalf("Check accepted but Parse refused a non-empty document:\n%q", src)
		}
	}
	return parsed, checked
}

// TestAccepted lists inputs the fast path must handle itself (else it is
// not fast for charts), each compared with yaml.v3.
func TestAccepted(t *testing.T) {
	cases := []string{
		"a: 1\n",
		"---\napiVersion: v1\nkind: Pod\n",
		"--- # comment\na: b # trailing\n# own line\nc: d\n",
		"a:\nb: 1\n",
		"a: \n  # x\nb:\n",
		"- \n- a\n",
		"a:\n- x\n-\nb: c",
		"- a: 1\n  b: 2\n- c\n",
		"- \"a\": 1\n  'b': 2\n",
		"a: []\nb: {}\nc: [x, \"y\", 'z''s', [1, 2], {k: v}]\n",
		"<<: 1\n",
		"a: |\n  x\n\n  y\n\n",
		"a: |+\n  x\n\n",
		"a: |-\n  x\n\n",
		"a: >\n  x\n  y\n\n   z\n  w\n",
		"a: >-\n  folded\n  text\n\n  para\n",
		"a: |-\nb: 1",
		"a:   |\n  x\n",
		"a: |\n  x\n   \n  y\n",
		"a: |\n  with\ttab\n",
		"a: |\n    ---\n    b\n",
		"é: ü\n  ",
		"a: \"\\u00e9\\t\\\"q\\\" \\\\ \\x41 \\U0001F600 \\N\\_\\L\\P\"\n",
		"k: 'it''s'\n",
		"n: [1, -2, 3.5, .inf, -.Inf, 0x1F, 0o17, 0b11, 1_000, 1e3, ~, null, true, False, yes, on, y, 2024-01-02]\n",
		"t: 2001-12-14t21:59:43.10-05:00\nu: 2001-12-14 21:59:43.10\nv: 2002-12-14\nw: 12:30:00\n",
		"big: 18446744073709551615\nbigger: 18446744073709551616\nneg: -9223372036854775808\n",
		"v: 16.2.0\nm: 500m\ns: \"8Gi\"\n",
		"a:\n  b:\n    c: 1\n  d:\n  - e\n  - f: g\n    h: i\nj: k\n",
		"  a: 1\n  b:\n    - x\n",
		"- - \n- -x\n",
		"key with spaces: value with spaces\n",
		"url: http://example.com/a#b\n",
		"a: b#c\n",
		"a   : 1\n",
		"- |\n  block in seq\n- >\n  folded\n",
		"a:\n  - |\n    x\n  - y\n",
		"a: b\n    # indented comment\nd: 1\n",
		"a:\n  - x\n  # c\nb: 1\n",
		"x: \"\"\ny: ''\n",
		"a: {}\n",
		"list: [ a , b ]\n",
		"a: |\n",
		"a: |\n\n",
		"a: >+\n\n  x\n",
	}
	for _, c := range cases {
		t.Run(c, func(t *testing.T) {
			parsed, checked := differential(t, []byte(c))
			if !parsed && !strings.HasPrefix(c, "- - ") {
				t.Errorf("Parse refused %q", c)
			}
			if !checked && !strings.HasPrefix(c, "- - ") {
				t.Errorf("Check refused %q", c)
			}
		})
	}
}

// TestRefused lists inputs outside the subset or invalid: the fast path
// must leave them to yaml.v3.
func TestRefused(t *testing.T) {
	cases := []string{
		"a: &x 1\nb: *x\n",
		"a: !!str 1\n",
		"%YAML 1.2\n---\na: 1\n",
		"a: 1\n...\n",
		"a: 1\r\nb: 2\r\n",
		"a:\tb\n",
		"\ta: 1\n",
		"a: b\n  c\n",
		"a: 'multi\n  line'\n",
		"a: [1,\n  2]\n",
		"? complex\n: key\n",
		"\ufeffa: 1\n",
		"a: 1\u2028b: 2\n",
		"a: b: c\n",
		"a: - b\n",
		"a:\n  b: 1\n c: 2\n",
		"a: |2\n   x\n",
		"a: |\n  x",      // block scalar at an end of input without a line break
		"a: |+\n  x\n  ", // (text appended after it would change its value)
		"a: |",
		"a: |\n    \n  b\n",
		"scalar\n",
		"[1, 2]\n",
		"{\"a\": 1}\n",
		"a: \"\\/\"\n",
		"a: \"\\q\"\n",
		"a: \"\\uD800\"\n",
		"a: \x01\n",
		"a: \xff\n",
		"a: 'x' y\n",
		"a: \"x\"#c\n",
		"a: [a, ]\n",
		"a: @x\n",
		"- a\nb: 1\n",
		"a: 1\n- b\n",
		"",
		"# only a comment\n",
		"---\n",
		strings.Repeat("k", 1100) + ": v\n",
		strings.Repeat("- ", 120) + "x\n",
	}
	for _, c := range cases {
		name := c
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			if parsed, _ := differential(t, []byte(c)); parsed {
				t.Errorf("Parse accepted %q", c)
			}
		})
	}
	// Duplicate keys are valid YAML for yaml.v3 but left to the caller's
	// slow path, which reports them.
	for _, c := range []string{"a: 1\nb: 2\na: 3\n", "a: 1\n'a': 2\n", "a: {x: 1, x: 2}\n", "- k: 1\n  \"k\": 2\n"} {
		if parsed, checked := differential(t, []byte(c)); parsed || checked {
			t.Errorf("%q: Parse %v, Check %v, want both false", c, parsed, checked)
		}
	}
	// Empty documents are valid: Check accepts them, Parse leaves them to yaml.v3.
	for _, c := range []string{"", "# only a comment\n", "---\n", "--- # c\n\n"} {
		if !Check([]byte(c)) {
			t.Errorf("Check refused the empty document %q", c)
		}
	}
}

// TestDifferentialCorpus runs the hazard corpus and the benchmark stream
// through both parsers; every benchmark document must take the fast path.
func TestDifferentialCorpus(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/hazards/*")
	if len(files) == 0 {
		t.Fatal("no hazard corpus in ../../testdata/hazards")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range yamlstream.Split(data) {
			differential(t, d.Raw)
		}
	}
	for _, d := range yamlstream.Split(manifestgen.Generate(30)) {
		parsed, checked := differential(t, d.Raw)
		if !parsed || !checked {
			t.Errorf("benchmark document %d not on the fast path (parse %v, check %v):\n%s", d.Index, parsed, checked, d.Raw)
		}
	}
}

// FuzzParse checks on arbitrary input: no panic; whatever Parse accepts
// yaml.v3 accepts with an identical tree; whatever Check accepts yaml.v3
// accepts without duplicate keys.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("../../testdata/hazards/*.yaml")
	if len(files) == 0 {
		f.Fatal("no hazard corpus in ../../testdata/hazards")
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		for _, d := range yamlstream.Split(data) {
			f.Add(d.Raw)
		}
	}
	for _, d := range yamlstream.Split(manifestgen.Generate(10)) {
		f.Add(d.Raw)
	}
	for _, s := range []string{"a: |\n  x\n\n  y\n", "a: >\n  x\n  y\n\n   z\n", "- a: 1\n  b: [x, {k: v}]\n", "a: \"\\u00e9\\t\"\n", "k: 'it''s'\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("panic %v on %q", r, src)
			}
		}()
		differential(t, src)
	})
}

// BenchmarkParse compares yaml.v3 with Parse (whole trees), ParseKeep (the
// post-renderer's selection) and Check on the benchmark stream's documents.
func BenchmarkParse(b *testing.B) {
	docs := yamlstream.Split(manifestgen.Generate(100))
	size := 0
	for _, d := range docs {
		size += len(d.Raw)
	}
	keep := &Keep{
		Path: map[string]bool{"metadata": true, "spec": true, "template": true, "jobTemplate": true, "volumeClaimTemplates": true},
		Full: map[string]bool{"labels": true, "selector": true, "nodeSelector": true, "tolerations": true, "affinity": true},
	}
	run := func(name string, parse func([]byte) bool) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				for _, d := range docs {
					if !parse(d.Raw) {
						b.Fatal("refused")
					}
				}
			}
		})
	}
	run("yaml.v3", func(src []byte) bool { _, err := reference(src); return err == nil })
	run("Parse", func(src []byte) bool { _, ok := Parse(src); return ok })
	run("ParseKeep", func(src []byte) bool { _, ok := ParseKeep(src, keep); return ok })
	run("Check", Check)
}

// TestCheckRoot checks the root kind CheckRoot reports.
func TestCheckRoot(t *testing.T) {
	for _, tc := range []struct {
		src    string
		kind   yaml.Kind
		wantOK bool
	}{
		{"a: 1\n", yaml.MappingNode, true},
		{"---\n# c\nkind: Pod\n", yaml.MappingNode, true},
		{"- a\n- b: c\n", yaml.SequenceNode, true},
		{"--- # only a comment\n", 0, true},
		{"", 0, true},
		{"just text\n", 0, false}, // scalar roots are outside the subset
	} {
		kind, ok := CheckRoot([]byte(tc.src))
		if ok != tc.wantOK || ok && kind != tc.kind {
			t.Errorf("CheckRoot(%q) = %v, %v; want %v, %v", tc.src, kind, ok, tc.kind, tc.wantOK)
		}
	}
}
