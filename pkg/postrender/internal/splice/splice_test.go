package splice

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"

	"github.com/kommons/kommons/pkg/postrender/internal/blockyaml"
)

func str(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

func mapping(kv ...string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for i := 0; i+1 < len(kv); i += 2 {
		n.Content = append(n.Content, str(kv[i]), str(kv[i+1]))
	}
	return n
}

func lookup(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func TestEdits(t *testing.T) {
	cases := []struct {
		name, in, want string
		edit           func(d *Doc) error
		full           bool // the edit needs the whole-document check
	}{
		{
			name: "insert after block scalar with keep chomping",
			in:   "a:\n  s: |+\n    x\n\n  t: 1\nb: 2\n",
			edit: func(d *Doc) error { return d.SetKey(lookup(d.Root, "a"), "new", str("v")) },
			want: "a:\n  s: |+\n    x\n\n  t: 1\n  new: v\nb: 2\n",
		},
		{
			name: "insert after multi-line plain scalar and comment",
			in:   "a:\n  p: one\n    two\n  # note\nb: 2\n",
			edit: func(d *Doc) error { return d.SetKey(lookup(d.Root, "a"), "k", str("yes")) },
			want: "a:\n  p: one\n    two\n  k: \"yes\"\n  # note\nb: 2\n",
		},
		{
			name: "append to compact sequence, CRLF",
			in:   "l:\r\n- a\r\n- b: 1\r\n  c: 2\r\nz: 1\r\n",
			edit: func(d *Doc) error { return d.Append(lookup(d.Root, "l"), mapping("k", "v", "on", "off")) },
			want: "l:\r\n- a\r\n- b: 1\r\n  c: 2\r\n- k: v\r\n  \"on\": \"off\"\r\nz: 1\r\n",
		},
		{
			name: "two insertions, the later one planned first",
			in:   "a:\n  b:\n    c: 1\n  d: 2\ne:\n  f: 3\n",
			edit: func(d *Doc) error {
				if err := d.SetKey(lookup(d.Root, "e"), "g", str("h")); err != nil {
					return err
				}
				if err := d.SetKey(lookup(lookup(d.Root, "a"), "b"), "x", str("y")); err != nil {
					return err
				}
				return d.SetKey(lookup(d.Root, "a"), "z", str("w"))
			},
			want: "a:\n  b:\n    c: 1\n    x: \"y\"\n  d: 2\n  z: w\ne:\n  f: 3\n  g: h\n",
		},
		{
			name: "insert without trailing newline",
			in:   "a: 1",
			edit: func(d *Doc) error { return d.SetKey(d.Root, "b", mapping("c", "d")) },
			want: "a: 1\nb:\n  c: d\n",
		},
		{
			name: "two insertions without trailing newline: one line break before both",
			in:   "a:\n  b: 1",
			edit: func(d *Doc) error {
				if err := d.SetKey(lookup(d.Root, "a"), "c", str("x")); err != nil {
					return err
				}
				return d.SetKey(d.Root, "z", str("w"))
			},
			want: "a:\n  b: 1\n  c: x\nz: w\n",
		},
		{
			name: "block scalar ends the text without a line break: strip chomping keeps its value",
			in:   "a:\n  s: |\n    x\n      y",
			edit: func(d *Doc) error { return d.SetKey(d.Root, "b", str("v")) },
			want: "a:\n  s: |-\n    x\n      y\nb: v\n",
			full: true,
		},
		{
			name: "keep chomping, indentation indicator and comment",
			in:   "- >+2 # note\n    x",
			edit: func(d *Doc) error { return d.Append(d.Root, str("v")) },
			want: "- >-2 # note\n    x\n- v\n",
			full: true,
		},
		{
			name: "the scalar's last line looks like a comment but is its text; tag and anchor before the header",
			in:   "s: !!str &a |2\n   #",
			edit: func(d *Doc) error { return d.SetKey(d.Root, "b", str("v")) },
			want: "s: !!str &a |2-\n   #\nb: v\n",
			full: true,
		},
		{
			name: "a less indented comment ends the scalar: nothing to strip",
			in:   "a:\n  s: |\n    x\n   # c",
			edit: func(d *Doc) error { return d.SetKey(d.Root, "b", str("v")) },
			want: "a:\n  s: |\n    x\nb: v\n   # c",
		},
		{
			name: "an empty block scalar's header ends the text",
			in:   "a:\n  b: >",
			edit: func(d *Doc) error { return d.SetKey(lookup(d.Root, "a"), "c", mapping("k", "v")) },
			want: "a:\n  b: >-\n  c:\n    k: v\n",
			full: true,
		},
		{
			name: "strip chomping already",
			in:   "s: |-\n  x",
			edit: func(d *Doc) error { return d.SetKey(d.Root, "b", str("v")) },
			want: "s: |-\n  x\nb: v\n",
		},
		{
			name: "a comment ends the text: the insertion goes before it, the scalar is untouched",
			in:   "s: |\n  x\n# end",
			edit: func(d *Doc) error { return d.SetKey(d.Root, "b", str("v")) },
			want: "s: |\n  x\nb: v\n# end",
		},
		{
			name: "a | in a plain scalar above is no header",
			in:   "p: a |\nq:\n  r: 1",
			edit: func(d *Doc) error { return d.SetKey(lookup(d.Root, "q"), "s", str("v")) },
			want: "p: a |\nq:\n  r: 1\n  s: v\n",
		},
		{
			name: "flow mapping",
			in:   "{\"a\": {\"b\": 1}}\n",
			edit: func(d *Doc) error { return d.SetKey(lookup(d.Root, "a"), "c", str("x y")) },
			want: "{\"a\": {\"b\": 1, \"c\": \"x y\"}}\n",
			full: true,
		},
		{
			name: "two keys into an empty flow mapping keep their order",
			in:   "a: {}\n",
			edit: func(d *Doc) error {
				if err := d.SetKey(lookup(d.Root, "a"), "x", str("1")); err != nil {
					return err
				}
				return d.SetKey(lookup(d.Root, "a"), "y", str("2"))
			},
			want: "a: {\"x\": \"1\", \"y\": \"2\"}\n",
			full: true,
		},
		{
			name: "an anchor on an empty first key is not a flow mapping's",
			in:   "s:\n  &a: {}\n",
			edit: func(d *Doc) error { return d.SetKey(lookup(d.Root, "s"), "c", str("v")) },
			want: "s:\n  &a: {}\n  c: v\n",
		},
		{
			name: "replace empty flow value with block",
			in:   "a:\n  n: {}\n  m: 1\n",
			edit: func(d *Doc) error { return d.SetKey(lookup(d.Root, "a"), "n", mapping("k", "v")) },
			want: "a:\n  n:\n    k: v\n  m: 1\n",
			full: true,
		},
		{
			name: "replace null",
			in:   "a:\n  n: ~ # none\n  m:\n",
			edit: func(d *Doc) error {
				if err := d.SetKey(lookup(d.Root, "a"), "n", str("x")); err != nil {
					return err
				}
				return d.SetKey(lookup(d.Root, "a"), "m", str("y"))
			},
			want: "a:\n  n: x # none\n  m: \"y\"\n", // y is a YAML 1.1 boolean: quoted
			full: true,
		},
		{
			name: "replace quoted scalar keeping comment and anchor",
			in:   "a: &x 'old' # c\nb: *x\n",
			edit: func(d *Doc) error { return d.ReplaceScalar(lookup(d.Root, "a"), 0, false, str("new")) },
			want: "a: &x new # c\nb: *x\n",
			full: true,
		},
		{
			name: "unicode before the insertion point",
			in:   "a:\n  ü: \"ä\u2028\"\n  z: 1\n",
			edit: func(d *Doc) error { return d.SetKey(lookup(d.Root, "a"), "k", str("v")) },
			want: "a:\n  ü: \"ä\u2028\"\n  z: 1\n  k: v\n",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.edit(d); err != nil {
				t.Fatal(err)
			}
			if d.fullCheck != tc.full {
				t.Errorf("fullCheck = %v, want %v", d.fullCheck, tc.full)
			}
			got, err := d.Result()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got:\n%q\nwant:\n%q", got, tc.want)
			}
			if !tc.full && !d.checkUnits(got) {
				t.Errorf("region check failed; Result fell back to the whole document")
			}
		})
	}
}

// TestResultCatchesBadSplice plants an insertion at a wrong offset (inside a
// block scalar) and expects both the region check and the whole-document
// check to refuse it.
func TestResultCatchesBadSplice(t *testing.T) {
	for _, full := range []bool{false, true} {
		d, err := Parse([]byte("a:\n  s: |\n    x\n    y\n  t: 1\n"))
		if err != nil {
			t.Fatal(err)
		}
		a := lookup(d.Root, "a")
		at := strings.Index(string(d.src), "    y")
		i := d.addAt(at, at, "  k: v\n", 2)
		d.addUnit(a, 2, d.Start(a.Content[2]), i)
		a.Content = append(a.Content, str("k"), str("v"))
		d.fullCheck = full
		if out, err := d.Result(); err == nil {
			t.Fatalf("full=%v: bad splice accepted:\n%s", full, out)
		}
	}
}

func TestEnd(t *testing.T) {
	src := "a: \"q\\\"x\" # c\nb: 'it''s'\nc: [1, \"]\", {d: e}] # x\nd: |2\n    x\n  y\ne: plain text\n  continued\nf: *anchor\n"
	src = strings.Replace(src, "*anchor", "&anchor z", 1)
	d, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"a": `"q\"x"`, "b": `'it''s'`, "c": `[1, "]", {d: e}]`, "d": "|2\n    x\n  y", "e": "plain text\n  continued", "f": "&anchor z",
	}
	for i := 0; i+1 < len(d.Root.Content); i += 2 {
		k, v := d.Root.Content[i], d.Root.Content[i+1]
		end, err := d.End(v, 0, false)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(d.src[d.Start(v):end]); got != want[k.Value] {
			t.Errorf("%s: extent %q, want %q", k.Value, got, want[k.Value])
		}
	}
}

// TestSafePlain checks the hand-written matcher against the pattern it implements.
func TestSafePlain(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z_/][A-Za-z0-9_./-]*$`)
	for _, s := range []string{"", "a", "A9", "_x", "/p", "9a", ".a", "-a", "a.b/c-d_e", "a b", "a:b", "é", "a\n", "fast-ssd", "agentpool", "a*", "x.", "/"} {
		if got, want := safePlain(s), re.MatchString(s); got != want {
			t.Errorf("safePlain(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestNewTextLineStarts checks the byte-search index against the general one.
func TestNewTextLineStarts(t *testing.T) {
	for _, s := range []string{"", "a", "a\n", "a\nb\n\nc", "\n\n"} {
		fast := NewText([]byte(s)).lineStarts
		want := []int{0}
		for i := 0; i < len(s); i++ {
			if s[i] == '\n' {
				want = append(want, i+1)
			}
		}
		if fmt.Sprint(fast) != fmt.Sprint(want) {
			t.Errorf("%q: line starts %v, want %v", s, fast, want)
		}
	}
}

// TestUnbuiltRefused checks that a collection the fast parser left unbuilt
// is never taken for an empty one.
func TestUnbuiltRefused(t *testing.T) {
	keep := &blockyaml.Keep{Path: map[string]bool{}, Full: map[string]bool{}}
	d, err := ParseKeep([]byte("spec:\n  a: 1\nlist:\n- x\n"), keep)
	if err != nil {
		t.Fatal(err)
	}
	spec := lookup(d.Root, "spec")
	if len(spec.Content) != 0 || !d.isUnbuilt(spec) {
		t.Fatalf("spec was built: %+v", spec)
	}
	if err := d.SetKey(d.Root, "spec", str("v")); err == nil {
		t.Fatal("SetKey replaced an unbuilt mapping")
	}
	if err := d.SetKey(spec, "b", str("v")); err == nil {
		t.Fatal("SetKey inserted into an unbuilt mapping")
	}
	if err := d.Append(lookup(d.Root, "list"), str("y")); err == nil {
		t.Fatal("Append appended to an unbuilt sequence")
	}
	if err := d.SetKey(d.Root, "new", str("v")); err != nil {
		t.Fatal(err)
	}
	out, err := d.Result()
	if err != nil || string(out) != "spec:\n  a: 1\nlist:\n- x\nnew: v\n" {
		t.Fatalf("%v\n%s", err, out)
	}
}
