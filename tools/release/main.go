// Command release builds a kommons release into dist/ without Docker (see
// docs/releasing.md and internal/release): the kommons-tools image for
// linux/amd64 and linux/arm64 as an OCI image layout with a CycloneDX SBOM
// per platform, the binary archives with checksums.txt, and the Helm charts
// pinned to the image's digest; then, unless --dry-run, it publishes them
// to --registry (image, cosign signature, SBOM attestations, charts).
// `make release VERSION=x.y.z [DRY_RUN=1]` and `make publish` run it. It is
// not part of the kommons-tools image (it lives outside cmd/).
package main

import (
	"context"
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
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

const usage = `release builds a kommons release into --out (default dist/), reproducibly and
without Docker: image/ (OCI image layout of the kommons-tools index,
linux/amd64 + linux/arm64), sbom/ (CycloneDX per platform),
kommons_<version>_<os>_<arch>.tar.gz, the Helm 4 plugin archives
kommons-postrender-<version>-<os>-<arch>.tgz (each with its PGP provenance
<archive>.prov when --plugin-key and --plugin-keyring name a signing key, as
helm package --sign; passphrase in HELM_KEY_PASSPHRASE), charts/*.tgz
(kommons-tools pinned by digest), checksums.txt and release.json; everything is meant for --registry
(image <registry>/kommons-tools, charts oci://<registry>/<chart>).

Then, unless --dry-run, it publishes --out to --registry: the image index
(tag = version), a cosign signature of the index and of each platform
manifest, each platform's SBOM as a signed CycloneDX attestation, and the
charts (helm push, dependencies first). --publish-only publishes what --out
holds without building. The cosign key is --key (its password in
COSIGN_PASSWORD); without one cosign signs keyless (OIDC, as in CI).
Registry credentials: Docker's config (cosign login) and helm registry login.

The revision is the git commit (HEAD); the creation time SOURCE_DATE_EPOCH,
else the commit time. A work tree with uncommitted changes is refused unless
--allow-dirty (then the revision ends in -dirty).

Exit codes: 0 built (and published, without --dry-run), 1 failed, 2 invalid flags.

Usage: release --release-version x.y.z [flags]
       release --publish-only --registry host[:port]/path [--key cosign.key]

`

type config struct {
	version, out, registry, helm, cacerts, cyclonedx, cosign, key string
	pluginKey, pluginKeyring                                      string
	dryRun, publishOnly, allowDirty, plainHTTP, noTlog            bool
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
	fs.String(&c.registry, "registry", "KOMMONS_RELEASE_REGISTRY", release.DefaultRegistry+"/kommons", "OCI registry and path of the release, host[:port][/path]: image <registry>/kommons-tools, charts oci://<registry>/<chart>")
	fs.String(&c.helm, "helm", "KOMMONS_HELM3", "", "Helm 3 binary; empty: the harness's cached one (~/.cache/kommons/helm3-<HELM3_VERSION>/helm)")
	fs.String(&c.cacerts, "ca-certificates", "KOMMONS_RELEASE_CA_CERTIFICATES", "/etc/ssl/certs/ca-certificates.crt", "CA bundle copied into the image")
	fs.String(&c.cyclonedx, "cyclonedx-gomod", "KOMMONS_CYCLONEDX_GOMOD", "", "cyclonedx-gomod binary (SBOMs); empty: the harness's cached one")
	fs.String(&c.cosign, "cosign", "KOMMONS_COSIGN", "", "cosign binary (publishing); empty: the harness's cached one")
	fs.String(&c.key, "key", "COSIGN_KEY", "", "cosign private key (file or KMS URI; password in COSIGN_PASSWORD); empty: keyless signing (OIDC)")
	fs.String(&c.pluginKey, "plugin-key", "HELM_SIGNING_KEY", "", "PGP key (user ID or a part of it) signing the Helm 4 plugin archives (<archive>.prov); empty: unsigned")
	fs.String(&c.pluginKeyring, "plugin-keyring", "HELM_SIGNING_KEYRING", "", "binary secret keyring holding --plugin-key (gpg --export-secret-keys >secring.gpg; not a .kbx keybox)")
	fs.Bool(&c.dryRun, "dry-run", "KOMMONS_RELEASE_DRY_RUN", false, "build dist/ only, publish nothing")
	fs.Bool(&c.publishOnly, "publish-only", "KOMMONS_RELEASE_PUBLISH_ONLY", false, "publish what --out holds, build nothing")
	fs.Bool(&c.plainHTTP, "plain-http", "KOMMONS_RELEASE_PLAIN_HTTP", false, "the registry speaks plain HTTP (a loopback test registry)")
	fs.Bool(&c.noTlog, "no-tlog", "KOMMONS_RELEASE_NO_TLOG", false, "key-based signing without a transparency log upload (offline registries)")
	fs.Bool(&c.allowDirty, "allow-dirty", "KOMMONS_RELEASE_ALLOW_DIRTY", false, "release from a work tree with uncommitted changes")
	if help, err := fs.ParseArgs(args, stdout, usage); help {
		return exitOK
	} else if err != nil {
		fmt.Fprintln(stderr, "release:", err)
		return exitUsage
	}
	if c.dryRun && c.publishOnly {
		fmt.Fprintln(stderr, "release: --dry-run and --publish-only exclude each other (see --help)")
		return exitUsage
	}
	if (c.pluginKey == "") != (c.pluginKeyring == "") {
		fmt.Fprintln(stderr, "release: --plugin-key (HELM_SIGNING_KEY) and --plugin-keyring (HELM_SIGNING_KEYRING) go together (see --help)")
		return exitUsage
	}
	if err := checkRegistry(c.registry); err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	if !c.publishOnly {
		if err := release.CheckVersion(c.version); err != nil {
			fmt.Fprintln(stderr, err)
			return exitUsage
		}
		if code, err := build(ctx, c, stdout, stderr); err != nil {
			fmt.Fprintln(stderr, err)
			return code
		}
	}
	if c.dryRun {
		fmt.Fprintln(stdout, "dry run: nothing published")
		return exitOK
	}
	if err := publish(ctx, c, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, err)
		return exitFailed
	}
	return exitOK
}

// checkRegistry accepts host[:port][/path], no scheme, no tag.
func checkRegistry(reg string) error {
	host, _, _ := strings.Cut(reg, "/")
	if reg == "" || strings.Contains(reg, "://") || strings.ContainsAny(reg, "@ ") || host == "" || strings.HasSuffix(reg, "/") {
		return fmt.Errorf("release: --registry %q is not host[:port][/path] (e.g. ghcr.io/kommons, 127.0.0.1:5000/kommons; no scheme)", reg)
	}
	return nil
}

// outDir is --out made absolute.
func outDir(c config) string {
	if filepath.IsAbs(c.out) {
		return c.out
	}
	if wd, err := os.Getwd(); err == nil {
		return filepath.Join(wd, c.out)
	}
	return c.out
}

func publish(ctx context.Context, c config, stdout, stderr io.Writer) error {
	var err error
	if c.helm == "" {
		if c.helm, err = toolcache.Binary("helm3", "HELM3_VERSION", "helm", ""); err != nil {
			return fmt.Errorf("release: %w", err)
		}
	}
	if c.cosign == "" {
		if c.cosign, err = toolcache.Binary("cosign", "COSIGN_VERSION", "cosign", ""); err != nil {
			return fmt.Errorf("release: %w", err)
		}
	}
	if c.key == "" {
		fmt.Fprintln(stderr, "release: no --key (COSIGN_KEY): cosign signs keyless (OIDC)")
	}
	res, err := release.Publish(ctx, release.PublishOptions{
		Dir: outDir(c), Registry: c.registry, PlainHTTP: c.plainHTTP,
		Cosign: c.cosign, Key: c.key, NoTlog: c.noTlog, Helm: c.helm,
		Logf: func(f string, a ...any) { fmt.Fprintf(stderr, f+"\n", a...) },
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "published %s (signed, SBOM attested)\n", res.Image)
	for _, ch := range res.Charts {
		fmt.Fprintln(stdout, ch)
	}
	return nil
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
	if c.cyclonedx == "" {
		if c.cyclonedx, err = toolcache.Binary("cyclonedx-gomod", "CYCLONEDX_GOMOD_VERSION", "cyclonedx-gomod", ""); err != nil {
			return exitFailed, fmt.Errorf("release: %w", err)
		}
	}
	out := outDir(c)
	host, path, _ := strings.Cut(c.registry, "/")
	repository := release.ImageName
	if path != "" {
		repository = path + "/" + release.ImageName
	}
	var signing *release.PluginSigning
	if c.pluginKey != "" {
		signing = &release.PluginSigning{Keyring: c.pluginKeyring, Key: c.pluginKey, Passphrase: []byte(os.Getenv("HELM_KEY_PASSPHRASE"))}
	} else {
		fmt.Fprintln(stderr, "release: no --plugin-key (HELM_SIGNING_KEY): the plugin archives are not signed (no .prov)")
	}
	start := time.Now()
	res, err := release.Run(ctx, release.Options{
		Repo: repo, Out: out, Version: c.version, Revision: revision, Created: created, CACerts: c.cacerts,
		Registry: host, Repository: repository, Helm: c.helm, ChartRegistry: c.registry, CycloneDX: c.cyclonedx,
		PluginSigning: signing,
		Logf:          func(f string, a ...any) { fmt.Fprintf(stderr, f+"\n", a...) },
	})
	if err != nil {
		return exitFailed, err
	}
	fmt.Fprintf(stdout, "kommons %s (revision %s, created %s) built into %s in %.0fs\n",
		c.version, revision, created.Format(time.RFC3339), out, time.Since(start).Seconds())
	fmt.Fprintf(stdout, "image %s:%s@%s (OCI layout: %s)\n", res.Manifest.Image, c.version, res.IndexDigest, filepath.Join(out, "image"))
	for _, p := range release.ImagePlatforms {
		fmt.Fprintf(stdout, "  %s %s\n", p, res.ManifestDigests[p.String()])
	}
	for _, f := range res.Files {
		fmt.Fprintf(stdout, "%s\n", filepath.Join(out, f))
	}
	fmt.Fprintf(stdout, "%s\n", filepath.Join(out, "checksums.txt"))
	return exitOK, nil
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
