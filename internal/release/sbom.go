package release

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// SBOMName is the file (under dist/sbom/) of one platform image's SBOM.
func SBOMName(p Platform) string {
	return "kommons-tools_" + p.OS + "_" + p.Arch + ".cdx.json"
}

// SBOM returns the CycloneDX (JSON) SBOM of one platform's kommons-tools
// image: cyclonedx-gomod's `bin` SBOM of each binary in the image (the Go
// modules and standard library compiled into it, read from the binary's
// build information), merged into one document whose subject is the image.
// No serial number, and the release's creation time as timestamp: the same
// binaries give the same bytes.
func SBOM(ctx context.Context, cyclonedx string, meta ImageMeta, p Platform, bins Binaries) ([]byte, error) {
	dir, err := os.MkdirTemp("", "kommons-sbom-")
	if err != nil {
		return nil, fmt.Errorf("release: sbom: %w", err)
	}
	defer os.RemoveAll(dir)
	var docs []cdxDoc
	for _, name := range bins.Names() {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, bins[name], 0o755); err != nil {
			return nil, fmt.Errorf("release: sbom: %w", err)
		}
		cmd := exec.CommandContext(ctx, cyclonedx, "bin", "-json", "-std", "-noserial", "-notimestamp",
			"-version", "v"+meta.Version, "-output", "-", path)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("release: sbom: cyclonedx-gomod bin %s (%s): %w\n%s", name, p, err, stderr.Bytes())
		}
		var d cdxDoc
		if err := json.Unmarshal(out, &d); err != nil {
			return nil, fmt.Errorf("release: sbom: cyclonedx-gomod bin %s (%s): %w", name, p, err)
		}
		if d.Metadata.Component == nil {
			return nil, fmt.Errorf("release: sbom: cyclonedx-gomod bin %s (%s): no metadata.component", name, p)
		}
		sum := sha256.Sum256(bins[name])
		d.binary, d.sha256 = name, hex.EncodeToString(sum[:])
		docs = append(docs, d)
	}
	return mergeSBOMs(docs, meta, p)
}

// cdxDoc is the part of a CycloneDX document the merge reads; components
// and dependencies are kept as they are.
type cdxDoc struct {
	BOMFormat   string `json:"bomFormat"`
	SpecVersion string `json:"specVersion"`
	Metadata    struct {
		Tools      json.RawMessage `json:"tools,omitempty"`
		Component  map[string]any  `json:"component,omitempty"`
		Properties []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"properties,omitempty"`
	} `json:"metadata"`
	Components   []map[string]any `json:"components,omitempty"`
	Dependencies []cdxDependency  `json:"dependencies,omitempty"`

	binary, sha256 string // the binary this document describes and its digest
}

type cdxDependency struct {
	Ref       string   `json:"ref"`
	DependsOn []string `json:"dependsOn,omitempty"`
}

// mergeSBOMs makes one document of the binaries' SBOMs: the image as
// metadata.component depending on each binary, each binary an application
// component (cyclonedx-gomod's subject, with the binary's sha256, build
// properties and path in the image) depending on the Go modules its SBOM
// lists; the modules (one component per bom-ref, the same
// module version in every binary of one build) and their dependencies are
// the union of the binaries'.
func mergeSBOMs(docs []cdxDoc, meta ImageMeta, p Platform) ([]byte, error) {
	if len(docs) == 0 {
		return nil, fmt.Errorf("release: sbom: no binary")
	}
	imageRef := "pkg:oci/" + imageTitle + "@" + meta.Version + "?arch=" + p.Arch + "&os=" + p.OS
	components := map[string]map[string]any{}
	deps := map[string]map[string]bool{}
	addDeps := func(ref string, on []string) {
		if deps[ref] == nil {
			deps[ref] = map[string]bool{}
		}
		for _, o := range on {
			deps[ref][o] = true
		}
	}
	var binRefs []string
	for _, d := range docs {
		binRef, _ := d.Metadata.Component["bom-ref"].(string)
		if binRef == "" {
			return nil, fmt.Errorf("release: sbom: %s: metadata.component has no bom-ref", d.binary)
		}
		// cyclonedx-gomod's subject is the main module built as this
		// binary (bom-ref ...#cmd/<name>): it becomes the binary's
		// component, with its digest, build properties and path.
		bin := map[string]any{}
		for k, v := range d.Metadata.Component {
			bin[k] = v
		}
		bin["hashes"] = []map[string]string{{"alg": "SHA-256", "content": d.sha256}}
		props := []map[string]string{{"name": "kommons:image:path", "value": "/" + BinDir + "/" + d.binary}}
		for _, pr := range d.Metadata.Properties {
			if strings.HasPrefix(pr.Name, "cdx:gomod:build:") || pr.Name == "cdx:gomod:binary:name" {
				props = append(props, map[string]string{"name": pr.Name, "value": pr.Value})
			}
		}
		bin["properties"] = props
		if _, dup := components[binRef]; dup {
			return nil, fmt.Errorf("release: sbom: two binaries are %s", binRef)
		}
		components[binRef] = bin
		binRefs = append(binRefs, binRef)
		for _, c := range d.Components {
			ref, _ := c["bom-ref"].(string)
			if ref == "" {
				return nil, fmt.Errorf("release: sbom: %s: a component has no bom-ref", d.binary)
			}
			if _, ok := components[ref]; !ok {
				components[ref] = c
			}
		}
		for _, dep := range d.Dependencies {
			addDeps(dep.Ref, dep.DependsOn)
		}
	}
	addDeps(imageRef, binRefs)

	refs := make([]string, 0, len(components))
	for r := range components {
		refs = append(refs, r)
	}
	sort.Strings(refs)
	outComponents := make([]map[string]any, 0, len(refs))
	for _, r := range refs {
		outComponents = append(outComponents, components[r])
	}
	depRefs := make([]string, 0, len(deps))
	for r := range deps {
		depRefs = append(depRefs, r)
	}
	sort.Strings(depRefs)
	outDeps := make([]cdxDependency, 0, len(depRefs))
	for _, r := range depRefs {
		on := make([]string, 0, len(deps[r]))
		for o := range deps[r] {
			on = append(on, o)
		}
		sort.Strings(on)
		outDeps = append(outDeps, cdxDependency{Ref: r, DependsOn: on})
	}
	doc := map[string]any{
		"bomFormat":   docs[0].BOMFormat,
		"specVersion": docs[0].SpecVersion,
		"version":     1,
		"metadata": map[string]any{
			"timestamp": meta.Created.UTC().Format(time.RFC3339),
			"tools":     docs[0].Metadata.Tools,
			"component": map[string]any{
				"bom-ref":     imageRef,
				"type":        "container",
				"name":        imageTitle,
				"version":     meta.Version,
				"description": description,
				"purl":        imageRef,
				"licenses":    []map[string]any{{"license": map[string]string{"id": "Apache-2.0"}}},
				"externalReferences": []map[string]string{
					{"type": "vcs", "url": meta.Source},
				},
				"properties": []map[string]string{
					{"name": "kommons:image:platform", "value": p.String()},
					{"name": "kommons:revision", "value": meta.Revision},
				},
			},
		},
		"components":   outComponents,
		"dependencies": outDeps,
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("release: sbom: %w", err)
	}
	if !strings.HasPrefix(docs[0].BOMFormat, "CycloneDX") {
		return nil, fmt.Errorf("release: sbom: cyclonedx-gomod wrote bomFormat %q", docs[0].BOMFormat)
	}
	return b.Bytes(), nil
}
