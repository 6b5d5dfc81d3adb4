package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/internal/cli"
	"github.com/kommons/kommons/internal/kubeapi"
	"github.com/kommons/kommons/internal/testutil/orthanctest"
	"github.com/kommons/kommons/internal/testutil/pgtest"
	"github.com/kommons/kommons/test/render"
)

// readyMarker is the line the data-path process prints once everything
// runs; with KEEP=1 the parent stops reading there and exits.
const readyMarker = "KOMMONS-DEMO-DATAPATH-READY"

// netnsEnv makes orthanctest bring loopback up in the new network namespace.
const netnsEnv = "KOMMONS_ORTHANC_NETNS"

// plan is what the demo hands the data-path process.
type plan struct {
	Chart, Release, Namespace, Values string
	BinDir                            string
	Dir                               string
	Commons                           map[string]string // the tenant Secret commons rendered in the namespace
	CommonsSecret                     string
	// ServerTLS is the bundled server's certificate Secret from the cluster
	// (tls.crt, tls.key, ca.crt; secret-init issued it), empty without TLS.
	ServerTLS map[string]string
	// HostAlias: the data path runs in its own mount namespace where
	// /etc/hosts resolves the Service name of PGHOST to the local server.
	HostAlias       bool
	Orthanc         bool
	Instances       int
	Keep            bool
	ExpectDatabases []string
}

func orthancBinary() string {
	b, err := orthanctest.Binary()
	if err != nil {
		return ""
	}
	return b
}

// orthancMissing says what is missing for the Orthanc replicas, or "".
func orthancMissing() string {
	var missing []string
	if orthancBinary() == "" {
		missing = append(missing, "Orthanc (Debian package orthanc)")
	}
	for _, lib := range []string{"libOrthancPostgreSQLIndex.so", "libOrthancPostgreSQLStorage.so"} {
		if _, err := os.Stat(filepath.Join(orthanctest.PluginDir(), lib)); err != nil {
			missing = append(missing, lib+" (Debian package orthanc-postgresql)")
			break
		}
	}
	if len(missing) == 0 {
		return ""
	}
	return "missing " + strings.Join(missing, ", ")
}

// dataPath starts the data-path process (in a private network namespace
// when Orthanc runs) and relays its output.
func (r *demoRun) dataPath(ctx context.Context, withOrthanc bool) (*exec.Cmd, error) {
	const secretName = "kommons-commons"
	sec, err := r.cluster.Client().CoreV1().Secrets(r.cfg.namespace).Get(ctx, secretName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("the tenant Secret commons renders (%s/%s): %w", r.cfg.namespace, secretName, err)
	}
	commons := map[string]string{}
	for k, v := range sec.Data {
		commons[k] = string(v)
	}
	// The bundled server's certificate: Secret <service>-tls next to the
	// Service PGHOST names (<service>.<namespace>.svc...), when TLS is on.
	var serverTLS map[string]string
	if commons["PGSSLMODE"] == "verify-full" {
		parts := strings.Split(commons["PGHOST"], ".")
		if len(parts) < 2 {
			return nil, fmt.Errorf("tenant Secret %s/%s: PGHOST %q is not a Service name", r.cfg.namespace, secretName, commons["PGHOST"])
		}
		tlsSec, err := r.cluster.Client().CoreV1().Secrets(parts[1]).Get(ctx, parts[0]+"-tls", metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("the bundled server's certificate (%s/%s-tls): %w", parts[1], parts[0], err)
		}
		serverTLS = map[string]string{}
		for k, v := range tlsSec.Data {
			serverTLS[k] = string(v)
		}
	}
	// A mount namespace needs root: without it the local processes reach
	// the server by 127.0.0.1 and check its certificate's CA only.
	hostAlias := serverTLS != nil && os.Geteuid() == 0
	chart, err := r.chartCopy(r.cfg.chart)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(r.cfg.stateDir, "datapath")
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	pl := plan{Chart: chart, Release: r.cfg.release, Namespace: r.cfg.namespace, Values: r.values, BinDir: r.cfg.binDir,
		Dir: dir, Commons: commons, CommonsSecret: secretName, ServerTLS: serverTLS, HostAlias: hostAlias, Orthanc: withOrthanc, Instances: r.cfg.instances,
		Keep: r.cfg.keep, ExpectDatabases: r.expectedDatabases()}
	planPath := filepath.Join(dir, "plan.json")
	if err := writeJSON(planPath, pl); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "datapath", "--plan", planPath)
	cmd.Stderr = os.Stderr
	if r.cfg.keep {
		// The process outlives the demo: it must not hold the demo's stderr
		// (a pipe when the demo's output is piped).
		logf, err := os.Create(filepath.Join(dir, "datapath.log"))
		if err != nil {
			return nil, err
		}
		defer logf.Close()
		cmd.Stderr = logf
	}
	cmd.Env = os.Environ()
	attr := &syscall.SysProcAttr{}
	if withOrthanc {
		// Host-side listeners for the replicas: sockets opened here stay in
		// this network namespace, the child forwards them to Orthanc.
		for i := 0; i < 2; i++ {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, err
			}
			f, err := l.(*net.TCPListener).File()
			l.Close()
			if err != nil {
				return nil, err
			}
			defer f.Close()
			cmd.ExtraFiles = append(cmd.ExtraFiles, f)
		}
		attr.Cloneflags = syscall.CLONE_NEWNET
		cmd.Env = append(cmd.Env, netnsEnv+"=1")
	}
	if hostAlias {
		attr.Cloneflags |= syscall.CLONE_NEWNS
	}
	if r.cfg.keep {
		attr.Setsid = true
	} else {
		attr.Pdeathsig = syscall.SIGTERM
	}
	cmd.SysProcAttr = attr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the data-path process: %w", err)
	}
	if err := os.WriteFile(filepath.Join(r.cfg.stateDir, "datapath.pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
		return nil, err
	}
	ready := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if sc.Text() == readyMarker {
			ready = true
			if r.cfg.keep {
				break
			}
			continue
		}
		fmt.Println(sc.Text())
	}
	if r.cfg.keep && ready {
		go func() { _, _ = io.Copy(io.Discard, out) }()
		return cmd, nil
	}
	err = cmd.Wait()
	_ = os.Remove(filepath.Join(r.cfg.stateDir, "datapath.pid"))
	if err != nil {
		if b, rerr := os.ReadFile(filepath.Join(dir, "datapath.log")); rerr == nil && len(b) > 0 {
			fmt.Fprint(os.Stderr, string(b))
		}
		return nil, fmt.Errorf("data path: %w", err)
	}
	if !ready {
		return nil, errors.New("data path: the process ended before it was ready")
	}
	return nil, nil
}

// stopDataPath stops a data-path process recorded in dir (SIGTERM: it stops
// Orthanc and PostgreSQL itself; SIGKILL after 60 s).
func stopDataPath(dir string) []string {
	f := filepath.Join(dir, "datapath.pid")
	b, err := os.ReadFile(f)
	if err != nil {
		return nil
	}
	defer os.Remove(f)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if !pidAlive(pid) {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(60 * time.Second)
	for pidAlive(pid) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if pidAlive(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return []string{fmt.Sprintf("data path (%d)", pid)}
}

// runDataPath is the data-path process.
func runDataPath(args []string) error {
	var planPath string
	fs := cli.NewFlagSet("demo datapath")
	fs.String(&planPath, "plan", "", "", "plan written by the demo")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	var pl plan
	b, err := os.ReadFile(planPath)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &pl); err != nil {
		return fmt.Errorf("%s: %w", planPath, err)
	}
	if pl.Orthanc {
		orthanctest.EnterPrivateNetwork() // in the child: brings loopback up
		if !orthanctest.InPrivateNetwork() {
			return errors.New("the private network namespace for Orthanc could not be set up")
		}
	}
	if pl.HostAlias {
		if err := aliasHost(pl); err != nil {
			return err
		}
	}
	ctx, cancel := cli.SignalContext(context.Background())
	defer cancel()
	d := &dataPathRun{pl: pl, out: os.Stdout}
	defer d.close()
	if err := d.run(ctx); err != nil {
		return err
	}
	if !pl.Keep {
		fmt.Println(readyMarker)
		return nil
	}
	if err := d.forward(); err != nil {
		return err
	}
	fmt.Println(readyMarker)
	// Nothing is written to stdout any more: the demo has exited.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
	return nil
}

// aliasHost makes the Service name of the tenant Secret's PGHOST resolve to
// 127.0.0.1 for this process and its children (pg-init, wait-for-pg,
// Orthanc's libpq), which then verify the server's certificate under that
// name as in the cluster (verify-full): /etc/hosts with the alias, bound
// over the file in this process's own mount namespace (CLONE_NEWNS, made
// private first so that nothing reaches the host's mounts).
func aliasHost(pl plan) error {
	if err := syscall.Mount("none", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("private mount namespace: %w", err)
	}
	orig, err := os.ReadFile("/etc/hosts")
	if err != nil {
		return err
	}
	hosts := filepath.Join(pl.Dir, "hosts")
	content := strings.TrimRight(string(orig), "\n") + "\n127.0.0.1\t" + pl.Commons["PGHOST"] + "\n"
	if err := os.WriteFile(hosts, []byte(content), 0o644); err != nil {
		return err
	}
	if err := syscall.Mount(hosts, "/etc/hosts", "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s over /etc/hosts: %w", hosts, err)
	}
	return nil
}

// dataPathRun is the state of the data-path process.
type dataPathRun struct {
	pl       plan
	out      io.Writer
	m        *render.Manifest
	pg       *pgtest.Server
	secrets  map[string]map[string]string
	replicas []*orthanctest.Instance
	user     string
	password string
}

func (d *dataPathRun) say(format string, args ...any) {
	fmt.Fprintf(d.out, "    "+format+"\n", args...)
}

func (d *dataPathRun) close() {
	for _, in := range d.replicas {
		in.Stop()
	}
	if d.pg != nil {
		d.pg.Close()
	}
}

func (d *dataPathRun) run(ctx context.Context) error {
	pl := d.pl
	m, err := render.Chart(pl.Chart, render.Options{ReleaseName: pl.Release, Namespace: pl.Namespace, ValuesFiles: []string{pl.Values}})
	if err != nil {
		return fmt.Errorf("render %s (Helm SDK): %w", pl.Chart, err)
	}
	d.m = m
	d.say("rendered %s as release %s in %s: %d objects (Helm SDK, same values as the install)", filepath.Base(pl.Chart), pl.Release, pl.Namespace, len(m.Objects))

	opts := pgtest.Options{}
	if pl.ServerTLS != nil {
		opts.TLS = &pgtest.TLS{CertPEM: []byte(pl.ServerTLS["tls.crt"]), KeyPEM: []byte(pl.ServerTLS["tls.key"])}
	}
	if d.pg, err = pgtest.Start(opts); err != nil {
		return fmt.Errorf("PostgreSQL: %w", err)
	}
	d.say("PostgreSQL (stands for commons' server) on 127.0.0.1:%d, log %s", d.pg.Port(), d.pg.LogPath())

	// The tenant Secret commons wrote in the cluster, with the server's port
	// rewritten to the local one. With TLS the server runs the certificate
	// secret-init issued in the cluster, and PGHOST keeps the Service name
	// (aliasHost); without root, 127.0.0.1 and verify-ca.
	commons := map[string]string{}
	for k, v := range pl.Commons {
		commons[k] = v
	}
	commons["PGPORT"] = strconv.Itoa(d.pg.Port())
	switch {
	case pl.ServerTLS == nil:
		commons["PGHOST"], commons["PGSSLMODE"] = d.pg.Host(), "disable"
	case !pl.HostAlias:
		commons["PGHOST"], commons["PGSSLMODE"] = d.pg.Host(), "verify-ca"
	}
	d.secrets = map[string]map[string]string{pl.CommonsSecret: commons}
	for _, o := range m.ByKind("Secret") {
		var s corev1.Secret
		if err := o.DecodeInto(&s); err != nil {
			return err
		}
		data := map[string]string{}
		for k, v := range s.Data {
			data[k] = string(v)
		}
		for k, v := range s.StringData {
			data[k] = v
		}
		d.secrets[o.Name] = data
	}
	switch {
	case pl.HostAlias:
		d.say("Secret %s from the cluster: PGHOST %s (-> 127.0.0.1 in this process's /etc/hosts), PGPORT -> %d, PGSSLMODE %s with its ca.crt; the server runs the certificate of Secret %s-tls; provisioner role %s",
			pl.CommonsSecret, commons["PGHOST"], d.pg.Port(), commons["PGSSLMODE"], strings.Split(pl.Commons["PGHOST"], ".")[0], commons["PGUSER"])
	case pl.ServerTLS != nil:
		d.say("Secret %s from the cluster: PGHOST/PGPORT -> 127.0.0.1:%d, PGSSLMODE -> verify-ca (not root: no mount namespace for the Service name); provisioner role %s", pl.CommonsSecret, d.pg.Port(), commons["PGUSER"])
	default:
		d.say("Secret %s from the cluster: PGHOST/PGPORT -> 127.0.0.1:%d, PGSSLMODE -> disable; provisioner role %s", pl.CommonsSecret, d.pg.Port(), commons["PGUSER"])
	}
	if err := d.bootstrapProvisioner(ctx, commons); err != nil {
		return err
	}
	if err := d.runPgInit(ctx); err != nil {
		return err
	}
	deploys := m.ByKind("Deployment")
	if len(deploys) == 0 {
		return errors.New("the chart renders no Deployment")
	}
	var dep appsv1.Deployment
	if err := deploys[0].DecodeInto(&dep); err != nil {
		return err
	}
	podNames := []string{dep.Name + "-5d8f7c9b4-aaaaa", dep.Name + "-5d8f7c9b4-bbbbb"}
	for _, pod := range podNames {
		if err := d.runWaitForPg(ctx, &dep.Spec.Template.Spec, pod); err != nil {
			return err
		}
	}
	if !pl.Orthanc {
		if filepath.Base(pl.Chart) == "orthanc" {
			d.say("Orthanc replicas SKIPPED (see above); the database is provisioned and wait-for-pg passed for both pods")
		} else {
			d.say("the database is provisioned and wait-for-pg passed for both pods (the demo runs module processes for Orthanc only)")
		}
		return nil
	}
	if err := d.startReplicas(&dep.Spec.Template.Spec, podNames); err != nil {
		return err
	}
	return d.uploadAndCompare()
}

// bootstrapProvisioner creates the provisioner role as commons' provisioner
// Job does, with the password from the tenant Secret.
func (d *dataPathRun) bootstrapProvisioner(ctx context.Context, commons map[string]string) error {
	pwFile := filepath.Join(d.pl.Dir, "provisioner-password")
	if err := os.WriteFile(pwFile, []byte(commons["PGPASSWORD"]), 0o600); err != nil {
		return err
	}
	defer os.Remove(pwFile)
	cmd := exec.CommandContext(ctx, filepath.Join(d.pl.BinDir, "pg-init"), "bootstrap-provisioner",
		"--role="+commons["PGUSER"], "--password-file="+pwFile, "--log-format=json")
	cmd.Env = append(d.pg.Env(), "PATH=/usr/bin:/bin")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg-init bootstrap-provisioner (what commons' provisioner Job runs): %w\n%s", err, out)
	}
	d.say("pg-init bootstrap-provisioner: role %s (CREATEDB CREATEROLE, not superuser)", commons["PGUSER"])
	return nil
}

// pgInitOutput is the part of `pg-init --output=json` the demo prints.
type pgInitOutput struct {
	Roles []struct {
		Name, PhysicalName, Action string
	}
	Databases []struct {
		Name, PhysicalName, OwnerPhysicalName, Action string
	}
}

func (d *dataPathRun) runPgInit(ctx context.Context) error {
	jobs := d.m.ByKind("Job")
	var job *batchv1.Job
	for _, o := range jobs {
		var j batchv1.Job
		if err := o.DecodeInto(&j); err != nil {
			return err
		}
		if strings.Contains(j.Name, "pg-init") {
			job = &j
		}
	}
	if job == nil {
		return fmt.Errorf("no pg-init Job rendered (%s)", d.m.Index())
	}
	if err := d.writeJobSecrets(job); err != nil {
		return fmt.Errorf("rendered Job %s: %w", job.Name, err)
	}
	pod := &job.Spec.Template.Spec
	res, err := d.runContainer(ctx, pod, pod.Containers[0], "pg-init", "", 5*time.Minute)
	if err != nil {
		return fmt.Errorf("rendered Job %s: %w", job.Name, err)
	}
	var out pgInitOutput
	if err := json.Unmarshal(res.stdout, &out); err != nil {
		return fmt.Errorf("pg-init --output=json: %w: %q", err, res.stdout)
	}
	d.say("Job %s ran as a process: %s", job.Name, strings.Join(res.args, " "))
	var got []string
	for _, r := range out.Roles {
		d.say("  role     %-10s -> %s (%s)", r.Name, r.PhysicalName, r.Action)
	}
	for _, db := range out.Databases {
		d.say("  database %-10s -> %s owned by %s (%s)", db.Name, db.PhysicalName, db.OwnerPhysicalName, db.Action)
		got = append(got, db.PhysicalName)
	}
	sort.Strings(got)
	want := append([]string(nil), d.pl.ExpectDatabases...)
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		return fmt.Errorf("pg-init created databases %v, but the chart's helper (PGDATABASE of the live pods) says %v", got, want)
	}
	d.say("  = the physical names in the table above (chart helper and pg-init agree)")
	return nil
}

// writeJobSecrets does what job's secret-init init container does in a
// cluster: it runs the container's spec (the real reconciler, in memory) on
// the Secrets the data path holds (the tenant Secret), and adds the Secrets
// it writes (the roles' connection Secrets) to them.
func (d *dataPathRun) writeJobSecrets(job *batchv1.Job) error {
	var existing []*kubeapi.Secret
	for name, data := range d.secrets {
		s := &kubeapi.Secret{Metadata: kubeapi.ObjectMeta{Namespace: d.pl.Namespace, Name: name, ResourceVersion: "1"}, Data: map[string][]byte{}}
		for k, v := range data {
			s.Data[k] = []byte(v)
		}
		existing = append(existing, s)
	}
	pod := job.Spec.Template.Spec
	for _, c := range pod.InitContainers {
		if c.Name != "secret-init" {
			continue
		}
		for _, vm := range c.VolumeMounts {
			for _, v := range pod.Volumes {
				if v.Name != vm.Name || v.ConfigMap == nil {
					continue
				}
				m, err := d.m.RunSecretInitConfigMap(d.pl.Namespace, v.ConfigMap.Name, existing...)
				if err != nil {
					return fmt.Errorf("init container secret-init: %w", err)
				}
				for _, o := range m.ByKind("Secret") {
					if _, ok := d.secrets[o.Name]; ok || o.Namespace != d.pl.Namespace {
						continue
					}
					var sec corev1.Secret
					if err := o.DecodeInto(&sec); err != nil {
						return err
					}
					data := map[string]string{}
					for k, v := range sec.Data {
						data[k] = string(v)
					}
					d.secrets[o.Name] = data
				}
			}
		}
	}
	return nil
}

func (d *dataPathRun) runWaitForPg(ctx context.Context, pod *corev1.PodSpec, podName string) error {
	for _, c := range pod.InitContainers {
		if c.Name != "wait-for-pg" {
			continue
		}
		t := time.Now()
		res, err := d.runContainer(ctx, pod, c, "wait-for-pg", podName, 2*time.Minute)
		if err != nil {
			return fmt.Errorf("wait-for-pg init container of %s: %w", podName, err)
		}
		d.say("init container wait-for-pg of %s: passed in %s (%s)", podName, since(t), strings.Join(res.args, " "))
		return nil
	}
	return errors.New("the Deployment has no wait-for-pg init container")
}

// startReplicas starts one Orthanc process per pod name with the rendered
// orthanc.json and environment; one directory stands for the shared volume.
func (d *dataPathRun) startReplicas(pod *corev1.PodSpec, podNames []string) error {
	var c *corev1.Container
	for i := range pod.Containers {
		if pod.Containers[i].Name == "orthanc" {
			c = &pod.Containers[i]
		}
	}
	if c == nil || len(c.Command) < 2 {
		return errors.New("no orthanc container with the configuration file as its argument")
	}
	cfgPath := c.Command[len(c.Command)-1]
	data, err := d.mountedFile(pod, *c, cfgPath)
	if err != nil {
		return err
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(data), &cfg); err != nil {
		return fmt.Errorf("%s is not JSON: %w", cfgPath, err)
	}
	storage := filepath.Join(d.pl.Dir, "storage")
	for _, name := range podNames {
		// The mounted files (the tenant Secret's ca.crt) where the env names them.
		rewrite, err := d.materialize(pod, *c, filepath.Join(d.pl.Dir, name+"-files"))
		if err != nil {
			return err
		}
		env, err := d.env(*c, name, rewrite)
		if err != nil {
			return err
		}
		envMap := map[string]string{}
		for _, e := range env {
			k, v, _ := strings.Cut(e, "=")
			envMap[k] = v
		}
		d.user, d.password = envMap["ORTHANC_ADMIN_USER"], envMap["ORTHANC_ADMIN_PASSWORD"]
		t := time.Now()
		in, err := orthanctest.StartProcess(orthanctest.Options{Config: cfg, Env: env, Dir: filepath.Join(d.pl.Dir, name),
			StorageDir: storage, User: d.user, Password: d.password})
		if err != nil {
			return fmt.Errorf("Orthanc %s: %w", name, err)
		}
		d.replicas = append(d.replicas, in)
		var sys struct {
			Version, DatabaseBackendPlugin string
		}
		if _, err := in.GetJSON("/system", &sys); err != nil {
			return err
		}
		d.say("Orthanc %s (PID %d) up in %s: Orthanc %s, index %s", name, in.PID(), since(t), sys.Version, filepath.Base(sys.DatabaseBackendPlugin))
	}
	d.say("both replicas: rendered %s (plugins mapped to %s), rendered env, one storage directory (the ReadWriteMany claim)", cfgPath, orthanctest.PluginDir())
	return nil
}

func (d *dataPathRun) uploadAndCompare() error {
	a := d.replicas[0]
	t := time.Now()
	studies := map[int]bool{}
	for i := 0; i < d.pl.Instances; i++ {
		spec := orthanctest.DicomSpec{Run: "demo", Study: 1 + i%3, Instance: 1 + i/3}
		studies[spec.Study] = true
		res, _, err := a.UploadRetrying(orthanctest.DicomFile(spec), 5)
		if err != nil {
			return err
		}
		if res.Status != "Success" && res.Status != "AlreadyStored" {
			return fmt.Errorf("upload %d: status %q", i, res.Status)
		}
	}
	d.say("uploaded %d DICOM instances (%d patients, one study each) to replica 1 only, in %s", d.pl.Instances, len(studies), since(t))
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "    REPLICA\tPATIENTS\tSTUDIES\tSERIES\tINSTANCES\tPATIENT IDS")
	var stats []orthanctest.Statistics
	for i, in := range d.replicas {
		s, err := in.Stats()
		if err != nil {
			return err
		}
		stats = append(stats, s)
		var patients []string
		var expanded []struct {
			MainDicomTags struct{ PatientID string }
		}
		if _, err := in.GetJSON("/patients?expand", &expanded); err != nil {
			return err
		}
		for _, p := range expanded {
			patients = append(patients, p.MainDicomTags.PatientID)
		}
		sort.Strings(patients)
		fmt.Fprintf(tw, "    %d %s\t%d\t%d\t%d\t%d\t%s\n", i+1, in.Name, s.CountPatients, s.CountStudies, s.CountSeries, s.CountInstances, strings.Join(patients, " "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if stats[0].CountInstances != d.pl.Instances {
		return fmt.Errorf("replica 1 holds %d instances, %d were uploaded", stats[0].CountInstances, d.pl.Instances)
	}
	if stats[1] != stats[0] {
		return fmt.Errorf("replica 2 sees %+v, replica 1 %+v: they should share one index", stats[1], stats[0])
	}
	d.say("replica 2 sees every instance uploaded to replica 1: one index in PostgreSQL (%s), one storage volume", strings.Join(d.pl.ExpectDatabases, ", "))
	return nil
}

// forward serves the host-side listeners (fd 3, 4) by connecting to the
// replicas inside the private network namespace, and writes the URLs and the
// credentials file for the KEEP=1 summary.
func (d *dataPathRun) forward() error {
	var urls strings.Builder
	var first string
	for i, in := range d.replicas {
		f := os.NewFile(uintptr(3+i), "listener")
		if f == nil {
			return fmt.Errorf("no listener on fd %d", 3+i)
		}
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("listener fd %d: %w", 3+i, err)
		}
		target := strings.TrimPrefix(in.URL, "http://")
		go serveForward(l, target)
		if first == "" {
			first = l.Addr().String()
		}
		fmt.Fprintf(&urls, "  Orthanc %d       http://%s/app/explorer.html  (%s; REST API at the same address)\n", i+1, l.Addr(), in.Name)
	}
	cred := filepath.Join(d.pl.Dir, "orthanc-credentials")
	if err := os.WriteFile(cred, []byte(d.user+":"+d.password+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(&urls, "                  credentials (user:password) in %s, e.g. curl -u \"$(cat %s)\" http://%s/statistics\n", cred, cred, first)
	pgEnv := filepath.Join(d.pl.Dir, "pg-admin.env")
	if err := os.WriteFile(pgEnv, []byte(strings.Join(d.pg.Env(), "\n")+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(&urls, "  PostgreSQL      127.0.0.1:%d in the demo's private network namespace:\n", d.pg.Port())
	fmt.Fprintf(&urls, "                  nsenter -t %d -n env $(cat %s) psql -d %s\n", os.Getpid(), pgEnv, strings.Join(d.pl.ExpectDatabases, " "))
	return os.WriteFile(filepath.Join(d.pl.Dir, "urls"), []byte(urls.String()), 0o600)
}

func serveForward(l net.Listener, target string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			up, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				return
			}
			defer up.Close()
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(up, c); _ = up.(*net.TCPConn).CloseWrite() }()
			go func() { defer wg.Done(); _, _ = io.Copy(c, up); _ = c.(*net.TCPConn).CloseWrite() }()
			wg.Wait()
		}()
	}
}
