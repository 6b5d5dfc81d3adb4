package postrender_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"

	"github.com/kommons/kommons/pkg/postrender"
	"github.com/kommons/kommons/pkg/postrender/internal/yamlstream"
	"github.com/kommons/kommons/test/bench/postrender/manifestgen"
)

func addSeeds(f *testing.F) {
	inputs, _ := filepath.Glob("testdata/hazards/*.yaml")
	for _, in := range inputs {
		data, err := os.ReadFile(in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(manifestgen.Generate(20))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("kind: Pod\nspec:\n  containers: []\n  nodeSelector:\n"))
	f.Add([]byte("kind: Pod\nspec: {containers: [], tolerations: [{key: a}]}\n"))
	f.Add([]byte("apiVersion: v1\nkind: PersistentVolumeClaim\nspec:\n  storageClassName: ~\n  x: |\n    a\n\n"))
}

// FuzzProcess checks, for any input: no panic; on success the output has the
// same documents in the same order, untouched documents are byte-identical,
// changed documents decode to the same objects apart from the placement
// fields, and a second run changes nothing.
func FuzzProcess(f *testing.F) {
	addSeeds(f)
	eng := testEngine(f, postrender.Options{})
	f.Fuzz(func(t *testing.T, in []byte) {
		res, err := eng.Process(in)
		if err != nil {
			var de *postrender.DocumentError
			if !errors.As(err, &de) {
				t.Fatalf("error is not a *DocumentError: %v", err)
			}
			if strings.Contains(err.Error(), "this is a bug") {
				// The input parsed, but the edit could not be made
				// faithfully: a defect of the splice, not of the input.
				t.Fatalf("%v\n%q", err, in)
			}
			return
		}
		fuzzFidelity(t, in, res)
		again, err := eng.Process(res.Bytes())
		if err != nil {
			t.Fatalf("output fails a second run: %v\n%q", err, res.Bytes())
		}
		if !bytes.Equal(again.Bytes(), res.Bytes()) {
			t.Fatalf("not idempotent:\n%q\n%q", res.Bytes(), again.Bytes())
		}
	})
}

func fuzzFidelity(t *testing.T, in []byte, res *postrender.Result) {
	before, after := yamlstream.Split(in), yamlstream.Split(res.Bytes())
	if len(before) != len(after) {
		t.Fatalf("document count changed: %d -> %d\n%q\n%q", len(before), len(after), in, res.Bytes())
	}
	changed := map[int]bool{}
	for _, c := range res.Changes {
		changed[c.Document] = true
	}
	for i := range before {
		if !changed[i] {
			if !bytes.Equal(before[i].Raw, after[i].Raw) {
				t.Fatalf("document %d changed without a reported change", i)
			}
			continue
		}
		var a, b any
		if err := yaml.Unmarshal(before[i].Raw, &a); err != nil {
			continue // e.g. keys a Go map cannot hold; the node-level check in splice covers it
		}
		if err := yaml.Unmarshal(after[i].Raw, &b); err != nil {
			t.Fatalf("document %d: output does not decode: %v\n%s", i, err, after[i].Raw)
		}
		if !reflect.DeepEqual(strip(a), strip(b)) {
			t.Fatalf("document %d: changes outside placement fields:\n%s\n---\n%s", i, before[i].Raw, after[i].Raw)
		}
	}
}

// FuzzSplit checks that splitting never loses or reorders a byte.
func FuzzSplit(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		var joined []byte
		for i, d := range yamlstream.Split(in) {
			if d.Index != i {
				t.Fatalf("index %d at position %d", d.Index, i)
			}
			if i > 0 && !bytes.HasPrefix(d.Raw, []byte("---")) {
				t.Fatalf("document %d does not start with ---: %q", i, d.Raw)
			}
			joined = append(joined, d.Raw...)
		}
		if !bytes.Equal(joined, in) {
			t.Fatalf("split/join changed the input")
		}
	})
}
