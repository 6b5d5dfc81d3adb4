package testcluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kommons/kommons/internal/testutil/nodeimages"
	"github.com/kommons/kommons/internal/testutil/toolcache"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// EnvRequire makes a missing cluster fail instead of skip (set by `make test`
// and implied by CI=true; toolcache.Required decides). `go test -short`
// always skips cluster tests.
const EnvRequire = toolcache.EnvRequire

// EnvAttach points tests at a cluster started by `make cluster-up` (its run
// directory) instead of launching one per test package.
const EnvAttach = "KOMMONS_CLUSTER_DIR"

var (
	once       sync.Once
	shared     *Cluster
	sharedErr  error
	sharedOwns bool
)

// Main runs a test package and stops its cluster (if one was started) after
// the last test: `func TestMain(m *testing.M) { testcluster.Main(m) }`.
func Main(m *testing.M) {
	code := m.Run()
	if shared != nil && sharedOwns {
		if code == 0 {
			shared.Destroy()
		} else {
			shared.Stop()
			fmt.Fprintf(os.Stderr, "testcluster: logs kept in %s\n", filepath.Join(shared.Dir, "logs"))
		}
	}
	os.Exit(code)
}

// Start returns the package's cluster, launching it on first use (about 7 s
// when the binaries are cached). Tests using it must be in a package whose
// TestMain calls Main. With -short it skips; when it cannot start it fails
// under CI=true or KOMMONS_E2E=1 and skips otherwise.
func Start(t testing.TB) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("cluster test skipped with -short")
	}
	once.Do(func() {
		tools, err := FindTools()
		if err != nil {
			sharedErr = err
			return
		}
		if dir := os.Getenv(EnvAttach); dir != "" {
			shared, sharedErr = Attach(dir, tools)
			return
		}
		dir, err := os.MkdirTemp("", "kommons-cluster-")
		if err != nil {
			sharedErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		shared, sharedErr = Launch(ctx, tools, Options{Dir: dir})
		sharedOwns = shared != nil
	})
	requireShared(t, "Kubernetes test cluster")
	return shared
}

// requireShared fails (CI=true or KOMMONS_E2E=1) or skips the test when the
// package's cluster could not start.
func requireShared(t testing.TB, what string) {
	t.Helper()
	if sharedErr == nil {
		return
	}
	toolcache.Missing(t, what, sharedErr)
}

// NodeOption adjusts the real node of StartNode.
type NodeOption func(*NodeOptions)

// WithNetworkPolicy runs the node's NetworkPolicy agent (see
// NodeOptions.NetworkPolicy).
func WithNetworkPolicy() NodeOption { return func(n *NodeOptions) { n.NetworkPolicy = true } }

// WithPlainHTTPRegistry lets the node's containerd pull from host
// (host:port) over plain HTTP (see NodeOptions.PlainHTTPRegistries).
func WithPlainHTTPRegistry(host string) NodeOption {
	return func(n *NodeOptions) { n.PlainHTTPRegistries = append(n.PlainHTTPRegistries, host) }
}

// StartNode returns the package's real-node cluster (NodeOptions), launching
// it on first use: the images are built or taken from the cache
// (nodeimages.Build), then the control plane and the node start inside the
// sandbox, which the package's TestMain must create with MainInSandbox.
// The options of the first call in the package apply (one node per package).
// Skips and failures follow Start's rules.
func StartNode(t testing.TB, opts ...NodeOption) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("real-node test skipped with -short")
	}
	once.Do(func() {
		if !InSandbox() {
			sharedErr = fmt.Errorf("not inside the real-node sandbox: %v", sandboxErr)
			return
		}
		tools, err := FindTools()
		if err != nil {
			sharedErr = err
			return
		}
		if e := os.Getenv(imagesErrEnv); e != "" {
			sharedErr = fmt.Errorf("build the node's images (before entering the sandbox): %s", e)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		start := time.Now()
		set, err := nodeimages.Build(ctx, t.Logf)
		if err != nil {
			sharedErr = fmt.Errorf("build the node's images: %w", err)
			return
		}
		t.Logf("images ready after %.1fs", time.Since(start).Seconds())
		dir, err := os.MkdirTemp("", "kommons-node-")
		if err != nil {
			sharedErr = err
			return
		}
		node := &NodeOptions{Images: set.All(), PauseImage: set.Pause.Ref()}
		for _, o := range opts {
			o(node)
		}
		shared, sharedErr = Launch(ctx, tools, Options{Dir: dir, Logf: t.Logf, Node: node})
		if shared != nil {
			shared.Images = set
		}
		sharedOwns = shared != nil
	})
	requireShared(t, "real-node test cluster")
	return shared
}

// Namespace creates a fresh namespace (prefix + random suffix), deleted when
// the test ends unless the test failed (kept for inspection).
func (c *Cluster) Namespace(t testing.TB, prefix string) string {
	t.Helper()
	ctx := context.Background()
	ns, err := c.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	name := ns.Name
	// The namespace's default ServiceAccount appears asynchronously; pods
	// need it to pass admission.
	err = c.poll(ctx, "ServiceAccount default in "+name, 60*time.Second, func() error {
		_, err := c.client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			_ = c.client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
		}
	})
	return name
}

// Env is the environment for CLI tools against this cluster: KUBECONFIG
// and Helm's home directories inside the run directory (so plugins and
// repositories never touch the user's own).
func (c *Cluster) Env() []string {
	h := filepath.Join(c.Dir, "helm")
	return append(os.Environ(), "KUBECONFIG="+c.Kubeconfig,
		"HELM_CACHE_HOME="+filepath.Join(h, "cache"), "HELM_CONFIG_HOME="+filepath.Join(h, "config"),
		"HELM_DATA_HOME="+filepath.Join(h, "data"), "HELM_PLUGINS="+filepath.Join(h, "data", "plugins"))
}

// Run executes a tool against this cluster and returns its combined output;
// a non-zero exit fails the test with the output.
func (c *Cluster) Run(t testing.TB, bin string, args ...string) string {
	t.Helper()
	out, err := c.Exec(bin, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return out
}

// Exec executes a tool against this cluster and returns its combined output and error.
// It is killed after 15 minutes (a hung tool; Helm's own --timeout is shorter).
func (c *Cluster) Exec(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = c.Env()
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), err
}

// Helm3 runs the Helm 3 CLI against this cluster.
func (c *Cluster) Helm3(t testing.TB, args ...string) string {
	t.Helper()
	return c.Run(t, c.Tools.Helm3, args...)
}

// Helm4 runs the Helm 4 CLI against this cluster.
func (c *Cluster) Helm4(t testing.TB, args ...string) string {
	t.Helper()
	return c.Run(t, c.Tools.Helm4, args...)
}

// Helm4WithPlugins installs the given plugin directories into a Helm data
// home of the test's own (Helm 4 installs into $HELM_DATA_HOME/plugins) and
// returns a Helm 4 runner that sees them, e.g. for `--post-renderer NAME`.
func (c *Cluster) Helm4WithPlugins(t testing.TB, plugins ...string) func(testing.TB, ...string) string {
	t.Helper()
	data := t.TempDir()
	env := append(c.Env(), "HELM_DATA_HOME="+data, "HELM_PLUGINS="+filepath.Join(data, "plugins"))
	run := func(t testing.TB, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, c.Tools.Helm4, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	for _, p := range plugins {
		run(t, "plugin", "install", p)
	}
	return run
}

// Kubectl runs the kubectl built with the control plane against this cluster.
func (c *Cluster) Kubectl(t testing.TB, args ...string) string {
	t.Helper()
	return c.Run(t, filepath.Join(c.Tools.KubeBin, "kubectl"), args...)
}

// PodReady reports whether the pod's Ready condition is True.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// StageCharts copies the repository's chart trees (charts/, examples/charts/,
// test/charts/) into a temporary directory, keeping their layout so that
// file:// dependencies resolve, and runs `helm dependency build` there on
// every chart with dependencies, a chart's own file:// dependencies first (so
// that a vendored postgres-init carries its kommons-common). It returns the
// staged root; the work tree is never written.
func (c *Cluster) StageCharts(t testing.TB) string {
	t.Helper()
	tmp := t.TempDir()
	var dirs []string
	for _, d := range []string{"charts", "examples/charts", "test/charts"} {
		src := filepath.Join(c.Tools.RepoRoot, d)
		if _, err := os.Stat(src); err != nil {
			continue
		}
		dst := filepath.Join(tmp, d)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("cp", "-r", src, dst).CombinedOutput(); err != nil {
			t.Fatalf("stage %s: %v\n%s", d, err, out)
		}
		m, _ := filepath.Glob(filepath.Join(dst, "*", "Chart.yaml"))
		for _, f := range m {
			dirs = append(dirs, filepath.Dir(f))
		}
	}
	built := map[string]bool{}
	var build func(dir string)
	build = func(dir string) {
		if built[dir] {
			return
		}
		built[dir] = true
		b, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
		if err != nil {
			t.Fatalf("stage: %v", err)
		}
		var meta struct {
			Dependencies []struct {
				Repository string `json:"repository"`
			} `json:"dependencies"`
		}
		if err := yaml.Unmarshal(b, &meta); err != nil {
			t.Fatalf("stage: %s/Chart.yaml: %v", dir, err)
		}
		if len(meta.Dependencies) == 0 {
			return
		}
		for _, d := range meta.Dependencies {
			if rel, ok := strings.CutPrefix(d.Repository, "file://"); ok {
				build(filepath.Clean(filepath.Join(dir, rel)))
			}
		}
		c.Helm3(t, "dependency", "build", dir)
	}
	for _, d := range dirs {
		build(d)
	}
	return tmp
}
