// Package orthanc runs what charts/orthanc renders without Kubernetes (kwok
// never runs containers): the chart is rendered through the Helm SDK, the
// rendered pg-init Job runs as a process (its args, its environment resolved
// from the rendered Secrets, its volumes written to disk) against a real
// throwaway PostgreSQL, and Orthanc replicas start from the rendered
// orthanc.json and Deployment environment on Debian's Orthanc packages (see
// internal/testutil/orthanctest). The tests in this package and the
// benchmark under test/bench/orthanc use it.
package orthanc

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kommons/kommons/internal/testutil/orthanctest"
	"github.com/kommons/kommons/internal/testutil/pgtest"
	"github.com/kommons/kommons/test/render"
)

// Release is the release name every Stack renders as; Fullname is the
// chart's object name prefix for it. The namespace varies per Stack (it
// scopes the physical database and role names, so Stacks do not share data).
const (
	Release  = "pacs"
	Fullname = "pacs-orthanc"
)

// ChartDir is charts/orthanc, found from this source file.
func ChartDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "charts", "orthanc")
}

// RepoRoot is the module root.
func RepoRoot() string { return filepath.Join(ChartDir(), "..", "..") }

// Stack is a rendered release whose database the rendered pg-init Job has provisioned.
type Stack struct {
	// Manifest is the rendered release.
	Manifest *render.Manifest
	// Namespace is the release namespace.
	Namespace string
	// PG is the PostgreSQL server standing for commons' shared server.
	PG *pgtest.Server
	// Secrets are the Secrets the pods can read: the rendered ones and the provisioner Secret commons would provide.
	Secrets map[string]map[string]string
	// Database and Role are the physical names pg-init created.
	Database, Role string
	// RolePassword is the role's password (from the rendered connection Secret).
	RolePassword string
	// AdminUser and AdminPassword are the Orthanc account (from the rendered auth Secret).
	AdminUser, AdminPassword string
	// PgInitOutput is pg-init's stdout (--output=json).
	PgInitOutput []byte
}

var (
	buildMu sync.Mutex
	built   = map[string]string{}
	toolDir string
)

// RemoveTools removes the binaries tool built; call it once the package's
// tests are done (TestMain).
func RemoveTools() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if toolDir != "" {
		_ = os.RemoveAll(toolDir)
		toolDir, built = "", map[string]string{}
	}
}

// tool builds ./cmd/<name> once per test binary and returns its path.
func tool(t testing.TB, name string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[name]; ok {
		return p
	}
	if toolDir == "" {
		dir, err := os.MkdirTemp("", "kommons-orthanc-e2e-")
		if err != nil {
			t.Fatal(err)
		}
		toolDir = dir
	}
	out := filepath.Join(toolDir, name)
	cmd := exec.Command("go", "build", "-o", out, "./cmd/"+name)
	cmd.Dir = RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/%s: %v\n%s", name, err, b)
	}
	built[name] = out
	return out
}

// provisionerRole is the CREATEDB CREATEROLE NOSUPERUSER role commons hands
// to tenants; the rendered pg-init Job runs as it, never as a superuser.
const provisionerRole = "kommons_provisioner"

var (
	provisionerMu        sync.Mutex
	provisionerPasswords = map[*pgtest.Server]string{}
)

// bootstrapProvisioner creates the provisioner role once per server with
// `pg-init bootstrap-provisioner`, as commons' provisioner Job does.
func bootstrapProvisioner(t testing.TB, pg *pgtest.Server) string {
	t.Helper()
	bin := tool(t, "pg-init")
	provisionerMu.Lock()
	defer provisionerMu.Unlock()
	if pw, ok := provisionerPasswords[pg]; ok {
		return pw
	}
	pw := fmt.Sprintf("prov-%d-%d", os.Getpid(), time.Now().UnixNano())
	f := filepath.Join(t.TempDir(), "provisioner-password")
	if err := os.WriteFile(f, []byte(pw), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "bootstrap-provisioner", "--role="+provisionerRole, "--password-file="+f, "--log-format=json")
	cmd.Env = append(pg.Env(), "PATH="+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pg-init bootstrap-provisioner: %v\n%s", err, out)
	}
	provisionerPasswords[pg] = pw
	return pw
}

// Provision renders the chart in namespace (use one per Stack: it scopes
// the database) with values (as `helm install -f`) and runs its pg-init Job
// against pg as a process.
func Provision(t testing.TB, pg *pgtest.Server, namespace string, values map[string]any) *Stack {
	t.Helper()
	return ProvisionWith(t, pg, namespace, values, TenantTLS{})
}

// TenantTLS are the TLS facts of the tenant Secret commons would write
// (zero: sslmode=disable, no CA).
type TenantTLS struct {
	// Host replaces pg.Host() as PGHOST (a name the server certificate lists).
	Host string
	// SSLMode is PGSSLMODE, e.g. verify-full.
	SSLMode string
	// CAPEM is the server's CA: the Secret's ca.crt, with PGSSLROOTCERT
	// pointing where the charts mount it.
	CAPEM []byte
}

// CACertPath is where the charts mount the tenant Secret's ca.crt
// (postgres-init.caVolumeMount), the PGSSLROOTCERT commons writes.
const CACertPath = "/etc/kommons/postgres-ca/ca.crt"

// ProvisionWith is Provision with the tenant Secret's TLS facts.
func ProvisionWith(t testing.TB, pg *pgtest.Server, namespace string, values map[string]any, tls TenantTLS) *Stack {
	t.Helper()
	// The provisioner Secret commons writes in the tenant namespace (both
	// key spellings: postgres-init's defaults and commons' libpq names).
	provPassword := bootstrapProvisioner(t, pg)
	prov := map[string]string{
		"host": pg.Host(), "port": strconv.Itoa(pg.Port()), "sslmode": "disable",
		"username": provisionerRole, "password": provPassword,
	}
	for k, v := range map[string]string{"PGHOST": pg.Host(), "PGPORT": strconv.Itoa(pg.Port()), "PGSSLMODE": "disable", "PGUSER": provisionerRole, "PGPASSWORD": provPassword, "PGDATABASE": "postgres"} {
		prov[k] = v
	}
	if tls.Host != "" {
		prov["host"], prov["PGHOST"] = tls.Host, tls.Host
	}
	if tls.SSLMode != "" {
		prov["sslmode"], prov["PGSSLMODE"] = tls.SSLMode, tls.SSLMode
	}
	if tls.CAPEM != nil {
		prov["ca.crt"], prov["PGSSLROOTCERT"] = string(tls.CAPEM), CACertPath
	}
	m, err := render.Chart(ChartDir(), render.Options{ReleaseName: Release, Namespace: namespace, Values: values})
	if err != nil {
		t.Fatalf("render charts/orthanc: %v", err)
	}
	s := &Stack{Manifest: m, Namespace: namespace, PG: pg, Secrets: map[string]map[string]string{}}
	for _, o := range m.ByKind("Secret") {
		s.Secrets[o.Name] = secretData(t, o)
	}
	for _, name := range []string{"kommons-postgres-provisioner", "kommons-commons"} {
		if _, rendered := s.Secrets[name]; !rendered {
			s.Secrets[name] = prov
		}
	}
	// The chart's secret-init specs (the pg-init Job's init container,
	// Orthanc's own Job) run as in the cluster, with commons' tenant Secret
	// present: the Secrets they write join those the pods read.
	existing := map[string]map[string]string{namespace + "/kommons-commons": prov, namespace + "/kommons-postgres-provisioner": prov}
	for _, o := range m.ByKind("ConfigMap") {
		if data, _ := o.Fields["data"].(map[string]any); data["spec.yaml"] != nil && strings.HasSuffix(o.Name, "-secret-init") {
			for id, kv := range m.SecretInitRun(t, namespace, o.Name, existing) {
				existing[id] = kv
				_, name, _ := strings.Cut(id, "/")
				s.Secrets[name] = kv
			}
		}
	}
	s.runPgInit(t)

	web := s.PodEnv(t, "web", "probe")
	s.Role, s.Database, s.RolePassword = web["PGUSER"], web["PGDATABASE"], web["PGPASSWORD"]
	s.AdminUser, s.AdminPassword = web["ORTHANC_ADMIN_USER"], web["ORTHANC_ADMIN_PASSWORD"]
	if s.Role == "" || s.Database == "" || s.RolePassword == "" || s.AdminUser == "" || s.AdminPassword == "" {
		t.Fatalf("rendered Deployment lacks PGUSER, PGDATABASE, PGPASSWORD or the Orthanc account")
	}
	return s
}

func secretData(t testing.TB, o *render.Object) map[string]string {
	out := map[string]string{}
	data, _ := o.Fields["data"].(map[string]any)
	for k, v := range data {
		b, err := base64.StdEncoding.DecodeString(fmt.Sprint(v))
		if err != nil {
			t.Fatalf("Secret %s: data.%s is not base64: %v", o.Name, k, err)
		}
		out[k] = string(b)
	}
	str, _ := o.Fields["stringData"].(map[string]any)
	for k, v := range str {
		out[k] = fmt.Sprint(v)
	}
	return out
}

// runPgInit runs the rendered pg-init Job's container as a process: the
// built binary, the rendered args, the environment resolved from Secrets,
// and the volumes written under a temporary root whose paths replace the
// mount paths in the args and the mounted files.
func (s *Stack) runPgInit(t testing.TB) {
	t.Helper()
	var jobs []*render.Object
	for _, j := range s.Manifest.ByKind("Job") {
		if strings.Contains(j.Name, "-pg-init") { // not Orthanc's own secret-init Job
			jobs = append(jobs, j)
		}
	}
	if len(jobs) != 1 {
		t.Fatalf("want exactly one pg-init Job, rendered %d: %s", len(jobs), s.Manifest.Index())
	}
	pod := dig(jobs[0].Fields, "spec", "template", "spec")
	containers := list(pod, "containers")
	if len(containers) != 1 {
		t.Fatalf("pg-init Job: want one container, got %d", len(containers))
	}
	c := containers[0].(map[string]any)
	root := t.TempDir()
	mounts := s.materializeVolumes(t, root, pod, c)
	args := []string{}
	for _, a := range list(c, "args") {
		args = append(args, rebase(fmt.Sprint(a), root, mounts))
	}
	env := rebaseEnv(s.resolveEnv(t, c, "pg-init"), root, mounts)
	cmd := exec.Command(tool(t, "pg-init"), args...)
	cmd.Env = append(envList(env), "PATH="+os.Getenv("PATH"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.Output(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
	}
	if err != nil {
		t.Fatalf("rendered pg-init Job failed: %v\nargs: %q\nstderr:\n%s", err, args, stderr.String())
	}
	s.PgInitOutput = out
}

// materializeVolumes writes the configMap, secret and projected volumes
// mounted by container c under root+mountPath and returns the mount paths,
// longest first. Paths inside ConfigMap files are rebased too (pg-init's
// spec names the mounted password files).
func (s *Stack) materializeVolumes(t testing.TB, root string, pod, c map[string]any) []string {
	t.Helper()
	volumes := map[string]map[string]any{}
	for _, v := range list(pod, "volumes") {
		vm := v.(map[string]any)
		volumes[fmt.Sprint(vm["name"])] = vm
	}
	type file struct {
		path    string
		content string
		rebase  bool
	}
	var files []file
	var mounts []string
	for _, m := range list(c, "volumeMounts") {
		mm := m.(map[string]any)
		mountPath := fmt.Sprint(mm["mountPath"])
		v, ok := volumes[fmt.Sprint(mm["name"])]
		if !ok {
			t.Fatalf("volumeMount %v names no volume", mm["name"])
		}
		mounts = append(mounts, mountPath)
		add := func(kind string, src map[string]any, data map[string]string) {
			items := list(src, "items")
			if len(items) == 0 {
				for k, val := range data {
					files = append(files, file{filepath.Join(mountPath, k), val, kind == "configMap"})
				}
				return
			}
			for _, it := range items {
				im := it.(map[string]any)
				val, ok := data[fmt.Sprint(im["key"])]
				if !ok && src["optional"] == true {
					continue // the kubelet skips a missing key of an optional volume
				}
				if !ok {
					t.Fatalf("%s %v has no key %v", kind, src["name"], im["key"])
				}
				files = append(files, file{filepath.Join(mountPath, fmt.Sprint(im["path"])), val, kind == "configMap"})
			}
		}
		switch {
		case v["configMap"] != nil:
			cm := v["configMap"].(map[string]any)
			add("configMap", cm, s.configMapData(t, fmt.Sprint(cm["name"])))
		case v["secret"] != nil:
			sec := v["secret"].(map[string]any)
			add("secret", sec, s.secret(t, fmt.Sprint(sec["secretName"])))
		case v["projected"] != nil:
			for _, src := range list(v["projected"].(map[string]any), "sources") {
				sm := src.(map[string]any)
				if sec, ok := sm["secret"].(map[string]any); ok {
					add("secret", sec, s.secret(t, fmt.Sprint(sec["name"])))
				}
				if cm, ok := sm["configMap"].(map[string]any); ok {
					add("configMap", cm, s.configMapData(t, fmt.Sprint(cm["name"])))
				}
			}
		default:
			t.Fatalf("volume %v: only configMap, secret and projected volumes are materialized", v["name"])
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	for _, f := range files {
		content := f.content
		if f.rebase {
			content = rebase(content, root, mounts)
		}
		p := filepath.Join(root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return mounts
}

// rebaseEnv returns env with every value under one of mounts (e.g.
// PGSSLROOTCERT) prefixed by root.
func rebaseEnv(env map[string]string, root string, mounts []string) map[string]string {
	out := make(map[string]string, len(env))
	for k, v := range env {
		out[k] = rebaseJSON(v, root, mounts).(string)
	}
	return out
}

// rebase prefixes every mount path occurring in s with root.
func rebase(s, root string, mounts []string) string {
	for _, m := range mounts {
		s = strings.ReplaceAll(s, m+"/", filepath.Join(root, m)+"/")
	}
	return s
}

func (s *Stack) configMapData(t testing.TB, name string) map[string]string {
	t.Helper()
	o := s.Manifest.MustGet(t, "ConfigMap", s.Namespace, name)
	out := map[string]string{}
	data, _ := o.Fields["data"].(map[string]any)
	for k, v := range data {
		out[k] = fmt.Sprint(v)
	}
	return out
}

func (s *Stack) secret(t testing.TB, name string) map[string]string {
	t.Helper()
	sec, ok := s.Secrets[name]
	if !ok {
		t.Fatalf("Secret %q is neither rendered nor provided by commons", name)
	}
	return sec
}

// resolveEnv resolves a container's env as the kubelet does: value,
// secretKeyRef against Secrets, fieldRef metadata.name as podName.
func (s *Stack) resolveEnv(t testing.TB, c map[string]any, podName string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range list(c, "env") {
		em := e.(map[string]any)
		name := fmt.Sprint(em["name"])
		if v, ok := em["value"]; ok {
			env[name] = fmt.Sprint(v)
			continue
		}
		from, _ := em["valueFrom"].(map[string]any)
		switch {
		case from["secretKeyRef"] != nil:
			ref := from["secretKeyRef"].(map[string]any)
			sec := s.secret(t, fmt.Sprint(ref["name"]))
			v, ok := sec[fmt.Sprint(ref["key"])]
			if !ok && ref["optional"] == true {
				continue // unset, as the kubelet leaves an optional reference to a missing key
			}
			if !ok {
				t.Fatalf("env %s: Secret %v has no key %v", name, ref["name"], ref["key"])
			}
			env[name] = v
		case from["fieldRef"] != nil:
			path := fmt.Sprint(from["fieldRef"].(map[string]any)["fieldPath"])
			if path != "metadata.name" {
				t.Fatalf("env %s: fieldRef %s not supported here", name, path)
			}
			env[name] = podName
		default:
			t.Fatalf("env %s: unsupported valueFrom %v", name, from)
		}
	}
	return env
}

// Deployment returns the rendered Deployment of component (web or jobs).
func (s *Stack) Deployment(t testing.TB, component string) *render.Object {
	t.Helper()
	name := Fullname
	if component == "jobs" {
		name += "-jobs"
	}
	return s.Manifest.MustGet(t, "Deployment", s.Namespace, name)
}

// OrthancContainer returns the orthanc container of component's Deployment.
func (s *Stack) OrthancContainer(t testing.TB, component string) map[string]any {
	t.Helper()
	for _, c := range list(dig(s.Deployment(t, component).Fields, "spec", "template", "spec"), "containers") {
		if cm := c.(map[string]any); cm["name"] == "orthanc" {
			return cm
		}
	}
	t.Fatalf("Deployment of %s has no orthanc container", component)
	return nil
}

// PodEnv is the orthanc container's environment in pod podName of component.
func (s *Stack) PodEnv(t testing.TB, component, podName string) map[string]string {
	t.Helper()
	return s.resolveEnv(t, s.OrthancContainer(t, component), podName)
}

// OrthancConfig is the orthanc.json the component's pods mount, decoded.
func (s *Stack) OrthancConfig(t testing.TB, component string) map[string]any {
	t.Helper()
	data := s.configMapData(t, Fullname+"-config")[component+".json"]
	var cfg map[string]any
	if err := json.Unmarshal([]byte(data), &cfg); err != nil {
		t.Fatalf("ConfigMap %s-config: %s.json is not JSON: %v", Fullname, component, err)
	}
	return cfg
}

// ConfigMapFile returns one key of the chart's ConfigMap (e.g. probe.py).
func (s *Stack) ConfigMapFile(t testing.TB, key string) string {
	t.Helper()
	v, ok := s.configMapData(t, Fullname+"-config")[key]
	if !ok {
		t.Fatalf("ConfigMap %s-config has no %s", Fullname, key)
	}
	return v
}

// ReplicaOptions are the orthanctest options of pod podName of component:
// the rendered orthanc.json and environment, storageDir as its volume.
// The Secret volumes the orthanc container mounts (DICOM TLS, the S3
// encryption key) are written from Secrets under the replica's directory,
// and the configuration's paths into them rebased there.
func (s *Stack) ReplicaOptions(t testing.TB, component, podName, storageDir string) orthanctest.Options {
	t.Helper()
	dir := filepath.Join(t.TempDir(), podName)
	cfg := s.OrthancConfig(t, component)
	mounts := s.writeSecretMounts(t, component, filepath.Join(dir, "mounts"))
	rebased := rebaseJSON(cfg, filepath.Join(dir, "mounts"), mounts)
	return orthanctest.Options{
		Config: rebased.(map[string]any), Env: envList(rebaseEnv(s.PodEnv(t, component, podName), filepath.Join(dir, "mounts"), mounts)),
		Dir: dir, StorageDir: storageDir,
		User: s.AdminUser, Password: s.AdminPassword,
	}
}

// writeSecretMounts writes the secret volumes the orthanc container of
// component mounts under root+mountPath (from Secrets, as the kubelet
// would) and returns their mount paths, longest first.
func (s *Stack) writeSecretMounts(t testing.TB, component, root string) []string {
	t.Helper()
	pod := dig(s.Deployment(t, component).Fields, "spec", "template", "spec")
	secrets := map[string]map[string]any{}
	for _, v := range list(pod, "volumes") {
		vm := v.(map[string]any)
		if sec, ok := vm["secret"].(map[string]any); ok {
			secrets[fmt.Sprint(vm["name"])] = sec
		}
	}
	var mounts []string
	for _, m := range list(s.OrthancContainer(t, component), "volumeMounts") {
		mm := m.(map[string]any)
		sec, ok := secrets[fmt.Sprint(mm["name"])]
		if !ok {
			continue
		}
		mountPath := fmt.Sprint(mm["mountPath"])
		mounts = append(mounts, mountPath)
		data := s.secret(t, fmt.Sprint(sec["secretName"]))
		files := map[string]string{}
		if items := list(sec, "items"); len(items) > 0 {
			for _, it := range items {
				im := it.(map[string]any)
				if v, ok := data[fmt.Sprint(im["key"])]; ok || sec["optional"] != true {
					files[fmt.Sprint(im["path"])] = v
				}
			}
		} else {
			for k, v := range data {
				files[k] = v
			}
		}
		for name, content := range files {
			p := filepath.Join(root, mountPath, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	return mounts
}

// rebaseJSON returns v with every string starting with one of mounts
// prefixed by root (a decoded JSON value: maps, lists, scalars).
func rebaseJSON(v any, root string, mounts []string) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = rebaseJSON(e, root, mounts)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = rebaseJSON(e, root, mounts)
		}
		return out
	case string:
		for _, m := range mounts {
			if strings.HasPrefix(x, m+"/") {
				return filepath.Join(root, x)
			}
		}
		return x
	default:
		return v
	}
}

// StartReplica starts one Orthanc process as pod podName of component
// would run: the rendered orthanc.json (plugins mapped to Debian's layout),
// the rendered environment; storageDir stands for the pod's storage volume
// (share it between replicas as a ReadWriteMany volume).
func (s *Stack) StartReplica(t testing.TB, component, podName, storageDir string) *orthanctest.Instance {
	t.Helper()
	s.RunWaitForPg(t, component, podName)
	return orthanctest.Start(t, s.ReplicaOptions(t, component, podName, storageDir))
}

// RunWaitForPg runs the pod's rendered wait-for-pg init container (its
// args, its environment resolved from the Secrets) as a process and fails
// the test unless it exits 0: the gate the pod passes before Orthanc starts.
func (s *Stack) RunWaitForPg(t testing.TB, component, podName string) {
	t.Helper()
	var c map[string]any
	for _, ic := range list(dig(s.Deployment(t, component).Fields, "spec", "template", "spec"), "initContainers") {
		if m := ic.(map[string]any); m["name"] == "wait-for-pg" {
			c = m
		}
	}
	if c == nil {
		t.Fatalf("the %s Deployment has no wait-for-pg init container", component)
	}
	var args []string
	for _, a := range list(c, "args") {
		args = append(args, fmt.Sprint(a))
	}
	root := t.TempDir()
	mounts := s.materializeVolumes(t, root, dig(s.Deployment(t, component).Fields, "spec", "template", "spec"), c)
	cmd := exec.Command(tool(t, "wait-for-pg"), args...)
	cmd.Env = append(envList(rebaseEnv(s.resolveEnv(t, c, podName), root, mounts)), "PATH="+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("rendered wait-for-pg init container of %s: %v\nargs: %q\n%s", podName, err, args, out)
	}
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func dig(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		next, _ := m[k].(map[string]any)
		m = next
	}
	return m
}

func list(m map[string]any, key string) []any {
	if m == nil {
		return nil
	}
	l, _ := m[key].([]any)
	return l
}

// Tool builds ./cmd/<name> once per test binary and returns its path
// (removed by RemoveTools).
func Tool(t testing.TB, name string) string { return tool(t, name) }
