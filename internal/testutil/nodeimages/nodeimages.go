// Package nodeimages builds the container images the real-node e2e runs,
// without Docker, and serves them from an in-process registry.
//
// Images (Build; all linux/runtime.GOARCH, each one image tarball in the
// docker-save format that go-containerregistry and `ctr images import` read):
//
//   - pause: the sandbox container (./pause), from scratch.
//   - kommons-tools: this module's ./cmd/... (pg-init, s3-init, secret-init, wait-for-pg,
//     postrender) in /usr/local/bin, from scratch, user nonroot (65532).
//   - hello: the example module's web server (./hello), from scratch.
//   - minio: the cached MinIO server binary (test/cluster/build.sh minio) as
//     /usr/bin/minio, the entrypoint, from scratch.
//   - postgres and orthanc: one Debian bookworm root filesystem (debootstrap,
//     Debian's PostgreSQL 15, Orthanc 1.10 and its PostgreSQL plugins,
//     python3) packed into ONE layer both images share. The postgres image
//     adds a layer with the PostgreSQL 18 server (PostgresMajor; the npm
//     installation pgtest uses, test/cluster/build.sh postgres18) in
//     /usr/lib/postgresql/18 ahead of Debian's 15 on PATH (whose psql and
//     pg_isready it keeps), and the docker-entrypoint.sh of
//     test/cluster/images/postgres.
//
// Every image is cached under toolcache.Dir()/images/, keyed by the content
// of its inputs (binaries, files, package list, configuration and
// builderVersion), and written atomically: a second Build with unchanged
// inputs reuses every tarball. Entries unused for a week are pruned. The Debian root filesystem needs root and
// debootstrap; the rest builds anywhere Go does.
package nodeimages

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kommons/kommons/internal/testutil/toolcache"
)

// Registry is the registry host of every image reference (test values set
// it as image.registry; the node's containerd mirrors it to Serve's address).
const Registry = "registry.kommons.test"

// Facts of the Debian root filesystem, verified by Build, for chart values.
const (
	// OrthancCommand is Debian's Orthanc executable (charts/orthanc
	// orthanc.command).
	OrthancCommand = "/usr/sbin/Orthanc"
	// OrthancPluginDir is where Debian links the Orthanc plugins
	// (libOrthancPostgreSQLIndex.so, libOrthancPostgreSQLStorage.so, ...;
	// charts/orthanc orthanc.plugins.directory).
	OrthancPluginDir = "/usr/share/orthanc/plugins"
	// PostgresUID is the uid and gid of the postgres user in the PostgreSQL
	// image (the official image's; charts/commons runs it so).
	PostgresUID = 999
	// PostgresEntrypoint is the PostgreSQL image's entrypoint.
	PostgresEntrypoint = "/usr/local/bin/docker-entrypoint.sh"
)

// Image is one built image.
type Image struct {
	Name       string // short name, e.g. "postgres"
	Repository string // chart value image.repository, e.g. "kommons/postgres"
	Tag        string // chart value image.tag, e.g. "15-<12 hex of the content key>"
	Path       string // docker-save tarball on disk (cached)
}

// Ref is the image reference pods use: Registry/Repository:Tag.
func (i Image) Ref() string { return Registry + "/" + i.Repository + ":" + i.Tag }

// Set is every image of the real-node e2e.
type Set struct {
	Pause, Tools, Hello, Postgres, MinIO, Orthanc Image
}

// All lists the images of the set (for Serve).
func (s *Set) All() []Image {
	return []Image{s.Pause, s.Tools, s.Hello, s.Postgres, s.MinIO, s.Orthanc}
}

// Build builds every image, or takes it from the cache when its inputs are
// unchanged; logf (may be nil) reports progress and build times. Concurrent
// Builds (other test binaries) wait for each other on a lock file.
func Build(ctx context.Context, logf func(string, ...any)) (*Set, error) {
	repo, err := toolcache.RepoRoot()
	if err != nil {
		return nil, fmt.Errorf("nodeimages: %w", err)
	}
	b, unlock, err := lockedBuilder(ctx, logf)
	if err != nil {
		return nil, err
	}
	defer unlock()
	b.repo = repo

	start := time.Now()
	var s Set
	steps := []struct {
		img   *Image
		build func() (Image, error)
	}{
		{&s.Pause, b.pause},
		{&s.Tools, b.tools},
		{&s.Hello, b.hello},
		{&s.MinIO, b.minio},
		{&s.Postgres, b.postgres},
		{&s.Orthanc, b.orthanc},
	}
	for _, step := range steps {
		stepStart := time.Now()
		img, err := step.build()
		if err != nil {
			return nil, fmt.Errorf("nodeimages: %w", err)
		}
		*step.img = img
		b.logf("nodeimages: %s ready in %.1fs", img.Ref(), time.Since(stepStart).Seconds())
	}
	keep := map[string]bool{}
	for _, img := range s.All() {
		keep[img.Path] = true
	}
	for _, base := range b.debian {
		keep[base.path] = true
	}
	b.prune(keep)
	b.logf("nodeimages: %d images ready in %.1fs (cache %s)", len(steps), time.Since(start).Seconds(), b.dir)
	return &s, nil
}

// lockedBuilder returns a builder on the image cache holding the cache's
// lock (call unlock when done); logf may be nil.
func lockedBuilder(ctx context.Context, logf func(string, ...any)) (*builder, func(), error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	b := &builder{ctx: ctx, logf: logf, dir: filepath.Join(toolcache.Dir(), "images")}
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("nodeimages: cache directory: %w", err)
	}
	unlock, err := b.lock()
	if err != nil {
		return nil, nil, err
	}
	return b, unlock, nil
}
