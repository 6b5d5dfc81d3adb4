package release

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kommons/kommons/internal/imagefs"
)

// ChartOptions select how PackageCharts packages the repository's charts.
type ChartOptions struct {
	Helm          string // Helm 3 binary
	Repo          string // module root; charts are read from charts/ (git-tracked files only)
	Out           string // where the .tgz go
	Work          string // scratch directory for the edited copies
	Version       string // chart version (and appVersion, except orthanc's)
	Image         string // kommons-tools image without tag (ghcr.io/kommons/kommons-tools)
	Digest        string // the kommons-tools index digest (sha256:...)
	Source        string // source URL, for the artifacthub.io/links annotation
	ChartRegistry string // "": orthanc's postgres-init stays file://; else oci://<ChartRegistry> (host[:port][/path])
	Created       time.Time
}

// chart is one packaged chart: where its kommons-tools digest goes in its
// values (registry and repository are its siblings) and whether its
// appVersion is the release's.
type chart struct {
	name         string
	digestPath   []string // values path of the kommons-tools digest; nil: none
	ownAppVer    bool     // appVersion is not kommons' (orthanc: Orthanc's)
	library      bool     // a library chart: no images, nothing rendered
	dependencies []string // kommons charts vendored from the same release
}

// Charts are the charts a release packages, dependencies first.
var charts = []chart{
	{name: "kommons-common", library: true},
	{name: "postgres-init", digestPath: []string{"image", "digest"}, dependencies: []string{"kommons-common"}},
	{name: "commons", digestPath: []string{"tools", "image", "digest"}, dependencies: []string{"kommons-common"}},
	{name: "orthanc", ownAppVer: true, dependencies: []string{"kommons-common", "postgres-init"}},
}

// PackageCharts packages charts/{kommons-common,postgres-init,commons,orthanc}
// into o.Out from edited copies (the repository's charts are not touched):
// chart version o.Version (appVersion too, except orthanc's, which is
// Orthanc's), the kommons-tools image (o.Image) set and pinned by digest in
// values (the tag stays), artifacthub.io annotations, and each chart's
// kommons dependencies (the kommons-common library, orthanc's postgres-init)
// vendored from this release's packages. The .tgz are rewritten
// deterministically (Helm stamps the packaging time). It returns the file
// names written.
func PackageCharts(ctx context.Context, o ChartOptions) ([]string, error) {
	if !strings.HasPrefix(o.Digest, "sha256:") {
		return nil, fmt.Errorf("release: charts: digest %q is not sha256:...", o.Digest)
	}
	for _, d := range []string{o.Out, o.Work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("release: charts: %w", err)
		}
	}
	toolsRef := o.Image + ":" + o.Version + "@" + o.Digest
	var written []string
	for _, c := range charts {
		dir := filepath.Join(o.Work, c.name)
		if err := copyTracked(ctx, o.Repo, "charts/"+c.name, dir); err != nil {
			return nil, err
		}
		if err := editChartYAML(filepath.Join(dir, "Chart.yaml"), c, o, toolsRef); err != nil {
			return nil, err
		}
		if c.digestPath != nil {
			// The image the release pushes: its registry and repository
			// (another registry than ghcr.io, e.g. REGISTRY=host:port/path)
			// and its digest, beside the digest key.
			registry, repository, _ := strings.Cut(o.Image, "/")
			parent := c.digestPath[:len(c.digestPath)-1]
			for _, kv := range [][2]string{{"registry", registry}, {"repository", repository}, {"digest", o.Digest}} {
				key := append(append([]string(nil), parent...), kv[0])
				if err := setValue(filepath.Join(dir, "values.yaml"), key, kv[1]); err != nil {
					return nil, err
				}
			}
		}
		if len(c.dependencies) > 0 {
			// The vendored subcharts are this release's packages; Chart.lock
			// named the file:// sources of the repository.
			if err := os.Remove(filepath.Join(dir, "Chart.lock")); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("release: charts: %w", err)
			}
			if err := os.MkdirAll(filepath.Join(dir, "charts"), 0o755); err != nil {
				return nil, fmt.Errorf("release: charts: %w", err)
			}
			for _, d := range c.dependencies {
				name := d + "-" + o.Version + ".tgz"
				data, err := os.ReadFile(filepath.Join(o.Out, name))
				if err != nil {
					return nil, fmt.Errorf("release: charts: %s needs %s packaged first: %w", c.name, d, err)
				}
				if err := os.WriteFile(filepath.Join(dir, "charts", name), data, 0o644); err != nil {
					return nil, fmt.Errorf("release: charts: %w", err)
				}
			}
		}
		args := []string{"package", dir, "--version", o.Version, "--destination", o.Out}
		if !c.ownAppVer {
			args = append(args, "--app-version", o.Version)
		}
		if err := helm(ctx, o.Helm, o.Work, args...); err != nil {
			return nil, err
		}
		name := c.name + "-" + o.Version + ".tgz"
		if err := repack(filepath.Join(o.Out, name), o.Created); err != nil {
			return nil, err
		}
		written = append(written, name)
	}
	return written, nil
}

// helm runs the Helm binary with its configuration, cache and data under
// work (no user repositories or plugins are read).
func helm(ctx context.Context, bin, work string, args ...string) error {
	home := filepath.Join(work, ".helm")
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("release: helm %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// copyTracked copies the git-tracked files under rel (in the work tree)
// into dst, so that ignored files (vendored .tgz) are left out.
func copyTracked(ctx context.Context, repo, rel, dst string) error {
	cmd := exec.CommandContext(ctx, "git", "ls-files", "-z", "--", rel)
	cmd.Dir = repo
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("release: git ls-files %s: %w", rel, err)
	}
	n := 0
	for _, f := range strings.Split(string(out), "\x00") {
		if f == "" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(repo, f))
		if err != nil {
			return fmt.Errorf("release: %w", err)
		}
		target := filepath.Join(dst, strings.TrimPrefix(f, rel+"/"))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return fmt.Errorf("release: %w", err)
		}
		if err := os.WriteFile(target, data, 0o644); err != nil {
			return fmt.Errorf("release: %w", err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("release: no tracked file under %s", rel)
	}
	return nil
}

// editChartYAML sets the version, appVersion, artifacthub.io annotations and
// the kommons dependencies' version and repository of a copied Chart.yaml.
// Helm rewrites Chart.yaml when it packages, so comments need not survive.
func editChartYAML(path string, c chart, o ChartOptions, toolsRef string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	var meta map[string]any
	if err := yaml.Unmarshal(data, &meta); err != nil {
		return fmt.Errorf("release: %s: %w", path, err)
	}
	meta["version"] = o.Version
	if !c.ownAppVer {
		meta["appVersion"] = o.Version
	}
	ann, _ := meta["annotations"].(map[string]any)
	if ann == nil {
		ann = map[string]any{}
	}
	if !c.library {
		images, err := chartImages(ann, toolsRef)
		if err != nil {
			return fmt.Errorf("release: %s: %w", path, err)
		}
		if _, ok := ann["kommons.io/images"]; ok {
			var b strings.Builder
			for _, im := range images {
				fmt.Fprintf(&b, "%s: %s\n", im["name"], im["image"])
			}
			ann["kommons.io/images"] = b.String()
		}
		ann["artifacthub.io/images"], err = yamlString(images)
		if err != nil {
			return err
		}
	}
	ann["artifacthub.io/license"] = "Apache-2.0"
	ann["artifacthub.io/links"], err = yamlString([]map[string]string{
		{"name": "source", "url": o.Source},
		{"name": "chart source", "url": o.Source + "/tree/v" + o.Version + "/charts/" + c.name},
	})
	if err != nil {
		return err
	}
	meta["annotations"] = ann
	deps, _ := meta["dependencies"].([]any)
	for _, d := range deps {
		dep, _ := d.(map[string]any)
		for _, name := range c.dependencies {
			if dep != nil && dep["name"] == name {
				dep["version"] = o.Version
				if o.ChartRegistry != "" {
					dep["repository"] = "oci://" + strings.TrimSuffix(o.ChartRegistry, "/")
				}
			}
		}
	}
	out, err := yaml.Marshal(meta)
	if err != nil {
		return fmt.Errorf("release: %s: %w", path, err)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	return nil
}

// chartImages lists a chart's images for artifacthub.io/images: those of
// its kommons.io/images annotation ("name: ref" lines), the kommons-tools
// one (any "tools" line, or added) replaced by toolsRef.
func chartImages(ann map[string]any, toolsRef string) ([]map[string]string, error) {
	var out []map[string]string
	tools := false
	if s, ok := ann["kommons.io/images"].(string); ok {
		for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
			name, ref, ok := strings.Cut(line, ":")
			if !ok {
				return nil, fmt.Errorf("kommons.io/images: line %q is not name: image", line)
			}
			name, ref = strings.TrimSpace(name), strings.TrimSpace(ref)
			if name == "tools" {
				ref, tools = toolsRef, true
			}
			out = append(out, map[string]string{"name": name, "image": ref})
		}
	}
	if !tools {
		out = append(out, map[string]string{"name": "tools", "image": toolsRef})
	}
	return out, nil
}

func yamlString(v any) (string, error) {
	b, err := yaml.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("release: %w", err)
	}
	return string(b), nil
}

// setValue replaces the scalar at keys (a path of mapping keys) in a values
// file, editing only that line so that comments and layout stay.
func setValue(path string, keys []string, value string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	type level struct {
		indent int
		key    string
	}
	var stack []level
	lines := strings.Split(string(data), "\n")
	for i, line := range lines {
		trimmed := strings.TrimLeft(line, " ")
		if trimmed == "" || strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, "-") {
			continue
		}
		key, _, ok := strings.Cut(trimmed, ":")
		if !ok || strings.ContainsAny(key, " \"'") {
			continue
		}
		indent := len(line) - len(trimmed)
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		stack = append(stack, level{indent, key})
		if len(stack) != len(keys) {
			continue
		}
		match := true
		for j := range keys {
			match = match && stack[j].key == keys[j]
		}
		if match {
			quoted, err := yaml.Marshal(value)
			if err != nil {
				return fmt.Errorf("release: %w", err)
			}
			lines[i] = line[:indent] + key + ": " + strings.TrimSpace(string(quoted))
			if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
				return fmt.Errorf("release: %w", err)
			}
			return nil
		}
	}
	return fmt.Errorf("release: %s: no %s", path, strings.Join(keys, "."))
}

// repack rewrites a chart archive deterministically: its files in Helm's
// order, each vendored dependency after its parent's files and the
// dependencies of one chart by name (Helm writes them in map order),
// modification time mtime, root owner, gzip without name or time.
func repack(path string, mtime time.Time) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("release: %s: %w", path, err)
	}
	var entries []imagefs.Entry
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("release: %s: %w", path, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return fmt.Errorf("release: %s: %w", path, err)
		}
		entries = append(entries, imagefs.File(h.Name, 0o644, data))
	}
	sort.SliceStable(entries, func(i, j int) bool {
		return slices.Compare(dependencyPath(entries[i].Name), dependencyPath(entries[j].Name)) < 0
	})
	return writeTarGz(path, entries, mtime)
}

// dependencyPath is the chain of dependency names a chart archive's file
// belongs to: nil for the chart's own files, [postgres-init kommons-common]
// for orthanc/charts/postgres-init/charts/kommons-common/Chart.yaml.
func dependencyPath(name string) []string {
	parts := strings.Split(name, "/")
	var deps []string
	for i := 1; i+2 < len(parts); i++ {
		if parts[i] == "charts" {
			deps = append(deps, parts[i+1])
			i++
		} else {
			break
		}
	}
	return deps
}
