package toolcache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestVersionsAndBinary(t *testing.T) {
	v, err := Versions()
	require.NoError(t, err)
	require.NotEmpty(t, v["KUBE_VERSION"])
	require.NotContains(t, v["MINIO_VERSION"], "#", "trailing comments are dropped")
	_, err = Version("NO_SUCH_TOOL")
	require.ErrorContains(t, err, "NO_SUCH_TOOL")

	cache := t.TempDir()
	t.Setenv("KOMMONS_CACHE", cache)
	require.Equal(t, cache, Dir())
	_, err = Binary("kwok", "KWOK_VERSION", "kwok", "")
	require.ErrorContains(t, err, "test/cluster/build.sh kwok")
	p := filepath.Join(cache, "kwok-"+v["KWOK_VERSION"], "kwok")
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, nil, 0o755))
	got, err := Binary("kwok", "KWOK_VERSION", "kwok", "")
	require.NoError(t, err)
	require.Equal(t, p, got)

	t.Setenv("KOMMONS_TEST_BIN", "/nonexistent/bin")
	_, err = Binary("kwok", "KWOK_VERSION", "kwok", "KOMMONS_TEST_BIN")
	require.ErrorContains(t, err, "KOMMONS_TEST_BIN")
}

// recorder is a TB that records how the test would have ended.
type recorder struct{ fatal, skip string }

func (r *recorder) Helper()                           {}
func (r *recorder) Fatalf(format string, args ...any) { r.fatal = fmt.Sprintf(format, args...) }
func (r *recorder) Skipf(format string, args ...any)  { r.skip = fmt.Sprintf(format, args...) }

// TestRequireFailsWhenRequiredAndSkipsOtherwise: a missing tool fails the
// test under CI=true, KOMMONS_E2E=1 or an extra variable given, and skips it
// elsewhere; both say how to build it. A present tool ends nothing.
func TestRequireFailsWhenRequiredAndSkipsOtherwise(t *testing.T) {
	t.Setenv("KOMMONS_CACHE", t.TempDir())
	for _, c := range []struct {
		env   map[string]string
		extra []string
		fails bool
	}{
		{env: map[string]string{}, fails: false},
		{env: map[string]string{"CI": "true"}, fails: true},
		{env: map[string]string{"KOMMONS_E2E": "1"}, fails: true},
		{env: map[string]string{"KOMMONS_E2E": "0"}, fails: false},
		{env: map[string]string{"KOMMONS_REQUIRE_X": "1"}, fails: false},
		{env: map[string]string{"KOMMONS_REQUIRE_X": "1"}, extra: []string{"KOMMONS_REQUIRE_X"}, fails: true},
	} {
		for _, k := range []string{"CI", "KOMMONS_E2E", "KOMMONS_REQUIRE_X"} {
			t.Setenv(k, c.env[k])
		}
		require.Equal(t, c.fails, Required(c.extra...), "%v %v", c.env, c.extra)
		if c.extra == nil {
			var r recorder
			Require(&r, "kwok", "KWOK_VERSION", "kwok", "")
			got := r.skip
			if c.fails {
				got = r.fatal
				require.Empty(t, r.skip)
			} else {
				require.Empty(t, r.fatal)
			}
			require.Contains(t, got, "test/cluster/build.sh kwok", "%v", c.env)
		}
		var r recorder
		Missing(&r, "gpg", errors.New("not on PATH"), c.extra...)
		if c.fails {
			require.Equal(t, "gpg is required here: not on PATH", r.fatal)
		} else {
			require.Equal(t, "gpg unavailable: not on PATH", r.skip)
		}
	}
	v, err := Version("KWOK_VERSION")
	require.NoError(t, err)
	p := filepath.Join(Dir(), "kwok-"+v, "kwok")
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, nil, 0o755))
	t.Setenv("KOMMONS_E2E", "1")
	var r recorder
	require.Equal(t, p, Require(&r, "kwok", "KWOK_VERSION", "kwok", ""))
	require.Equal(t, recorder{}, r)
}
