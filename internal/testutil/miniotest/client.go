package miniotest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ClientBinary finds the MinIO client (mc) the backup tests run: $KOMMONS_MC_BIN,
// else $KOMMONS_CACHE (default ~/.cache/kommons)/mc-<MC_VERSION>/mc with
// the version read from test/cluster/versions.env of the enclosing module.
// `test/cluster/build.sh mc` builds it there. The error of a missing binary
// says how to build it.
func ClientBinary() (string, error) {
	if p := os.Getenv("KOMMONS_MC_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("miniotest: KOMMONS_MC_BIN: %w", err)
		}
		return p, nil
	}
	version, err := toolVersion("MC_VERSION")
	if err != nil {
		return "", err
	}
	cache := os.Getenv("KOMMONS_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("miniotest: no home directory for the cache: %w", err)
		}
		cache = filepath.Join(home, ".cache", "kommons")
	}
	p := filepath.Join(cache, "mc-"+version, "mc")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("miniotest: mc %s not built (%v): run test/cluster/build.sh mc, or set KOMMONS_MC_BIN", version, err)
	}
	return p, nil
}

// RequireClient returns ClientBinary's path. Like New, under CI=true (or
// KOMMONS_E2E=1, KOMMONS_REQUIRE_MINIO=1) a missing client fails the test;
// elsewhere it skips the test with the reason.
func RequireClient(t testing.TB) string {
	t.Helper()
	p, err := ClientBinary()
	if err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("KOMMONS_E2E") == "1" || os.Getenv("KOMMONS_REQUIRE_MINIO") == "1" {
			t.Fatalf("the MinIO client is required here: %v", err)
		}
		t.Skipf("MinIO client unavailable: %v", err)
	}
	return p
}

// toolVersion reads KEY=value from test/cluster/versions.env, found by
// walking up from the working directory to the module root (a trailing
// "# comment" is dropped).
func toolVersion(key string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("miniotest: module root (go.mod) not found above the working directory")
		}
		dir = parent
	}
	path := filepath.Join(dir, "test", "cluster", "versions.env")
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("miniotest: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), key+"="); ok {
			v, _, _ = strings.Cut(v, "#")
			if v = strings.TrimSpace(v); v != "" {
				return v, nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("miniotest: read %s: %w", path, err)
	}
	return "", fmt.Errorf("miniotest: %s not set in %s", key, path)
}
