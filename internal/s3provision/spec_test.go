package s3provision

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func specErr(t *testing.T, err error) *SpecError {
	t.Helper()
	var se *SpecError
	require.True(t, errors.As(err, &se), "want *SpecError, got %v", err)
	return se
}

func TestDecodeSpecStrict(t *testing.T) {
	cases := map[string]struct{ yaml, want string }{
		"unknown top":    {"scope: {namespace: a, release: b}\nbucket: []\n", `bucket: unknown field "bucket"`},
		"unknown nested": {"buckets:\n  - name: x\n    versionning: true\n", `buckets[0].versionning: unknown field "versionning"`},
		"unknown user":   {"users:\n  - name: x\n    secretKey: hunter2\n", `users[0].secretKey: unknown field "secretKey"`},
		"wrong shape":    {"buckets: {name: x}\n", "buckets: must be a list"},
		"wrong scalar":   {"buckets:\n  - name: x\n    versioning: yes-please\n", "buckets[0].versioning: must be true or false"},
		"number name":    {"buckets:\n  - name: 12\n", "buckets[0].name: must be a string"},
		"duplicate key":  {"buckets: []\nbuckets: []\n", "not valid YAML"},
		"empty":          {"", "empty document"},
		"not yaml":       {"buckets: [\n", "not valid YAML"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeSpec("spec.yaml", []byte(c.yaml))
			require.Error(t, err)
			require.Contains(t, err.Error(), c.want)
			require.Equal(t, "spec.yaml", specErr(t, err).Source)
		})
	}
}

func TestValidateFieldPaths(t *testing.T) {
	yes := true
	s := &Spec{Scope: Scope{Namespace: "Imaging", Release: ""},
		Buckets: []Bucket{{Name: "a", Versioning: &yes}, {Name: "a", ReclaimPolicy: "keep"}, {Name: "bad\x00"}},
		Users:   []User{{Name: "u", Buckets: []string{"a", "nope", "a"}}, {Name: "v"}}}
	err := s.Validate("spec.yaml")
	probs := strings.Join(specErr(t, err).Problems, "\n")
	for _, want := range []string{
		`scope.namespace: "Imaging": want a Kubernetes namespace name`,
		"scope.release: required",
		`buckets[1].name: duplicate bucket "a"`,
		`buckets[1].reclaimPolicy: "keep": want retain or delete`,
		"buckets[2].name:",
		"users[0].secretKeyFile: required",
		`users[0].buckets[1]: "nope" is not a bucket of this spec`,
		`users[0].buckets[2]: duplicate "a"`,
		"users[1].buckets: required",
	} {
		require.Contains(t, probs, want)
	}
}

func TestValidateDefaults(t *testing.T) {
	s := &Spec{Scope: Scope{Namespace: "imaging", Release: "orthanc"}, Buckets: []Bucket{{Name: "orthanc"}}}
	require.NoError(t, s.Validate("x"))
	require.Equal(t, ReclaimRetain, s.Buckets[0].ReclaimPolicy)
	require.Error(t, (&Spec{Scope: s.Scope}).Validate("x"), "nothing to provision")
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func TestNewPlan(t *testing.T) {
	key := writeFile(t, "s3cr3t-key-0123\n")
	spec, err := DecodeSpec("spec.yaml", []byte(`
scope: {namespace: imaging, release: orthanc}
buckets:
  - name: orthanc
    versioning: false
  - name: "Hostile Name/../x"
    reclaimPolicy: delete
users:
  - name: orthanc
    secretKeyFile: `+key+`
    buckets: [orthanc, "Hostile Name/../x"]
`))
	require.NoError(t, err)
	plan, err := NewPlan("spec.yaml", spec)
	require.NoError(t, err)
	require.Equal(t, "imaging-orthanc-orthanc", plan.Buckets[0].Physical)
	require.NotNil(t, plan.Buckets[0].Versioning)
	require.False(t, *plan.Buckets[0].Versioning)
	require.Regexp(t, `^imaging-orthanc-hostile-name-x--[0-9a-f]{8}$`, plan.Buckets[1].Physical)
	u := plan.Users[0]
	require.Equal(t, "imaging-orthanc-orthanc", u.AccessKey)
	require.Equal(t, PolicyPrefix+"imaging-orthanc-orthanc", u.PolicyName)
	require.Equal(t, []string{plan.Buckets[0].Physical, plan.Buckets[1].Physical}, u.PhysicalBuckets)
	require.Equal(t, []string{"s3cr3t-key-0123"}, plan.Secrets())
}

func TestNewPlanSecretKeyErrorsNeverShowTheKey(t *testing.T) {
	for name, content := range map[string]string{
		"short":  "abc\n",
		"long":   strings.Repeat("k", 41),
		"spaces": "has spaces in it",
		"binary": "abcdefgh\x01ij",
	} {
		t.Run(name, func(t *testing.T) {
			key := writeFile(t, content)
			spec := &Spec{Scope: Scope{Namespace: "n", Release: "r"}, Buckets: []Bucket{{Name: "b"}},
				Users: []User{{Name: "u", SecretKeyFile: key, Buckets: []string{"b"}}}}
			_, err := NewPlan("spec.yaml", spec)
			require.Error(t, err)
			require.Contains(t, err.Error(), "users[0].secretKeyFile: "+key)
			require.NotContains(t, err.Error(), strings.TrimSpace(content))
		})
	}
	spec := &Spec{Scope: Scope{Namespace: "n", Release: "r"}, Buckets: []Bucket{{Name: "b"}},
		Users: []User{{Name: "u", SecretKeyFile: "/does/not/exist", Buckets: []string{"b"}}}}
	_, err := NewPlan("spec.yaml", spec)
	require.ErrorContains(t, err, "users[0].secretKeyFile: /does/not/exist")
}

func TestPolicyMarkerRoundTrip(t *testing.T) {
	scope := Scope{Namespace: "imaging", Release: "orthanc"}
	p := userPolicy(scope, PlannedUser{ReclaimPolicy: ReclaimRetain, PhysicalBuckets: []string{"b1", "b2"}})
	back, err := parsePolicy(p.bytes())
	require.NoError(t, err)
	owner, ok := back.owner()
	require.True(t, ok)
	require.Equal(t, "imaging/orthanc", owner)
	require.True(t, back.equivalent(p))
	// The server may return single values as strings and reorder lists.
	reordered := `{"Version":"2012-10-17","Statement":[{"Sid":"` + p.Statement[0].Sid + `","Effect":"Allow","Action":["s3:ListBucketVersions","s3:ListBucketMultipartUploads","s3:ListBucket","s3:GetBucketLocation"],"Resource":["arn:aws:s3:::b2","arn:aws:s3:::b1"]},` +
		`{"Sid":"objects","Effect":"Allow","Action":` + mustJSON(ObjectActions) + `,"Resource":["arn:aws:s3:::b1/*","arn:aws:s3:::b2/*"]}]}`
	q, err := parsePolicy([]byte(reordered))
	require.NoError(t, err)
	require.True(t, q.equivalent(p))
	other := userPolicy(scope, PlannedUser{ReclaimPolicy: ReclaimRetain, PhysicalBuckets: []string{"b1"}})
	require.False(t, other.equivalent(p))
}

func TestIsTransientDoesNotRetryCancellation(t *testing.T) {
	require.False(t, IsTransient(nil))
	require.False(t, IsTransient(errors.New("plain")))
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestScopeMustFitTheMarkers: on top of the shared scope rule (which
// pg-init's JSON markers need alone), s3-init's markers carry the scope as
// "<namespace>/<release>", so its parts must be Kubernetes names: a "/"
// would make two scopes' markers equal.
func TestScopeMustFitTheMarkers(t *testing.T) {
	for scope, want := range map[Scope]string{
		{Namespace: "team/a", Release: "r"}:       `scope.namespace: "team/a": want a Kubernetes namespace name`,
		{Namespace: "team", Release: "a/r"}:       `scope.release: "a/r": want a Helm release name`,
		{Namespace: "sandbox-7", Release: "B.v2"}: `scope.release: "B.v2": want a Helm release name`,
		{Namespace: "ns\x00", Release: "release"}: `scope.namespace: "ns\x00": control characters are not allowed`,
	} {
		err := (&Spec{Scope: scope, Buckets: []Bucket{{Name: "b"}}}).Validate("spec.yaml")
		probs := specErr(t, err).Problems
		require.Len(t, probs, 1, "%v: one problem per part, not the shared rule's and the marker's", probs)
		require.Contains(t, probs[0], want)
	}
	require.NoError(t, (&Spec{Scope: Scope{Namespace: "sandbox-7", Release: "billing.v2"}, Buckets: []Bucket{{Name: "b"}}}).Validate("x"))
}
