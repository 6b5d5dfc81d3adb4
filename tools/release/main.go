// Command release builds a kommons release into dist/ without Docker (see
// docs/releasing.md and internal/release): the kommons-tools image for
// linux/amd64 and linux/arm64 as an OCI image layout, the binary archives
// with checksums.txt, and the Helm charts pinned to the image's digest.
// `make release VERSION=x.y.z DRY_RUN=1` runs it. Publishing (pushing the
// image and charts) is not implemented: without --dry-run the command builds
// dist/ and then fails at that step, saying so. It is not part of the
// kommons-tools image (it lives outside cmd/).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kommons/kommons/internal/cli"
	"github.com/kommons/kommons/internal/release"
	"github.com/kommons/kommons/internal/testutil/toolcache"
)

// Exit codes.
const (
	exitOK           = 0
	exitFailed       = 1
	exitUsage        = 2
	exitNotPublished = 3 // dist/ built, publishing not implemented
)

const usage = `release builds a kommons release into --out (default dist/), reproducibly and
without Docker: image/ (OCI image layout of the kommons-tools index,
linux/amd64 + linux/arm64), kommons_<version>_<os>_<arch>.tar.gz, charts/*.tgz
(kommons-tools pinned by digest) and checksums.txt.

The revision is the git commit (HEAD); the creation time SOURCE_DATE_EPOCH,
else the commit time. A work tree with uncommitted changes is refused unless
--allow-dirty (then the revision ends in -dirty).

Exit codes: 0 built (with --dry-run), 1 failed, 2 invalid flags,
3 built but not published (publishing is not implemented yet).

Usage: release --release-version x.y.z [flags]

`

type config struct {
	version, out, registry, repository, chartRegistry, helm, cacerts string
	dryRun, allowDirty                                               bool
}

func main() {
	ctx, stop := cli.SignalContext(context.Background())
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c config
	fs := cli.NewFlagSet("release")
	fs.String(&c.version, "release-version", "KOMMONS_RELEASE_VERSION", "", "version to release, x.y.z (no leading v)")
	fs.String(&c.out, "out", "KOMMONS_RELEASE_OUT", "dist", "output directory (its earlier release outputs are replaced)")
	fs.String(&c.registry, "registry", "KOMMONS_RELEASE_REGISTRY", release.DefaultRegistry, "registry of the kommons-tools image the charts reference")
	fs.String(&c.repository, "repository", "KOMMONS_RELEASE_REPOSITORY", release.DefaultRepository, "repository of the kommons-tools image")
	fs.String(&c.chartRegistry, "chart-registry", "KOMMONS_RELEASE_CHART_REGISTRY", "", "OCI registry the charts are meant for (orthanc's postgres-init dependency becomes oci://<it>/kommons); empty keeps file://")
	fs.String(&c.helm, "helm", "KOMMONS_HELM3", "", "Helm 3 binary; empty: the harness's cached one (~/.cache/kommons/helm3-<HELM3_VERSION>/helm)")
	fs.String(&c.cacerts, "ca-certificates", "KOMMONS_RELEASE_CA_CERTIFICATES", "/etc/ssl/certs/ca-certificates.crt", "CA bundle copied into the image")
	fs.Bool(&c.dryRun, "dry-run", "KOMMONS_RELEASE_DRY_RUN", false, "build dist/ only, publish nothing")
	fs.Bool(&c.allowDirty, "allow-dirty", "KOMMONS_RELEASE_ALLOW_DIRTY", false, "release from a work tree with uncommitted changes")
	if help, err := fs.ParseArgs(args, stdout, usage); help {
		return exitOK
	} else if err != nil {
		fmt.Fprintln(stderr, "release:", err)
		return exitUsage
	}
	if err := release.CheckVersion(c.version); err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	code, err := build(ctx, c, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
	}
	return code
}

func build(ctx context.Context, c config, stdout, stderr io.Writer) (int, error) {
	repo, err := toolcache.RepoRoot()
	if err != nil {
		return exitFailed, fmt.Errorf("release: %w", err)
	}
	revision, created, err := gitState(ctx, repo, c.allowDirty)
	if err != nil {
		return exitFailed, err
	}
	if c.helm == "" {
		if c.helm, err = toolcache.Binary("helm3", "HELM3_VERSION", "helm", ""); err != nil {
			return exitFailed, fmt.Errorf("release: %w", err)
		}
	}
	out := c.out
	if !filepath.IsAbs(out) {
		if wd, err := os.Getwd(); err == nil {
			out = filepath.Join(wd, out)
		}
	}
	start := time.Now()
	res, err := release.Run(ctx, release.Options{
		Repo: repo, Out: out, Version: c.version, Revision: revision, Created: created, CACerts: c.cacerts,
		Registry: c.registry, Repository: c.repository, Helm: c.helm, ChartRegistry: c.chartRegistry,
		Logf: func(f string, a ...any) { fmt.Fprintf(stderr, f+"\n", a...) },
	})
	if err != nil {
		return exitFailed, err
	}
	fmt.Fprintf(stdout, "kommons %s (revision %s, created %s) built into %s in %.0fs\n",
		c.version, revision, created.Format(time.RFC3339), out, time.Since(start).Seconds())
	fmt.Fprintf(stdout, "image %s/%s:%s@%s (OCI layout: %s)\n", c.registry, c.repository, c.version, res.IndexDigest, filepath.Join(out, "image"))
	for _, p := range release.ImagePlatforms {
		fmt.Fprintf(stdout, "  %s %s\n", p, res.ManifestDigests[p.String()])
	}
	for _, f := range res.Files {
		fmt.Fprintf(stdout, "%s\n", filepath.Join(out, f))
	}
	fmt.Fprintf(stdout, "%s\n", filepath.Join(out, "checksums.txt"))
	if c.dryRun {
		fmt.Fprintln(stdout, "dry run: nothing published")
		return exitOK, nil
	}
	return exitNotPublished, errors.New("release: dist/ is built, but publishing (pushing the image and charts, signing) is not implemented yet: nothing was pushed (docs/releasing.md); use --dry-run (DRY_RUN=1) to build only")
}

// gitState returns the commit of HEAD and the release's creation time
// (SOURCE_DATE_EPOCH, else the commit time); uncommitted changes to tracked
// files are refused unless allowDirty.
func gitState(ctx context.Context, repo string, allowDirty bool) (string, time.Time, error) {
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = repo
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("release: git %s: %w", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out)), nil
	}
	revision, err := git("rev-parse", "HEAD")
	if err != nil {
		return "", time.Time{}, err
	}
	status, err := git("status", "--porcelain", "--untracked-files=no")
	if err != nil {
		return "", time.Time{}, err
	}
	if status != "" {
		if !allowDirty {
			return "", time.Time{}, fmt.Errorf("release: uncommitted changes (a release is built from a commit; --allow-dirty to build anyway):\n%s", status)
		}
		revision += "-dirty"
	}
	epoch := os.Getenv("SOURCE_DATE_EPOCH")
	if epoch == "" {
		if epoch, err = git("log", "-1", "--format=%ct", "HEAD"); err != nil {
			return "", time.Time{}, err
		}
	}
	sec, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("release: SOURCE_DATE_EPOCH %q: %w", epoch, err)
	}
	return revision, time.Unix(sec, 0).UTC(), nil
}
