// Package toolcache locates the tools the test harnesses build once and
// cache outside the repository: the cache directory ($KOMMONS_CACHE, default
// ~/.cache/kommons), the module root, and the pinned versions in
// test/cluster/versions.env that key every cached build
// (<cache>/<tool>-<version>/), as test/cluster/build.sh lays them out.
//
// It is also the one place that decides what a test does when a tool or a
// harness is missing (docs/testing.md): Require and Missing fail the test
// under CI=true or KOMMONS_E2E=1 (make test, make e2e) and skip it, with the
// reason, elsewhere. The package does not import package testing, since
// tools/release links it: TB is the part of testing.TB they use.
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

// Binary is the path of a cached tool, <cache>/<tool>-<version>/<name>
// (name "" for a tool that is a directory, such as flux-crds), with the
// version pinned under versionKey; envOverride, when set in the
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

// EnvRequire, set to 1, makes a missing tool or harness fail the test
// instead of skipping it (make test and make e2e set it; CI=true implies it).
const EnvRequire = "KOMMONS_E2E"

// Required reports whether a missing tool or harness fails the test rather
// than skipping it: under CI=true or KOMMONS_E2E=1, or when one of the
// extra environment variables (e.g. KOMMONS_REQUIRE_PG) is 1.
func Required(extra ...string) bool {
	if os.Getenv("CI") == "true" || os.Getenv(EnvRequire) == "1" {
		return true
	}
	for _, env := range extra {
		if os.Getenv(env) == "1" {
			return true
		}
	}
	return false
}

// TB is the part of testing.TB that Require and Missing use.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// Missing ends the test because what is unavailable (why says how to get
// it): it fails the test when Required(extra...) and skips it otherwise.
func Missing(t TB, what string, why error, extra ...string) {
	t.Helper()
	if Required(extra...) {
		t.Fatalf("%s is required here: %v", what, why)
		return
	}
	t.Skipf("%s unavailable: %v", what, why)
}

// Require returns Binary's path; a missing tool fails the test under
// CI=true or KOMMONS_E2E=1 and skips it elsewhere, saying how to build it.
func Require(t TB, tool, versionKey, name, envOverride string) string {
	t.Helper()
	p, err := Binary(tool, versionKey, name, envOverride)
	if err != nil {
		Missing(t, tool, err)
	}
	return p
}
