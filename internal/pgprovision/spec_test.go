package pgprovision

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDecodeSpecUnknownFieldsNamePath(t *testing.T) {
	_, err := DecodeSpec("spec.yaml", []byte(`
scope: {namespace: imaging, release: orthanc, team: x}
roles:
  - name: orthanc
    passwordFile: /p
    passwrd: oops
databases:
  - name: orthanc
    owner: orthanc
    extension: [pg_trgm]
`))
	var se *SpecError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "spec.yaml", se.Source)
	assert.Equal(t, []string{
		`databases[0].extension: unknown field "extension"`,
		`roles[0].passwrd: unknown field "passwrd"`,
		`scope.team: unknown field "team"`,
	}, se.Problems)
}

func TestDecodeSpecShapeAndSyntax(t *testing.T) {
	for name, doc := range map[string]string{
		"list expected":  "roles: {name: x}",
		"object needed":  "roles: [x]",
		"duplicate key":  "roles: []\nroles: []",
		"not yaml":       "roles: [",
		"empty document": "",
		"wrong type":     "roles: [{name: x, passwordFile: /p, connectionLimit: lots}]",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeSpec("s.yaml", []byte(doc))
			var se *SpecError
			require.ErrorAs(t, err, &se)
			assert.Contains(t, err.Error(), "s.yaml")
		})
	}
}

func TestValidateNamesFieldPaths(t *testing.T) {
	limit := -2
	s := &Spec{
		Scope: Scope{Namespace: "imaging"},
		Roles: []Role{{Name: "a", ConnectionLimit: &limit, ReclaimPolicy: "forever"}, {Name: "a", PasswordFile: "/p"}, {Name: "x\x00y", PasswordFile: "/p"}},
		Databases: []Database{{Name: "d", Owner: "nobody", Extensions: []string{"pg_trgm", "bad ext", "pg_trgm"},
			Schemas: []string{"public", "pg_x", "Upper", "ok", "ok", "information_schema", "pg_catalog"}, ReclaimPolicy: "drop"}, {Name: strings.Repeat("n", 300), Owner: "a"}},
	}
	err := s.Validate("spec.yaml")
	var se *SpecError
	require.ErrorAs(t, err, &se)
	want := []string{
		"scope.release: required",
		"roles[0].passwordFile: required",
		"roles[0].connectionLimit: -2: want -1 (no limit) to 262143",
		"roles[0].reclaimPolicy: \"forever\"",
		"roles[1].name: duplicate role \"a\"",
		"roles[2].name: \"x\\x00y\": control characters",
		"databases[0].owner: \"nobody\" is not a role",
		"databases[0].extensions[1]: \"bad ext\"",
		"databases[0].extensions[2]: duplicate \"pg_trgm\"",
		"databases[0].schemas[0]: public exists already",
		"databases[0].schemas[1]: \"pg_x\": a system schema",
		"databases[0].schemas[5]: \"information_schema\": a system schema",
		"databases[0].schemas[6]: \"pg_catalog\": a system schema",
		"databases[0].schemas[2]: \"Upper\"",
		"databases[0].schemas[4]: duplicate \"ok\"",
		"databases[0].reclaimPolicy: \"drop\"",
		"databases[1].name: 300 bytes",
	}
	joined := strings.Join(se.Problems, "\n")
	for _, w := range want {
		assert.Contains(t, joined, w)
	}
	assert.Len(t, se.Problems, len(want), joined)
}

// TestValidateConnectionLimitRange: PostgreSQL takes -1 to 2147483647 but
// cannot run more than 262143 connections (MAX_BACKENDS); a value past
// either end was sent to the server and failed there (exit 1).
func TestValidateConnectionLimitRange(t *testing.T) {
	for _, v := range []int{-1, 0, 60, 262143} {
		s := &Spec{Scope: Scope{Namespace: "imaging", Release: "orthanc"}, Roles: []Role{{Name: "o", PasswordFile: "/p", ConnectionLimit: &v}}}
		require.NoError(t, s.Validate("spec.yaml"), "%d", v)
	}
	for _, v := range []int{-2, 262144, 2147483647, 2147483648, -2147483649} {
		s := &Spec{Scope: Scope{Namespace: "imaging", Release: "orthanc"}, Roles: []Role{{Name: "o", PasswordFile: "/p", ConnectionLimit: &v}}}
		require.EqualError(t, s.Validate("spec.yaml"),
			fmt.Sprintf("invalid spec spec.yaml: roles[0].connectionLimit: %d: want -1 (no limit) to 262143", v))
	}
	_, err := DecodeSpec("spec.yaml", []byte("roles: [{name: o, passwordFile: /p, connectionLimit: 99999999999999999999}]"))
	require.ErrorContains(t, err, "roles[0].connectionLimit: 100000000000000000000: want a whole number")
}

func TestValidateDefaults(t *testing.T) {
	s := &Spec{Scope: Scope{Namespace: "imaging", Release: "orthanc"}, Roles: []Role{{Name: "o", PasswordFile: "/p"}}, Databases: []Database{{Name: "o", Owner: "o"}}}
	require.NoError(t, s.Validate("x"))
	assert.Equal(t, -1, *s.Roles[0].ConnectionLimit)
	assert.Equal(t, ReclaimRetain, s.Roles[0].ReclaimPolicy)
	assert.Equal(t, ReclaimRetain, s.Databases[0].ReclaimPolicy)
}

func TestNewPlanPasswordProblemsNeverShowThePassword(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad")
	require.NoError(t, os.WriteFile(bad, []byte("sécret-ünïcode\n"), 0o600))
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	s := &Spec{Scope: Scope{Namespace: "imaging", Release: "orthanc"}, Roles: []Role{
		{Name: "a", PasswordFile: bad}, {Name: "b", PasswordFile: empty}, {Name: "c", PasswordFile: filepath.Join(dir, "missing")}}}
	_, err := NewPlan("spec.yaml", s)
	var se *SpecError
	require.ErrorAs(t, err, &se)
	require.Len(t, se.Problems, 3, err.Error())
	assert.Contains(t, se.Problems[0], "roles[0].passwordFile: "+bad+": password has a character outside printable ASCII")
	assert.Contains(t, se.Problems[1], "roles[1].passwordFile")
	assert.Contains(t, se.Problems[2], "roles[2].passwordFile")
	assert.NotContains(t, err.Error(), "sécret")
}

func TestNewPlanPasswordEnv(t *testing.T) {
	t.Setenv("PG_INIT_TEST_PW_OK", "s3cret-from-env")
	t.Setenv("PG_INIT_TEST_PW_EMPTY", "")
	t.Setenv("PG_INIT_TEST_PW_BAD", "sécret-ünïcode-long")
	s := &Spec{Scope: Scope{Namespace: "imaging", Release: "orthanc"}, Roles: []Role{{Name: "ok", PasswordEnv: "PG_INIT_TEST_PW_OK"}}}
	p, err := NewPlan("spec.yaml", s)
	require.NoError(t, err)
	assert.Equal(t, []string{"s3cret-from-env"}, p.Secrets())

	s = &Spec{Scope: Scope{Namespace: "imaging", Release: "orthanc"}, Roles: []Role{
		{Name: "a", PasswordEnv: "PG_INIT_TEST_PW_EMPTY"}, {Name: "b", PasswordEnv: "PG_INIT_TEST_PW_UNSET_XYZ"}, {Name: "c", PasswordEnv: "PG_INIT_TEST_PW_BAD"}}}
	_, err = NewPlan("spec.yaml", s)
	var se *SpecError
	require.ErrorAs(t, err, &se)
	require.Len(t, se.Problems, 3, err.Error())
	assert.Contains(t, se.Problems[0], "roles[0].passwordEnv: environment variable PG_INIT_TEST_PW_EMPTY is empty")
	assert.Contains(t, se.Problems[1], "roles[1].passwordEnv: environment variable PG_INIT_TEST_PW_UNSET_XYZ is not set")
	assert.Contains(t, se.Problems[2], "roles[2].passwordEnv: environment variable PG_INIT_TEST_PW_BAD: password has a character outside printable ASCII")
	assert.NotContains(t, err.Error(), "sécret")
}

func TestValidatePasswordSource(t *testing.T) {
	s := &Spec{Scope: Scope{Namespace: "imaging", Release: "orthanc"}, Roles: []Role{
		{Name: "both", PasswordFile: "/p", PasswordEnv: "PW"}, {Name: "bad", PasswordEnv: "1-PW"}, {Name: "none"}}}
	err := s.Validate("spec.yaml")
	var se *SpecError
	require.ErrorAs(t, err, &se)
	require.Len(t, se.Problems, 3, err.Error())
	assert.Contains(t, se.Problems[0], "roles[0].passwordEnv: set passwordFile or passwordEnv, not both")
	assert.Contains(t, se.Problems[1], `roles[1].passwordEnv: "1-PW" is not an environment variable name`)
	assert.Contains(t, se.Problems[2], "roles[2].passwordFile: required")
}

func TestMarkerRoundTrip(t *testing.T) {
	m := NewMarker(Scope{Namespace: "imaging", Release: "orthanc"}, `o'r"thanc`, ReclaimDelete)
	got, ok := ParseMarker(m.String())
	require.True(t, ok)
	assert.Equal(t, m, got)
	assert.True(t, strings.HasPrefix(m.String(), `{"managedBy":"kommons/pg-init",`), "prune's LIKE filter relies on this prefix")
	_, ok = ParseMarker("created by hand")
	assert.False(t, ok)
	_, ok = ParseMarker(`{"managedBy":"someone-else"}`)
	assert.False(t, ok)
}

func TestSCRAMMatches(t *testing.T) {
	v, err := SCRAMVerifier("pencil", []byte("0123456789abcdef"), 4096)
	require.NoError(t, err)
	assert.True(t, SCRAMMatches(v, "pencil"))
	assert.False(t, SCRAMMatches(v, "pencil2"))
	assert.False(t, SCRAMMatches("md5abcdef", "pencil"))
	assert.False(t, SCRAMMatches("", "pencil"))
	assert.False(t, SCRAMMatches("SCRAM-SHA-256$x:y$z", "pencil"))
	v2, err := NewSCRAMVerifier("pencil")
	require.NoError(t, err)
	assert.NotEqual(t, v, v2, "fresh salt")
	assert.True(t, SCRAMMatches(v2, "pencil"))
}
