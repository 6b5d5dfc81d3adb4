package release

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// ManifestFile is the name, in the output directory, of the Manifest of
// what Run built.
const ManifestFile = "release.json"

// Manifest says what a release directory holds and where it is meant to go:
// Publish pushes exactly this, to Image and ChartRegistry, which the charts'
// pinned image reference and dependencies already name.
type Manifest struct {
	Version       string              `json:"version"`
	Revision      string              `json:"revision"`
	Image         string              `json:"image"`         // repository of the kommons-tools image (no tag)
	ChartRegistry string              `json:"chartRegistry"` // oci:// registry (and path) of the charts' dependencies; "": file://
	IndexDigest   string              `json:"indexDigest"`
	Images        []PlatformImageInfo `json:"images"`
	Charts        []string            `json:"charts"` // chart archives relative to the directory, dependencies first
}

// PlatformImageInfo is one platform's image in the index and its SBOM.
type PlatformImageInfo struct {
	Platform string `json:"platform"`       // linux/amd64
	Digest   string `json:"digest"`         // its manifest digest
	SBOM     string `json:"sbom,omitempty"` // CycloneDX JSON relative to the directory; "": none
}

// Write writes m as dir/release.json.
func (m Manifest) Write(dir string) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	return writeFile(filepath.Join(dir, ManifestFile), append(b, '\n'))
}

// ReadManifest reads dir/release.json, as Run wrote it.
func ReadManifest(dir string) (Manifest, error) {
	var m Manifest
	b, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return m, fmt.Errorf("release: no release built in %s (make release VERSION=x.y.z DRY_RUN=1 first): %w", dir, err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("release: %s: %w", filepath.Join(dir, ManifestFile), err)
	}
	if err := CheckVersion(m.Version); err != nil {
		return m, fmt.Errorf("release: %s: %w", filepath.Join(dir, ManifestFile), err)
	}
	if m.Image == "" || m.IndexDigest == "" || len(m.Images) == 0 {
		return m, fmt.Errorf("release: %s: no image", filepath.Join(dir, ManifestFile))
	}
	return m, nil
}

// writeFile writes data to path, creating its directory.
func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	return nil
}
