package toolcache

import (
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
