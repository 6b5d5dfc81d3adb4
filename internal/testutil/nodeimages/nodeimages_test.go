package nodeimages

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/testutil/pgtest"
	"github.com/kommons/kommons/internal/testutil/toolcache"
)

// requireBuildable skips (fails under CI=true or KOMMONS_E2E=1) where the
// images cannot be built: not root, no debootstrap, no MinIO binary, no
// PostgreSQL 18 server.
func requireBuildable(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds container images (minutes when the cache is cold)")
	}
	var why string
	if os.Geteuid() != 0 {
		why = "building the Debian root filesystem needs root"
	} else if _, err := exec.LookPath("debootstrap"); err != nil {
		why = "debootstrap is not installed"
	} else if _, err := toolcache.Binary("minio", "MINIO_VERSION", "minio", "KOMMONS_MINIO_BIN"); err != nil {
		why = err.Error()
	} else if _, err := pgtest.BinDirFor(PostgresMajor); err != nil {
		why = err.Error()
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" || os.Getenv("KOMMONS_E2E") == "1" {
		t.Fatalf("the node images are required here: %s", why)
	}
	t.Skipf("node images cannot be built: %s", why)
}

var (
	buildOnce sync.Once
	built     *Set
	buildErr  error
)

// buildSet builds the images once per test binary (taking them from the
// cache when the inputs are unchanged).
func buildSet(t *testing.T) *Set {
	t.Helper()
	requireBuildable(t)
	buildOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		built, buildErr = Build(ctx, t.Logf)
	})
	require.NoError(t, buildErr)
	return built
}

// imageFiles lists an image's flattened file system: path -> tar header.
func imageFiles(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		files[strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(hdr.Name, "./"), "/"), "/")] = hdr
	}
	return files
}

func readImageFile(t *testing.T, img v1.Image, path string) string {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		require.NoError(t, err, "%s not found", path)
		if strings.TrimPrefix(strings.TrimPrefix(hdr.Name, "./"), "/") == path {
			data, err := io.ReadAll(tr)
			require.NoError(t, err)
			return string(data)
		}
	}
}

func TestBuild(t *testing.T) {
	set := buildSet(t)

	type want struct {
		repository string
		tag        string // regexp
		entrypoint []string
		user       string
		path       string // PATH prefix
		files      []string
	}
	wants := map[string]want{
		"pause": {"pause", `^3\.10$`, []string{"/pause"}, "65535:65535", "PATH=/usr/local/sbin", []string{"pause"}},
		"kommons-tools": {"kommons/kommons-tools", `^dev-[0-9a-f]{12}$`, nil, "65532:65532", "PATH=/usr/local/bin:",
			[]string{"usr/local/bin/pg-init", "usr/local/bin/s3-init", "usr/local/bin/secret-init", "usr/local/bin/wait-for-pg", "usr/local/bin/postrender",
				"etc/passwd", "etc/group", "etc/ssl/certs/ca-certificates.crt", "tmp"}},
		"hello": {"kommons/hello", `^dev-[0-9a-f]{12}$`, []string{"/usr/local/bin/hello"}, "65532:65532", "PATH=/usr/local/bin:",
			[]string{"usr/local/bin/hello", "etc/passwd", "tmp"}},
		"minio": {"kommons/minio", `^v[0-9][^:]*-[0-9a-f]{12}$`, []string{"/usr/bin/minio"}, "10001:10001", "PATH=",
			[]string{"usr/bin/minio", "etc/passwd", "etc/ssl/certs/ca-certificates.crt", "tmp"}},
		"postgres": {"kommons/postgres", `^18-[0-9a-f]{12}$`, []string{PostgresEntrypoint}, "999:999", "PATH=/usr/lib/postgresql/18/bin:/usr/lib/postgresql/15/bin:",
			[]string{"usr/local/bin/docker-entrypoint.sh", "docker-entrypoint-initdb.d", "usr/lib/postgresql/15/bin/pg_isready",
				"usr/lib/postgresql/15/bin/psql", "usr/lib/postgresql/18/bin/postgres", "usr/lib/postgresql/18/bin/initdb",
				"usr/lib/postgresql/18/bin/pg_ctl", "usr/lib/postgresql/18/lib/libpq.so.5", "usr/lib/postgresql/18/lib/postgresql/pg_trgm.so",
				"usr/lib/postgresql/18/share/postgresql/extension/pg_trgm.control", "usr/bin/sh", "usr/bin/bash", "usr/bin/setpriv", "usr/bin/python3", "var/lib/postgresql", "var/run", "run/postgresql", "tmp"}},
		"orthanc": {"kommons/orthanc", `^1\.10-[0-9a-f]{12}$`, []string{OrthancCommand}, "10001:10001", "PATH=",
			[]string{strings.TrimPrefix(OrthancCommand, "/"), strings.TrimPrefix(OrthancPluginDir, "/") + "/libOrthancPostgreSQLIndex.so",
				strings.TrimPrefix(OrthancPluginDir, "/") + "/libOrthancPostgreSQLStorage.so", "usr/bin/python3", "tmp"}},
	}
	require.Len(t, set.All(), len(wants))
	images := map[string]v1.Image{}
	for _, img := range set.All() {
		t.Run(img.Name, func(t *testing.T) {
			w, ok := wants[img.Name]
			require.True(t, ok, "unexpected image %s", img.Name)
			assert.Equal(t, w.repository, img.Repository)
			assert.Regexp(t, regexp.MustCompile(w.tag), img.Tag)
			assert.Equal(t, Registry+"/"+img.Repository+":"+img.Tag, img.Ref())

			m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(img.Path) })
			require.NoError(t, err)
			require.Len(t, m, 1)
			assert.Equal(t, []string{img.Ref()}, m[0].RepoTags)

			i, err := tarball.ImageFromPath(img.Path, nil)
			require.NoError(t, err)
			images[img.Name] = i
			cf, err := i.ConfigFile()
			require.NoError(t, err)
			assert.Equal(t, "linux", cf.OS)
			assert.Equal(t, runtime.GOARCH, cf.Architecture)
			assert.Equal(t, w.entrypoint, cf.Config.Entrypoint)
			assert.Equal(t, w.user, cf.Config.User)
			assert.Equal(t, "/", cf.Config.WorkingDir)
			require.NotEmpty(t, cf.Config.Env)
			assert.True(t, strings.HasPrefix(cf.Config.Env[0], w.path), "PATH %q", cf.Config.Env[0])

			files := imageFiles(t, i)
			for _, f := range w.files {
				_, ok := files[f]
				assert.True(t, ok, "%s has no %s", img.Name, f)
			}
			if hdr := files["tmp"]; hdr != nil {
				assert.EqualValues(t, 0o1777, hdr.Mode&0o7777, "/tmp is world-writable with the sticky bit")
			}
			for _, f := range w.files {
				if strings.Contains(f, "bin/") && files[f] != nil && files[f].Typeflag == tar.TypeReg {
					assert.NotZero(t, files[f].Mode&0o111, "%s is executable", f)
				}
			}
			switch img.Name {
			case "postgres":
				assert.Equal(t, []string{"postgres"}, cf.Config.Cmd)
				assert.Contains(t, readImageFile(t, i, "etc/passwd"), "postgres:x:999:999:")
				assert.Contains(t, readImageFile(t, i, "etc/group"), "postgres:x:999:")
				require.NotNil(t, files["var/lib/postgresql"])
				require.NotNil(t, files["run/postgresql"])
				assert.Equal(t, 999, files["var/lib/postgresql"].Uid, "the postgres user's files follow its new uid")
				assert.Equal(t, 999, files["run/postgresql"].Gid)
				assert.Nil(t, files["var/lib/postgresql/15/main"], "the install-time cluster is gone")
				assert.Nil(t, files["usr/sbin/policy-rc.d"], "policy-rc.d is gone")
				for name := range files {
					assert.False(t, strings.HasSuffix(name, ".deb"), "downloaded package %s left in the image", name)
					assert.False(t, strings.HasPrefix(name, "usr/share/man/") || strings.HasPrefix(name, "dev/"), "%s left in the image", name)
				}
			case "kommons-tools":
				assert.Contains(t, readImageFile(t, i, "etc/passwd"), "nonroot:x:65532:65532:")
			}
		})
	}

	// One Debian layer, stored once: the first layers of postgres and orthanc are the same blob.
	pg, orth := images["postgres"], images["orthanc"]
	require.NotNil(t, pg)
	require.NotNil(t, orth)
	pgLayers, err := pg.Layers()
	require.NoError(t, err)
	orthLayers, err := orth.Layers()
	require.NoError(t, err)
	require.Len(t, pgLayers, 2, "postgres: the Debian layer and the entrypoint layer")
	require.Len(t, orthLayers, 1)
	d1, err := pgLayers[0].Digest()
	require.NoError(t, err)
	d2, err := orthLayers[0].Digest()
	require.NoError(t, err)
	assert.Equal(t, d1, d2)
}

// A second Build with unchanged inputs reuses every cached tarball.
func TestBuildIsCached(t *testing.T) {
	first := buildSet(t)
	inode := func(path string) uint64 {
		st, err := os.Stat(path)
		require.NoError(t, err)
		return st.Sys().(*syscall.Stat_t).Ino
	}
	var inodes []uint64
	for _, img := range first.All() {
		inodes = append(inodes, inode(img.Path))
	}
	var logs []string
	var mu sync.Mutex
	again, err := Build(context.Background(), func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		logs = append(logs, format)
		t.Logf(format, args...)
	})
	require.NoError(t, err)
	assert.Equal(t, first, again)
	for i, img := range again.All() {
		assert.Equal(t, inodes[i], inode(img.Path), "%s was rewritten", img.Name)
	}
	for _, l := range logs {
		assert.NotContains(t, l, "built in", "nothing is rebuilt")
	}
}

func TestServe(t *testing.T) {
	set := buildSet(t)
	srv, err := Serve("127.0.0.1:0", set.All()...)
	require.NoError(t, err)
	defer func() { require.NoError(t, srv.Close()) }()

	for _, img := range set.All() {
		local, err := tarball.ImageFromPath(img.Path, nil)
		require.NoError(t, err)
		want, err := local.Digest()
		require.NoError(t, err)
		ref, err := name.NewTag(srv.Addr()+"/"+img.Repository+":"+img.Tag, name.Insecure)
		require.NoError(t, err)
		desc, err := remote.Head(ref)
		require.NoError(t, err, img.Name)
		assert.Equal(t, want, desc.Digest, "%s: digest in the registry", img.Name)
	}

	// Pull one image back completely and compare it with the tarball.
	ref, err := name.NewTag(srv.Addr()+"/"+set.Tools.Repository+":"+set.Tools.Tag, name.Insecure)
	require.NoError(t, err)
	pulled, err := remote.Image(ref)
	require.NoError(t, err)
	local, err := tarball.ImageFromPath(set.Tools.Path, nil)
	require.NoError(t, err)
	for _, i := range []v1.Image{pulled, local} {
		layers, err := i.Layers()
		require.NoError(t, err)
		require.Len(t, layers, 1)
	}
	pd, err := pulled.Digest()
	require.NoError(t, err)
	ld, err := local.Digest()
	require.NoError(t, err)
	assert.Equal(t, ld, pd)
	files := imageFiles(t, pulled) // every blob is served completely and matches its digest
	assert.NotNil(t, files["usr/local/bin/pg-init"])

	_, err = remote.Image(mustTag(t, srv.Addr()+"/kommons/nope:1", name.Insecure))
	assert.Error(t, err, "an image never pushed is not served")
}

func mustTag(t *testing.T, s string, opts ...name.Option) name.Tag {
	t.Helper()
	tag, err := name.NewTag(s, opts...)
	require.NoError(t, err)
	return tag
}
