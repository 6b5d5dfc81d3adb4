package nodeimages

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"

	"github.com/kommons/kommons/internal/imagefs"
	"github.com/kommons/kommons/internal/testutil/pgtest"
	"github.com/kommons/kommons/internal/testutil/toolcache"
)

// builderVersion is part of every cache key: bump it whenever the way an
// image is assembled changes, so that every cached image is rebuilt.
const builderVersion = "nodeimages/1"

// PATH values of the images.
const (
	defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	toolsPath   = "PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
	// The server binaries (initdb, pg_ctl, postgres) are PostgreSQL 18's;
	// the client tools (psql, pg_isready) Debian's 15, which talk to 18.
	postgresPath = "PATH=/usr/lib/postgresql/18/bin:/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// PostgresMajor is the PostgreSQL major version of the postgres image's
// server (charts/commons's default).
const PostgresMajor = 18

// hostCACerts is the CA bundle copied into the scratch images.
const hostCACerts = "/etc/ssl/certs/ca-certificates.crt"

type builder struct {
	ctx  context.Context
	logf func(string, ...any)
	repo string // module root
	dir  string // cache: toolcache.Dir()/images

	debian map[string]*debianBase // by key: built or loaded once per Build
}

// lock takes the cache's lock file (other test binaries may build at the
// same time), waiting while another process holds it.
func (b *builder) lock() (func(), error) {
	f, err := os.OpenFile(filepath.Join(b.dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("nodeimages: lock file: %w", err)
	}
	waiting := false
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); _ = f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("nodeimages: lock %s: %w", f.Name(), err)
		}
		if !waiting {
			b.logf("nodeimages: waiting for another build holding %s", f.Name())
			waiting = true
		}
		select {
		case <-b.ctx.Done():
			f.Close()
			return nil, fmt.Errorf("nodeimages: waiting for %s: %w", f.Name(), b.ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// entry is one file, directory or symbolic link of a layer built in memory.
type entry = imagefs.Entry

var (
	file    = imagefs.File
	dir     = imagefs.Dir
	symlink = imagefs.Symlink
)

// spec describes one image.
type spec struct {
	name, repository string
	tag              func(key string) string // from the content key (64 hex)
	base             *debianBase             // optional shared first layer
	entries          []entry                 // optional layer on top
	config           v1.Config
}

// key hashes every input of the image.
func (s spec) key() (string, error) {
	h := sha256.New()
	cfg, err := json.Marshal(s.config)
	if err != nil {
		return "", fmt.Errorf("%s: config: %w", s.name, err)
	}
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00", builderVersion, s.name, s.repository, runtime.GOARCH, cfg)
	if s.base != nil {
		fmt.Fprintf(h, "base %s\x00", s.base.key)
	}
	for _, e := range s.entries {
		if e.Link != "" {
			fmt.Fprintf(h, "%s -> %s\x00", e.Name, e.Link)
			continue
		}
		sum := sha256.Sum256(e.Data)
		fmt.Fprintf(h, "%s %o %t %x\x00", e.Name, e.Mode, e.Dir, sum)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// image returns the cached image of s, building it when missing.
func (b *builder) image(s spec) (Image, error) {
	key, err := s.key()
	if err != nil {
		return Image{}, err
	}
	img := Image{
		Name:       s.name,
		Repository: s.repository,
		Tag:        s.tag(key),
		Path:       filepath.Join(b.dir, s.name+"-"+key[:16]+".tar"),
	}
	if _, err := os.Stat(img.Path); err == nil {
		touch(img.Path) // last use, for prune
		return img, nil
	}
	start := time.Now()
	var layers []v1.Layer
	if s.base != nil {
		l, err := b.loadLayer(s.base)
		if err != nil {
			return Image{}, err
		}
		layers = append(layers, l)
	}
	if len(s.entries) > 0 {
		l, err := memoryLayer(s.entries)
		if err != nil {
			return Image{}, fmt.Errorf("%s: layer: %w", s.name, err)
		}
		layers = append(layers, l)
	}
	if err := writeImage(img, layers, s.config); err != nil {
		return Image{}, fmt.Errorf("%s: %w", s.name, err)
	}
	b.logf("nodeimages: %s built in %.1fs (%s)", img.Ref(), time.Since(start).Seconds(), filepath.Base(img.Path))
	return img, nil
}

// staleAfter is how long an unused cache entry stays (prune).
const staleAfter = 7 * 24 * time.Hour

func touch(path string) {
	now := time.Now()
	_ = os.Chtimes(path, now, now)
}

// prune removes cache entries unused for staleAfter (older images, Debian
// layers, leftovers of interrupted builds) except those in keep. Entries of
// another checkout that is still in use are touched by its Builds, so they
// stay.
func (b *builder) prune(keep map[string]bool) {
	entries, err := os.ReadDir(b.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(b.dir, e.Name())
		info, err := e.Info()
		if err != nil || keep[p] || e.Name() == ".lock" || time.Since(info.ModTime()) < staleAfter {
			continue
		}
		if e.IsDir() && strings.HasPrefix(e.Name(), "debian-build-") {
			b.removeWork(p)
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			b.logf("nodeimages: prune %s: %v", p, err)
			continue
		}
		b.logf("nodeimages: pruned %s (unused since %s)", e.Name(), info.ModTime().Format(time.DateOnly))
	}
}

// writeImage writes the image tarball atomically (temporary file, rename).
func writeImage(img Image, layers []v1.Layer, config v1.Config) error {
	i, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return fmt.Errorf("append layers: %w", err)
	}
	cf, err := i.ConfigFile()
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config = config
	if i, err = mutate.ConfigFile(i, cf); err != nil {
		return fmt.Errorf("set config: %w", err)
	}
	tag, err := name.NewTag(img.Ref())
	if err != nil {
		return fmt.Errorf("tag %s: %w", img.Ref(), err)
	}
	tmp := fmt.Sprintf("%s.tmp-%d", img.Path, os.Getpid())
	if err := tarball.WriteToFile(tmp, tag, i); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, img.Path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rename image tarball: %w", err)
	}
	return nil
}

// memoryLayer builds a gzip-compressed layer from entries (imagefs.Layer:
// modification time 0, gzip.BestSpeed).
func memoryLayer(entries []entry) (v1.Layer, error) {
	return imagefs.Layer(entries, imagefs.Options{})
}

// goBuild builds main packages of this module (static, trimmed) and returns
// each binary's content by name.
func (b *builder) goBuild(pkgs ...string) (map[string][]byte, error) {
	out, err := os.MkdirTemp(b.dir, "gobuild-")
	if err != nil {
		return nil, fmt.Errorf("go build: %w", err)
	}
	defer os.RemoveAll(out)
	args := append([]string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", out + "/"}, pkgs...)
	cmd := exec.CommandContext(b.ctx, "go", args...)
	cmd.Dir = b.repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, msg)
	}
	files, err := os.ReadDir(out)
	if err != nil {
		return nil, fmt.Errorf("go build output: %w", err)
	}
	bins := map[string][]byte{}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(out, f.Name()))
		if err != nil {
			return nil, fmt.Errorf("go build output: %w", err)
		}
		bins[f.Name()] = data
	}
	if len(bins) == 0 {
		return nil, fmt.Errorf("go build %s: no binary", strings.Join(pkgs, " "))
	}
	return bins, nil
}

// scratchBase is what every scratch image carries besides its program:
// /etc/passwd and /etc/group with root and one user, the host's CA bundle
// and a world-writable /tmp.
func scratchBase(user string, uid int) ([]entry, error) {
	ca, err := os.ReadFile(hostCACerts)
	if err != nil {
		return nil, fmt.Errorf("CA certificates for the images: %w", err)
	}
	passwd, group := imagefs.NonrootAccounts(user, uid)
	return []entry{
		file("etc/passwd", 0o644, passwd),
		file("etc/group", 0o644, group),
		file("etc/ssl/certs/ca-certificates.crt", 0o644, ca),
		dir("tmp", 0o1777),
	}, nil
}

func keyTag(prefix string) func(string) string {
	return func(key string) string { return prefix + "-" + key[:12] }
}

func (b *builder) pause() (Image, error) {
	bins, err := b.goBuild("./internal/testutil/nodeimages/pause")
	if err != nil {
		return Image{}, err
	}
	return b.image(spec{
		name: "pause", repository: "pause",
		tag:     func(string) string { return "3.10" },
		entries: []entry{file("pause", 0o755, bins["pause"])},
		config:  v1.Config{Entrypoint: []string{"/pause"}, Env: []string{defaultPath}, User: "65535:65535", WorkingDir: "/"},
	})
}

func (b *builder) tools() (Image, error) {
	bins, err := b.goBuild("./cmd/...")
	if err != nil {
		return Image{}, err
	}
	entries, err := scratchBase("nonroot", 65532)
	if err != nil {
		return Image{}, err
	}
	names := make([]string, 0, len(bins))
	for n := range bins {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		entries = append(entries, file("usr/local/bin/"+n, 0o755, bins[n]))
	}
	return b.image(spec{
		name: "kommons-tools", repository: "kommons/kommons-tools", tag: keyTag("dev"),
		entries: entries,
		config:  v1.Config{Env: []string{toolsPath}, User: "65532:65532", WorkingDir: "/"},
	})
}

func (b *builder) hello() (Image, error) {
	bins, err := b.goBuild("./internal/testutil/nodeimages/hello")
	if err != nil {
		return Image{}, err
	}
	entries, err := scratchBase("nonroot", 65532)
	if err != nil {
		return Image{}, err
	}
	entries = append(entries, file("usr/local/bin/hello", 0o755, bins["hello"]))
	return b.image(spec{
		name: "hello", repository: "kommons/hello", tag: keyTag("dev"),
		entries: entries,
		config: v1.Config{Entrypoint: []string{"/usr/local/bin/hello"}, Env: []string{toolsPath}, User: "65532:65532", WorkingDir: "/",
			ExposedPorts: map[string]struct{}{"8080/tcp": {}}},
	})
}

func (b *builder) minio() (Image, error) {
	bin, err := toolcache.Binary("minio", "MINIO_VERSION", "minio", "KOMMONS_MINIO_BIN")
	if err != nil {
		return Image{}, err
	}
	version, err := toolcache.Version("MINIO_VERSION")
	if err != nil {
		return Image{}, err
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return Image{}, fmt.Errorf("minio binary: %w", err)
	}
	entries, err := scratchBase("minio", 10001)
	if err != nil {
		return Image{}, err
	}
	entries = append(entries, file("usr/bin/minio", 0o755, data))
	return b.image(spec{
		name: "minio", repository: "kommons/minio", tag: keyTag(version),
		entries: entries,
		config: v1.Config{Entrypoint: []string{"/usr/bin/minio"}, Env: []string{defaultPath}, User: "10001:10001", WorkingDir: "/",
			ExposedPorts: map[string]struct{}{"9000/tcp": {}}},
	})
}

func (b *builder) postgres() (Image, error) {
	base, err := b.debianBase()
	if err != nil {
		return Image{}, err
	}
	script, err := os.ReadFile(filepath.Join(b.repo, "test", "cluster", "images", "postgres", "docker-entrypoint.sh"))
	if err != nil {
		return Image{}, fmt.Errorf("postgres entrypoint: %w", err)
	}
	server, err := postgresServerEntries(PostgresMajor)
	if err != nil {
		return Image{}, err
	}
	major := strconv.Itoa(PostgresMajor)
	return b.image(spec{
		name: "postgres", repository: "kommons/postgres", tag: keyTag(major),
		base: base,
		entries: append(server,
			file(strings.TrimPrefix(PostgresEntrypoint, "/"), 0o755, script),
			dir("docker-entrypoint-initdb.d", 0o755),
		),
		config: v1.Config{
			Entrypoint: []string{PostgresEntrypoint},
			Cmd:        []string{"postgres"},
			// PGDATA: the official 18 image's (a subdirectory of the volume).
			Env:        []string{postgresPath, "LANG=C.UTF-8", "PG_MAJOR=" + major, "PGDATA=/var/lib/postgresql/" + major + "/docker"},
			User:       fmt.Sprintf("%d:%d", PostgresUID, PostgresUID),
			WorkingDir: "/",
			StopSignal: "SIGINT",
			ExposedPorts: map[string]struct{}{
				"5432/tcp": {},
			},
		},
	})
}

// postgresServerEntries is the PostgreSQL server of one major version as
// layer entries under /usr/lib/postgresql/<major>/ ({bin,lib,share}): the
// self-contained npm installation pgtest runs (pgtest.BinDirFor;
// test/cluster/build.sh postgres18), relocatable since its binaries find
// their libraries through RUNPATH $ORIGIN/../lib and their share/ and
// lib/postgresql/ relative to bin/. Static libraries, headers and the ECPG
// libraries are left out.
func postgresServerEntries(major int) ([]entry, error) {
	bin, err := pgtest.BinDirFor(major)
	if err != nil {
		return nil, fmt.Errorf("postgres %d: %w", major, err)
	}
	root := filepath.Dir(bin)
	if _, err := os.Stat(filepath.Join(root, "share", "postgresql", "postgres.bki")); err != nil {
		return nil, fmt.Errorf("postgres %d: %s is not a self-contained installation (bin, lib, share): %w", major, root, err)
	}
	prefix := fmt.Sprintf("usr/lib/postgresql/%d/", major)
	var entries []entry
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		top, _, _ := strings.Cut(rel, "/")
		if top != "bin" && top != "lib" && top != "share" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil // pg-symlinks.json, .done
		}
		base := path.Base(rel)
		switch {
		case d.IsDir() && (rel == "lib/pkgconfig" || rel == "include"):
			return filepath.SkipDir
		case strings.HasSuffix(base, ".a"), strings.HasPrefix(base, "libecpg"), strings.HasPrefix(base, "libpgtypes"):
			return nil
		case d.IsDir():
			entries = append(entries, dir(prefix+rel, 0o755))
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			entries = append(entries, symlink(prefix+rel, target))
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			entries = append(entries, file(prefix+rel, int64(info.Mode().Perm()|0o444), data))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres %d: %w", major, err)
	}
	return entries, nil
}

func (b *builder) orthanc() (Image, error) {
	base, err := b.debianBase()
	if err != nil {
		return Image{}, err
	}
	return b.image(spec{
		name: "orthanc", repository: "kommons/orthanc", tag: keyTag("1.10"),
		base: base,
		config: v1.Config{
			Entrypoint: []string{OrthancCommand},
			Cmd:        []string{"/etc/orthanc/"},
			Env:        []string{defaultPath, "LANG=C.UTF-8"},
			User:       "10001:10001",
			WorkingDir: "/",
			ExposedPorts: map[string]struct{}{
				"8042/tcp": {},
				"4242/tcp": {},
			},
		},
	})
}
