package release

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// ImageName is the kommons-tools repository's last path element: a release
// for registry R pushes the image to R/kommons-tools and the charts to
// oci://R/<chart>.
const ImageName = "kommons-tools"

// PublishOptions select where and how Publish pushes a release directory.
type PublishOptions struct {
	Dir       string // the release directory Run wrote (dist/)
	Registry  string // host[:port][/path] the release was built for (Manifest.ChartRegistry)
	PlainHTTP bool   // the registry speaks HTTP, not HTTPS (a loopback test registry)

	Cosign string // cosign binary
	Key    string // cosign private key (file or KMS URI; its password in COSIGN_PASSWORD); "": keyless (OIDC, CI)
	NoTlog bool   // do not upload to the transparency log (key-based, offline registries)
	Helm   string // Helm 3 binary pushing the charts (the user's registry credentials)

	Logf func(format string, args ...any) // progress; nil: silent
}

// Published is what Publish pushed.
type Published struct {
	Image  string   // repository@index digest
	Charts []string // oci://... references with their version tag
}

// Publish pushes the release in o.Dir to o.Registry: the kommons-tools
// image index (tag = version) with go-containerregistry, a cosign signature
// of the index and of every platform manifest, each platform's SBOM as a
// signed CycloneDX attestation on its manifest, then every chart with
// `helm push`, dependencies first. The directory must have been built for
// o.Registry: its charts pin the image there and their dependencies point
// there. Registry credentials are the user's (Docker's config for the image
// and cosign, Helm's registry login for the charts).
func Publish(ctx context.Context, o PublishOptions) (*Published, error) {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	m, err := ReadManifest(o.Dir)
	if err != nil {
		return nil, err
	}
	reg := strings.TrimSuffix(o.Registry, "/")
	if reg == "" {
		return nil, fmt.Errorf("release: publish: no registry (REGISTRY=host[:port]/path)")
	}
	if want := reg + "/" + ImageName; m.Image != want || m.ChartRegistry != reg {
		return nil, fmt.Errorf("release: publish: %s was built for image %s and charts in %q, not %s: rebuild it with make release VERSION=%s REGISTRY=%s (the charts pin the image reference)",
			o.Dir, m.Image, m.ChartRegistry, reg, m.Version, reg)
	}
	if o.Cosign == "" || o.Helm == "" {
		return nil, fmt.Errorf("release: publish: cosign and helm are required")
	}
	var nameOpts []name.Option
	if o.PlainHTTP {
		nameOpts = append(nameOpts, name.Insecure)
	}
	tag, err := name.NewTag(m.Image+":"+m.Version, nameOpts...)
	if err != nil {
		return nil, fmt.Errorf("release: publish: %w", err)
	}
	idx, err := layoutIndex(filepath.Join(o.Dir, "image"), m.IndexDigest)
	if err != nil {
		return nil, err
	}
	remoteOpts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	if err := remote.WriteIndex(tag, idx, remoteOpts...); err != nil {
		return nil, fmt.Errorf("release: publish: push %s: %w", tag, err)
	}
	desc, err := remote.Head(tag, remoteOpts...)
	if err != nil {
		return nil, fmt.Errorf("release: publish: %s: %w", tag, err)
	}
	if desc.Digest.String() != m.IndexDigest {
		return nil, fmt.Errorf("release: publish: the registry has %s for %s, the release %s", desc.Digest, tag, m.IndexDigest)
	}
	image := m.Image + "@" + m.IndexDigest
	o.Logf("release: pushed %s (%s)", tag, m.IndexDigest)

	// --recursive signs the index and each platform manifest it lists.
	if err := o.cosign(ctx, "sign", "--recursive", image); err != nil {
		return nil, err
	}
	o.Logf("release: signed %s and its platform manifests", image)
	for _, pi := range m.Images {
		if pi.SBOM == "" {
			continue
		}
		ref := m.Image + "@" + pi.Digest
		if err := o.cosign(ctx, "attest", "--type", "cyclonedx", "--predicate", filepath.Join(o.Dir, pi.SBOM), ref); err != nil {
			return nil, err
		}
		o.Logf("release: SBOM of %s attested on %s", pi.Platform, ref)
	}

	out := &Published{Image: image}
	for _, c := range m.Charts {
		args := []string{"push", filepath.Join(o.Dir, c), "oci://" + reg}
		if o.PlainHTTP {
			args = append(args, "--plain-http")
		}
		cmd := exec.CommandContext(ctx, o.Helm, args...)
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("release: publish: helm %s: %w\n%s", strings.Join(args, " "), err, b)
		}
		chart := strings.TrimSuffix(filepath.Base(c), "-"+m.Version+".tgz")
		out.Charts = append(out.Charts, "oci://"+reg+"/"+chart+":"+m.Version)
		o.Logf("release: pushed chart oci://%s/%s %s", reg, chart, m.Version)
	}
	return out, nil
}

// cosign runs `cosign <verb> --yes [--key] [--tlog-upload=false]
// [--allow-http-registry] args...`; the key's password comes from the
// environment (COSIGN_PASSWORD), never from an argument.
func (o PublishOptions) cosign(ctx context.Context, verb string, args ...string) error {
	full := []string{verb, "--yes"}
	if o.Key != "" {
		full = append(full, "--key", o.Key)
	}
	if o.NoTlog {
		full = append(full, "--tlog-upload=false")
	}
	if o.PlainHTTP {
		full = append(full, "--allow-http-registry")
	}
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, o.Cosign, full...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	cmd.Env = os.Environ()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("release: publish: cosign %s: %w\n%s", strings.Join(full, " "), err, b.Bytes())
	}
	return nil
}

// layoutIndex reads the image index with digest from the OCI layout dir.
func layoutIndex(dir, digest string) (v1.ImageIndex, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("release: publish: image layout %s: %w", dir, err)
	}
	h, err := v1.NewHash(digest)
	if err != nil {
		return nil, fmt.Errorf("release: publish: %w", err)
	}
	root, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("release: publish: image layout %s: %w", dir, err)
	}
	idx, err := root.ImageIndex(h)
	if err != nil {
		return nil, fmt.Errorf("release: publish: image layout %s: %w", dir, err)
	}
	return idx, nil
}
