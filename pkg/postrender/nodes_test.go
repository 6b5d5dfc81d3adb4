package postrender

import (
	"encoding/json"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// TestFlowTextFastPath checks that the direct JSON rendering of string trees
// equals the decode-and-marshal rendering it replaces, and that other trees
// take the slow path.
func TestFlowTextFastPath(t *testing.T) {
	slow := func(n *yaml.Node) string {
		var v any
		if err := n.Decode(&v); err != nil {
			t.Fatal(err)
		}
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	for _, src := range []string{
		`{b: x, a: "y<&>", "é": "\u2028", z: [p, "q\"r", {k: v}], e: {}, f: []}`,
		`[{key: dedicated, operator: Equal, value: db, effect: NoSchedule}]`,
		`{agentpool: db, "a b": "it's"}`,
		`[]`,
	} {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
			t.Fatal(err)
		}
		n := doc.Content[0]
		got, ok := appendStringJSON(nil, n)
		if !ok {
			t.Fatalf("%s: not on the fast path", src)
		}
		if want := slow(n); string(got) != want {
			t.Errorf("%s:\n got %s\nwant %s", src, got, want)
		}
	}
	for _, src := range []string{`{a: 1}`, `[true]`, `{a: x, a: y}`, `{<<: {a: b}}`, `[~]`} {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
			t.Fatal(err)
		}
		if _, ok := appendStringJSON(nil, doc.Content[0]); ok {
			t.Errorf("%s: fast path taken for a tree with non-string scalars or duplicate keys", src)
		}
	}
}

// TestIsMergeKey checks that only a plain (or !!merge-tagged) "<<" is a
// merge key, as yaml.v3 and the fast reader tag it; quoted it is a string.
func TestIsMergeKey(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("<<: {a: 1}\n\"<<\": 2\n'<<': 3\n!!str << : 4\n!!merge '<<': {b: 5}\n"), &doc); err != nil {
		t.Fatal(err)
	}
	m := doc.Content[0]
	want := []bool{true, false, false, false, true}
	for i, w := range want {
		if got := isMergeKey(m.Content[2*i]); got != w {
			t.Errorf("key %d (%q, tag %s): isMergeKey = %v, want %v", i, m.Content[2*i].Value, m.Content[2*i].Tag, got, w)
		}
	}
}
