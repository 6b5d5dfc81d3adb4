package release

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kommons/kommons/internal/testutil/registrytest"
	"github.com/kommons/kommons/internal/testutil/toolcache"
)

func TestPublishRefusesAReleaseBuiltForAnotherRegistry(t *testing.T) {
	dir := t.TempDir()
	if _, err := Publish(context.Background(), PublishOptions{Dir: dir, Registry: "127.0.0.1:5000/kommons"}); err == nil || !strings.Contains(err.Error(), "make release VERSION=x.y.z DRY_RUN=1") {
		t.Fatalf("no release.json: %v", err)
	}
	m := Manifest{Version: "0.2.0", Image: "ghcr.io/kommons/kommons-tools", ChartRegistry: "ghcr.io/kommons",
		IndexDigest: "sha256:00", Images: []PlatformImageInfo{{Platform: "linux/amd64", Digest: "sha256:01"}}}
	if err := m.Write(dir); err != nil {
		t.Fatal(err)
	}
	_, err := Publish(context.Background(), PublishOptions{Dir: dir, Registry: "127.0.0.1:5000/kommons", Cosign: "cosign", Helm: "helm"})
	if err == nil || !strings.Contains(err.Error(), "REGISTRY=127.0.0.1:5000/kommons") || !strings.Contains(err.Error(), "ghcr.io/kommons/kommons-tools") {
		t.Fatalf("another registry: %v", err)
	}
}

// TestPublish builds a release for a real OCI registry (CNCF distribution)
// on loopback, publishes it there and reads everything back as a user
// would: the charts by OCI reference with Helm (the image reference they
// render is the pushed index digest; orthanc's dependency points at the
// same registry), the image's cosign signatures with the public key (and not
// with another key), and each platform's SBOM attestation.
func TestPublish(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every binary for three platforms and publishes them")
	}
	reg := registrytest.Start(t)
	helm := toolcache.Require(t, "helm3", "HELM3_VERSION", "helm", "KOMMONS_HELM3")
	cosign := toolcache.Require(t, "cosign", "COSIGN_VERSION", "cosign", "")
	cdx := toolcache.Require(t, "cyclonedx-gomod", "CYCLONEDX_GOMOD_VERSION", "cyclonedx-gomod", "")
	repo, err := toolcache.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	registry := reg.Host + "/kommons"
	keys := t.TempDir()
	t.Setenv("COSIGN_PASSWORD", "test-key-password")
	// cosign, the image push and Helm keep their state there: no user credentials or settings.
	state := t.TempDir()
	for k, v := range map[string]string{"DOCKER_CONFIG": "docker", "TUF_ROOT": "sigstore", "HELM_CONFIG_HOME": "helm/config",
		"HELM_CACHE_HOME": "helm/cache", "HELM_DATA_HOME": "helm/data"} {
		t.Setenv(k, filepath.Join(state, v))
	}
	for _, d := range []string{keys, filepath.Join(keys, "other")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(cosign, "generate-key-pair")
		cmd.Dir = d
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
		}
	}

	out := t.TempDir()
	res, err := Run(ctx, Options{Repo: repo, Out: out, Version: testVersion, Revision: "0123456789abcdef0123456789abcdef01234567",
		Created: testCreated, Registry: reg.Host, Repository: "kommons/" + ImageName, ChartRegistry: registry,
		Helm: helm, CycloneDX: cdx, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := Publish(ctx, PublishOptions{Dir: out, Registry: registry, PlainHTTP: true, Cosign: cosign,
		Key: filepath.Join(keys, "cosign.key"), NoTlog: true, Helm: helm, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	image := registry + "/" + ImageName
	if pub.Image != image+"@"+res.IndexDigest || len(pub.Charts) != len(charts) || !strings.Contains(pub.Charts[0], "/kommons-common:") {
		t.Fatalf("published %+v", pub)
	}

	t.Run("image", func(t *testing.T) {
		tag, err := name.NewTag(image+":"+testVersion, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Head(tag)
		if err != nil {
			t.Fatal(err)
		}
		if desc.Digest.String() != res.IndexDigest {
			t.Fatalf("%s is %s in the registry, the release built %s", tag, desc.Digest, res.IndexDigest)
		}
	})

	ref := image + ":" + testVersion + "@" + res.IndexDigest
	t.Run("charts", func(t *testing.T) {
		for _, c := range charts {
			oci := "oci://" + registry + "/" + c.name
			meta := run(t, helm, "show", "chart", oci, "--version", testVersion, "--plain-http")
			if !strings.Contains(meta, "version: "+testVersion) || (!c.library && !strings.Contains(meta, "image: "+ref)) {
				t.Errorf("%s: Chart.yaml does not name version %s and image %s:\n%s", oci, testVersion, ref, meta)
			}
			if len(c.dependencies) > 0 && strings.Count(meta, "repository: oci://"+registry+"\n") != len(c.dependencies) {
				t.Errorf("%s: its kommons dependencies are not all in oci://%s:\n%s", c.name, registry, meta)
			}
		}
		pulled := t.TempDir()
		run(t, helm, "pull", "oci://"+registry+"/commons", "--version", testVersion, "--plain-http", "-d", pulled)
		rendered := run(t, helm, "template", "r", filepath.Join(pulled, "commons-"+testVersion+".tgz"),
			"-f", filepath.Join(repo, "charts/commons/ci/tenants-backups-values.yaml"))
		if !strings.Contains(rendered, "image: \""+ref+"\"") && !strings.Contains(rendered, "image: "+ref+"\n") {
			t.Errorf("the pulled commons chart does not run %s", ref)
		}
		// An unpacked orthanc resolves kommons-common and postgres-init from the same registry.
		run(t, helm, "pull", "oci://"+registry+"/orthanc", "--version", testVersion, "--plain-http", "--untar", "-d", pulled)
		orthanc := filepath.Join(pulled, "orthanc")
		if err := os.RemoveAll(filepath.Join(orthanc, "charts")); err != nil {
			t.Fatal(err)
		}
		run(t, helm, "dependency", "update", orthanc, "--plain-http")
		for _, dep := range []string{"kommons-common", "postgres-init"} {
			if _, err := os.Stat(filepath.Join(orthanc, "charts", dep+"-"+testVersion+".tgz")); err != nil {
				t.Fatalf("helm dependency update did not fetch %s from oci://%s: %v", dep, registry, err)
			}
		}
		rendered = run(t, helm, "template", "r", orthanc, "-f", filepath.Join(repo, "charts/orthanc/ci/storage-tiering-values.yaml"))
		if !strings.Contains(rendered, "image: \""+ref+"\"") && !strings.Contains(rendered, "image: "+ref+"\n") {
			t.Errorf("orthanc with postgres-init from the registry does not run %s", ref)
		}
	})

	// verify runs `cosign verify[-attestation] --key KEY` offline (no
	// transparency log: the release was signed with --tlog-upload=false);
	// the error carries cosign's stderr.
	verify := func(key string, args ...string) (string, error) {
		cmd := exec.Command(cosign, append([]string{args[0], "--key", key, "--insecure-ignore-tlog", "--allow-http-registry"}, args[1:]...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return stdout.String(), fmt.Errorf("%w\n%s", err, stderr.Bytes())
		}
		return stdout.String(), nil
	}
	t.Run("signatures", func(t *testing.T) {
		pub := filepath.Join(keys, "cosign.pub")
		targets := []string{image + "@" + res.IndexDigest}
		for _, pi := range res.Manifest.Images {
			targets = append(targets, image+"@"+pi.Digest)
		}
		for _, target := range targets {
			if out, err := verify(pub, "verify", target); err != nil {
				t.Errorf("cosign verify %s: %v", target, err)
			} else if !strings.Contains(out, strings.TrimPrefix(target, image+"@")) {
				t.Errorf("cosign verify %s: the signed payload does not name the digest:\n%s", target, out)
			}
		}
		if _, err := verify(filepath.Join(keys, "other", "cosign.pub"), "verify", targets[0]); err == nil {
			t.Errorf("cosign verify with another key passed")
		}
	})

	t.Run("sboms", func(t *testing.T) {
		pub := filepath.Join(keys, "cosign.pub")
		for _, pi := range res.Manifest.Images {
			target := image + "@" + pi.Digest
			envelopes, err := verify(pub, "verify-attestation", "--type", "cyclonedx", target)
			if err != nil {
				t.Fatalf("cosign verify-attestation %s: %v", target, err)
			}
			predicate := attestedPredicate(t, envelopes, pi.Digest)
			checkSBOM(t, predicate, pi.Platform)
			want, err := os.ReadFile(filepath.Join(out, pi.SBOM))
			if err != nil {
				t.Fatal(err)
			}
			if !jsonEqual(t, predicate, want) {
				t.Errorf("%s: the attested SBOM is not the release's %s", pi.Platform, pi.SBOM)
			}
		}
	})
}

// attestedPredicate decodes `cosign verify-attestation` output (one DSSE
// envelope per line) and returns the predicate of the in-toto statement
// whose subject is digest.
func attestedPredicate(t *testing.T, out, digest string) []byte {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for sc.Scan() {
		var env struct {
			PayloadType string `json:"payloadType"`
			Payload     string `json:"payload"`
		}
		if err := json.Unmarshal(sc.Bytes(), &env); err != nil || env.Payload == "" {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(env.Payload)
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			PredicateType string `json:"predicateType"`
			Subject       []struct {
				Digest map[string]string `json:"digest"`
			} `json:"subject"`
			Predicate json.RawMessage `json:"predicate"`
		}
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatal(err)
		}
		if len(st.Subject) == 1 && "sha256:"+st.Subject[0].Digest["sha256"] == digest {
			if !strings.Contains(st.PredicateType, "cyclonedx") {
				t.Errorf("predicate type %q", st.PredicateType)
			}
			return st.Predicate
		}
	}
	t.Fatalf("no attestation for %s in:\n%.2000s", digest, out)
	return nil
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

// run runs a command and returns its output, failing the test on error.
func run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}
