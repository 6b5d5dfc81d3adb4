// Package ociinstall installs a kommons release the way a user does: built
// and published by the release code (internal/release, what `make release`
// and `make publish` run) to a real OCI registry (CNCF distribution on
// loopback), then installed on the test harness's real node by OCI
// reference, with no checkout of the charts: only the release's binary
// archive (the post-renderer) and its Helm 4 plugin archive.
//
// One ordered scenario on one node: release N-1 and N built from this tree,
// signed with a key generated here and published; N-1 installed with Helm 3
// (commons, then orthanc through the post-renderer), a DICOM instance
// uploaded, then upgraded to N by OCI reference (data, passwords and pods
// survive); orthanc N installed with Helm 4 through the plugin installed
// from its archive; then the benchmark: commons then orthanc N to all pods
// Ready, without and with the post-renderer. After every install, every
// pod's image is referenced by digest (spec and status) and every image the
// cluster pulled from the release registry passes `cosign verify --key`.
package ociinstall

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/internal/release"
	"github.com/kommons/kommons/internal/testutil/nodeimages"
	"github.com/kommons/kommons/internal/testutil/orthanctest"
	"github.com/kommons/kommons/internal/testutil/registrytest"
	"github.com/kommons/kommons/internal/testutil/testcluster"
	"github.com/kommons/kommons/internal/testutil/toolcache"
)

func TestMain(m *testing.M) { testcluster.MainInSandbox(m) }

// The two releases built from this tree: N-1 and N.
const (
	previous = "0.8.0"
	current  = "0.9.0"
)

// scenario is the state shared by the ordered steps.
type scenario struct {
	c        *testcluster.Cluster
	registry string // host:port/kommons, where the releases are published
	cosign   string
	pubKey   string                             // cosign.pub of the key the releases are signed with
	releases map[string]*release.Result         // by version
	dist     map[string]string                  // dist/ directory by version
	user     string                             // the user's directory: only what they downloaded
	policy   string                             // policy file
	helm     func(testing.TB, ...string) string // Helm 3, in the user's directory
	helm4    func(testing.TB, ...string) string // Helm 4 with the plugin installed from its archive, in the user's directory
	digests  map[string]string                  // nodeimages (harness) image repository -> manifest digest
	run      string
	top      *testing.T // the whole scenario: its temporary directories, environment and namespaces outlive the steps

	commons, imaging, imaging4 string // namespaces
	instance                   string // Orthanc ID of the uploaded instance
	secrets                    map[string]string
}

func TestOCIInstall(t *testing.T) {
	reg := registrytest.Start(t)
	c := testcluster.StartNode(t, testcluster.WithPlainHTTPRegistry(reg.Host))
	s := &scenario{c: c, registry: reg.Host + "/kommons", releases: map[string]*release.Result{}, dist: map[string]string{},
		run: strconv.FormatInt(time.Now().UnixNano()%1e9, 36), top: t}
	// cosign, the image push and Helm keep their state here: no user credentials or settings.
	state := t.TempDir()
	for k, v := range map[string]string{"DOCKER_CONFIG": "docker", "TUF_ROOT": "sigstore", "HELM_CONFIG_HOME": "helm/config",
		"HELM_CACHE_HOME": "helm/cache", "HELM_DATA_HOME": "helm/data"} {
		t.Setenv(k, filepath.Join(state, v))
	}
	t.Setenv("COSIGN_PASSWORD", "test-key-password")
	t.Cleanup(func() {
		if t.Failed() {
			s.c.Dump(t)
		}
	})
	for _, step := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"release-and-publish", s.publish},
		{"user-downloads", s.download},
		{"helm3-install-previous", s.installPrevious},
		{"upgrade-to-current", s.upgrade},
		{"helm4-plugin-install", s.installHelm4},
		{"benchmark", s.benchmark},
	} {
		if !t.Run(step.name, step.fn) {
			t.Fatalf("step %s failed; later steps depend on it", step.name)
		}
	}
}

// publish builds releases N-1 and N from this tree for the test registry
// and publishes them there, signed with a key generated here.
func (s *scenario) publish(t *testing.T) {
	s.cosign = toolcache.Require(t, "cosign", "COSIGN_VERSION", "cosign", "")
	cdx := toolcache.Require(t, "cyclonedx-gomod", "CYCLONEDX_GOMOD_VERSION", "cyclonedx-gomod", "")
	keys := s.top.TempDir()
	gen := exec.Command(s.cosign, "generate-key-pair")
	gen.Dir = keys
	out, err := gen.CombinedOutput()
	require.NoError(t, err, "cosign generate-key-pair:\n%s", out)
	s.pubKey = filepath.Join(keys, "cosign.pub")

	repo := s.c.Tools.RepoRoot
	rev, err := exec.Command("git", "-C", repo, "rev-parse", "HEAD").Output()
	require.NoError(t, err)
	ts, err := exec.Command("git", "-C", repo, "log", "-1", "--format=%ct").Output()
	require.NoError(t, err)
	sec, err := strconv.ParseInt(strings.TrimSpace(string(ts)), 10, 64)
	require.NoError(t, err)
	ctx := context.Background()
	host := strings.SplitN(s.registry, "/", 2)[0]
	for _, v := range []string{previous, current} {
		start := time.Now()
		out := s.top.TempDir()
		res, err := release.Run(ctx, release.Options{Repo: repo, Out: out, Version: v, Revision: strings.TrimSpace(string(rev)),
			Created: time.Unix(sec, 0).UTC(), Registry: host, Repository: "kommons/" + release.ImageName, ChartRegistry: s.registry,
			Helm: s.c.Tools.Helm3, CycloneDX: cdx, Logf: t.Logf})
		require.NoError(t, err, "release %s", v)
		built := time.Since(start)
		_, err = release.Publish(ctx, release.PublishOptions{Dir: out, Registry: s.registry, PlainHTTP: true, Cosign: s.cosign,
			Key: filepath.Join(keys, "cosign.key"), NoTlog: true, Helm: s.c.Tools.Helm3, Logf: t.Logf})
		require.NoError(t, err, "publish %s", v)
		t.Logf("release %s: built in %.1fs, published in %.1fs; kommons-tools index %s", v, built.Seconds(),
			time.Since(start.Add(built)).Seconds(), res.IndexDigest)
		s.releases[v], s.dist[v] = res, out
	}
	require.NotEqual(t, s.releases[previous].IndexDigest, s.releases[current].IndexDigest, "N-1 and N are different images")
}

// download gives the user a directory holding only what they would
// download from a release: the post-renderer from each version's binary
// archive and N's Helm 4 plugin archive; and a placement policy.
func (s *scenario) download(t *testing.T) {
	s.user = s.top.TempDir()
	for _, v := range []string{previous, current} {
		archive := filepath.Join(s.dist[v], fmt.Sprintf("kommons_%s_linux_%s.tar.gz", v, goarch()))
		out, err := exec.Command("tar", "-xzf", archive, "-C", s.user).CombinedOutput()
		require.NoError(t, err, "unpack %s:\n%s", archive, out)
		version, err := exec.Command(s.postrender(v), "--version").CombinedOutput()
		require.NoError(t, err, "%s --version:\n%s", s.postrender(v), version)
		require.Contains(t, string(version), v, "the post-renderer of release %s prints its version", v)
	}
	plugin := fmt.Sprintf("kommons-postrender-%s-linux-%s.tgz", current, goarch())
	b, err := os.ReadFile(filepath.Join(s.dist[current], plugin))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(s.user, plugin), b, 0o644))
	s.helm = s.inUserDir(s.c.Tools.Helm3, s.c.Env()...)
	s.policy = filepath.Join(s.user, "policy.yaml")
	require.NoError(t, os.WriteFile(s.policy, []byte(testcluster.PoolPolicy), 0o644))
	entries, _ := os.ReadDir(s.user)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	t.Logf("the user's directory: %s", strings.Join(names, " "))

	// Label the node for both pools of the policy.
	s.c.LabelNodeForPools(t)

	// The harness's third-party images (PostgreSQL, the object store,
	// Orthanc) stand in for docker.io's: pinned by digest like a user pins
	// upstream images.
	s.digests = map[string]string{}
	for _, img := range []nodeimages.Image{s.c.Images.Postgres, s.c.Images.MinIO, s.c.Images.Orthanc} {
		i, err := tarball.ImageFromPath(img.Path, nil)
		require.NoError(t, err)
		d, err := i.Digest()
		require.NoError(t, err)
		s.digests[img.Repository] = d.String()
	}
}

// goarch is the node's architecture (the test runs on it).
func goarch() string { return runtime.GOARCH }

// postrender is the post-renderer binary from release v's archive.
func (s *scenario) postrender(v string) string {
	return filepath.Join(s.user, fmt.Sprintf("kommons_%s_linux_%s", v, goarch()), "postrender")
}

// chart is the OCI reference of a published chart.
func (s *scenario) chart(name string) string { return "oci://" + s.registry + "/" + name }

// post3 are Helm 3's post-renderer flags with release v's binary.
func (s *scenario) post3(v string) []string {
	return []string{"--post-renderer", s.postrender(v), "--post-renderer-args", "--config=" + s.policy}
}

func (s *scenario) imageValues(prefix string, img nodeimages.Image) []string {
	return []string{"--set", prefix + ".registry=" + nodeimages.Registry, "--set", prefix + ".repository=" + img.Repository,
		"--set", prefix + ".tag=" + img.Tag, "--set", prefix + ".digest=" + s.digests[img.Repository]}
}

// commonsValues: the tenants, and the harness's PostgreSQL and object-store
// images; the kommons-tools image is the release's (not overridden).
func (s *scenario) commonsValues(tenants ...string) []string {
	v := []string{"--set", "postgresql.persistence.size=2Gi"}
	for i, ns := range tenants {
		v = append(v, "--set", fmt.Sprintf("tenants[%d].namespace=%s", i, ns))
	}
	v = append(v, s.imageValues("postgresql.image", s.c.Images.Postgres)...)
	return append(v, s.imageValues("objectStorage.minio.image", s.c.Images.MinIO)...)
}

// orthancValues: one replica on a volume, the harness's Orthanc image.
func (s *scenario) orthancValues() []string {
	v := []string{"--set", "replicaCount=1", "--set", "storage.type=filesystem", "--set", "storage.filesystem.size=1Gi",
		"--set", "orthanc.command=" + nodeimages.OrthancCommand, "--set", "orthanc.plugins.directory=" + nodeimages.OrthancPluginDir}
	return append(v, s.imageValues("image", s.c.Images.Orthanc)...)
}

// inUserDir runs bin with env in the user's directory (no checkout there),
// failing the test with its output on a non-zero exit.
func (s *scenario) inUserDir(bin string, env ...string) func(testing.TB, ...string) string {
	return func(t testing.TB, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env, cmd.Dir = env, s.user
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s %s:\n%s", filepath.Base(bin), strings.Join(args, " "), out)
		return string(out)
	}
}

// helm3 runs Helm 3 from the user's directory and logs its duration.
func (s *scenario) helm3(t *testing.T, args ...string) {
	t.Helper()
	start := time.Now()
	s.helm(t, args...)
	t.Logf("helm %s %s --version %s: %.1fs", args[0], args[1], versionArg(args), time.Since(start).Seconds())
}

func versionArg(args []string) string {
	for i, a := range args {
		if a == "--version" && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func (s *scenario) installPrevious(t *testing.T) {
	s.commons = s.c.Namespace(s.top, "commons")
	s.imaging = s.c.Namespace(s.top, "imaging")
	s.imaging4 = s.c.Namespace(s.top, "imaging4")
	// N-1 as released: the bundled server without TLS (its default then),
	// tenants on sslmode disable.
	s.helm3(t, append(append(append([]string{"install", "commons", s.chart("commons"), "--version", previous, "--plain-http",
		"-n", s.commons, "--wait", "--wait-for-jobs", "--timeout", "10m"}, s.commonsValues(s.imaging, s.imaging4)...),
		"--set", "postgresql.tls.enabled=false"), s.post3(previous)...)...)
	require.Equal(t, "disable", s.c.SecretData(t, s.imaging, "kommons-commons")["PGSSLMODE"])
	s.helm3(t, append(append([]string{"install", "orthanc", s.chart("orthanc"), "--version", previous, "--plain-http",
		"-n", s.imaging, "--wait", "--wait-for-jobs", "--timeout", "10m"}, s.orthancValues()...), s.post3(previous)...)...)
	s.requirePodsReady(t, s.commons, s.imaging)
	s.requireReleaseImages(t, previous, s.commons, s.imaging)
	pg := s.onePod(t, s.commons, "app.kubernetes.io/component=database")
	assert.Equal(t, "true", pg.Spec.NodeSelector["kommons.test/pool-db"], "PostgreSQL placed on pool db by release %s's post-renderer", previous)

	// Data: one DICOM instance through the Service.
	user, pw := s.orthancAuth(t)
	svc := "http://" + s.c.ServiceAddr(t, s.imaging, "orthanc", "http")
	s.instance = orthanctest.UploadTo(t, svc, user, pw, orthanctest.DicomFile(orthanctest.DicomSpec{Run: s.run, Study: 1, Instance: 1}))
	// Passwords: every Secret value of the tenant and commons namespaces.
	s.secrets = s.secretValues(t, s.commons, s.imaging)
	require.NotEmpty(t, s.secrets)
	s.requireModuleRole(t)
}

// upgrade upgrades commons, then orthanc, to N by OCI reference with the
// same values and N's post-renderer.
func (s *scenario) upgrade(t *testing.T) {
	before := s.podUIDs(t, s.commons, s.imaging)
	volumes := s.pvcUIDs(t, s.commons, s.imaging)
	require.NotEmpty(t, volumes)
	s.helm3(t, append(append([]string{"upgrade", "commons", s.chart("commons"), "--version", current, "--plain-http",
		"-n", s.commons, "--wait", "--wait-for-jobs", "--timeout", "10m"}, s.commonsValues(s.imaging, s.imaging4)...), s.post3(current)...)...)
	s.tlsTransition(t)
	s.helm3(t, append(append([]string{"upgrade", "orthanc", s.chart("orthanc"), "--version", current, "--plain-http",
		"-n", s.imaging, "--wait", "--wait-for-jobs", "--timeout", "10m"}, s.orthancValues()...), s.post3(current)...)...)
	s.requirePodsReady(t, s.commons, s.imaging)
	s.requireReleaseImages(t, current, s.commons, s.imaging)
	after := s.podUIDs(t, s.commons, s.imaging)
	var kept, replaced []string
	for name := range after {
		if before[name] == after[name] {
			kept = append(kept, name)
		} else {
			replaced = append(replaced, name)
		}
	}
	sort.Strings(kept)
	sort.Strings(replaced)
	t.Logf("after the upgrade: pods kept %v, new or replaced %v", kept, replaced)

	// Volumes survive: the same claims (same UIDs) are bound.
	assert.Equal(t, volumes, s.pvcUIDs(t, s.commons, s.imaging), "PersistentVolumeClaims after the upgrade")
	t.Logf("the same %d PersistentVolumeClaims after the upgrade", len(volumes))
	// Passwords survive: every Secret value of N-1 is unchanged.
	now := s.secretValues(t, s.commons, s.imaging)
	t.Logf("%d Secret values of %s compared", len(s.secrets), previous)
	for k, v := range s.secrets {
		got, ok := now[k]
		if !assert.True(t, ok, "Secret value %s gone after the upgrade", k) {
			continue
		}
		// N-1 ran the bundled server without TLS: the transport facts move
		// to verify-full (tlsTransition); every credential stays.
		switch k[strings.LastIndex(k, "/")+1:] {
		case "PGSSLMODE", "sslmode":
			assert.Equal(t, "verify-full", got, k)
		case "sslrootcert":
			assert.Equal(t, "/etc/kommons/postgres-ca/ca.crt", got, k)
		case "uri", "jdbc-uri":
			assert.Contains(t, got, "sslmode=verify-full", k)
		default:
			assert.True(t, got == v, "Secret value %s changed by the upgrade", k)
		}
	}
	// Data survives: Orthanc lists the instance through the Service, and the
	// module's role logs in and finds its row.
	user, pw := s.orthancAuth(t)
	var ids []string
	require.NoError(t, orthanctest.GetJSONURL("http://"+s.c.ServiceAddr(t, s.imaging, "orthanc", "http")+"/instances", user, pw, &ids))
	assert.Equal(t, []string{s.instance}, ids, "Orthanc lists the instance uploaded under %s", previous)
	s.requireModuleRole(t)
}

// tlsTransition: after commons' upgrade to N (bundled TLS on by default),
// the tenant Secret says verify-full with the server's CA, and the server
// refuses the module's role without TLS, as the Orthanc pod of N-1 (started
// with sslmode disable) connects; the documented step, `kubectl rollout
// restart` of the module's workloads, brings Orthanc back with verify-full:
// it lists the instance uploaded under N-1 and every session of its role is
// TLS.
func (s *scenario) tlsTransition(t *testing.T) {
	tenant := s.c.SecretData(t, s.imaging, "kommons-commons")
	require.Equal(t, "verify-full", tenant["PGSSLMODE"], "the tenant Secret after the upgrade")
	require.Contains(t, tenant["ca.crt"], "-----BEGIN CERTIFICATE-----")
	_, err := s.moduleConn(t, false)
	require.Error(t, err, "the module's role without TLS after the upgrade")
	require.Contains(t, err.Error(), "no pg_hba.conf entry")

	deps, err := s.c.Client().AppsV1().Deployments(s.imaging).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, deps.Items)
	for _, d := range deps.Items {
		s.c.Kubectl(t, "-n", s.imaging, "rollout", "restart", "deployment/"+d.Name)
		s.c.Kubectl(t, "-n", s.imaging, "rollout", "status", "deployment/"+d.Name, "--timeout=5m")
	}
	user, pw := s.orthancAuth(t)
	var ids []string
	testcluster.Eventually(t, "Orthanc lists the instance after the restart", 3*time.Minute, func() error {
		return orthanctest.GetJSONURL("http://"+s.c.ServiceAddr(t, s.imaging, "orthanc", "http")+"/instances", user, pw, &ids)
	})
	assert.Equal(t, []string{s.instance}, ids)
	conn, err := s.moduleConn(t, true)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var sessions, encrypted int
	require.NoError(t, conn.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE s.ssl)
		FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.usename = current_user AND a.pid <> pg_backend_pid()`).Scan(&sessions, &encrypted))
	require.Positive(t, sessions, "Orthanc's sessions of its role")
	require.Equal(t, sessions, encrypted, "every Orthanc session is TLS after the restart")
	t.Logf("after the upgrade: plaintext refused; after rollout restart Orthanc's %d sessions are TLS (verify-full)", sessions)
}

// installHelm4 installs N's plugin from its archive into an empty Helm 4
// data home and orthanc N through it.
func (s *scenario) installHelm4(t *testing.T) {
	data := s.top.TempDir()
	s.helm4 = s.inUserDir(s.c.Tools.Helm4, append(s.c.Env(), "HELM_DATA_HOME="+data, "HELM_PLUGINS="+filepath.Join(data, "plugins"))...)
	archive := filepath.Join(s.user, fmt.Sprintf("kommons-postrender-%s-linux-%s.tgz", current, goarch()))
	s.helm4(t, "plugin", "install", archive, "--verify=false")
	list := s.helm4(t, "plugin", "list")
	require.Contains(t, list, "kommons-postrender", "helm4 plugin list")
	require.Contains(t, list, current, "the installed plugin is release %s", current)
	start := time.Now()
	s.helm4(t, append([]string{"install", "orthanc", s.chart("orthanc"), "--version", current, "--plain-http",
		"-n", s.imaging4, "--wait", "--wait-for-jobs", "--timeout", "10m",
		"--post-renderer", "kommons-postrender", "--post-renderer-args", "--config=" + s.policy}, s.orthancValues()...)...)
	t.Logf("helm4 install orthanc --version %s: %.1fs", current, time.Since(start).Seconds())
	s.requirePodsReady(t, s.imaging4)
	s.requireReleaseImages(t, current, s.imaging4)
	web := s.onePod(t, s.imaging4, "app.kubernetes.io/name=orthanc,app.kubernetes.io/component=web")
	assert.Equal(t, "true", web.Spec.NodeSelector["kommons.test/pool-app"], "Orthanc placed on pool app by the Helm 4 plugin")
	user, pw := s.orthancAuthIn(t, s.imaging4)
	var sys map[string]any
	require.NoError(t, orthanctest.GetJSONURL("http://"+s.c.ServiceAddr(t, s.imaging4, "orthanc", "http")+"/system", user, pw, &sys))
	// Free its share of the node for the benchmark.
	s.helm4(t, "uninstall", "orthanc", "-n", s.imaging4, "--wait", "--timeout", "5m")
}

// benchmark: helm install of commons then orthanc N by OCI reference to
// all pods Ready, without and with the post-renderer, same run, in the
// order without, with, with, without (an order effect cancels out); then
// the post-renderer alone on each chart's manifests as Helm hands them
// over. Figures only, no timed assertion (docs/benchmarks/oci-install.md).
func (s *scenario) benchmark(t *testing.T) {
	times := map[string][]time.Duration{}
	for round, mode := range []string{"without", "with", "with", "without"} {
		commons := s.c.Namespace(t, "bench-commons")
		tenant := s.c.Namespace(t, "bench-imaging")
		var post []string
		if mode == "with" {
			post = s.post3(current)
		}
		start := time.Now()
		s.helm3(t, append(append([]string{"install", "commons", s.chart("commons"), "--version", current, "--plain-http",
			"-n", commons, "--wait", "--wait-for-jobs", "--timeout", "10m"}, s.commonsValues(tenant)...), post...)...)
		commonsDone := time.Since(start)
		s.helm3(t, append(append([]string{"install", "orthanc", s.chart("orthanc"), "--version", current, "--plain-http",
			"-n", tenant, "--wait", "--wait-for-jobs", "--timeout", "10m"}, s.orthancValues()...), post...)...)
		s.requirePodsReady(t, commons, tenant)
		took := time.Since(start)
		times[mode] = append(times[mode], took)
		t.Logf("benchmark round %d, %s the post-renderer: commons %.1fs, commons then orthanc to all pods Ready %.1fs", round+1, mode,
			commonsDone.Seconds(), took.Seconds())
		s.requireReleaseImages(t, current, commons, tenant)
		if mode == "with" {
			pg := s.onePod(t, commons, "app.kubernetes.io/component=database")
			assert.Equal(t, "true", pg.Spec.NodeSelector["kommons.test/pool-db"], "the post-renderer placed PostgreSQL")
		}
		s.helm(t, "uninstall", "orthanc", "-n", tenant, "--wait", "--timeout", "5m")
		s.helm(t, "uninstall", "commons", "-n", commons, "--wait", "--timeout", "5m")
	}
	// The post-renderer alone, once per chart as Helm runs it, on the
	// manifests of the "with" rounds (median of 5 each).
	var alone time.Duration
	for _, args := range [][]string{
		append([]string{"template", "commons", s.chart("commons"), "--version", current, "--plain-http", "-n", "bench"}, s.commonsValues("bench-t")...),
		append([]string{"template", "orthanc", s.chart("orthanc"), "--version", current, "--plain-http", "-n", "bench-t"}, s.orthancValues()...),
	} {
		manifests := []byte(s.helm(t, args...))
		var runs []time.Duration
		for range 5 {
			cmd := exec.Command(s.postrender(current), "--config="+s.policy)
			cmd.Stdin = bytes.NewReader(manifests)
			start := time.Now()
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "postrender:\n%s", out)
			runs = append(runs, time.Since(start))
		}
		sort.Slice(runs, func(i, j int) bool { return runs[i] < runs[j] })
		t.Logf("benchmark: the post-renderer alone on %s's %d bytes: median %.1f ms (min %.1f, max %.1f)", args[1], len(manifests),
			ms(runs[2]), ms(runs[0]), ms(runs[4]))
		alone += runs[2]
	}
	without, with := mean(times["without"]), mean(times["with"])
	t.Logf("benchmark: to all pods Ready, without the post-renderer %s (mean %.1fs), with it %s (mean %.1fs): difference %+.1fs (%+.1f%%); the post-renderer's own runs %.1f ms = %.3f%% of the install with it",
		secs(times["without"]), without.Seconds(), secs(times["with"]), with.Seconds(), (with - without).Seconds(),
		100*(with-without).Seconds()/with.Seconds(), ms(alone), 100*alone.Seconds()/with.Seconds())
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func mean(ds []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}

func secs(ds []time.Duration) string {
	var out []string
	for _, d := range ds {
		out = append(out, fmt.Sprintf("%.1fs", d.Seconds()))
	}
	return strings.Join(out, ", ")
}

// requireReleaseImages checks every pod of the namespaces: each container's
// image (init containers included) is referenced by digest in the pod spec,
// the runtime reports that digest (status.imageID), the kommons-tools
// image is release v's index, and every image pulled from the release
// registry passes `cosign verify --key` with the release key.
func (s *scenario) requireReleaseImages(t *testing.T, v string, namespaces ...string) {
	t.Helper()
	ctx := context.Background()
	tools := s.registry + "/" + release.ImageName
	verified := map[string]bool{}
	var counted int
	for _, ns := range namespaces {
		pods, err := s.c.Client().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		require.NoError(t, err)
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil {
				continue
			}
			specs := map[string]string{}
			for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
				specs[c.Name] = c.Image
			}
			for _, st := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
				image := specs[st.Name]
				_, digest, ok := strings.Cut(image, "@")
				if !assert.True(t, ok && strings.HasPrefix(digest, "sha256:"), "%s/%s[%s]: image %s not referenced by digest", ns, p.Name, st.Name, image) {
					continue
				}
				assert.True(t, strings.HasSuffix(st.ImageID, "@"+digest), "%s/%s[%s]: the runtime ran %q, not %s", ns, p.Name, st.Name, st.ImageID, digest)
				counted++
				repo := strings.SplitN(image, "@", 2)[0]
				if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
					repo = repo[:i] // the tag kept for readability
				}
				switch {
				case repo == tools:
					assert.Equal(t, s.releases[v].IndexDigest, digest, "%s/%s[%s]: kommons-tools of release %s", ns, p.Name, st.Name, v)
					verified[repo+"@"+digest] = true
					// The node pulled its platform's manifest of the index.
					verified[repo+"@"+s.releases[v].ManifestDigests["linux/"+goarch()]] = true
				case strings.HasPrefix(repo, s.registry+"/"):
					verified[repo+"@"+digest] = true
				default:
					assert.True(t, strings.HasPrefix(repo, nodeimages.Registry+"/"), "%s/%s[%s]: image %s from neither the release nor the harness", ns, p.Name, st.Name, image)
				}
			}
		}
	}
	require.NotZero(t, counted, "no container in %v", namespaces)
	require.NotEmpty(t, verified, "no image of the release registry ran in %v", namespaces)
	for ref := range verified {
		cmd := exec.Command(s.cosign, "verify", "--key", s.pubKey, "--insecure-ignore-tlog", "--allow-http-registry", ref)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if assert.NoError(t, cmd.Run(), "cosign verify %s:\n%s", ref, stderr.String()) {
			assert.Contains(t, stdout.String(), strings.SplitN(ref, "@", 2)[1], "the signed payload names the digest")
			t.Logf("cosign verify --key: %s", ref)
		}
	}
	t.Logf("%d containers in %v: every image by digest, as the runtime reports", counted, namespaces)
}

// requirePodsReady waits until every pod of the namespaces is Running and
// Ready, or Succeeded (Job pods).
func (s *scenario) requirePodsReady(t *testing.T, namespaces ...string) {
	t.Helper()
	for _, ns := range namespaces {
		testcluster.Eventually(t, "pods of "+ns+" ready", 5*time.Minute, func() error { return s.c.PodsReady(ns) })
	}
}

// podUIDs maps the running (not Succeeded) pods of the namespaces to their UIDs.
func (s *scenario) podUIDs(t *testing.T, namespaces ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, ns := range namespaces {
		pods, err := s.c.Client().CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
		require.NoError(t, err)
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodSucceeded && p.DeletionTimestamp == nil {
				out[ns+"/"+p.Name] = string(p.UID)
			}
		}
	}
	return out
}

// pvcUIDs maps the PersistentVolumeClaims of the namespaces to their UIDs.
func (s *scenario) pvcUIDs(t *testing.T, namespaces ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, ns := range namespaces {
		pvcs, err := s.c.Client().CoreV1().PersistentVolumeClaims(ns).List(context.Background(), metav1.ListOptions{})
		require.NoError(t, err)
		for _, p := range pvcs.Items {
			out[ns+"/"+p.Name] = string(p.UID) + " " + p.Spec.VolumeName
		}
	}
	return out
}

// secretValues is every value of every Secret of the namespaces but Helm's
// release records, keyed namespace/secret/key.
func (s *scenario) secretValues(t *testing.T, namespaces ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, ns := range namespaces {
		secs, err := s.c.Client().CoreV1().Secrets(ns).List(context.Background(), metav1.ListOptions{})
		require.NoError(t, err)
		for _, sec := range secs.Items {
			if sec.Type == "helm.sh/release.v1" {
				continue
			}
			for k, v := range sec.Data {
				out[ns+"/"+sec.Name+"/"+k] = string(v)
			}
		}
	}
	return out
}

func (s *scenario) onePod(t *testing.T, ns, selector string) *corev1.Pod {
	t.Helper()
	pods, err := s.c.Client().CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	require.NoError(t, err)
	var live []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	require.Len(t, live, 1, "pods %s in %s", selector, ns)
	return &live[0]
}

func (s *scenario) orthancAuth(t *testing.T) (string, string) { return s.orthancAuthIn(t, s.imaging) }

func (s *scenario) orthancAuthIn(t *testing.T, ns string) (string, string) {
	a := s.c.SecretData(t, ns, "orthanc-auth")
	return a["username"], a["password"]
}

// requireModuleRole logs in as the role postgres-init made for orthanc
// (its connection Secret) through commons' PostgreSQL Service and counts
// the uploaded instance in Orthanc's index.
// moduleConn connects as Orthanc's role (its postgres-init connection
// Secret) to commons' PostgreSQL Service: with verify, as the tenant Secret
// says (TLS verified with its ca.crt under PGHOST when it has one); else
// without TLS.
func (s *scenario) moduleConn(t *testing.T, verify bool) (*pgx.Conn, error) {
	t.Helper()
	secs, err := s.c.Client().CoreV1().Secrets(s.imaging).List(context.Background(),
		metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=postgres-init,app.kubernetes.io/component=credentials"})
	require.NoError(t, err)
	require.Len(t, secs.Items, 1, "one postgres-init connection Secret in %s", s.imaging)
	d := secs.Items[0].Data
	tenant := s.c.SecretData(t, s.imaging, "kommons-commons")
	host := tenant["PGHOST"] // <svc>.<ns>.svc.cluster.local
	addr := s.c.ServiceAddr(t, s.commons, strings.Split(host, ".")[0], "postgresql")
	h, port, _ := net.SplitHostPort(addr)
	cfg, err := pgx.ParseConfig("")
	require.NoError(t, err)
	p, _ := strconv.Atoi(port)
	cfg.Host, cfg.Port, cfg.User, cfg.Password, cfg.Database = h, uint16(p), string(d["username"]), string(d["password"]), string(d["dbname"])
	cfg.TLSConfig, cfg.Fallbacks = nil, nil
	if verify && tenant["ca.crt"] != "" {
		pool := x509.NewCertPool()
		require.True(t, pool.AppendCertsFromPEM([]byte(tenant["ca.crt"])), "the tenant Secret's ca.crt")
		cfg.TLSConfig = &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return pgx.ConnectConfig(ctx, cfg)
}

func (s *scenario) requireModuleRole(t *testing.T) {
	t.Helper()
	conn, err := s.moduleConn(t, true)
	require.NoError(t, err, "the module role logs in to its database")
	defer conn.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var rows int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM resources WHERE resourcetype = 3").Scan(&rows))
	assert.Equal(t, 1, rows, "instances indexed in %s", conn.Config().Database)
}
