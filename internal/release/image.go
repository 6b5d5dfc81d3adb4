package release

import (
	"fmt"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kommons/kommons/internal/imagefs"
)

// Image layout of kommons-tools: what the charts run (command: ["pg-init"]
// through PATH, /usr/local/bin/orthanc-tiering) and who runs it.
const (
	BinDir      = "usr/local/bin"
	NonrootUser = "nonroot"
	NonrootID   = 65532
	imagePath   = "PATH=/usr/local/bin"
	entrypoint  = "/usr/local/bin/wait-for-pg"
	imageTitle  = "kommons-tools"
	description = "pg-init, wait-for-pg, s3-init, secret-init, postrender and orthanc-tiering for kommons"
)

// ImageMeta is what the image's labels and times say.
type ImageMeta struct {
	Version, Revision, Source string
	Created                   time.Time
}

// Labels are the image's org.opencontainers.image.* labels (also the index's
// annotations).
func (m ImageMeta) Labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       imageTitle,
		"org.opencontainers.image.description": description,
		"org.opencontainers.image.version":     m.Version,
		"org.opencontainers.image.revision":    m.Revision,
		"org.opencontainers.image.source":      m.Source,
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.created":     m.Created.UTC().Format(time.RFC3339),
	}
}

// Entries are the files of the image for one platform: a minimal non-root
// base (/etc/passwd and /etc/group with nonroot 65532, the CA bundle, /tmp;
// no shell) and the binaries under /usr/local/bin.
func Entries(bins Binaries, caBundle []byte) []imagefs.Entry {
	passwd, group := imagefs.NonrootAccounts(NonrootUser, NonrootID)
	entries := []imagefs.Entry{
		imagefs.File("etc/group", 0o644, group),
		imagefs.File("etc/passwd", 0o644, passwd),
		imagefs.File("etc/ssl/certs/ca-certificates.crt", 0o644, caBundle),
		imagefs.Dir("tmp", 0o1777),
	}
	for _, n := range bins.Names() {
		entries = append(entries, imagefs.File(BinDir+"/"+n, 0o755, bins[n]))
	}
	return entries
}

// PlatformImage builds the single-layer OCI image of one platform.
func PlatformImage(p Platform, bins Binaries, meta ImageMeta, caBundle []byte) (v1.Image, error) {
	layer, err := imagefs.Layer(Entries(bins, caBundle), imagefs.Options{
		ModTime: meta.Created, GzipLevel: 9, MediaType: types.OCILayer,
	})
	if err != nil {
		return nil, fmt.Errorf("release: %s layer: %w", p, err)
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	created := v1.Time{Time: meta.Created}
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: created, CreatedBy: "kommons release " + meta.Version, Comment: "binaries and nonroot base"},
	})
	if err != nil {
		return nil, fmt.Errorf("release: %s image: %w", p, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("release: %s config: %w", p, err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = p.OS, p.Arch, created
	if p.Arch == "arm64" {
		cf.Variant = "v8"
	}
	cf.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", NonrootID, NonrootID),
		Env:        []string{imagePath},
		Entrypoint: []string{entrypoint},
		WorkingDir: "/",
		Labels:     meta.Labels(),
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, fmt.Errorf("release: %s config: %w", p, err)
	}
	return img, nil
}

// Image builds the kommons-tools OCI image index of ImagePlatforms from each
// platform's binaries.
func Image(bins map[Platform]Binaries, meta ImageMeta, caBundle []byte) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range ImagePlatforms {
		b, ok := bins[p]
		if !ok {
			return nil, fmt.Errorf("release: no binaries for %s", p)
		}
		img, err := PlatformImage(p, b, meta, caBundle)
		if err != nil {
			return nil, err
		}
		plat := &v1.Platform{OS: p.OS, Architecture: p.Arch}
		if p.Arch == "arm64" {
			plat.Variant = "v8"
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: plat}})
	}
	out, ok := mutate.Annotations(idx, meta.Labels()).(v1.ImageIndex)
	if !ok {
		return nil, fmt.Errorf("release: annotating the index")
	}
	return out, nil
}

// ManifestDigests returns each platform's manifest digest in idx.
func ManifestDigests(idx v1.ImageIndex) (map[string]string, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("release: index manifest: %w", err)
	}
	out := map[string]string{}
	for _, m := range im.Manifests {
		if m.Platform != nil {
			out[m.Platform.OS+"/"+m.Platform.Architecture] = m.Digest.String()
		}
	}
	return out, nil
}

// WriteLayout writes idx as an OCI image layout in dir (replaced): its
// index.json lists idx, annotated with ref (org.opencontainers.image.ref.name).
func WriteLayout(dir string, idx v1.ImageIndex, ref string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("release: image layout %s: %w", dir, err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})); err != nil {
		return fmt.Errorf("release: image layout %s: %w", dir, err)
	}
	return nil
}
