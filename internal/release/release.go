// Package release builds a kommons release into a directory (dist/), without
// Docker and reproducibly: the same commit, version and creation time give the
// same bytes. It produces the multi-architecture kommons-tools image as an OCI
// image layout with a CycloneDX SBOM per platform, the binary archives and
// the Helm 4 post-renderer plugin archives with their checksums, and the Helm
// charts packaged with the image pinned by digest (Run); Publish pushes that to an OCI registry, signs the image and
// attests its SBOMs with cosign. tools/release is its command;
// docs/releasing.md describes a release.
package release

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Platform is one GOOS/GOARCH pair.
type Platform struct{ OS, Arch string }

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// ImagePlatforms are the architectures of the kommons-tools image.
var ImagePlatforms = []Platform{{"linux", "amd64"}, {"linux", "arm64"}}

// ArchivePlatforms are the platforms with a binary archive.
var ArchivePlatforms = []Platform{{"linux", "amd64"}, {"linux", "arm64"}, {"darwin", "arm64"}}

// Defaults of Options.
const (
	DefaultRegistry   = "ghcr.io"
	DefaultRepository = "kommons/kommons-tools"
	DefaultSource     = "https://github.com/kommons/kommons"
)

// Options select what Run builds.
type Options struct {
	Repo     string    // module root (holds go.mod, cmd/, charts/)
	Out      string    // output directory (dist/)
	Version  string    // x.y.z, no leading "v"
	Revision string    // git commit the release is built from
	Created  time.Time // creation time of everything: SOURCE_DATE_EPOCH or the commit time, never "now"
	CACerts  string    // CA bundle copied into the image; "": /etc/ssl/certs/ca-certificates.crt

	Registry   string // registry of the kommons-tools image the charts reference (ghcr.io)
	Repository string // repository of the kommons-tools image (kommons/kommons-tools)
	Source     string // source URL (the org.opencontainers.image.source label, chart links)

	Helm          string         // Helm 3 binary packaging the charts
	ChartRegistry string         // OCI registry (and path) the charts will be pushed to: dependencies oci://<ChartRegistry> ("": file://)
	CycloneDX     string         // cyclonedx-gomod binary writing each image's SBOM ("": no SBOM)
	PluginSigning *PluginSigning // signs each plugin archive (<archive>.prov, Helm 4 provenance); nil: unsigned

	Logf func(format string, args ...any) // progress; nil: silent
}

// Result is what Run produced.
type Result struct {
	IndexDigest     string            // digest of the kommons-tools image index
	ManifestDigests map[string]string // per platform ("linux/amd64") image manifest digest
	Files           []string          // every file checksums.txt lists, relative to Out
	Manifest        Manifest          // what Out holds (also Out/release.json), for publishing
}

var versionRE = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$`)

// CheckVersion accepts a semantic version x.y.z[-pre], without "v".
func CheckVersion(v string) error {
	if v == "" {
		return fmt.Errorf("release: no version: give VERSION=x.y.z (make release VERSION=0.2.0)")
	}
	if !versionRE.MatchString(v) {
		return fmt.Errorf("release: version %q is not x.y.z[-pre] (semantic version, no leading v)", v)
	}
	return nil
}

func (o *Options) defaults() error {
	if err := CheckVersion(o.Version); err != nil {
		return err
	}
	if o.Repo == "" || o.Out == "" {
		return fmt.Errorf("release: the module root and the output directory are required")
	}
	if o.Revision == "" {
		return fmt.Errorf("release: no revision (git commit)")
	}
	if o.Created.IsZero() {
		return fmt.Errorf("release: no creation time (SOURCE_DATE_EPOCH or the commit time)")
	}
	if o.CACerts == "" {
		o.CACerts = "/etc/ssl/certs/ca-certificates.crt"
	}
	if o.Registry == "" {
		o.Registry = DefaultRegistry
	}
	if o.Repository == "" {
		o.Repository = DefaultRepository
	}
	if o.Source == "" {
		o.Source = DefaultSource
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	o.Created = o.Created.UTC()
	return nil
}

// Run builds the release into o.Out: image/ (OCI layout of the kommons-tools
// image index), kommons_<version>_<os>_<arch>.tar.gz, charts/*.tgz and
// checksums.txt. Earlier outputs in o.Out are replaced.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	var signer *PluginSigner // loaded first: a wrong key fails before the build
	if o.PluginSigning != nil {
		s, err := NewPluginSigner(*o.PluginSigning)
		if err != nil {
			return nil, err
		}
		signer = s
	}
	if err := cleanOut(o.Out); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "kommons-release-")
	if err != nil {
		return nil, fmt.Errorf("release: work directory: %w", err)
	}
	defer os.RemoveAll(work)

	start := time.Now()
	bins := map[Platform]Binaries{}
	for _, p := range platforms() {
		b, err := BuildBinaries(ctx, o.Repo, o.Version, p, filepath.Join(work, "bin", p.OS+"_"+p.Arch))
		if err != nil {
			return nil, err
		}
		bins[p] = b
	}
	o.Logf("release: binaries for %d platforms built in %.1fs", len(bins), time.Since(start).Seconds())

	res := &Result{ManifestDigests: map[string]string{}}
	start = time.Now()
	ca, err := os.ReadFile(o.CACerts)
	if err != nil {
		return nil, fmt.Errorf("release: CA certificates for the image: %w", err)
	}
	idx, err := Image(bins, ImageMeta{Version: o.Version, Revision: o.Revision, Source: o.Source, Created: o.Created}, ca)
	if err != nil {
		return nil, err
	}
	if err := WriteLayout(filepath.Join(o.Out, "image"), idx, o.Registry+"/"+o.Repository+":"+o.Version); err != nil {
		return nil, err
	}
	d, err := idx.Digest()
	if err != nil {
		return nil, fmt.Errorf("release: index digest: %w", err)
	}
	res.IndexDigest = d.String()
	if res.ManifestDigests, err = ManifestDigests(idx); err != nil {
		return nil, err
	}
	o.Logf("release: image index %s written to %s in %.1fs", res.IndexDigest, filepath.Join(o.Out, "image"), time.Since(start).Seconds())
	res.Manifest = Manifest{
		Version: o.Version, Revision: o.Revision, Image: o.Registry + "/" + o.Repository,
		ChartRegistry: o.ChartRegistry, IndexDigest: res.IndexDigest,
	}
	for _, p := range ImagePlatforms {
		pi := PlatformImageInfo{Platform: p.String(), Digest: res.ManifestDigests[p.String()]}
		if o.CycloneDX != "" {
			start = time.Now()
			meta := ImageMeta{Version: o.Version, Revision: o.Revision, Source: o.Source, Created: o.Created}
			sbom, err := SBOM(ctx, o.CycloneDX, meta, p, bins[p])
			if err != nil {
				return nil, err
			}
			pi.SBOM = filepath.ToSlash(filepath.Join("sbom", SBOMName(p)))
			if err := writeFile(filepath.Join(o.Out, pi.SBOM), sbom); err != nil {
				return nil, err
			}
			res.Files = append(res.Files, pi.SBOM)
			o.Logf("release: SBOM of %s written to %s in %.1fs", p, pi.SBOM, time.Since(start).Seconds())
		}
		res.Manifest.Images = append(res.Manifest.Images, pi)
	}

	docs := map[string][]byte{}
	for _, f := range []string{"LICENSE", "README.md"} {
		if docs[f], err = os.ReadFile(filepath.Join(o.Repo, f)); err != nil {
			return nil, fmt.Errorf("release: %w", err)
		}
	}
	for _, p := range ArchivePlatforms {
		name := ArchiveName(o.Version, p)
		if err := WriteArchive(filepath.Join(o.Out, name), strings.TrimSuffix(name, ".tar.gz"), bins[p], docs, o.Created); err != nil {
			return nil, err
		}
		res.Files = append(res.Files, name)
	}
	for _, p := range ArchivePlatforms {
		name := PluginArchiveName(o.Version, p)
		if err := WritePluginArchive(filepath.Join(o.Out, name), o.Repo, o.Version, p, bins[p]["postrender"], o.Created); err != nil {
			return nil, err
		}
		res.Files = append(res.Files, name)
		if signer != nil {
			if err := signer.Sign(filepath.Join(o.Out, name)); err != nil {
				return nil, err
			}
			res.Files = append(res.Files, name+".prov")
		}
	}
	o.Logf("release: %d binary archives and %d Helm 4 plugin archives written (signed: %t)", len(ArchivePlatforms), len(ArchivePlatforms), signer != nil)

	if o.Helm != "" {
		start = time.Now()
		charts, err := PackageCharts(ctx, ChartOptions{
			Helm: o.Helm, Repo: o.Repo, Out: filepath.Join(o.Out, "charts"), Work: filepath.Join(work, "charts"),
			Version: o.Version, Image: o.Registry + "/" + o.Repository, Digest: res.IndexDigest,
			Source: o.Source, ChartRegistry: o.ChartRegistry, Created: o.Created,
		})
		if err != nil {
			return nil, err
		}
		for _, c := range charts {
			res.Files = append(res.Files, filepath.Join("charts", c))
			res.Manifest.Charts = append(res.Manifest.Charts, filepath.ToSlash(filepath.Join("charts", c)))
		}
		o.Logf("release: %d charts packaged in %.1fs", len(charts), time.Since(start).Seconds())
	}

	if err := WriteChecksums(o.Out, res.Files); err != nil {
		return nil, err
	}
	if err := res.Manifest.Write(o.Out); err != nil {
		return nil, err
	}
	return res, nil
}

// platforms is every platform something is built for, image's first.
func platforms() []Platform {
	out := append([]Platform(nil), ImagePlatforms...)
	for _, p := range ArchivePlatforms {
		found := false
		for _, q := range out {
			found = found || q == p
		}
		if !found {
			out = append(out, p)
		}
	}
	return out
}

// cleanOut removes what an earlier Run left in out (only its own outputs).
func cleanOut(out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	old, _ := filepath.Glob(filepath.Join(out, "kommons_*.tar.gz"))
	plugins, _ := filepath.Glob(filepath.Join(out, PluginName+"-*.tgz"))
	provs, _ := filepath.Glob(filepath.Join(out, PluginName+"-*.tgz.prov"))
	old = append(old, plugins...)
	old = append(old, provs...)
	old = append(old, filepath.Join(out, "image"), filepath.Join(out, "charts"), filepath.Join(out, "sbom"),
		filepath.Join(out, "checksums.txt"), filepath.Join(out, ManifestFile))
	for _, p := range old {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("release: clean %s: %w", p, err)
		}
	}
	return nil
}

// WriteChecksums writes dir/checksums.txt: one "sha256  name" line per file
// (names relative to dir, sorted), the format `sha256sum -c` checks.
func WriteChecksums(dir string, files []string) error {
	names := append([]string(nil), files...)
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			return fmt.Errorf("release: checksum: %w", err)
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("release: checksum %s: %w", n, err)
		}
		fmt.Fprintf(&b, "%s  %s\n", hex.EncodeToString(h.Sum(nil)), filepath.ToSlash(n))
	}
	if err := os.WriteFile(filepath.Join(dir, "checksums.txt"), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	return nil
}
