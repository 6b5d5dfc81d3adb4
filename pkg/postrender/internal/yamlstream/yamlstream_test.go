package yamlstream

import (
	"reflect"
	"testing"
)

func TestSplit(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		docs    []string
		lines   []int
		sources []string
	}{
		{"empty", "", nil, nil, nil},
		{"single without marker", "a: 1\n", []string{"a: 1\n"}, []int{1}, []string{""}},
		{"leading marker", "---\na: 1\n---\nb: 2", []string{"---\na: 1\n", "---\nb: 2"}, []int{1, 3}, []string{"", ""}},
		{"text before first marker is a document", "# c\n---\na: 1\n", []string{"# c\n", "---\na: 1\n"}, []int{1, 2}, []string{"", ""}},
		{"indented marker is content", "a: |\n  ---\n  b\n---\nc: 1\n", []string{"a: |\n  ---\n  b\n", "---\nc: 1\n"}, []int{1, 4}, []string{"", ""}},
		{"marker needs a separator", "---x: 1\n--- # c\n", []string{"---x: 1\n", "--- # c\n"}, []int{1, 2}, []string{"", ""}},
		{"CRLF and CR", "---\r\na: 1\r---\rb: 2\r\n", []string{"---\r\na: 1\r", "---\rb: 2\r\n"}, []int{1, 3}, []string{"", ""}},
		{"Unicode line separators", "a: 1\u2028---\nb: 1\u0085---\u2029c", []string{"a: 1\u2028", "---\nb: 1\u0085", "---\u2029c"}, []int{1, 2, 4}, []string{"", "", ""}},
		{"sources", "---\n# Source: chart/templates/a.yaml\na: 1\n---\nmetadata:\n  annotations:\n    postrenderer.helm.sh/postrender-filename: 'chart/templates/b.yaml'\n",
			[]string{"---\n# Source: chart/templates/a.yaml\na: 1\n", "---\nmetadata:\n  annotations:\n    postrenderer.helm.sh/postrender-filename: 'chart/templates/b.yaml'\n"}, []int{1, 4},
			[]string{"chart/templates/a.yaml", "chart/templates/b.yaml"}},
		{"empty documents", "---\n---\n---\n", []string{"---\n", "---\n", "---\n"}, []int{1, 2, 3}, []string{"", "", ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			docs := Split([]byte(tc.in))
			if len(docs) != len(tc.docs) {
				t.Fatalf("%d documents, want %d: %+v", len(docs), len(tc.docs), docs)
			}
			for i, d := range docs {
				if string(d.Raw) != tc.docs[i] || d.Line != tc.lines[i] || d.Index != i || d.Source != tc.sources[i] {
					t.Errorf("doc %d = {%q line %d index %d source %q}, want {%q line %d source %q}", i, d.Raw, d.Line, d.Index, d.Source, tc.docs[i], tc.lines[i], tc.sources[i])
				}
			}
		})
	}
}

// FuzzSplitLF checks that the byte-search split of LF-only input equals the
// line-by-line split.
func FuzzSplitLF(f *testing.F) {
	for _, s := range []string{"", "a: 1\n", "---\na: 1\n---\nb: 2", "a: |\n  ---\n---x\n--- # c\n---\t\n---", "\n---\n\n---", "# Source: x\n---\n# Source: y\nkind: A\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if !onlyLF(in) {
			return
		}
		fast, slow := splitLF(in), splitLines(in)
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("splitLF differs from splitLines on %q:\n%+v\n%+v", in, fast, slow)
		}
	})
}
