package nodeimages

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPostgresServerEntries: the PostgreSQL installation becomes
// /usr/lib/postgresql/18/{bin,lib,share} with its library links, without
// static libraries, pkg-config files, ECPG or the npm package's leftovers.
func TestPostgresServerEntries(t *testing.T) {
	root := t.TempDir()
	write := func(rel string, mode os.FileMode) {
		p := filepath.Join(root, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(rel), mode))
	}
	for _, f := range []string{"bin/postgres", "bin/initdb", "bin/pg_ctl"} {
		write(f, 0o755)
	}
	for _, f := range []string{"lib/libpq.so.5.18", "lib/libecpg.so.6.18", "lib/libpq.a", "lib/pkgconfig/libpq.pc",
		"lib/postgresql/pg_trgm.so", "share/postgresql/postgres.bki", "share/postgresql/extension/pg_trgm.control",
		"pg-symlinks.json", ".done"} {
		write(f, 0o644)
	}
	require.NoError(t, os.Symlink("libpq.so.5.18", filepath.Join(root, "lib", "libpq.so.5")))
	require.NoError(t, os.Symlink("libecpg.so.6.18", filepath.Join(root, "lib", "libecpg.so.6")))
	t.Setenv("KOMMONS_PG18_BIN", filepath.Join(root, "bin"))

	entries, err := postgresServerEntries(18)
	require.NoError(t, err)
	got := map[string]entry{}
	for _, e := range entries {
		got[e.Name] = e
	}
	const p = "usr/lib/postgresql/18/"
	for _, name := range []string{"bin/postgres", "bin/initdb", "bin/pg_ctl", "lib/libpq.so.5.18", "lib/libpq.so.5",
		"lib/postgresql/pg_trgm.so", "share/postgresql/postgres.bki", "share/postgresql/extension/pg_trgm.control"} {
		assert.Contains(t, got, p+name)
	}
	for _, name := range []string{"lib/libecpg.so.6.18", "lib/libecpg.so.6", "lib/libpq.a", "lib/pkgconfig", "lib/pkgconfig/libpq.pc",
		"pg-symlinks.json", ".done"} {
		assert.NotContains(t, got, p+name)
	}
	assert.EqualValues(t, 0o755, got[p+"bin/postgres"].Mode)
	assert.Equal(t, "libpq.so.5.18", got[p+"lib/libpq.so.5"].Link)

	// The layer holds the link as a symbolic link.
	layer, err := memoryLayer(entries)
	require.NoError(t, err)
	rc, err := layer.Uncompressed()
	require.NoError(t, err)
	defer rc.Close()
	tr := tar.NewReader(rc)
	links := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		if h.Typeflag == tar.TypeSymlink {
			links[h.Name] = h.Linkname
		}
	}
	assert.Equal(t, map[string]string{p + "lib/libpq.so.5": "libpq.so.5.18"}, links)

	// Not self-contained (no share/ beside bin/): refused.
	require.NoError(t, os.RemoveAll(filepath.Join(root, "share")))
	_, err = postgresServerEntries(18)
	assert.ErrorContains(t, err, "not a self-contained installation")
}
