// Package toolcache locates the tools the test harnesses build once and
// cache outside the repository: the cache directory ($KOMMONS_CACHE, default
// ~/.cache/kommons), the module root, and the pinned versions in
// test/cluster/versions.env that key every cached build
// (<cache>/<tool>-<version>/), as test/cluster/build.sh lays them out.
package toolcache

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Dir is where built tools are cached: $KOMMONS_CACHE, else ~/.cache/kommons.
func Dir() string {
	if d := os.Getenv("KOMMONS_CACHE"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "kommons")
}

// RepoRoot walks up from the working directory to the directory holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("toolcache: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Versions reads every KEY=value of test/cluster/versions.env (comments
// and trailing "# ..." dropped).
func Versions() (map[string]string, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(root, "test", "cluster", "versions.env")
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("toolcache: %w", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out, sc.Err()
}

// Version returns one pinned version, e.g. Version("MINIO_VERSION").
func Version(key string) (string, error) {
	v, err := Versions()
	if err != nil {
		return "", err
	}
	if v[key] == "" {
		return "", fmt.Errorf("toolcache: %s not set in test/cluster/versions.env", key)
	}
	return v[key], nil
}

// Binary is the path of a cached tool, <cache>/<tool>-<version>/<name>,
// with the version pinned under versionKey; envOverride, when set in the
// environment, names the binary directly. A missing binary is an error that
// says how to build it.
func Binary(tool, versionKey, name, envOverride string) (string, error) {
	if envOverride != "" {
		if p := os.Getenv(envOverride); p != "" {
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("toolcache: %s: %w", envOverride, err)
			}
			return p, nil
		}
	}
	version, err := Version(versionKey)
	if err != nil {
		return "", err
	}
	p := filepath.Join(Dir(), tool+"-"+version, name)
	if _, err := os.Stat(p); err != nil {
		hint := "run test/cluster/build.sh " + tool
		if envOverride != "" {
			hint += ", or set " + envOverride
		}
		return "", fmt.Errorf("toolcache: %s %s not built (%v): %s", tool, version, err, hint)
	}
	return p, nil
}
