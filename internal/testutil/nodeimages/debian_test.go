package nodeimages

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMirrorIn(t *testing.T) {
	oneLine := `# comment
deb http://security.debian.org/debian-security bookworm-security main
deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main contrib
deb http://other.example/debian bookworm main
`
	assert.Equal(t, "http://mirror.example/debian", mirrorIn(oneLine, false))
	assert.Empty(t, mirrorIn("deb-src http://x/debian bookworm main\n", false))

	deb822 := `Types: deb
# http://snapshot.debian.org/archive/debian-security/20250520T000000Z
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main

Types: deb-src deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`
	assert.Equal(t, "http://deb.debian.org/debian", mirrorIn(deb822, true))
	assert.Empty(t, mirrorIn("Types: deb\nURIs: http://x/debian\nSuites: bookworm\nEnabled: no\n", true))
}

func TestRewriteIDs(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	passwd := "root:x:0:0:root:/root:/bin/bash\npostgres:x:100:102:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash\n"
	group := "root:x:0:\nssl-cert:x:101:postgres\npostgres:x:102:\n"
	require.NoError(t, os.WriteFile(filepath.Join(root, "etc/passwd"), []byte(passwd), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(root, "etc/group"), []byte(group), 0o644))
	owned := filepath.Join(root, "var/lib/postgresql")
	require.NoError(t, os.MkdirAll(owned, 0o755))
	setuid := filepath.Join(root, "usr/bin/tool")
	require.NoError(t, os.MkdirAll(filepath.Dir(setuid), 0o755))
	require.NoError(t, os.WriteFile(setuid, nil, 0o755))
	if os.Geteuid() == 0 {
		require.NoError(t, os.Chown(owned, 100, 102))
		require.NoError(t, os.Chmod(owned, os.ModeSetgid|0o775))
		require.NoError(t, os.Chown(setuid, 100, 0))
		require.NoError(t, os.Chmod(setuid, os.ModeSetuid|0o755))
	}

	if os.Geteuid() != 0 {
		// Without root only the files can be checked: chown fails on owned.
		_, _, err := rewriteEntry(passwd, "postgres", 2, 999, nil)
		require.NoError(t, err)
	} else {
		require.NoError(t, rewriteIDs(root, "postgres", 999, 999))
		st, err := os.Stat(owned)
		require.NoError(t, err)
		assert.Equal(t, os.ModeSetgid, st.Mode()&os.ModeSetgid, "the setgid directory keeps its bit")
		st, err = os.Stat(setuid)
		require.NoError(t, err)
		assert.Equal(t, os.ModeSetuid|0o755, st.Mode(), "chown clears set-user-ID: the mode is restored")
		assert.EqualValues(t, 999, st.Sys().(*syscall.Stat_t).Uid)
		got, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
		require.NoError(t, err)
		assert.Contains(t, string(got), "\npostgres:x:999:999:PostgreSQL administrator")
		got, err = os.ReadFile(filepath.Join(root, "etc/group"))
		require.NoError(t, err)
		assert.Contains(t, string(got), "\npostgres:x:999:\n")
		assert.Contains(t, string(got), "ssl-cert:x:101:postgres")
	}

	_, _, err := rewriteEntry("a:x:999:999::/:/bin/sh\npostgres:x:100:102::/:/bin/sh\n", "postgres", 2, 999, nil)
	assert.ErrorContains(t, err, "taken by a")
	_, _, err = rewriteEntry("a:x:1:1::/:/bin/sh\n", "postgres", 2, 999, nil)
	assert.ErrorContains(t, err, "no entry postgres")
}

func TestDpkgVersions(t *testing.T) {
	p := filepath.Join(t.TempDir(), "status")
	require.NoError(t, os.WriteFile(p, []byte(`Package: orthanc
Status: install ok installed
Version: 1.10.1+dfsg-2

Package: gone
Status: deinstall ok config-files
Version: 1
`), 0o644))
	v, err := dpkgVersions(p)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"orthanc": "1.10.1+dfsg-2"}, v)
}

// The content key covers every input: a changed byte, mode, name or config
// is another image.
func TestSpecKey(t *testing.T) {
	base := func() spec {
		return spec{name: "x", repository: "kommons/x", entries: []entry{file("usr/bin/x", 0o755, []byte("a"))},
			config: v1.Config{Entrypoint: []string{"/usr/bin/x"}}}
	}
	k0, err := base().key()
	require.NoError(t, err)
	again, err := base().key()
	require.NoError(t, err)
	assert.Equal(t, k0, again)
	for name, change := range map[string]func(*spec){
		"content": func(s *spec) { s.entries[0].Data = []byte("b") },
		"mode":    func(s *spec) { s.entries[0].Mode = 0o644 },
		"path":    func(s *spec) { s.entries[0].Name = "usr/local/bin/x" },
		"config":  func(s *spec) { s.config.User = "1:1" },
		"base":    func(s *spec) { s.base = &debianBase{key: "k"} },
		"link":    func(s *spec) { s.entries = append(s.entries, symlink("usr/bin/y", "x")) },
	} {
		s := base()
		change(&s)
		k, err := s.key()
		require.NoError(t, err)
		assert.NotEqual(t, k0, k, name)
	}
}

// prune removes entries unused for staleAfter, never the kept ones or the lock.
func TestPrune(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-staleAfter - time.Hour)
	mk := func(name string, mtime time.Time) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, nil, 0o644))
		require.NoError(t, os.Chtimes(p, mtime, mtime))
		return p
	}
	stale := mk("kommons-tools-0123456789abcdef.tar", old)
	kept := mk("postgres-0123456789abcdef.tar", old)
	recent := mk("hello-0123456789abcdef.tar", time.Now())
	lock := mk(".lock", old)
	leftover := filepath.Join(dir, "debian-build-123")
	require.NoError(t, os.MkdirAll(filepath.Join(leftover, "rootfs/etc"), 0o755))
	require.NoError(t, os.Chtimes(leftover, old, old))

	b := &builder{dir: dir, logf: t.Logf}
	b.prune(map[string]bool{kept: true})
	for p, want := range map[string]bool{stale: false, kept: true, recent: true, lock: true, leftover: false} {
		_, err := os.Stat(p)
		assert.Equal(t, want, err == nil, "%s exists", filepath.Base(p))
	}
}
