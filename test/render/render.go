// Package render renders a Helm chart directory through the Helm SDK (the
// code path of `helm install --dry-run=client`, as `helm template` uses it)
// and decodes the manifest into objects addressable by kind, namespace and
// name, for rendered-manifest unit tests of every kommons chart.
//
//	m := render.MustChart(t, "../../charts/commons", render.Options{Namespace: "commons",
//		Values: map[string]any{"tenants": []any{map[string]any{"namespace": "imaging"}}}})
//	sts := render.Decode[appsv1.StatefulSet](t, m.MustGet(t, "StatefulSet", "commons", "commons-postgresql"))
//
// Charts with file:// dependencies render without `helm dependency build`:
// such a dependency is always loaded from its file:// path (a copy in
// charts/ is ignored, so a stale one cannot hide a change).
package render

import (
	"github.com/kommons/kommons/internal/kubeapi"

	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/releaseutil"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// Options selects the release a chart is rendered as.
type Options struct {
	// ReleaseName defaults to "release".
	ReleaseName string
	// Namespace is the release namespace; it defaults to "default".
	Namespace string
	// Values are user-supplied values (as with --set / -f), merged over
	// ValuesFiles in order.
	Values map[string]any
	// ValuesFiles are YAML values files, applied in order before Values.
	ValuesFiles []string
	// IsUpgrade renders with .Release.IsUpgrade true.
	IsUpgrade bool
	// KubeVersion is the cluster version templates see (default 1.33.0).
	KubeVersion string
	// NoSecretInit leaves out the Secrets the rendered secret-init Jobs
	// write in a cluster, which Chart otherwise adds (RunSecretInit): the
	// charts render no credential themselves.
	NoSecretInit bool
	// Existing are Secrets that exist before secret-init runs, made by
	// someone else (e.g. the CloudNativePG operator's <cluster>-ca).
	Existing []*kubeapi.Secret
	// ExistingConfigMaps are ConfigMaps that exist before secret-init runs
	// (e.g. a CA bundle the user names); the rendered ones are there anyway.
	ExistingConfigMaps []*kubeapi.ConfigMap
}

// Object is one rendered Kubernetes object.
type Object struct {
	APIVersion string
	Kind       string
	Namespace  string // the release namespace when the manifest sets none
	Name       string
	Source     string         // template path, e.g. commons/templates/secrets.yaml
	YAML       []byte         // the document as rendered
	Fields     map[string]any // the decoded document
}

// Manifest is a rendered release.
type Manifest struct {
	Objects []*Object
	// Notes is the rendered NOTES.txt.
	Notes string
	// Raw is the whole manifest as Helm printed it.
	Raw string
}

// Chart renders the chart in dir with the options. Schema violations and
// template failures are returned as Helm reports them.
func Chart(dir string, o Options) (*Manifest, error) {
	if o.ReleaseName == "" {
		o.ReleaseName = "release"
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.KubeVersion == "" {
		o.KubeVersion = "1.33.0"
	}
	chrt, err := Load(dir)
	if err != nil {
		return nil, err
	}
	vals := map[string]any{}
	for _, f := range o.ValuesFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("values file: %w", err)
		}
		var v map[string]any
		if err := yaml.Unmarshal(b, &v); err != nil {
			return nil, fmt.Errorf("values file %s: %w", f, err)
		}
		vals = chartutil.CoalesceTables(v, vals)
	}
	if o.Values != nil {
		// Copy so that a caller's map is never mutated by Helm's merge.
		b, err := yaml.Marshal(o.Values)
		if err != nil {
			return nil, fmt.Errorf("values: %w", err)
		}
		var v map[string]any
		if err := yaml.Unmarshal(b, &v); err != nil {
			return nil, fmt.Errorf("values: %w", err)
		}
		vals = chartutil.CoalesceTables(v, vals)
	}
	kv, err := chartutil.ParseKubeVersion(o.KubeVersion)
	if err != nil {
		return nil, fmt.Errorf("kube version %q: %w", o.KubeVersion, err)
	}
	cfg := &action.Configuration{Log: func(string, ...any) {}}
	install := action.NewInstall(cfg)
	install.DryRun = true
	install.DryRunOption = "client"
	install.ClientOnly = true
	install.Replace = true
	install.IncludeCRDs = true
	install.ReleaseName = o.ReleaseName
	install.Namespace = o.Namespace
	install.KubeVersion = kv
	install.IsUpgrade = o.IsUpgrade
	rel, err := install.Run(chrt, vals)
	if err != nil {
		return nil, err
	}
	m := &Manifest{Raw: rel.Manifest}
	if rel.Info != nil {
		m.Notes = rel.Info.Notes
	}
	for _, h := range rel.Hooks {
		m.Raw += "\n---\n# Source: " + h.Path + "\n" + h.Manifest
	}
	if err := m.decode(o.Namespace); err != nil {
		return nil, err
	}
	if !o.NoSecretInit {
		return m.RunSecretInitWith(o.Existing, o.ExistingConfigMaps)
	}
	return m, nil
}

// Load loads a chart directory with every dependency declared with a
// file:// repository loaded from that path, the source of truth in this
// repository: a copy in charts/ (from an earlier `helm dependency build`,
// possibly stale) is ignored.
func Load(dir string) (*chart.Chart, error) {
	chrt, err := loader.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("load chart %s: %w", dir, err)
	}
	local := map[string]string{}
	for _, dep := range chrt.Metadata.Dependencies {
		if strings.HasPrefix(dep.Repository, "file://") {
			local[dep.Name] = filepath.Join(dir, strings.TrimPrefix(dep.Repository, "file://"))
		}
	}
	var kept []*chart.Chart
	for _, d := range chrt.Dependencies() {
		if _, fromSource := local[d.Name()]; !fromSource {
			kept = append(kept, d)
		}
	}
	chrt.SetDependencies(kept...)
	for _, dep := range chrt.Metadata.Dependencies {
		path, ok := local[dep.Name]
		if !ok {
			continue
		}
		sub, err := Load(path)
		if err != nil {
			return nil, fmt.Errorf("dependency %s of %s: %w", dep.Name, dir, err)
		}
		chrt.AddDependency(sub)
		delete(local, dep.Name)
	}
	return chrt, nil
}

// MustChart is Chart failing the test on error.
func MustChart(t testing.TB, dir string, o Options) *Manifest {
	t.Helper()
	m, err := Chart(dir, o)
	if err != nil {
		t.Fatalf("render %s: %v", dir, err)
	}
	return m
}

func (m *Manifest) decode(namespace string) error {
	split := releaseutil.SplitManifests(m.Raw)
	keys := make([]string, 0, len(split))
	for k := range split {
		keys = append(keys, k)
	}
	sort.Sort(releaseutil.BySplitManifestsOrder(keys))
	for _, k := range keys {
		doc := split[k]
		var fields map[string]any
		if err := yaml.Unmarshal([]byte(doc), &fields); err != nil {
			return fmt.Errorf("decode rendered document: %w\n%s", err, doc)
		}
		if len(fields) == 0 {
			continue
		}
		o := &Object{YAML: []byte(doc), Fields: fields, Namespace: namespace}
		o.APIVersion, _ = fields["apiVersion"].(string)
		o.Kind, _ = fields["kind"].(string)
		if md, ok := fields["metadata"].(map[string]any); ok {
			o.Name, _ = md["name"].(string)
			if ns, ok := md["namespace"].(string); ok && ns != "" {
				o.Namespace = ns
			}
		}
		if i := strings.Index(doc, "# Source: "); i >= 0 {
			line := doc[i+len("# Source: "):]
			if j := strings.IndexByte(line, '\n'); j >= 0 {
				line = line[:j]
			}
			o.Source = strings.TrimSpace(line)
		}
		if o.Kind == "" || o.Name == "" {
			return fmt.Errorf("rendered document without kind or metadata.name (from %s)", o.Source)
		}
		m.Objects = append(m.Objects, o)
	}
	return nil
}

// Get returns the object of that kind, namespace and name.
func (m *Manifest) Get(kind, namespace, name string) (*Object, bool) {
	for _, o := range m.Objects {
		if o.Kind == kind && o.Namespace == namespace && o.Name == name {
			return o, true
		}
	}
	return nil, false
}

// MustGet is Get failing the test (listing what was rendered) when absent.
func (m *Manifest) MustGet(t testing.TB, kind, namespace, name string) *Object {
	t.Helper()
	o, ok := m.Get(kind, namespace, name)
	if !ok {
		t.Fatalf("no %s %s/%s rendered; rendered: %s", kind, namespace, name, m.Index())
	}
	return o
}

// ByKind lists the objects of a kind, in manifest order.
func (m *Manifest) ByKind(kind string) []*Object {
	var out []*Object
	for _, o := range m.Objects {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// One returns the only object of a kind whose name starts with prefix,
// failing the test when there is not exactly one (for hash-suffixed names).
func (m *Manifest) One(t testing.TB, kind, prefix string) *Object {
	t.Helper()
	var found []*Object
	for _, o := range m.ByKind(kind) {
		if strings.HasPrefix(o.Name, prefix) {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %s named %s*, got %d; rendered: %s", kind, prefix, len(found), m.Index())
	}
	return found[0]
}

// Index lists "Kind namespace/name" of every object, for failure messages.
func (m *Manifest) Index() string {
	var b strings.Builder
	for i, o := range m.Objects {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s/%s", o.Kind, o.Namespace, o.Name)
	}
	return b.String()
}

// DecodeInto decodes the object strictly into a typed value (e.g. a
// *appsv1.StatefulSet): a field the type does not know is an error.
func (o *Object) DecodeInto(into any) error {
	if err := yaml.UnmarshalStrict(o.YAML, into); err != nil {
		return fmt.Errorf("%s %s/%s (%s): %w", o.Kind, o.Namespace, o.Name, o.Source, err)
	}
	return nil
}

// Decode decodes an object into a new T, failing the test on error.
func Decode[T any](t testing.TB, o *Object) *T {
	t.Helper()
	var v T
	if err := o.DecodeInto(&v); err != nil {
		t.Fatal(err)
	}
	return &v
}

// MountFiles writes, under root, the files a rendered container would see
// from its Secret, ConfigMap and projected volumes (items honoured, every key when a
// volume lists none), taking the data from the rendered objects in the pod's
// namespace; a Secret or ConfigMap the manifest does not hold (an existing
// one) must be given in extra, keyed "Kind/name"; as the kubelet does, a
// volume marked optional skips keys (or a whole Secret) that are missing. It returns root+mountPath
// for each mount it wrote, keyed by mountPath, so a test can run the real
// binary with the rendered args after prefixing their paths with root.
func (m *Manifest) MountFiles(t testing.TB, namespace string, pod corev1.PodSpec, container, root string, extra map[string]map[string]string) map[string]string {
	t.Helper()
	var c *corev1.Container
	for i := range pod.InitContainers {
		if pod.InitContainers[i].Name == container {
			c = &pod.InitContainers[i]
		}
	}
	for i := range pod.Containers {
		if pod.Containers[i].Name == container {
			c = &pod.Containers[i]
		}
	}
	if c == nil {
		t.Fatalf("MountFiles: no container %q", container)
	}
	data := func(kind, name string) map[string]string {
		if d, ok := extra[kind+"/"+name]; ok {
			return d
		}
		o, ok := m.Get(kind, namespace, name)
		if !ok {
			t.Fatalf("MountFiles: %s %s/%s is neither rendered nor given in extra", kind, namespace, name)
		}
		out := map[string]string{}
		if kind == "Secret" {
			s := Decode[corev1.Secret](t, o)
			for k, v := range s.Data {
				out[k] = string(v)
			}
			for k, v := range s.StringData {
				out[k] = v
			}
		} else {
			cm := Decode[corev1.ConfigMap](t, o)
			for k, v := range cm.Data {
				out[k] = v
			}
		}
		return out
	}
	written := map[string]string{}
	for _, vm := range c.VolumeMounts {
		var vol *corev1.Volume
		for i := range pod.Volumes {
			if pod.Volumes[i].Name == vm.Name {
				vol = &pod.Volumes[i]
			}
		}
		if vol == nil {
			t.Fatalf("MountFiles: mount %s has no volume %q", vm.MountPath, vm.Name)
		}
		// One source per Secret or ConfigMap (several for a projected volume).
		type source struct {
			d        map[string]string
			items    []corev1.KeyToPath
			optional bool
		}
		optionalData := func(kind, name string, optional *bool) (map[string]string, bool) {
			opt := optional != nil && *optional
			if _, inExtra := extra[kind+"/"+name]; opt && !inExtra {
				if _, rendered := m.Get(kind, namespace, name); !rendered {
					return map[string]string{}, true
				}
			}
			return data(kind, name), opt
		}
		var sources []source
		switch {
		case vol.Secret != nil:
			d, opt := optionalData("Secret", vol.Secret.SecretName, vol.Secret.Optional)
			sources = []source{{d, vol.Secret.Items, opt}}
		case vol.ConfigMap != nil:
			d, opt := optionalData("ConfigMap", vol.ConfigMap.Name, vol.ConfigMap.Optional)
			sources = []source{{d, vol.ConfigMap.Items, opt}}
		case vol.Projected != nil:
			for _, ps := range vol.Projected.Sources {
				switch {
				case ps.Secret != nil:
					d, opt := optionalData("Secret", ps.Secret.Name, ps.Secret.Optional)
					sources = append(sources, source{d, ps.Secret.Items, opt})
				case ps.ConfigMap != nil:
					d, opt := optionalData("ConfigMap", ps.ConfigMap.Name, ps.ConfigMap.Optional)
					sources = append(sources, source{d, ps.ConfigMap.Items, opt})
				}
			}
		default:
			continue
		}
		dir := filepath.Join(root, vm.MountPath)
		if err := os.MkdirAll(dir, 0o700); err != nil { // mounted even when empty (optional keys missing)
			t.Fatal(err)
		}
		for _, src := range sources {
			items := src.items
			if len(items) == 0 {
				for k := range src.d {
					items = append(items, corev1.KeyToPath{Key: k, Path: k})
				}
			}
			for _, it := range items {
				v, ok := src.d[it.Key]
				if !ok && src.optional {
					continue
				}
				if !ok {
					t.Fatalf("MountFiles: volume %q has no key %q", vm.Name, it.Key)
				}
				p := filepath.Join(dir, it.Path)
				if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
		written[vm.MountPath] = dir
	}
	return written
}

// Env returns a rendered container's environment as "NAME=value" strings,
// with secretKeyRef and configMapKeyRef resolved from the rendered objects in
// namespace (or from extra, keyed "Kind/name", for objects the chart does not
// render). A reference that cannot be resolved fails the test unless it is
// optional.
func (m *Manifest) Env(t testing.TB, namespace string, c corev1.Container, extra map[string]map[string]string) []string {
	t.Helper()
	lookup := func(kind, name, key string, optional *bool) (string, bool) {
		if d, ok := extra[kind+"/"+name]; ok {
			v, ok := d[key]
			if !ok && (optional == nil || !*optional) {
				t.Fatalf("Env: %s %s has no key %q", kind, name, key)
			}
			return v, ok
		}
		o, ok := m.Get(kind, namespace, name)
		if !ok {
			if optional != nil && *optional {
				return "", false
			}
			t.Fatalf("Env: %s %s/%s is neither rendered nor given in extra", kind, namespace, name)
		}
		var d map[string]string
		if kind == "Secret" {
			s := Decode[corev1.Secret](t, o)
			d = map[string]string{}
			for k, v := range s.Data {
				d[k] = string(v)
			}
			for k, v := range s.StringData {
				d[k] = v
			}
		} else {
			d = Decode[corev1.ConfigMap](t, o).Data
		}
		v, ok := d[key]
		if !ok && (optional == nil || !*optional) {
			t.Fatalf("Env: %s %s/%s has no key %q", kind, namespace, name, key)
		}
		return v, ok
	}
	var out []string
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			out = append(out, e.Name+"="+e.Value)
		case e.ValueFrom.SecretKeyRef != nil:
			r := e.ValueFrom.SecretKeyRef
			if v, ok := lookup("Secret", r.Name, r.Key, r.Optional); ok {
				out = append(out, e.Name+"="+v)
			}
		case e.ValueFrom.ConfigMapKeyRef != nil:
			r := e.ValueFrom.ConfigMapKeyRef
			if v, ok := lookup("ConfigMap", r.Name, r.Key, r.Optional); ok {
				out = append(out, e.Name+"="+v)
			}
		default:
			t.Fatalf("Env: %s uses a valueFrom Env cannot resolve", e.Name)
		}
	}
	return out
}
