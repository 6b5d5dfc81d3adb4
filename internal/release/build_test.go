package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/kommons/kommons/internal/testutil/toolcache"
)

const testVersion = "0.2.0-test.1"

var testCreated = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// built is one release built twice (two output directories), shared by the
// subtests: building 3 platforms x 5 binaries takes a while.
var (
	buildOnce      sync.Once
	builtA, builtB string
	resA, resB     *Result
	builtHelm      string
	builtCDX       string
	buildErr       error
)

// requireTool is a cached harness tool: missing, it fails the test under
// CI=true or KOMMONS_E2E=1 (make test) and skips it otherwise.
func requireTool(t *testing.T, tool, versionKey, name, envOverride string) string {
	t.Helper()
	p, err := toolcache.Binary(tool, versionKey, name, envOverride)
	if err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("KOMMONS_E2E") == "1" {
			t.Fatalf("%s is required here: %v", tool, err)
		}
		t.Skip(err)
	}
	return p
}

// requireRelease builds the release twice on first use. Under -short it is
// skipped (it builds every binary for three platforms); a missing Helm
// leaves the charts out, which fails the charts test under CI or
// KOMMONS_E2E=1 and skips it otherwise.
func requireRelease(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds every binary for three platforms and the image twice")
	}
	buildOnce.Do(func() {
		repo, err := toolcache.RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		builtHelm, _ = toolcache.Binary("helm3", "HELM3_VERSION", "helm", "KOMMONS_HELM3")
		builtCDX, _ = toolcache.Binary("cyclonedx-gomod", "CYCLONEDX_GOMOD_VERSION", "cyclonedx-gomod", "")
		root, err := os.MkdirTemp("", "kommons-release-test-")
		if err != nil {
			buildErr = err
			return
		}
		builtA, builtB = filepath.Join(root, "a"), filepath.Join(root, "b")
		o := Options{Repo: repo, Version: testVersion, Revision: "0123456789abcdef0123456789abcdef01234567",
			Created: testCreated, Helm: builtHelm, CycloneDX: builtCDX, Logf: t.Logf}
		o.Out = builtA
		if resA, buildErr = Run(context.Background(), o); buildErr != nil {
			return
		}
		o.Out = builtB
		resB, buildErr = Run(context.Background(), o)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtA != "" {
		os.RemoveAll(filepath.Dir(builtA))
	}
	os.Exit(code)
}

func TestReleaseIsReproducible(t *testing.T) {
	requireRelease(t)
	if resA.IndexDigest != resB.IndexDigest {
		t.Fatalf("two builds of the same commit: index %s and %s", resA.IndexDigest, resB.IndexDigest)
	}
	t.Logf("index digest of both builds: %s", resA.IndexDigest)
	files := 0
	err := filepath.WalkDir(builtA, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(builtA, p)
		a, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(filepath.Join(builtB, rel))
		if err != nil {
			return err
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between the two builds", rel)
		}
		files++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 10 {
		t.Fatalf("only %d files compared", files)
	}
	cmd := exec.Command("sha256sum", "-c", "checksums.txt")
	cmd.Dir = builtA
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
}

// amd64Image reads the linux/amd64 image from the OCI layout.
func amd64Image(t *testing.T) v1.Image {
	t.Helper()
	p, err := layout.FromPath(filepath.Join(builtA, "image"))
	if err != nil {
		t.Fatal(err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(tm.Manifests) != 1 || tm.Manifests[0].Digest.String() != resA.IndexDigest {
		t.Fatalf("index.json lists %+v, want the index %s", tm.Manifests, resA.IndexDigest)
	}
	if ref := tm.Manifests[0].Annotations["org.opencontainers.image.ref.name"]; ref != "ghcr.io/kommons/kommons-tools:"+testVersion {
		t.Errorf("ref.name %q", ref)
	}
	idx, err := top.ImageIndex(tm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var plats []string
	for _, m := range im.Manifests {
		plats = append(plats, m.Platform.OS+"/"+m.Platform.Architecture)
	}
	if strings.Join(plats, " ") != "linux/amd64 linux/arm64" {
		t.Fatalf("platforms %v", plats)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestImage(t *testing.T) {
	requireRelease(t)
	img := amd64Image(t)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" || cf.Architecture != "amd64" || cf.OS != "linux" || !cf.Created.Time.Equal(testCreated) {
		t.Errorf("config: user %q, %s/%s, created %v", cf.Config.User, cf.OS, cf.Architecture, cf.Created)
	}
	for k, v := range map[string]string{
		"org.opencontainers.image.version":  testVersion,
		"org.opencontainers.image.revision": "0123456789abcdef0123456789abcdef01234567",
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.created":  "2026-12-01T12:00:00Z",
		"org.opencontainers.image.source":   DefaultSource,
		"org.opencontainers.image.title":    "kommons-tools",
	} {
		if cf.Config.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, cf.Config.Labels[k], v)
		}
	}

	dir := t.TempDir()
	files := map[string][]byte{}
	tr := tar.NewReader(mutate.Extract(img))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(testCreated) {
			t.Errorf("%s: mtime %v", h.Name, h.ModTime)
		}
		if h.Typeflag == tar.TypeReg {
			if files[h.Name], err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		} else {
			files[h.Name] = nil
		}
	}
	for _, sh := range []string{"bin/sh", "bin/bash", "usr/bin/sh", "bin/busybox"} {
		if _, ok := files[sh]; ok {
			t.Errorf("the image has %s", sh)
		}
	}
	if !bytes.Contains(files["etc/passwd"], []byte("nonroot:x:65532:65532:")) || !bytes.Contains(files["etc/group"], []byte("nonroot:x:65532:")) {
		t.Errorf("passwd %q, group %q", files["etc/passwd"], files["etc/group"])
	}
	if len(files["etc/ssl/certs/ca-certificates.crt"]) == 0 {
		t.Error("no CA bundle")
	}
	n := 0
	for name, data := range files {
		bin, ok := strings.CutPrefix(name, BinDir+"/")
		if !ok || bin == "" {
			continue
		}
		n++
		p := filepath.Join(dir, bin)
		if err := os.WriteFile(p, data, 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(p, "--version").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != bin+" "+testVersion {
			t.Errorf("%s --version: %v, %q", bin, err, out)
		}
	}
	entries, _ := os.ReadDir(filepath.Join("..", "..", "cmd"))
	if n == 0 || n != len(entries) {
		t.Errorf("%d binaries in %s, %d commands in cmd/", n, BinDir, len(entries))
	}
}

func TestArchives(t *testing.T) {
	requireRelease(t)
	for _, p := range ArchivePlatforms {
		name := ArchiveName(testVersion, p)
		out, err := exec.Command("tar", "-tzf", filepath.Join(builtA, name)).Output()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		list := string(out)
		for _, f := range []string{"LICENSE", "README.md", "pg-init", "wait-for-pg", "s3-init", "secret-init", "postrender", "orthanc-tiering"} {
			if !strings.Contains(list, strings.TrimSuffix(name, ".tar.gz")+"/"+f+"\n") {
				t.Errorf("%s lacks %s:\n%s", name, f, list)
			}
		}
	}
}

func TestCharts(t *testing.T) {
	requireRelease(t)
	if builtHelm == "" {
		requireTool(t, "helm3", "HELM3_VERSION", "helm", "KOMMONS_HELM3")
	}
	ref := "ghcr.io/kommons/kommons-tools:" + testVersion + "@" + resA.IndexDigest
	repo, _ := toolcache.RepoRoot()
	for _, c := range []struct{ name, values string }{
		{"postgres-init", "charts/postgres-init/ci/default-values.yaml"},
		{"commons", "charts/commons/ci/tenants-backups-values.yaml"},
		{"orthanc", "charts/orthanc/ci/storage-tiering-values.yaml"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tgz := filepath.Join(builtA, "charts", c.name+"-"+testVersion+".tgz")
			if out, err := exec.Command(builtHelm, "lint", "--strict", tgz).CombinedOutput(); err != nil {
				t.Fatalf("helm lint: %v\n%s", err, out)
			}
			out, err := exec.Command(builtHelm, "template", "r", tgz, "-f", filepath.Join(repo, c.values)).CombinedOutput()
			if err != nil {
				t.Fatalf("helm template: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), "image: \""+ref+"\"") && !strings.Contains(string(out), "image: "+ref+"\n") {
				t.Fatalf("the rendered manifests do not run %s", ref)
			}
			meta, err := exec.Command(builtHelm, "show", "chart", tgz).CombinedOutput()
			if err != nil {
				t.Fatalf("helm show chart: %v\n%s", err, meta)
			}
			for _, want := range []string{"version: " + testVersion, "artifacthub.io/license: Apache-2.0", "artifacthub.io/links", "image: " + ref} {
				if !strings.Contains(string(meta), want) {
					t.Errorf("Chart.yaml lacks %q:\n%s", want, meta)
				}
			}
			if c.name == "orthanc" && !strings.Contains(string(meta), "appVersion: 26.") {
				t.Errorf("orthanc's appVersion is not Orthanc's:\n%s", meta)
			}
			// The kommons-common library is vendored from this release's
			// package (Helm stores a dependency expanded), also inside the
			// postgres-init that orthanc vendors.
			files := tgzFiles(t, tgz)
			libs := []string{c.name + "/charts/kommons-common/Chart.yaml"}
			if c.name == "orthanc" {
				libs = append(libs, "orthanc/charts/postgres-init/charts/kommons-common/Chart.yaml")
			}
			for _, lib := range libs {
				if !files[lib] {
					t.Errorf("%s does not vendor kommons-common: no %s", tgz, lib)
				}
			}
		})
	}
	t.Run("kommons-common", func(t *testing.T) {
		tgz := filepath.Join(builtA, "charts", "kommons-common-"+testVersion+".tgz")
		if out, err := exec.Command(builtHelm, "lint", "--strict", tgz).CombinedOutput(); err != nil {
			t.Fatalf("helm lint: %v\n%s", err, out)
		}
		meta, err := exec.Command(builtHelm, "show", "chart", tgz).CombinedOutput()
		if err != nil {
			t.Fatalf("helm show chart: %v\n%s", err, meta)
		}
		for _, want := range []string{"type: library", "version: " + testVersion, "artifacthub.io/license: Apache-2.0"} {
			if !strings.Contains(string(meta), want) {
				t.Errorf("Chart.yaml lacks %q:\n%s", want, meta)
			}
		}
		if strings.Contains(string(meta), "artifacthub.io/images") {
			t.Errorf("the library chart lists images:\n%s", meta)
		}
	})
}

// tgzFiles lists the regular files of a chart archive.
func tgzFiles(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]bool{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = true
	}
}

func TestSBOMs(t *testing.T) {
	requireRelease(t)
	if builtCDX == "" {
		requireTool(t, "cyclonedx-gomod", "CYCLONEDX_GOMOD_VERSION", "cyclonedx-gomod", "")
	}
	if len(resA.Manifest.Images) != len(ImagePlatforms) {
		t.Fatalf("release.json images %+v", resA.Manifest.Images)
	}
	for _, pi := range resA.Manifest.Images {
		t.Run(pi.Platform, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(builtA, pi.SBOM))
			if err != nil {
				t.Fatal(err)
			}
			checkSBOM(t, data, pi.Platform)
		})
	}
}

// checkSBOM checks a platform image's CycloneDX SBOM: its subject is
// kommons-tools on that platform, every binary of the image is a component
// with its path and the modules it is built from (pgx for pg-init, the
// standard library) are listed.
func checkSBOM(t *testing.T, data []byte, platform string) {
	t.Helper()
	var doc struct {
		BOMFormat string `json:"bomFormat"`
		Metadata  struct {
			Timestamp string `json:"timestamp"`
			Component struct {
				Name, Version, Type string
				Properties          []struct{ Name, Value string }
			} `json:"component"`
		} `json:"metadata"`
		Components []struct {
			Name, Version, Type string
			Properties          []struct{ Name, Value string }
		} `json:"components"`
		Dependencies []struct {
			Ref       string   `json:"ref"`
			DependsOn []string `json:"dependsOn"`
		} `json:"dependencies"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	c := doc.Metadata.Component
	if doc.BOMFormat != "CycloneDX" || c.Name != "kommons-tools" || c.Version != testVersion || c.Type != "container" {
		t.Fatalf("SBOM subject %+v (format %q)", c, doc.BOMFormat)
	}
	if doc.Metadata.Timestamp != testCreated.Format(time.RFC3339) {
		t.Errorf("timestamp %q, want the release's creation time", doc.Metadata.Timestamp)
	}
	if !hasProperty(c.Properties, "kommons:image:platform", platform) {
		t.Errorf("SBOM subject does not name platform %s: %+v", platform, c.Properties)
	}
	paths := map[string]bool{}
	names := map[string]bool{}
	for _, comp := range doc.Components {
		names[comp.Name] = true
		for _, p := range comp.Properties {
			if p.Name == "kommons:image:path" {
				paths[p.Value] = true
			}
		}
	}
	for _, b := range []string{"pg-init", "wait-for-pg", "s3-init", "secret-init", "postrender", "orthanc-tiering"} {
		if !paths["/usr/local/bin/"+b] {
			t.Errorf("no component for /usr/local/bin/%s", b)
		}
	}
	for _, m := range []string{"github.com/jackc/pgx/v5", "std"} {
		if !names[m] {
			t.Errorf("no component %s", m)
		}
	}
	if len(doc.Dependencies) < 6 {
		t.Errorf("only %d dependency entries", len(doc.Dependencies))
	}
}

func hasProperty(props []struct{ Name, Value string }, name, value string) bool {
	for _, p := range props {
		if p.Name == name && p.Value == value {
			return true
		}
	}
	return false
}
