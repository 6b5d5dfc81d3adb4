package miniotest_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/testutil/miniotest"
)

// TestClientBinaryLocations checks where ClientBinary looks: KOMMONS_MC_BIN,
// then KOMMONS_CACHE/mc-<MC_VERSION>/mc, and what it says when nothing is built.
func TestClientBinaryLocations(t *testing.T) {
	t.Setenv("KOMMONS_MC_BIN", "")
	cache := t.TempDir()
	t.Setenv("KOMMONS_CACHE", cache)
	_, err := miniotest.ClientBinary()
	require.ErrorContains(t, err, "run test/cluster/build.sh mc")

	matches, err := filepath.Glob(filepath.Join("..", "..", "..", "test", "cluster", "versions.env"))
	require.NoError(t, err)
	require.Len(t, matches, 1)
	env, err := os.ReadFile(matches[0])
	require.NoError(t, err)
	require.Contains(t, string(env), "MC_VERSION=")

	// A fake build in the cache layout build.sh uses is found (the path is what matters).
	var version string
	for _, line := range strings.Split(string(env), "\n") {
		if v, ok := strings.CutPrefix(line, "MC_VERSION="); ok {
			version = strings.Fields(v)[0]
		}
	}
	require.NotEmpty(t, version)
	want := filepath.Join(cache, "mc-"+version, "mc")
	require.NoError(t, os.MkdirAll(filepath.Dir(want), 0o755))
	require.NoError(t, os.WriteFile(want, []byte("#!/bin/sh\n"), 0o755))
	got, err := miniotest.ClientBinary()
	require.NoError(t, err)
	require.Equal(t, want, got)

	t.Setenv("KOMMONS_MC_BIN", filepath.Join(cache, "absent"))
	_, err = miniotest.ClientBinary()
	require.ErrorContains(t, err, "KOMMONS_MC_BIN")
}

// TestClientBinaryRuns runs the real pinned client against the shared server.
func TestClientBinaryRuns(t *testing.T) {
	mc := miniotest.RequireClient(t)
	s := miniotest.Shared(t)
	home := t.TempDir()
	run := func(args ...string) string {
		cmd := exec.Command(mc, args...)
		cmd.Env = []string{"HOME=" + home, "MC_CONFIG_DIR=" + filepath.Join(home, ".mc")}
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "mc %v:\n%s", args, out)
		return string(out)
	}
	run("alias", "set", "t", s.Endpoint(), s.RootUser(), s.RootPassword(), "--api", "S3v4")
	b := s.NewBucketName("mc")
	run("mb", "t/"+b)
	require.Contains(t, run("ls", "t/"), b+"/")
}
