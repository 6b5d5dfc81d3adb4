package splice

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	yaml "go.yaml.in/yaml/v3"

	"github.com/kommons/kommons/pkg/postrender/internal/blockyaml"
	"github.com/kommons/kommons/pkg/postrender/internal/yamlstream"
	"github.com/kommons/kommons/test/bench/postrender/manifestgen"
)

// testKeep is what the post-renderer reads of a document.
var testKeep = &blockyaml.Keep{
	Path: map[string]bool{"metadata": true, "spec": true, "template": true, "jobTemplate": true, "volumeClaimTemplates": true, "items": true},
	Full: map[string]bool{"labels": true, "selector": true, "nodeSelector": true, "tolerations": true, "affinity": true, "topologySpreadConstraints": true},
}

// fullDoc parses src with yaml.v3 only, as Parse did before the fast path.
func fullDoc(t *testing.T, src []byte) *Doc {
	t.Helper()
	var n yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(src)).Decode(&n); err != nil {
		t.Fatalf("yaml.v3 rejects input the fast parser accepted: %v\n%q", err, src)
	}
	d := &Doc{Text: NewText(src), Root: n.Content[0]}
	d.style = d.detectStyle()
	return d
}

// compareKeep checks a partial parse against yaml.v3's full tree: the same
// nodes where built, unbuilt collections ending where End finds the end of
// the full one, and the same layout.
func compareKeep(t *testing.T, src []byte) bool {
	t.Helper()
	bd, ok := blockyaml.ParseKeep(src, testKeep)
	if !ok {
		return false
	}
	full := fullDoc(t, src)
	ends := map[*yaml.Node]int{}
	for _, s := range bd.Unbuilt {
		ends[s.Node] = s.End
	}
	var walk func(a, b *yaml.Node, path string)
	walk = func(a, b *yaml.Node, path string) {
		if a.Kind != b.Kind || a.Style != b.Style || a.Tag != b.Tag || a.Value != b.Value || a.Line != b.Line || a.Column != b.Column {
			t.Fatalf("%s differs: %+v vs yaml.v3 %+v\n%s", path, *a, *b, src)
		}
		if end, unbuilt := ends[a]; unbuilt {
			want, err := full.End(b, 0, false)
			if err != nil || end != want {
				t.Fatalf("%s: unbuilt end %d, End on the full tree %d (%v)\n%q", path, end, want, err, src)
			}
			return
		}
		if len(a.Content) != len(b.Content) {
			t.Fatalf("%s: %d children, yaml.v3 %d\n%s", path, len(a.Content), len(b.Content), src)
		}
		for i := range a.Content {
			walk(a.Content[i], b.Content[i], fmt.Sprintf("%s[%d]", path, i))
		}
	}
	walk(bd.Root, full.Root, "root")
	fast, err := ParseKeep(src, testKeep)
	if err != nil {
		t.Fatal(err)
	}
	if fast.style != full.style {
		t.Fatalf("layout %+v, detectStyle on the full tree %+v\n%s", fast.style, full.style, src)
	}
	return true
}

func keepCorpus(t testing.TB) [][]byte {
	var out [][]byte
	files, _ := filepath.Glob("../../testdata/hazards/*.yaml")
	if len(files) == 0 {
		t.Fatal("no hazard corpus in ../../testdata/hazards")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range yamlstream.Split(data) {
			out = append(out, d.Raw)
		}
	}
	for _, d := range yamlstream.Split(manifestgen.Generate(10)) {
		out = append(out, d.Raw)
	}
	for _, s := range []string{
		"spec:\n  containers:\n  - name: a\n    args: |+\n      x\n\n\n  volumes: []\n",
		"spec:\n  c:\n    d: >-\n      folded\n\n     \nk: v\n",
		"spec:\n    x:\n        - a\n        - b: |\n            t\n    y: {a: [1, 2]}  # c\n",
		"metadata:\n  annotations:\n    a: \"1\"\n  labels:\n    b: c\n",
		"a:\n- 1\n- - 2\n",
		"spec:\n  template:\n    spec:\n      containers:\n      - image: x\n        env:\n        -\n",
		"items:\n- kind: Pod\n  spec:\n    containers: [{name: a}]\n",
		"data:\n  k: |\n    text\n    \n",
		"data:\n  k: |+\n    text\n  \n",
	} {
		out = append(out, []byte(s))
	}
	return out
}

func TestParseKeep(t *testing.T) {
	fast := 0
	for _, src := range keepCorpus(t) {
		if compareKeep(t, src) {
			fast++
		}
	}
	if fast < 20 {
		t.Fatalf("only %d corpus documents took the fast path", fast)
	}
}

// FuzzParseKeep compares partial parses with yaml.v3 on arbitrary input.
func FuzzParseKeep(f *testing.F) {
	for _, src := range keepCorpus(f) {
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		compareKeep(t, src)
	})
}
