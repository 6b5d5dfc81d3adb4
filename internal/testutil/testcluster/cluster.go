package testcluster

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kommons/kommons/internal/testutil/nodeimages"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Cluster is a running control plane.
type Cluster struct {
	Dir        string // run directory: pki/, etcd/, logs/, pids/, kubeconfig
	Kubeconfig string
	Tools      *Tools
	APIPort    int
	Token      string

	client   *kubernetes.Clientset
	cancelBG context.CancelFunc // in-process provisioner, when there is one
	bgDone   chan struct{}
	// Images are the real node's images (StartNode); nil otherwise.
	Images *nodeimages.Set

	node     bool               // real-node mode (NodeOptions)
	registry *nodeimages.Server // real-node mode: the in-process image registry
}

// Options shapes a launch.
type Options struct {
	// Dir is the run directory; it is created (and wiped) by Launch.
	Dir string
	// Detach starts every process in its own session so that it outlives
	// the launching process (make cluster-up). Otherwise the processes get
	// SIGKILL when the launcher dies, as a backstop to Stop.
	Detach bool
	// ProvisionerCommand runs the PV provisioner as a process (e.g. the
	// kcluster binary's `fakeprov` subcommand); empty runs it in-process.
	ProvisionerCommand []string
	// Logf reports progress; nil is silent.
	Logf func(format string, args ...any)
	// Node, when set, replaces kwok with one real node (see NodeOptions);
	// Launch must then run inside the sandbox of MainInSandbox.
	Node *NodeOptions
}

// Launch starts a new control plane and waits until it is ready: node
// Ready, default ServiceAccount and kube-root-ca.crt present.
//
// Ports are picked free and released just before each component binds
// them, so another process (or an outgoing connection's ephemeral port) can
// take one in between; the component then exits at once. Launch checks that
// every component is still running once the cluster is ready, and starts
// over on fresh ports (up to three attempts) when one has exited.
func Launch(ctx context.Context, tools *Tools, o Options) (*Cluster, error) {
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		var c *Cluster
		// The real node's ports are fixed inside its own network namespace:
		// nothing can take them, so a dead component is a real failure.
		if c, err = launchOnce(ctx, tools, o); err == nil || !errors.Is(err, errComponentExited) || o.Node != nil {
			return c, err
		}
		if o.Logf != nil {
			o.Logf("attempt %d: %v; starting over on fresh ports", attempt, err)
		}
	}
	return nil, err
}

// errComponentExited marks a launch that failed because a component died.
var errComponentExited = errors.New("component exited")

func launchOnce(ctx context.Context, tools *Tools, o Options) (_ *Cluster, err error) {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	start := time.Now()
	if err := os.RemoveAll(o.Dir); err != nil {
		return nil, err
	}
	for _, d := range []string{"logs", "pids", "etcd", "certs"} {
		if err := os.MkdirAll(filepath.Join(o.Dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	c := &Cluster{Dir: o.Dir, Tools: tools, Token: "kommons-admin-" + randomToken(), node: o.Node != nil}
	if c.node && !InSandbox() {
		return nil, fmt.Errorf("testcluster: the real-node mode runs only inside the sandbox (TestMain must call MainInSandbox): %v", sandboxErr)
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w (logs in %s)", err, filepath.Join(o.Dir, "logs"))
			c.Stop()
		}
	}()
	p, err := writePKI(filepath.Join(o.Dir, "pki"), c.Token)
	if err != nil {
		return nil, fmt.Errorf("testcluster: pki: %w", err)
	}
	ports, err := freePorts(6)
	if err != nil {
		return nil, err
	}
	etcdPort, etcdPeer, apiPort, kcmPort, schedPort, kwokPort := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]
	// The real node's pods reach the API through the kubernetes Service, whose
	// endpoint is the advertise address: the apiserver listens on every
	// address of the sandbox (which has no way out) on the usual port.
	bindAddr, advertise, reconciler := "127.0.0.1", "127.0.0.1", "none"
	if c.node {
		apiPort, bindAddr, advertise, reconciler = nodeAPIPort, "0.0.0.0", NodeIP, "lease"
	}
	c.APIPort = apiPort
	c.Kubeconfig = filepath.Join(o.Dir, "kubeconfig")
	if err := c.writeKubeconfig(p); err != nil {
		return nil, err
	}
	if c.node {
		if err := c.startNodeRuntime(ctx, o); err != nil {
			return nil, err
		}
	}
	bin := func(name string) string { return filepath.Join(tools.KubeBin, name) }
	loop := "http://127.0.0.1:"

	if err := c.start("etcd", o, bin("etcd"), "--name", "kommons", "--data-dir", filepath.Join(o.Dir, "etcd"),
		"--unsafe-no-fsync", "--log-level", "warn",
		"--listen-client-urls", loop+strconv.Itoa(etcdPort), "--advertise-client-urls", loop+strconv.Itoa(etcdPort),
		"--listen-peer-urls", loop+strconv.Itoa(etcdPeer), "--initial-advertise-peer-urls", loop+strconv.Itoa(etcdPeer),
		"--initial-cluster", "kommons="+loop+strconv.Itoa(etcdPeer), "--listen-metrics-urls", ""); err != nil {
		return nil, err
	}
	if err := c.waitHTTP(ctx, "etcd", loop+strconv.Itoa(etcdPort)+"/health", "", 30*time.Second); err != nil {
		return nil, err
	}
	if err := c.start("kube-apiserver", o, bin("kube-apiserver"), "--etcd-servers", loop+strconv.Itoa(etcdPort),
		"--bind-address", bindAddr, "--advertise-address", advertise, "--secure-port", strconv.Itoa(apiPort),
		"--tls-cert-file", p.path("apiserver.crt"), "--tls-private-key-file", p.path("apiserver.key"),
		"--client-ca-file", p.path("ca.crt"), "--token-auth-file", p.path("tokens.csv"), "--authorization-mode", "Node,RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", p.path("sa.pub"), "--service-account-signing-key-file", p.path("sa.key"),
		"--service-cluster-ip-range", ServiceCIDR, "--endpoint-reconciler-type", reconciler,
		"--kubelet-preferred-address-types", "InternalIP", // the node's name resolves nowhere
		"--allow-privileged=true", "--enable-priority-and-fairness=false", "--profiling=false", "--v=1"); err != nil {
		return nil, err
	}
	if err := c.waitHTTP(ctx, "kube-apiserver", fmt.Sprintf("https://127.0.0.1:%d/readyz", apiPort), c.Token, 120*time.Second); err != nil {
		return nil, err
	}
	o.Logf("apiserver ready after %.1fs", time.Since(start).Seconds())
	if err := c.start("kube-controller-manager", o, bin("kube-controller-manager"), "--kubeconfig", c.Kubeconfig,
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(kcmPort), "--cert-dir", filepath.Join(o.Dir, "certs"),
		"--leader-elect=false", "--service-account-private-key-file", p.path("sa.key"), "--root-ca-file", p.path("ca.crt"),
		"--profiling=false", "--v=1"); err != nil {
		return nil, err
	}
	// A pod created while its claim is still pending is parked as
	// unschedulable ("pod has unbound immediate PersistentVolumeClaims"), and
	// the claim's binding a second later does not always requeue it: it then
	// waits for the periodic flush, 5 minutes by default, longer than
	// `helm install --wait` in the tests. Flush every 10 s instead.
	if err := c.start("kube-scheduler", o, bin("kube-scheduler"), "--kubeconfig", c.Kubeconfig,
		"--pod-max-in-unschedulable-pods-duration", "10s",
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(schedPort), "--leader-elect=false",
		"--profiling=false", "--v=1"); err != nil {
		return nil, err
	}
	if !c.node {
		stages := filepath.Join(o.Dir, "kwok-stages.yaml")
		if err := writeKwokStages(tools.KwokStages, stages); err != nil {
			return nil, err
		}
		if err := c.start("kwok", o, tools.Kwok, "--kubeconfig", c.Kubeconfig, "--config", stages,
			"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector", kwokNodeAnnotation+"=fake",
			"--cidr", "10.244.0.0/16", "--node-ip", "10.1.0.1", "--node-lease-duration-seconds", "40",
			"--server-address", "127.0.0.1:"+strconv.Itoa(kwokPort)); err != nil {
			return nil, err
		}
	}
	if len(o.ProvisionerCommand) > 0 {
		args := append(append([]string{}, o.ProvisionerCommand[1:]...), "--kubeconfig", c.Kubeconfig)
		if err := c.start("fakeprov", o, o.ProvisionerCommand[0], args...); err != nil {
			return nil, err
		}
	}
	if c.client, err = c.newClient(); err != nil {
		return nil, err
	}
	if len(o.ProvisionerCommand) == 0 {
		bg, cancel := context.WithCancel(context.Background())
		c.cancelBG, c.bgDone = cancel, make(chan struct{})
		root := "" // kwok: PVs are never mounted
		if c.node {
			root = filepath.Join(o.Dir, "volumes")
		}
		var runner sync.WaitGroup
		runner.Add(1)
		go func() { defer runner.Done(); runProvisioner(bg, c.client, ProvisionerName, root, nil) }()
		if !c.node {
			cfg, err := c.RESTConfig()
			if err != nil {
				cancel()
				return nil, err
			}
			runner.Add(1)
			logger := log.New(io.Discard, "", 0)
			if f, err := os.Create(filepath.Join(o.Dir, "logs", "secret-init-pods.log")); err == nil {
				logger = log.New(f, "", log.LstdFlags)
			}
			go func() {
				defer runner.Done()
				RunSecretInitPods(bg, c.client, cfg, tools.RepoRoot, o.Dir, logger)
			}()
		}
		go func() { runner.Wait(); close(c.bgDone) }()
	}
	if err := c.bootstrapObjects(ctx); err != nil {
		return nil, err
	}
	if err := c.waitHTTP(ctx, "kube-controller-manager", fmt.Sprintf("https://127.0.0.1:%d/healthz", kcmPort), "", 60*time.Second); err != nil {
		return nil, err
	}
	if err := c.waitHTTP(ctx, "kube-scheduler", fmt.Sprintf("https://127.0.0.1:%d/healthz", schedPort), "", 60*time.Second); err != nil {
		return nil, err
	}
	if c.node {
		if err := c.startNodeAgents(ctx, o, p); err != nil {
			return nil, err
		}
	}
	if err := c.waitReady(ctx, 90*time.Second); err != nil {
		return nil, err
	}
	if err := c.alive(); err != nil {
		return nil, err
	}
	o.Logf("cluster ready after %.1fs (%s)", time.Since(start).Seconds(), c.Dir)
	return c, nil
}

// Attach connects to a cluster started earlier (make cluster-up) from its run directory.
func Attach(dir string, tools *Tools) (*Cluster, error) {
	c := &Cluster{Dir: dir, Tools: tools, Kubeconfig: filepath.Join(dir, "kubeconfig")}
	if _, err := os.Stat(c.Kubeconfig); err != nil {
		return nil, fmt.Errorf("testcluster: no cluster in %s: %w", dir, err)
	}
	var err error
	if c.client, err = c.newClient(); err != nil {
		return nil, err
	}
	if _, err := c.client.Discovery().ServerVersion(); err != nil {
		return nil, fmt.Errorf("testcluster: cluster in %s does not answer: %w", dir, err)
	}
	return c, nil
}

// Client is a clientset for the admin user.
func (c *Cluster) Client() *kubernetes.Clientset { return c.client }

// RESTConfig is the admin REST config.
func (c *Cluster) RESTConfig() (*rest.Config, error) {
	return clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
}

func (c *Cluster) newClient() (*kubernetes.Clientset, error) {
	cfg, err := c.RESTConfig()
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 100, 200
	return kubernetes.NewForConfig(cfg)
}

func (c *Cluster) writeKubeconfig(p pki) error {
	ca, err := os.ReadFile(p.path("ca.crt"))
	if err != nil {
		return err
	}
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kommons-test
  cluster: {server: "https://127.0.0.1:%d", certificate-authority-data: "%s"}
users:
- name: admin
  user: {token: "%s"}
contexts:
- name: kommons-test
  context: {cluster: kommons-test, user: admin, namespace: default}
current-context: kommons-test
`, c.APIPort, base64.StdEncoding.EncodeToString(ca), c.Token)
	return os.WriteFile(c.Kubeconfig, []byte(kc), 0o600)
}

// start runs one component in the background, logging to logs/NAME.log and
// recording its PID in pids/NAME.pid.
func (c *Cluster) start(name string, o Options, path string, args ...string) error {
	logf, err := os.Create(filepath.Join(c.Dir, "logs", name+".log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if o.Detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testcluster: start %s: %w", name, err)
	}
	go func() { _ = cmd.Wait() }() // reap; liveness is checked through the PID
	return os.WriteFile(filepath.Join(c.Dir, "pids", name+".pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600)
}

// components in stop order (the node's first: see stopNode).
var components = append(append([]string{}, nodeComponents...), "fakeprov", "kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd")

// Stop stops every recorded process by PID (SIGTERM, then SIGKILL after
// 10 s). The run directory is kept for its logs; Destroy removes it.
func (c *Cluster) Stop() {
	if c.cancelBG != nil {
		c.cancelBG()
		<-c.bgDone
		c.cancelBG = nil
	}
	if c.node {
		c.stopNode()
	}
	StopDir(c.Dir)
}

// Destroy stops the cluster and removes its run directory.
func (c *Cluster) Destroy() {
	c.Stop()
	_ = os.RemoveAll(c.Dir)
}

// StopDir stops the processes recorded under dir/pids.
func StopDir(dir string) []string {
	var stopped []string
	for _, name := range components {
		f := filepath.Join(dir, "pids", name+".pid")
		if b, err := os.ReadFile(f); err == nil && stopPIDFile(f) {
			stopped = append(stopped, fmt.Sprintf("%s (%s)", name, strings.TrimSpace(string(b))))
		}
	}
	return stopped
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndex(s, ")")
	return i > 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// alive returns an error naming the first recorded process that has exited,
// with the tail of its log.
func (c *Cluster) alive() error {
	entries, _ := os.ReadDir(filepath.Join(c.Dir, "pids"))
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".pid")
		b, _ := os.ReadFile(filepath.Join(c.Dir, "pids", e.Name()))
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if pid <= 0 || syscall.Kill(pid, 0) != nil || isZombie(pid) {
			return fmt.Errorf("testcluster: %s %w; tail of its log:\n%s", name, errComponentExited, tailFile(filepath.Join(c.Dir, "logs", name+".log"), 15))
		}
	}
	return nil
}

func (c *Cluster) waitHTTP(ctx context.Context, what, url, token string, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // loopback health probe of our own throwaway certificate
	return c.poll(ctx, what, timeout, func() error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	})
}

// poll retries fn every 200 ms until it succeeds, a component dies, or the timeout passes.
func (c *Cluster) poll(ctx context.Context, what string, timeout time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if aerr := c.alive(); aerr != nil {
			return aerr
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testcluster: %s not ready after %s: %w", what, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("testcluster: free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var errNotReady = errors.New("not ready")
