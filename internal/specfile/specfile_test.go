package specfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

type item struct {
	Name    string   `json:"name"`
	Enabled *bool    `json:"enabled,omitempty"`
	Tags    []string `json:"tags,omitempty"`
}

type doc struct {
	Scope struct {
		Namespace string `json:"namespace"`
	} `json:"scope"`
	Items []item `json:"items"`
}

func TestDecodeValid(t *testing.T) {
	var d doc
	require.NoError(t, Decode("ok.yaml", []byte("scope: {namespace: a}\nitems:\n- name: x\n  enabled: true\n  tags: [p, q]\n"), &d))
	require.Equal(t, "a", d.Scope.Namespace)
	require.Equal(t, []string{"p", "q"}, d.Items[0].Tags)
}

func TestDecodeReportsEveryProblemWithItsPath(t *testing.T) {
	var d doc
	err := Decode("bad.yaml", []byte("scope: {namespace: a, nmespace: b}\nitems:\n- name: 7\n  enabled: maybe\n  extra: 1\n- tags: x\n"), &d)
	var se *Error
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, "bad.yaml", se.Source)
	require.Equal(t, []string{
		`items[0].enabled: must be true or false`,
		`items[0].extra: unknown field "extra"`,
		`items[0].name: must be a string (quote it)`,
		`items[1].tags: must be a list`,
		`scope.nmespace: unknown field "nmespace"`,
	}, se.Problems)
	require.Contains(t, err.Error(), "invalid spec bad.yaml: 5 problems")
}

func TestDecodeRejectsDuplicateKeysAndEmptyDocuments(t *testing.T) {
	var d doc
	err := Decode("dup.yaml", []byte("scope: {namespace: a}\nscope: {namespace: b}\n"), &d)
	require.ErrorContains(t, err, "dup.yaml")
	require.ErrorContains(t, err, "scope")
	require.ErrorContains(t, Decode("empty.yaml", []byte("# nothing\n"), &d), "empty document")
	require.ErrorContains(t, Load("/nonexistent/spec.yaml", &d), "/nonexistent/spec.yaml")
}

func TestSharedValidators(t *testing.T) {
	p := ""
	require.NoError(t, DefaultReclaim(&p))
	require.Equal(t, ReclaimRetain, p)
	p = "destroy"
	require.ErrorContains(t, DefaultReclaim(&p), "want retain or delete")
	require.NoError(t, CheckLogicalName("Orthanc; DROP TABLE x --"))
	require.ErrorContains(t, CheckLogicalName(""), "required")
	require.ErrorContains(t, CheckLogicalName("a\nb"), "control characters")
	require.ErrorContains(t, CheckLogicalName(string([]byte{0xff})), "UTF-8")
	long := make([]byte, MaxLogicalNameLen+1)
	for i := range long {
		long[i] = 'a'
	}
	require.ErrorContains(t, CheckLogicalName(string(long)), "at most")
}

func TestProblemsCollectsEveryProblemWithItsPath(t *testing.T) {
	var p Problems
	require.NoError(t, p.Err("spec.yaml"), "no problems, no error")

	seen := map[string]bool{}
	p.Unique(seen, "items[0].name", "item", "a")
	p.Unique(seen, "items[1].name", "item", "b")
	p.Unique(seen, "items[2].name", "item", "a")
	p.Unique(map[string]bool{"x": true}, "items[0].tags[1]", "", "x")
	p.LogicalName("items[3].name", "")
	p.LogicalName("items[4].name", "fine; even with a quote '")
	policy := ""
	p.Reclaim("items[0].reclaimPolicy", &policy)
	require.Equal(t, ReclaimRetain, policy, "an empty policy defaults to retain")
	bad := "shred"
	p.Reclaim("items[1].reclaimPolicy", &bad)
	p.Add("scope.namespace", "%q: want a namespace", "Bad_NS")

	var e *Error
	require.True(t, errors.As(p.Err("spec.yaml"), &e))
	require.Equal(t, "spec.yaml", e.Source)
	require.Equal(t, []string{
		`items[2].name: duplicate item "a"`,
		`items[0].tags[1]: duplicate "x"`,
		`items[3].name: required`,
		`items[1].reclaimPolicy: "shred": want retain or delete`,
		`scope.namespace: "Bad_NS": want a namespace`,
	}, e.Problems)
}

func TestProblemsFromFlag(t *testing.T) {
	var p Problems
	empty, same, other := "", "imaging", "imaging"
	p.FromFlag(&empty, "scope.namespace", "namespace", "imaging")
	require.Equal(t, "imaging", empty, "an empty field takes the flag's value")
	p.FromFlag(&same, "scope.namespace", "namespace", "imaging")
	p.FromFlag(&other, "scope.namespace", "namespace", "")
	require.NoError(t, p.Err("flags"), "agreeing or absent flags are fine")
	p.FromFlag(&other, "scope.namespace", "namespace", "billing")
	require.Equal(t, "imaging", other, "the spec's value is kept")
	require.EqualError(t, p.Err("spec.yaml"), `invalid spec spec.yaml: scope.namespace: "imaging" contradicts --namespace "billing"`)
}

// TestDecodeIntegersNameTheirPath: a number field that is not a whole
// number, or does not fit the Go type, is a problem at its path (it was a
// bare unmarshal error, or a value silently accepted and refused later by
// the server).
func TestDecodeIntegersNameTheirPath(t *testing.T) {
	type limits struct {
		Small *int32 `json:"small,omitempty"`
		Big   *int   `json:"big,omitempty"`
	}
	type spec struct {
		Items []limits `json:"items"`
	}
	var s spec
	require.NoError(t, Decode("ok.yaml", []byte("items: [{small: -2147483648, big: 9007199254740992}, {small: 2147483647}]"), &s))
	require.Equal(t, int32(-2147483648), *s.Items[0].Small)
	err := Decode("bad.yaml", []byte("items: [{small: 2147483648}, {small: 1.5}, {small: lots}, {big: 1e30}, {big: true}]"), &s)
	var se *Error
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, []string{
		`items[0].small: 2147483648: want a whole number from -2147483648 to 2147483647`,
		`items[1].small: 1.5: want a whole number from -2147483648 to 2147483647`,
		`items[2].small: must be a number`,
		`items[3].big: 1e+30: want a whole number from -9223372036854775808 to 9223372036854775807`,
		`items[4].big: must be a number`,
	}, se.Problems)
}

func TestLoadAsAndDecodeAs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spec.yaml")
	require.NoError(t, os.WriteFile(path, []byte("scope: {namespace: a}\n"), 0o600))
	d, err := LoadAs[doc](path)
	require.NoError(t, err)
	require.Equal(t, "a", d.Scope.Namespace)
	_, err = LoadAs[doc](path + ".missing")
	require.ErrorContains(t, err, path+".missing")
	_, err = DecodeAs[doc]("bad.yaml", []byte("scope: {nmespace: a}\n"))
	var se *Error
	require.ErrorAs(t, err, &se)
	require.Contains(t, se.Problems[0], "scope.nmespace: unknown field")
}
