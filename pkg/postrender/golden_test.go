package postrender_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"

	"github.com/kommons/kommons/pkg/postrender"
	"github.com/kommons/kommons/pkg/postrender/internal/yamlstream"
	"github.com/kommons/kommons/pkg/postrender/policy"
)

var update = flag.Bool("update", false, "rewrite golden files")

func testEngine(t testing.TB, opts postrender.Options) *postrender.Engine {
	t.Helper()
	p, err := policy.Load("testdata/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	opts.Namespace = "team-a"
	e, err := postrender.New(p, opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestGoldenHazards runs every file of the hazard corpus and compares the
// output and the change report with the golden files, then checks the
// fidelity and idempotency properties on the result. Inputs that must be
// refused have a NAME.error golden holding the error message instead.
func TestGoldenHazards(t *testing.T) {
	inputs, err := filepath.Glob("testdata/hazards/*.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no hazard inputs: %v", err)
	}
	for _, workers := range []int{1, 2} {
		eng := testEngine(t, postrender.Options{Workers: workers})
		for _, in := range inputs {
			name := strings.TrimSuffix(filepath.Base(in), ".yaml")
			t.Run(fmt.Sprintf("%s/workers=%d", name, workers), func(t *testing.T) {
				src, err := os.ReadFile(in)
				if err != nil {
					t.Fatal(err)
				}
				res, err := eng.Process(src)
				errGolden := strings.TrimSuffix(in, ".yaml") + ".error"
				if _, statErr := os.Stat(errGolden); statErr == nil || err != nil {
					// A refused input: the golden is the error message.
					if err == nil {
						t.Fatalf("%s: want an error, got none; output:\n%s", errGolden, res.Bytes())
					}
					var de *postrender.DocumentError
					if !errors.As(err, &de) {
						t.Fatalf("error %T is not a *DocumentError: %v", err, err)
					}
					golden(t, errGolden, []byte(err.Error()+"\n"))
					return
				}
				var report strings.Builder
				for _, c := range res.Changes {
					fmt.Fprintf(&report, "doc %d %s:%d %s/%s %s: %q -> %q (%s)", c.Document, c.Source, c.Line, c.Kind, c.Name, c.Path, c.Old, c.New, c.Rule)
					if c.Warning != "" {
						fmt.Fprintf(&report, " WARNING %s", c.Warning)
					}
					report.WriteString("\n")
				}
				golden(t, strings.TrimSuffix(in, ".yaml")+".golden", res.Bytes())
				golden(t, strings.TrimSuffix(in, ".yaml")+".report", []byte(report.String()))
				assertFidelity(t, src, res)
				again, err := eng.Process(res.Bytes())
				if err != nil {
					t.Fatalf("second run: %v", err)
				}
				if !bytes.Equal(again.Bytes(), res.Bytes()) || len(again.Changes) != 0 {
					t.Fatalf("not idempotent: second run made %d changes:\n%s", len(again.Changes), again.Bytes())
				}
			})
		}
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestGoldenHazards -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

// placementKeys are the only mapping keys the engine may add or change.
var placementKeys = map[string]bool{
	"nodeSelector": true, "tolerations": true, "affinity": true,
	"topologySpreadConstraints": true, "storageClassName": true,
}

// assertFidelity checks that the stream keeps its documents in order, that
// documents without a reported change are byte-identical, and that changed
// documents decode to the same objects once placement fields are removed.
func assertFidelity(t testing.TB, in []byte, res *postrender.Result) {
	t.Helper()
	before, after := yamlstream.Split(in), yamlstream.Split(res.Bytes())
	if len(before) != len(after) {
		t.Fatalf("document count changed: %d -> %d", len(before), len(after))
	}
	changed := map[int]bool{}
	for _, c := range res.Changes {
		changed[c.Document] = true
	}
	for i := range before {
		if !changed[i] {
			if !bytes.Equal(before[i].Raw, after[i].Raw) {
				t.Fatalf("document %d changed without a reported change:\n%q\n%q", i, before[i].Raw, after[i].Raw)
			}
			continue
		}
		a, b := decodeStripped(t, before[i].Raw), decodeStripped(t, after[i].Raw)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("document %d: changes outside placement fields:\nbefore %#v\nafter  %#v", i, a, b)
		}
	}
}

func decodeStripped(t testing.TB, raw []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decode: %v\n%s", err, raw)
	}
	return strip(v)
}

func strip(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, val := range x {
			if !placementKeys[k] {
				out[k] = strip(val)
			}
		}
		return out
	case map[any]any:
		out := map[any]any{}
		for k, val := range x {
			if ks, ok := k.(string); !ok || !placementKeys[ks] {
				out[k] = strip(val)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = strip(x[i])
		}
		return out
	}
	return v
}
