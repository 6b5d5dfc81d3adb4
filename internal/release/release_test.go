package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCheckVersion(t *testing.T) {
	for _, v := range []string{"0.2.0", "1.0.0-rc.1", "10.20.30"} {
		if err := CheckVersion(v); err != nil {
			t.Errorf("%s: %v", v, err)
		}
	}
	for _, v := range []string{"", "v0.2.0", "0.2", "01.2.3", "0.2.0 ", "latest"} {
		if err := CheckVersion(v); err == nil {
			t.Errorf("%q accepted", v)
		}
	}
	if err := CheckVersion(""); !strings.Contains(err.Error(), "VERSION=") {
		t.Errorf("no version: %v does not say how to give one", err)
	}
}

func TestSetValue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "values.yaml")
	in := `global:
  kommonsTools:
    image:
      digest: ""
tools:
  # -- comment kept
  image:
    registry: ghcr.io
    digest: ""
    pullPolicy: IfNotPresent
image:
  digest: ""
`
	if err := os.WriteFile(path, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := setValue(path, []string{"tools", "image", "digest"}, "sha256:abc"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want := strings.Replace(in, "    digest: \"\"\n    pullPolicy", "    digest: sha256:abc\n    pullPolicy", 1)
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if err := setValue(path, []string{"nope", "digest"}, "x"); err == nil {
		t.Fatal("a missing path was not reported")
	}
}

func TestChartImages(t *testing.T) {
	ref := "ghcr.io/kommons/kommons-tools:0.2.0@sha256:00"
	got, err := chartImages(map[string]any{"kommons.io/images": "orthanc: docker.io/orthancteam/orthanc:26.8.1\ntools: ghcr.io/kommons/kommons-tools (appVersion)\n"}, ref)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0]["image"] != "docker.io/orthancteam/orthanc:26.8.1" || got[1]["image"] != ref {
		t.Fatalf("images %v", got)
	}
	if got, _ = chartImages(map[string]any{}, ref); len(got) != 1 || got[0]["image"] != ref {
		t.Fatalf("images without annotation %v", got)
	}
}

func TestArchiveIsDeterministic(t *testing.T) {
	dir := t.TempDir()
	bins := Binaries{"wait-for-pg": []byte("w"), "pg-init": []byte("p")}
	docs := map[string][]byte{"README.md": []byte("r"), "LICENSE": []byte("l")}
	mtime := time.Unix(1765000000, 0)
	a, b := filepath.Join(dir, "a.tar.gz"), filepath.Join(dir, "b.tar.gz")
	if err := WriteArchive(a, "kommons_0.2.0_linux_amd64", bins, docs, mtime); err != nil {
		t.Fatal(err)
	}
	if err := WriteArchive(b, "kommons_0.2.0_linux_amd64", bins, docs, mtime); err != nil {
		t.Fatal(err)
	}
	da, _ := os.ReadFile(a)
	db, _ := os.ReadFile(b)
	if !bytes.Equal(da, db) {
		t.Fatal("two archives of the same files differ")
	}
	zr, err := gzip.NewReader(bytes.NewReader(da))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("gzip header: name %q, time %v", zr.Name, zr.ModTime)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if !h.ModTime.Equal(mtime) || h.Uid != 0 || h.Gid != 0 || h.Uname != "" {
			t.Errorf("%s: mtime %v owner %d:%d %q", h.Name, h.ModTime, h.Uid, h.Gid, h.Uname)
		}
		if strings.HasSuffix(h.Name, "pg-init") && h.Mode != 0o755 {
			t.Errorf("%s: mode %o", h.Name, h.Mode)
		}
	}
	want := "kommons_0.2.0_linux_amd64/ kommons_0.2.0_linux_amd64/LICENSE kommons_0.2.0_linux_amd64/README.md kommons_0.2.0_linux_amd64/pg-init kommons_0.2.0_linux_amd64/wait-for-pg"
	if strings.Join(names, " ") != want {
		t.Fatalf("entries %v, want %s", names, want)
	}
}

func TestWriteChecksums(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "charts"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"b.tar.gz": "b", "charts/a.tgz": "a"}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteChecksums(dir, []string{"charts/a.tgz", "b.tar.gz"}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "checksums.txt"))
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	want := sum("b") + "  b.tar.gz\n" + sum("a") + "  charts/a.tgz\n"
	if string(got) != want {
		t.Fatalf("checksums.txt\n%s\nwant\n%s", got, want)
	}
}

func TestEditChartYAMLDependency(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Chart.yaml")
	in := "apiVersion: v2\nname: orthanc\nversion: 0.1.0\nappVersion: \"26.8.1\"\ndependencies:\n  - name: postgres-init\n    version: 0.1.0\n    repository: file://../postgres-init\n    alias: postgresInit\n"
	c := chart{name: "orthanc", ownAppVer: true, dependencies: []string{"postgres-init"}}
	for _, tc := range []struct{ registry, repo string }{{"", "file://../postgres-init"}, {"ghcr.io/kommons/", "oci://ghcr.io/kommons"}, {"127.0.0.1:5000", "oci://127.0.0.1:5000"}} {
		if err := os.WriteFile(path, []byte(in), 0o644); err != nil {
			t.Fatal(err)
		}
		o := ChartOptions{Version: "0.2.0", Source: DefaultSource, ChartRegistry: tc.registry}
		if err := editChartYAML(path, c, o, "img@sha256:00"); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(path)
		for _, want := range []string{"version: 0.2.0\n", "appVersion: 26.8.1", "repository: " + tc.repo, "artifacthub.io/license: Apache-2.0"} {
			if !strings.Contains(string(got), want) {
				t.Errorf("registry %q: no %q in\n%s", tc.registry, want, got)
			}
		}
		if strings.Contains(string(got), "0.1.0") {
			t.Errorf("registry %q: the dependency keeps 0.1.0:\n%s", tc.registry, got)
		}
	}
}

func TestEditChartYAMLLibrary(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Chart.yaml")
	in := "apiVersion: v2\nname: kommons-common\ntype: library\nversion: 0.1.0\nappVersion: \"0.1.0\"\n"
	if err := os.WriteFile(path, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	c := chart{name: "kommons-common", library: true}
	if err := editChartYAML(path, c, ChartOptions{Version: "0.2.0", Source: DefaultSource}, "img@sha256:00"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	for _, want := range []string{"version: 0.2.0\n", "appVersion: 0.2.0", "type: library", "artifacthub.io/license: Apache-2.0"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("no %q in\n%s", want, got)
		}
	}
	if strings.Contains(string(got), "images") {
		t.Errorf("a library chart has no images:\n%s", got)
	}
}

func TestDependencyPath(t *testing.T) {
	for name, want := range map[string][]string{
		"orthanc/Chart.yaml":                                       nil,
		"orthanc/templates/charts/x.yaml":                          nil,
		"orthanc/charts/kommons-common/Chart.yaml":                 {"kommons-common"},
		"orthanc/charts/postgres-init/templates/_helpers.tpl":      {"postgres-init"},
		"orthanc/charts/postgres-init/charts/kommons-common/x.tpl": {"postgres-init", "kommons-common"},
	} {
		if got := dependencyPath(name); !slices.Equal(got, want) {
			t.Errorf("dependencyPath(%q) = %q, want %q", name, got, want)
		}
	}
}
