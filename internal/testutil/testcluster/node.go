package testcluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/kommons/kommons/internal/testutil/nodeimages"
	"github.com/kommons/kommons/internal/testutil/toolcache"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Addresses of the real node. They exist only inside the sandbox's network
// namespace (see sandbox.go), so fixed values cannot collide with anything.
const (
	NodeName     = "kommons-node"
	NodeIP       = "10.255.0.1"     // the node's InternalIP, the apiserver's advertise address, cluster DNS
	PodCIDR      = "10.88.0.0/16"   // CNI bridge + host-local
	ServiceCIDR  = "10.96.0.0/16"   // the kubernetes Service is 10.96.0.1
	RegistryAddr = "127.0.0.1:5000" // in-process registry, mirrored for nodeimages.Registry
	nodeAPIPort  = 6443
	nodeIface    = "kn0" // veth end carrying NodeIP
	cniBridge    = "kcni0"
)

// NodeOptions switch Launch to the real-node mode: instead of kwok, one node
// where pods really run (containerd and runc from Debian, the kubelet and
// kube-proxy built with the control plane, CoreDNS, the CNI bridge plugin),
// pulling Images from an in-process registry. It must run inside the sandbox
// MainInSandbox creates.
type NodeOptions struct {
	// Images are served under nodeimages.Registry; the sandbox image must be
	// among them (nodeimages.Set.Pause).
	Images []nodeimages.Image
	// PauseImage is the CRI sandbox image reference.
	PauseImage string
	// NetworkPolicy runs a NetworkPolicy agent on the node: kube-router
	// with only its firewall (iptables + ipset, beside the bridge CNI and
	// kube-proxy), built by test/cluster/build.sh kube-router. Without it
	// NetworkPolicies are stored but nothing enforces them.
	NetworkPolicy bool
	// PlainHTTPRegistries are further registry hosts (host:port, e.g. a
	// registrytest registry on loopback inside the sandbox) the node's
	// containerd pulls from over plain HTTP, by their own name: each gets a
	// certs.d/<host>/hosts.toml.
	PlainHTTPRegistries []string
}

// EnvKubeRouter names a kube-router binary to use instead of the cached one.
const EnvKubeRouter = "KOMMONS_KUBE_ROUTER"

// nodeComponents are the node's processes, in stop order.
var nodeComponents = []string{"kubelet", "kube-router", "kube-proxy", "coredns", "containerd"}

// startNodeRuntime prepares the network, cgroups and containerd, and starts
// the image registry: everything the kubelet needs, before the control plane.
func (c *Cluster) startNodeRuntime(ctx context.Context, o Options) error {
	for _, d := range []string{"run", "containerd", "cni/net.d", "cni/ipam", "certs.d", "kubelet", "podlogs", "manifests", "volumes"} {
		if err := os.MkdirAll(filepath.Join(c.Dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := setupNodeNetwork(); err != nil {
		return fmt.Errorf("testcluster: node network: %w", err)
	}
	if err := createCgroupRoot(sandboxCgroup()); err != nil {
		return fmt.Errorf("testcluster: node cgroups: %w", err)
	}
	if err := c.writeNodeConfigs(o.Node); err != nil {
		return err
	}
	if err := c.start("containerd", o, "containerd", "--config", filepath.Join(c.Dir, "containerd", "config.toml")); err != nil {
		return err
	}
	if err := c.poll(ctx, "containerd", 30*time.Second, func() error {
		conn, err := net.Dial("unix", c.containerdSock())
		if err == nil {
			conn.Close()
		}
		return err
	}); err != nil {
		return err
	}
	reg, err := nodeimages.Serve(RegistryAddr, o.Node.Images...)
	if err != nil {
		return fmt.Errorf("testcluster: image registry: %w", err)
	}
	c.registry = reg
	return nil
}

// startNodeAgents starts the kubelet, kube-proxy and CoreDNS once the API
// answers, and waits until the node is Ready and cluster DNS answers.
func (c *Cluster) startNodeAgents(ctx context.Context, o Options, p pki) error {
	bin := func(name string) string { return filepath.Join(c.Tools.KubeBin, name) }
	if err := c.writeNodeKubeconfig(p); err != nil {
		return err
	}
	if err := c.start("kubelet", o, bin("kubelet"), "--config", filepath.Join(c.Dir, "kubelet-config.yaml"),
		"--kubeconfig", filepath.Join(c.Dir, "kubelet.kubeconfig"), "--root-dir", filepath.Join(c.Dir, "kubelet"),
		"--hostname-override", NodeName, "--node-ip", NodeIP, "--cert-dir", filepath.Join(c.Dir, "kubelet", "pki"), "--v=1"); err != nil {
		return err
	}
	if err := c.start("kube-proxy", o, bin("kube-proxy"), "--kubeconfig", c.Kubeconfig, "--hostname-override", NodeName,
		"--cluster-cidr", PodCIDR, "--proxy-mode", "iptables", "--conntrack-max-per-core", "0",
		"--metrics-bind-address", "127.0.0.1:10249", "--healthz-bind-address", "127.0.0.1:10256", "--v=1"); err != nil {
		return err
	}
	if err := c.start("coredns", o, filepath.Join(c.Tools.Cache, "coredns-"+c.Tools.Versions["COREDNS_VERSION"], "coredns"),
		"-conf", filepath.Join(c.Dir, "Corefile")); err != nil {
		return err
	}
	if err := c.waitNodeReady(ctx, NodeName, 120*time.Second); err != nil {
		return err
	}
	if o.Node.NetworkPolicy {
		if err := c.startPolicyAgent(ctx, o); err != nil {
			return err
		}
	}
	return c.poll(ctx, "cluster DNS", 60*time.Second, func() error {
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, NodeIP+":53")
		}}
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := r.LookupHost(lctx, "kubernetes.default.svc.cluster.local")
		return err
	})
}

// startPolicyAgent starts kube-router with only its NetworkPolicy firewall,
// in the node's network namespace like kube-proxy and with the same
// kubeconfig (it lists pods, namespaces and policies cluster-wide), once the
// node is registered (it reads its address from the Node), and waits for its
// first full sync: from then on every policy is in iptables and ipsets
// within a second or two of reaching the API. Its rules die with the
// sandbox's network namespace.
func (c *Cluster) startPolicyAgent(ctx context.Context, o Options) error {
	bin, err := toolcache.Binary("kube-router", "KUBE_ROUTER_VERSION", "kube-router", EnvKubeRouter)
	if err != nil {
		return fmt.Errorf("testcluster: NetworkPolicy agent: %w", err)
	}
	if _, err := exec.LookPath("ipset"); err != nil {
		return fmt.Errorf("testcluster: kube-router needs the ipset command (Debian package ipset, make deps): %w", err)
	}
	if err := c.start("kube-router", o, bin, "--run-firewall=true", "--run-router=false", "--run-service-proxy=false",
		"--kubeconfig", c.Kubeconfig, "--hostname-override", NodeName, "--service-cluster-ip-range", ServiceCIDR,
		"--health-port", "20244", "--metrics-port", "0", "--v=1"); err != nil {
		return err
	}
	logPath := filepath.Join(c.Dir, "logs", "kube-router.log")
	return c.poll(ctx, "kube-router's first NetworkPolicy sync", 60*time.Second, func() error {
		log := mustRead(logPath)
		if strings.Contains(log, "Aborting sync") {
			return fmt.Errorf("testcluster: kube-router could not write its rules; tail of its log:\n%s", tailFile(logPath, 15))
		}
		if !strings.Contains(log, "sync iptables took") {
			return errNotReady
		}
		return nil
	})
}

// stopNode stops the kubelet, removes every pod through CRI (so that CNI
// releases its addresses and runc its containers), then stops kube-router,
// kube-proxy, CoreDNS, containerd and the registry.
func (c *Cluster) stopNode() {
	stopNamed(c.Dir, "kubelet")
	if err := c.removePods(); err != nil {
		fmt.Fprintf(os.Stderr, "testcluster: remove pods through CRI: %v\n", err)
	}
	stopNamed(c.Dir, "kube-router", "kube-proxy", "coredns", "containerd")
	if c.registry != nil {
		c.registry.Close()
		c.registry = nil
	}
	// The kubelet's volume mounts (Secrets, projected tokens) and
	// containerd's leftovers live in the sandbox's mount namespace; unmount
	// them so the run directory can be removed, and drop containerd's image
	// store (about 1 GB) even when the logs are kept.
	unmountUnder(c.Dir)
	_ = os.RemoveAll(filepath.Join(c.Dir, "containerd"))
}

// unmountUnder lazily unmounts every mount point below dir, deepest first.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			points = append(points, f[1])
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for _, p := range points {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
}

func (c *Cluster) containerdSock() string { return filepath.Join(c.Dir, "run", "containerd.sock") }

// removePods stops and removes every pod sandbox through CRI.
func (c *Cluster) removePods() error {
	if _, err := os.Stat(c.containerdSock()); err != nil {
		return nil
	}
	conn, err := grpc.NewClient("unix://"+c.containerdSock(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	rt := cri.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	list, err := rt.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("list pod sandboxes: %w", err)
	}
	for _, sb := range list.Items {
		if _, err := rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			return fmt.Errorf("stop pod %s/%s: %w", sb.Metadata.Namespace, sb.Metadata.Name, err)
		}
		if _, err := rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			return fmt.Errorf("remove pod %s/%s: %w", sb.Metadata.Namespace, sb.Metadata.Name, err)
		}
	}
	return nil
}

// setupNodeNetwork gives the sandbox a veth pair carrying NodeIP and turns
// on forwarding and bridge netfilter (both per network namespace).
func setupNodeNetwork() error {
	if _, err := net.InterfaceByName(nodeIface); err == nil {
		return nil // set up by an earlier launch in this sandbox
	}
	for _, args := range [][]string{
		{"link", "add", nodeIface, "type", "veth", "peer", "name", nodeIface + "p"},
		{"addr", "add", NodeIP + "/32", "dev", nodeIface},
		{"link", "set", nodeIface, "up"},
		{"link", "set", nodeIface + "p", "up"},
		// Processes on the node (the tests, the apiserver's webhooks) reach
		// Service addresses like pods do: kube-proxy's OUTPUT rules DNAT
		// them, but the kernel needs a route to pick a source first. The
		// veth's far end is in this namespace too: nothing leaves.
		{"route", "add", ServiceCIDR, "dev", nodeIface},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	for k, v := range map[string]string{
		"net/ipv4/ip_forward": "1", "net/bridge/bridge-nf-call-iptables": "1", "net/ipv4/conf/all/route_localnet": "1",
	} {
		if err := os.WriteFile("/proc/sys/"+k, []byte(v), 0o644); err != nil {
			return fmt.Errorf("sysctl %s: %w", k, err)
		}
	}
	return nil
}

// createCgroupRoot creates the kubelet's cgroupRoot in every cgroup v1
// hierarchy; a cpuset child needs its parent's cpus and mems to host tasks.
func createCgroupRoot(name string) error {
	hier, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range hier {
		if st, err := os.Stat(h); err != nil || !st.IsDir() {
			continue
		}
		if err := os.MkdirAll(filepath.Join(h, name), 0o755); err != nil {
			return err
		}
	}
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpuset", f))
		if err != nil {
			continue
		}
		if err := os.WriteFile(filepath.Join("/sys/fs/cgroup/cpuset", name, f), b, 0o644); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
	}
	return nil
}

func (c *Cluster) writeNodeConfigs(n *NodeOptions) error {
	d := c.Dir
	files := map[string]string{
		"containerd/config.toml": fmt.Sprintf(`version = 2
root = "%[1]s/containerd/root"
state = "%[1]s/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "%[1]s/run/containerd.sock"
[ttrpc]
  address = "%[1]s/run/containerd.sock.ttrpc"
[debug]
  address = "%[1]s/run/containerd-debug.sock"
  level = "info"
[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  netns_mounts_under_state_dir = true
  # Without CAP_SYS_RESOURCE every sandbox otherwise fails with
  # "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  sandbox_image = "%[2]s"
  enable_unprivileged_ports = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "%[1]s/certs.d"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "%[1]s/cni/net.d"
`, d, n.PauseImage),
		"certs.d/" + nodeimages.Registry + "/hosts.toml": fmt.Sprintf(`server = "http://%[1]s"

[host."http://%[1]s"]
  capabilities = ["pull", "resolve"]
`, RegistryAddr),
		"cni/net.d/10-kommons.conflist": fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "kommons",
  "plugins": [
    {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
`, cniBridge, filepath.Join(d, "cni", "ipam"), PodCIDR),
		// Pods get cluster DNS only: no upstream resolver, so no name lookup leaves the sandbox.
		"resolv.conf": "options ndots:5\n",
		"kubelet-config.yaml": fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[2]s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
cgroupDriver: cgroupfs
cgroupRoot: /%[3]s
# This kernel mounts cgroup v1 hierarchies.
failCgroupV1: false
# root lacks CAP_SYS_RESOURCE: the kubelet must not lower its own OOM score.
oomScoreAdj: 0
containerRuntimeEndpoint: unix://%[1]s/run/containerd.sock
imageServiceEndpoint: unix://%[1]s/run/containerd.sock
staticPodPath: %[1]s/manifests
podLogsDir: %[1]s/podlogs
failSwapOn: false
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
clusterDNS: [%[2]q]
clusterDomain: cluster.local
resolvConf: %[1]s/resolv.conf
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
podCIDR: %[4]s
maxPods: 60
registerNode: true
`, d, NodeIP, sandboxCgroup(), PodCIDR),
		"Corefile": fmt.Sprintf(`.:53 {
    bind %s
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig %s kommons-test
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 30
}
`, NodeIP, c.Kubeconfig),
	}
	for _, host := range n.PlainHTTPRegistries {
		files["certs.d/"+host+"/hosts.toml"] = fmt.Sprintf(`server = "http://%[1]s"

[host."http://%[1]s"]
  capabilities = ["pull", "resolve"]
`, host)
	}
	for name, body := range files {
		p := filepath.Join(d, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeNodeKubeconfig writes the kubelet's kubeconfig: the node's own token
// (user system:node:NodeName, group system:nodes, authorized by the Node
// authorizer like a real kubelet's client certificate).
func (c *Cluster) writeNodeKubeconfig(p pki) error {
	kc := strings.Replace(mustRead(c.Kubeconfig), "token: \""+c.Token+"\"", "token: \""+p.nodeToken+"\"", 1)
	return os.WriteFile(filepath.Join(c.Dir, "kubelet.kubeconfig"), []byte(kc), 0o600)
}

func mustRead(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// stopNamed stops the named components recorded under dir/pids, in order.
func stopNamed(dir string, names ...string) {
	for _, name := range names {
		stopPIDFile(filepath.Join(dir, "pids", name+".pid"))
	}
}

// stopPIDFile sends SIGTERM to the recorded process, waits up to 10 s, then
// SIGKILLs it, and removes the file. It reports whether a process was running.
func stopPIDFile(f string) bool {
	b, err := os.ReadFile(f)
	if err != nil {
		return false
	}
	defer os.Remove(f)
	var pid int
	fmt.Sscan(strings.TrimSpace(string(b)), &pid)
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) && !isZombie(pid) {
		time.Sleep(50 * time.Millisecond)
	}
	if syscall.Kill(pid, 0) == nil && !isZombie(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return true
}
