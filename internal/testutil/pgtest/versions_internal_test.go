package pgtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCanSearchAndCopyTree: a directory under a 0700 parent is out of
// another user's reach, and the copy made for that user keeps files, modes
// and relative symbolic links.
func TestCanSearchAndCopyTree(t *testing.T) {
	const other = 54321 // a uid owning nothing here
	base := t.TempDir()
	priv := filepath.Join(base, "priv")
	inst := filepath.Join(priv, "postgresql-x")
	require.NoError(t, os.MkdirAll(filepath.Join(inst, "bin"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(inst, "lib"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(inst, "bin", "postgres"), []byte("#!/bin/sh\n"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(inst, "lib", "libpq.so.5.18"), []byte("lib"), 0o644))
	require.NoError(t, os.Symlink("libpq.so.5.18", filepath.Join(inst, "lib", "libpq.so.5")))
	require.NoError(t, os.Chmod(base, 0o755))
	require.NoError(t, os.Chmod(filepath.Dir(base), 0o711)) // t.TempDir's root is 0700

	require.NoError(t, os.Chmod(priv, 0o700))
	require.False(t, canSearch(filepath.Join(inst, "bin"), other, other))
	require.NoError(t, os.Chmod(priv, 0o711))
	require.True(t, canSearch(filepath.Join(inst, "bin"), other, other))

	dst := filepath.Join(base, "copy")
	require.NoError(t, os.Mkdir(dst, 0o755))
	require.NoError(t, copyTree(inst, dst))
	fi, err := os.Stat(filepath.Join(dst, "bin", "postgres"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o755), fi.Mode().Perm())
	l, err := os.Readlink(filepath.Join(dst, "lib", "libpq.so.5"))
	require.NoError(t, err)
	require.Equal(t, "libpq.so.5.18", l)
	require.Equal(t, filepath.Join(dst, "lib"), bundledLibDir(filepath.Join(dst, "bin")))
	require.Empty(t, bundledLibDir("/usr/lib/postgresql/15/bin"), "Debian's lib/ holds server modules only")
}
