package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kommons/kommons/internal/cli"
	"github.com/kommons/kommons/internal/testutil/testcluster"
)

// demoRun is one run of the demo: its configuration, tools and what it started.
type demoRun struct {
	cfg     *config
	p       *progress
	tools   *testcluster.Tools
	cluster *testcluster.Cluster
	policy  *placementPolicy
	charts  string // the copied chart trees (dependencies built there, never in the repository)
	values  string // the module's values file, used by helm install and by the local render
	rows    []workloadRow
}

func runUp(args []string) error {
	cfg, err := parseFlags("up", args)
	if err != nil {
		return err
	}
	ctx, cancel := cli.SignalContext(context.Background())
	defer cancel()
	if _, err := os.Stat(filepath.Join(cfg.stateDir, "cluster", "pids")); err == nil {
		fmt.Println("demo: a previous demo left processes in", cfg.stateDir, "- stopping them first")
		stopState(cfg.stateDir)
	}
	if err := os.MkdirAll(cfg.stateDir, 0o700); err != nil {
		return err
	}
	isOrthanc := filepath.Base(cfg.chart) == "orthanc"
	r := &demoRun{cfg: cfg, p: &progress{w: os.Stdout, start: time.Now(), total: 6}}
	if isOrthanc {
		r.p.total = 7
	}
	kept := false
	defer func() {
		if !kept {
			r.stop()
			fmt.Fprintf(os.Stderr, "demo: stopped everything it started; logs kept in %s (test/demo/run.sh down removes them)\n", cfg.stateDir)
		}
	}()
	p := r.p
	fmt.Printf("kommons demo: control plane, commons, %s through the post-renderer, then the data path on loopback\n", filepath.Base(cfg.chart))
	if err := p.phase(ctx, "harness tools and kommons binaries", func() error { return r.ensureTools(ctx) }); err != nil {
		return err
	}
	if err := p.phase(ctx, "local Kubernetes control plane with node pools from "+rel(cfg.policy), func() error { return r.startCluster(ctx) }); err != nil {
		return err
	}
	if err := p.phase(ctx, "helm install commons (tenant imaging) --post-renderer postrender", func() error { return r.installCommons(ctx) }); err != nil {
		return err
	}
	if err := p.phase(ctx, fmt.Sprintf("helm install %s -n %s --post-renderer postrender", cfg.release, cfg.namespace), func() error { return r.installModule(ctx) }); err != nil {
		return err
	}
	if err := p.phase(ctx, "where every workload landed (live pods, nodes and claims)", func() error { return r.placementTable(ctx) }); err != nil {
		return err
	}
	orthancOK := false
	if isOrthanc {
		if err := p.phase(ctx, "Orthanc from Debian packages", func() error {
			var why string
			if orthancOK, why = r.ensureOrthanc(ctx); orthancOK {
				return nil
			}
			if cfg.orthanc == "require" {
				return fmt.Errorf("real Orthanc required (--orthanc=require) but unavailable: %s", why)
			}
			p.say("SKIPPED the Orthanc replicas: %s", why)
			return nil
		}); err != nil {
			return err
		}
	}
	var child *exec.Cmd
	title := "data path on loopback: PostgreSQL, rendered pg-init Job, wait-for-pg"
	if isOrthanc {
		title += ", Orthanc x2, DICOM upload"
	}
	if err := p.phase(ctx, title, func() error {
		var err error
		child, err = r.dataPath(ctx, orthancOK)
		return err
	}); err != nil {
		return err
	}
	if cfg.keep {
		kept = true
		r.printKept(child)
		return nil
	}
	fmt.Printf("==> stopping everything (KEEP=1 leaves it running)\n")
	r.stop()
	kept = true
	if err := os.RemoveAll(cfg.stateDir); err != nil {
		return fmt.Errorf("remove the run directory: %w", err)
	}
	fmt.Printf("kommons demo: done in %s\n", since(p.start))
	return nil
}

func rel(path string) string {
	if root, err := testcluster.RepoRoot(); err == nil {
		if r, err := filepath.Rel(root, path); err == nil && !strings.HasPrefix(r, "..") {
			return r
		}
	}
	return path
}

// ensureTools finds the cached harness tools (building them on the first
// run, with a warning about the time it takes) and the kommons binaries.
func (r *demoRun) ensureTools(ctx context.Context) error {
	tools, err := testcluster.FindTools()
	if err != nil {
		r.p.say("first run: building the harness tools (Kubernetes 1.33 from source, Helm 3/4, kwok, ...) into %s", testcluster.CacheDir())
		r.p.say("this takes about 25 to 30 minutes on 2 cores, once; later runs start in seconds. Progress:")
		root, rerr := testcluster.RepoRoot()
		if rerr != nil {
			return rerr
		}
		// What FindTools needs (MinIO, for the s3-init tests, is left to make tools).
		cmd := exec.CommandContext(ctx, filepath.Join(root, "test", "cluster", "build.sh"),
			"helm3", "helm4", "kubeconform", "kwok", "ct", "kube-score", "kube")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
		// Interrupted: stop the whole build (build.sh and the go commands it runs).
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
		done := make(chan struct{})
		go func() { // a heartbeat: the Kubernetes build prints nothing for many minutes
			t := time.NewTicker(time.Minute)
			defer t.Stop()
			start := time.Now()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					r.p.say("still building the harness tools (%s so far)", time.Since(start).Round(time.Second))
				}
			}
		}()
		err := cmd.Run()
		close(done)
		if err != nil {
			return fmt.Errorf("test/cluster/build.sh (make tools): %w", err)
		}
		if tools, err = testcluster.FindTools(); err != nil {
			return err
		}
	}
	r.tools = tools
	r.p.say("tools cached in %s (Kubernetes %s, Helm %s)", tools.Cache, tools.Versions["KUBE_VERSION"], tools.Versions["HELM3_VERSION"])
	var missing []string
	for _, b := range []string{"pg-init", "wait-for-pg", "postrender"} {
		if _, err := os.Stat(filepath.Join(r.cfg.binDir, b)); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		r.p.say("building %s into %s", strings.Join(missing, ", "), r.cfg.binDir)
		args := []string{"build", "-o", r.cfg.binDir + "/"}
		for _, b := range missing {
			args = append(args, "./cmd/"+b)
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = tools.RepoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %w\n%s", err, out)
		}
	}
	r.p.say("binaries: %s/{pg-init,wait-for-pg,postrender}", rel(r.cfg.binDir))
	return nil
}

// placementPolicy is the part of a postrender PlacementPolicy the demo
// needs to create matching node pools and storage classes.
type placementPolicy struct {
	Storage struct {
		DefaultClass string `json:"defaultClass"`
		Rules        []struct {
			StorageClass string `json:"storageClass"`
		} `json:"rules"`
	} `json:"storage"`
	Pools []struct {
		Name         string              `json:"name"`
		NodeSelector map[string]string   `json:"nodeSelector"`
		Tolerations  []corev1.Toleration `json:"tolerations"`
	} `json:"pools"`
}

func loadPolicy(path string) (*placementPolicy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	var p placementPolicy
	if err := yaml.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	if len(p.Pools) == 0 {
		return nil, fmt.Errorf("policy %s: no pools", path)
	}
	return &p, nil
}

// startCluster launches the control plane and adds, per pool of the
// policy, two nodes with the pool's labels and the taints its tolerations
// answer, plus every storage class the policy names.
func (r *demoRun) startCluster(ctx context.Context) error {
	pol, err := loadPolicy(r.cfg.policy)
	if err != nil {
		return err
	}
	r.policy = pol
	self, err := os.Executable()
	if err != nil {
		return err
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	r.cluster, err = testcluster.Launch(lctx, r.tools, testcluster.Options{
		Dir: filepath.Join(r.cfg.stateDir, "cluster"), Detach: r.cfg.keep,
		ProvisionerCommand: []string{self, "fakeprov"},
		Logf:               func(f string, a ...any) { r.p.say(f, a...) },
	})
	if err != nil {
		return err
	}
	for _, pool := range pol.Pools {
		var taints []corev1.Taint
		for _, t := range pool.Tolerations {
			if t.Key != "" && t.Effect != "" && t.Operator != corev1.TolerationOpExists {
				taints = append(taints, corev1.Taint{Key: t.Key, Value: t.Value, Effect: t.Effect})
			}
		}
		for i := 0; i < 2; i++ {
			labels := map[string]string{"topology.kubernetes.io/zone": fmt.Sprintf("zone-%c", 'a'+i)}
			for k, v := range pool.NodeSelector {
				labels[k] = v
			}
			name := fmt.Sprintf("%s-%d", pool.Name, i)
			if err := r.cluster.AddNode(ctx, testcluster.NodeSpec{Name: name, Labels: labels, Taints: taints}); err != nil {
				return err
			}
		}
		r.p.say("node pool %-4s 2 nodes, labels %v, taints %s", pool.Name, pool.NodeSelector, taintString(taints))
	}
	classes := []string{}
	seen := map[string]bool{testcluster.DefaultStorageClass: true}
	for _, c := range append([]string{pol.Storage.DefaultClass}, ruleClasses(pol)...) {
		if c != "" && !seen[c] {
			seen[c] = true
			if err := r.cluster.AddStorageClass(ctx, c, false); err != nil {
				return err
			}
		}
		if c != "" && !contains(classes, c) {
			classes = append(classes, c)
		}
	}
	r.p.say("storage classes: %s", strings.Join(classes, ", "))
	// The default kwok node carries no pool label: with the policy's
	// nodeSelectors nothing may land there. Cordon it so that a missing
	// placement shows up as a Pending pod instead of passing unnoticed.
	if _, err := r.cluster.Client().CoreV1().Nodes().Patch(ctx, testcluster.DefaultNode, "application/merge-patch+json",
		[]byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("cordon %s: %w", testcluster.DefaultNode, err)
	}
	return nil
}

func ruleClasses(p *placementPolicy) []string {
	var out []string
	for _, r := range p.Storage.Rules {
		out = append(out, r.StorageClass)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func taintString(ts []corev1.Taint) string {
	if len(ts) == 0 {
		return "none"
	}
	var parts []string
	for _, t := range ts {
		parts = append(parts, fmt.Sprintf("%s=%s:%s", t.Key, t.Value, t.Effect))
	}
	return strings.Join(parts, ",")
}

// copyCharts copies charts/ and examples/charts/ into the run directory, so
// that `helm dependency build` writes there and never into the repository.
func (r *demoRun) copyCharts() error {
	r.charts = filepath.Join(r.cfg.stateDir, "src")
	if err := os.RemoveAll(r.charts); err != nil {
		return err
	}
	for _, sub := range []string{"charts", filepath.Join("examples", "charts")} {
		src := filepath.Join(r.tools.RepoRoot, sub)
		err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			relPath, _ := filepath.Rel(src, path)
			dst := filepath.Join(r.charts, sub, relPath)
			if d.IsDir() {
				return os.MkdirAll(dst, 0o755)
			}
			if strings.HasSuffix(path, ".tgz") {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(dst, b, 0o644)
		})
		if err != nil {
			return fmt.Errorf("copy %s: %w", sub, err)
		}
	}
	return nil
}

// chartCopy maps a chart directory of the repository to its copy.
func (r *demoRun) chartCopy(dir string) (string, error) {
	relPath, err := filepath.Rel(r.tools.RepoRoot, dir)
	if err != nil || strings.HasPrefix(relPath, "..") {
		return "", fmt.Errorf("chart %s is not inside the repository %s", dir, r.tools.RepoRoot)
	}
	return filepath.Join(r.charts, relPath), nil
}

func (r *demoRun) helm(ctx context.Context, args ...string) (string, error) {
	hctx, cancel := context.WithTimeout(ctx, 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(hctx, r.tools.Helm3, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+r.cluster.Kubeconfig,
		"HELM_CACHE_HOME="+filepath.Join(r.cfg.stateDir, "helm", "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(r.cfg.stateDir, "helm", "config"),
		"HELM_DATA_HOME="+filepath.Join(r.cfg.stateDir, "helm", "data"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

func (r *demoRun) postRendererArgs() []string {
	return []string{"--post-renderer", filepath.Join(r.cfg.binDir, "postrender"),
		"--post-renderer-args", "--config=" + r.cfg.policy}
}

func (r *demoRun) installCommons(ctx context.Context) error {
	if err := r.copyCharts(); err != nil {
		return err
	}
	cs := r.cluster.Client()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: r.cfg.namespace}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", r.cfg.namespace, err)
	}
	chart, err := r.chartCopy(filepath.Join(r.tools.RepoRoot, "charts", "commons"))
	if err != nil {
		return err
	}
	if _, err := r.helm(ctx, "dependency", "build", chart); err != nil {
		return err
	}
	args := append([]string{"install", "commons", chart, "-n", "commons", "--create-namespace",
		"--set", "tenants[0].namespace=" + r.cfg.namespace, "--set", "tenants[0].buckets[0]=dicom",
		"--wait", "--wait-for-jobs", "--timeout", "5m"}, r.postRendererArgs()...)
	r.p.say("helm install commons charts/commons -n commons --set tenants[0].namespace=%s --set tenants[0].buckets[0]=dicom --post-renderer %s --post-renderer-args=--config=%s",
		r.cfg.namespace, rel(filepath.Join(r.cfg.binDir, "postrender")), rel(r.cfg.policy))
	_, err = r.helm(ctx, args...)
	return err
}

// moduleValues are the values the module is installed with, and rendered
// with for the data path. Orthanc stores DICOM files in object storage by
// default; Debian's Orthanc has no S3 plugin, so the demo uses its
// file-system storage on one ReadWriteMany volume shared by the replicas.
func (r *demoRun) moduleValues() map[string]any {
	if filepath.Base(r.cfg.chart) == "orthanc" {
		return map[string]any{"replicaCount": 2, "storage": map[string]any{"type": "filesystem"}}
	}
	return map[string]any{}
}

func (r *demoRun) moduleValuesNote() string {
	if filepath.Base(r.cfg.chart) == "orthanc" {
		return "replicaCount=2, storage.type=filesystem: Debian's Orthanc has no S3 plugin"
	}
	return "default values"
}

func (r *demoRun) installModule(ctx context.Context) error {
	chart, err := r.chartCopy(r.cfg.chart)
	if err != nil {
		return err
	}
	if _, err := r.helm(ctx, "dependency", "build", chart); err != nil {
		return err
	}
	vals, err := yaml.Marshal(r.moduleValues())
	if err != nil {
		return err
	}
	r.values = filepath.Join(r.cfg.stateDir, "module-values.yaml")
	if err := os.WriteFile(r.values, vals, 0o600); err != nil {
		return err
	}
	r.p.say("helm install %s %s -n %s -f %s --post-renderer ... (%s)", r.cfg.release, rel(r.cfg.chart), r.cfg.namespace,
		rel(r.values), r.moduleValuesNote())
	args := append([]string{"install", r.cfg.release, chart, "-n", r.cfg.namespace, "-f", r.values,
		"--wait", "--wait-for-jobs", "--timeout", "5m"}, r.postRendererArgs()...)
	_, err = r.helm(ctx, args...)
	return err
}

// stop stops the data path process (if any) and the cluster, by PID.
func (r *demoRun) stop() {
	stopDataPath(r.cfg.stateDir)
	if r.cluster != nil {
		r.cluster.Stop()
	} else {
		testcluster.StopDir(filepath.Join(r.cfg.stateDir, "cluster"))
	}
}

// stopState stops whatever a previous run left in dir.
func stopState(dir string) []string {
	stopped := stopDataPath(dir)
	return append(stopped, testcluster.StopDir(filepath.Join(dir, "cluster"))...)
}

func runDown(args []string) error {
	cfg, err := parseFlags("down", args)
	if err != nil {
		return err
	}
	for _, s := range stopState(cfg.stateDir) {
		fmt.Println("stopped", s)
	}
	if err := os.RemoveAll(cfg.stateDir); err != nil {
		return err
	}
	fmt.Println("removed", cfg.stateDir)
	return nil
}

// runFakeProvisioner is the PV provisioner process of the cluster (it must
// outlive the demo with KEEP=1).
func runFakeProvisioner(args []string) error {
	var kubeconfig string
	fs := cli.NewFlagSet("demo fakeprov")
	fs.String(&kubeconfig, "kubeconfig", "KUBECONFIG", "", "kubeconfig of the cluster")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	c, err := testcluster.Attach(filepath.Dir(kubeconfig), nil)
	if err != nil {
		return err
	}
	ctx, cancel := cli.SignalContext(context.Background())
	defer cancel()
	// The kwok pods of the charts' secret-init Jobs (testcluster.SecretInitComponent):
	// commons' credentials, the tenant Secret the data path reads.
	cfg, err := c.RESTConfig()
	if err != nil {
		return err
	}
	root, err := testcluster.RepoRoot()
	if err != nil {
		return err
	}
	go testcluster.RunSecretInitPods(ctx, c.Client(), cfg, root, c.Dir, nil)
	testcluster.RunProvisioner(ctx, c.Client(), testcluster.ProvisionerName, nil)
	return nil
}

// printKept prints what KEEP=1 left running.
func (r *demoRun) printKept(child *exec.Cmd) {
	root := r.tools.RepoRoot
	fmt.Println()
	fmt.Println("Left running (KEEP=1):")
	fmt.Printf("  Kubernetes API  https://127.0.0.1:%d\n", r.cluster.APIPort)
	fmt.Printf("                  export KUBECONFIG=%s; %s get pods -A -o wide\n", r.cluster.Kubeconfig, filepath.Join(r.tools.KubeBin, "kubectl"))
	fmt.Printf("                  %s list -A\n", r.tools.Helm3)
	if b, err := os.ReadFile(filepath.Join(r.cfg.stateDir, "datapath", "urls")); err == nil {
		fmt.Print(string(b))
	}
	if child != nil {
		fmt.Printf("  data path       PID %d (PostgreSQL, Orthanc replicas; logs in %s)\n", child.Process.Pid, filepath.Join(r.cfg.stateDir, "datapath"))
	}
	fmt.Printf("Stop everything:  %s down\n", filepath.Join(rel(filepath.Join(root, "test", "demo")), "run.sh"))
}

// errNotRoot explains why the Orthanc replicas need root.
var errNotRoot = errors.New("Orthanc listens on 0.0.0.0, so the demo runs it in a private network namespace, which needs root")

// ensureOrthanc reports whether the Orthanc replicas can run, installing the
// Debian packages when missing and allowed.
func (r *demoRun) ensureOrthanc(ctx context.Context) (bool, string) {
	if r.cfg.orthanc == "skip" {
		return false, "--orthanc=skip (KOMMONS_DEMO_ORTHANC=skip)"
	}
	if os.Geteuid() != 0 {
		return false, errNotRoot.Error()
	}
	if why := orthancMissing(); why == "" {
		r.p.say("found %s and the PostgreSQL plugins", orthancBinary())
		return true, ""
	} else if !r.cfg.aptInstall {
		return false, why + " and --apt-install=false"
	}
	r.p.say("installing the Debian packages orthanc orthanc-postgresql (apt-get; about a minute)")
	actx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	run := func(args ...string) error {
		cmd := exec.CommandContext(actx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get %s: %w: %s", strings.Join(args, " "), err, lastLines(string(out), 3))
		}
		return nil
	}
	install := []string{"install", "-y", "-q", "--no-install-recommends", "orthanc", "orthanc-postgresql"}
	if err := run(install...); err != nil {
		if err2 := run("update", "-q"); err2 != nil {
			return false, "cannot install orthanc orthanc-postgresql: " + err2.Error()
		}
		if err := run(install...); err != nil {
			return false, "cannot install orthanc orthanc-postgresql: " + err.Error()
		}
	}
	if why := orthancMissing(); why != "" {
		return false, why
	}
	// Debian's package may start a system Orthanc; the demo never uses it.
	return true, ""
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}

// pidAlive reports whether pid is a live (non-zombie) process.
func pidAlive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndex(s, ")")
	return !(i > 0 && i+2 < len(s) && s[i+2] == 'Z')
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}
