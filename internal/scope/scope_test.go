package scope

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/specfile"
)

func problems(t *testing.T, err error) string {
	t.Helper()
	var se *specfile.Error
	require.True(t, errors.As(err, &se), "%v", err)
	return strings.Join(se.Problems, "\n")
}

func TestLoad(t *testing.T) {
	s := Scope{Namespace: "imaging"}
	require.NoError(t, s.Load("spec.yaml", "", "orthanc", "PG_INIT"))
	assert.Equal(t, Scope{"imaging", "orthanc"}, s, "an empty part takes the flag")
	require.NoError(t, s.Load("spec.yaml", "imaging", "orthanc", "PG_INIT"), "a flag equal to the spec is fine")

	err := s.Load("spec.yaml", "other", "", "PG_INIT")
	assert.Contains(t, problems(t, err), `scope.namespace: "imaging" contradicts --namespace "other"`)
	assert.Contains(t, err.Error(), "spec.yaml")

	var empty Scope
	got := problems(t, empty.Load("spec.yaml", "", "", "S3_INIT"))
	assert.Contains(t, got, "scope.namespace: required (in the spec, or --namespace / S3_INIT_NAMESPACE)")
	assert.Contains(t, got, "scope.release: required (in the spec, or --release / S3_INIT_RELEASE)")
}

func TestCheck(t *testing.T) {
	for _, ok := range []Scope{{"imaging", "orthanc"}, {"sandbox-7", "Billing.v2"}, {"données", `rel'"; --`}} {
		var p specfile.Problems
		ok.Check(&p)
		require.NoError(t, p.Err("x"), ok.String())
	}
	var p specfile.Problems
	Scope{"", "a\x00b"}.Check(&p)
	got := problems(t, p.Err("x"))
	assert.Contains(t, got, "scope.namespace: required")
	assert.Contains(t, got, "scope.release: \"a\\x00b\": control characters are not allowed")
	assert.Equal(t, "imaging/orthanc", Scope{"imaging", "orthanc"}.String())
}

func TestRequireParts(t *testing.T) {
	for _, c := range []struct{ ns, rel, logical, want string }{
		{"", "r", "l", "namespace: empty name"},
		{"n", "", "l", "release: empty name"},
		{"n", "r", "", "logical name: empty name"},
	} {
		err := RequireParts(c.ns, c.rel, c.logical)
		require.ErrorIs(t, err, ErrEmpty)
		require.EqualError(t, err, c.want)
	}
	require.NoError(t, RequireParts("n", "r", "l"))
}
