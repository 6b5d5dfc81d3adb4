package render

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"sort"
	"strconv"

	"github.com/kommons/kommons/internal/kubeapi"
	"github.com/kommons/kommons/internal/secretinit"
	"github.com/kommons/kommons/internal/specfile"
	"sigs.k8s.io/yaml"
)

// SecretInitSource is the Source of the Secrets RunSecretInit adds.
const SecretInitSource = "secret-init (run by test/render)"

// RunSecretInit does what the chart's secret-init Jobs do in a cluster, for
// rendered-manifest tests: it runs every rendered secret-init spec (a
// ConfigMap with key spec.yaml, labelled app.kubernetes.io/component
// secret-init) through the real internal/secretinit reconciler, over an
// in-memory store holding existing (Secrets that exist before, e.g. an
// existingSecret), and adds the Secrets it writes to the manifest. It
// returns m.
func (m *Manifest) RunSecretInit(existing ...*kubeapi.Secret) (*Manifest, error) {
	return m.RunSecretInitWith(existing, nil)
}

// RunSecretInitWith is RunSecretInit with ConfigMaps that exist before
// (e.g. a CA bundle the user names; the rendered ConfigMaps are in the store
// anyway, as in a cluster).
func (m *Manifest) RunSecretInitWith(secrets []*kubeapi.Secret, configMaps []*kubeapi.ConfigMap) (*Manifest, error) {
	return m.runSecretInit(func(o *Object, labels map[string]any) bool {
		return labels["app.kubernetes.io/component"] == "secret-init"
	}, secrets, configMaps)
}

// RunSecretInitConfigMap is RunSecretInit for the one spec in ConfigMap
// namespace/name, whatever its labels: the spec of a secret-init init
// container (postgres-init's pg-init Job), which reads a tenant Secret no
// render has (pass it as existing).
func (m *Manifest) RunSecretInitConfigMap(namespace, name string, existing ...*kubeapi.Secret) (*Manifest, error) {
	if _, ok := m.Get("ConfigMap", namespace, name); !ok {
		return nil, fmt.Errorf("secret-init spec: ConfigMap %s/%s is not rendered", namespace, name)
	}
	return m.runSecretInit(func(o *Object, _ map[string]any) bool {
		return o.Namespace == namespace && o.Name == name
	}, existing, nil)
}

func (m *Manifest) runSecretInit(selected func(o *Object, labels map[string]any) bool, existing []*kubeapi.Secret, configMaps []*kubeapi.ConfigMap) (*Manifest, error) {
	store := &memoryAPI{secrets: map[string]*kubeapi.Secret{}, configMaps: map[string]*kubeapi.ConfigMap{}}
	for _, s := range existing {
		store.secrets[s.Metadata.Namespace+"/"+s.Metadata.Name] = s
	}
	for _, o := range m.ByKind("ConfigMap") {
		cm := &kubeapi.ConfigMap{Metadata: kubeapi.ObjectMeta{Namespace: o.Namespace, Name: o.Name}, Data: map[string]string{}}
		data, _ := o.Fields["data"].(map[string]any)
		for k, v := range data {
			if s, ok := v.(string); ok {
				cm.Data[k] = s
			}
		}
		store.configMaps[o.Namespace+"/"+o.Name] = cm
	}
	for _, cm := range configMaps {
		store.configMaps[cm.Metadata.Namespace+"/"+cm.Metadata.Name] = cm
	}
	ran := false
	for _, o := range m.ByKind("ConfigMap") {
		md, _ := o.Fields["metadata"].(map[string]any)
		labels, _ := md["labels"].(map[string]any)
		data, _ := o.Fields["data"].(map[string]any)
		text, ok := data["spec.yaml"].(string)
		if !ok || !selected(o, labels) {
			continue
		}
		spec, err := specfile.DecodeAs[secretinit.Spec](o.Name, []byte(text))
		if err != nil {
			return nil, err
		}
		if err := spec.Validate(o.Name, o.Namespace); err != nil {
			return nil, err
		}
		// A source nobody writes would make the real reconciler wait
		// forever: name it instead (pass such Secrets as existing).
		for _, sec := range spec.Secrets {
			for key, src := range sec.Data {
				if ref := src.FromConfigMap; ref != nil && !ref.Optional {
					if _, ok := store.configMaps[ref.Namespace+"/"+ref.Name]; !ok {
						return nil, fmt.Errorf("secret-init %s/%s: Secret %s/%s key %s reads ConfigMap %s/%s, which is neither rendered nor exists (give it as existing)",
							o.Namespace, o.Name, sec.Namespace, sec.Name, key, ref.Namespace, ref.Name)
					}
				}
				ref := src.FromSecret
				if ref == nil || ref.Optional {
					continue
				}
				ns := ref.Namespace
				if ns == "" {
					ns = sec.Namespace
				}
				if _, ok := store.secrets[ns+"/"+ref.Name]; !ok && !writes(spec, ns, ref.Name) {
					return nil, fmt.Errorf("secret-init %s/%s: Secret %s/%s key %s reads Secret %s/%s, which neither the spec writes nor exists (give it as existing)",
						o.Namespace, o.Name, sec.Namespace, sec.Name, key, ns, ref.Name)
				}
			}
		}
		r := &secretinit.Runner{API: store, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		if err := r.Run(context.Background(), spec); err != nil {
			return nil, fmt.Errorf("secret-init %s/%s: %w", o.Namespace, o.Name, err)
		}
		ran = true
	}
	if !ran {
		return m, nil
	}
	for _, k := range sortedKeys(store.secrets) {
		s := store.secrets[k]
		if s.Metadata.Labels[secretinit.ManagedByLabel] != secretinit.ManagedByValue {
			continue // existing, not written
		}
		b, err := json.Marshal(s)
		if err != nil {
			return nil, err
		}
		y, err := yaml.JSONToYAML(b)
		if err != nil {
			return nil, err
		}
		var fields map[string]any
		if err := yaml.Unmarshal(y, &fields); err != nil {
			return nil, err
		}
		m.Objects = append(m.Objects, &Object{APIVersion: "v1", Kind: "Secret", Namespace: s.Metadata.Namespace,
			Name: s.Metadata.Name, Source: SecretInitSource, YAML: y, Fields: fields})
	}
	return m, nil
}

// writes reports whether spec writes Secret ns/name.
func writes(spec *secretinit.Spec, ns, name string) bool {
	for _, s := range spec.Secrets {
		if s.Namespace == ns && s.Name == name {
			return true
		}
	}
	for _, c := range spec.Certificates {
		if c.Namespace == ns && c.Name == name {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// memoryAPI is the Secret store of RunSecretInit: get, create and JSON
// merge patch with the resourceVersion precondition, like the API server,
// and ConfigMaps to read.
type memoryAPI struct {
	secrets    map[string]*kubeapi.Secret
	configMaps map[string]*kubeapi.ConfigMap
	rv         int
}

func (a *memoryAPI) GetConfigMap(_ context.Context, ns, name string) (*kubeapi.ConfigMap, error) {
	cm, ok := a.configMaps[ns+"/"+name]
	if !ok {
		return nil, &kubeapi.StatusError{Verb: "get", Code: 404, Reason: "NotFound", Message: ns + "/" + name}
	}
	c := *cm
	c.Data = maps.Clone(cm.Data)
	c.BinaryData = maps.Clone(cm.BinaryData)
	return &c, nil
}

func (a *memoryAPI) GetSecret(_ context.Context, ns, name string) (*kubeapi.Secret, error) {
	s, ok := a.secrets[ns+"/"+name]
	if !ok {
		return nil, &kubeapi.StatusError{Verb: "get", Code: 404, Reason: "NotFound", Message: ns + "/" + name}
	}
	c := *s
	c.Data = maps.Clone(s.Data)
	c.Metadata.Labels = maps.Clone(s.Metadata.Labels)
	c.Metadata.Annotations = maps.Clone(s.Metadata.Annotations)
	return &c, nil
}

func (a *memoryAPI) CreateSecret(_ context.Context, s *kubeapi.Secret) (*kubeapi.Secret, error) {
	k := s.Metadata.Namespace + "/" + s.Metadata.Name
	if _, ok := a.secrets[k]; ok {
		return nil, &kubeapi.StatusError{Verb: "create", Code: 409, Reason: "AlreadyExists", Message: k}
	}
	a.rv++
	c := *s
	c.Metadata.ResourceVersion = strconv.Itoa(a.rv)
	if c.Type == "" {
		c.Type = "Opaque"
	}
	a.secrets[k] = &c
	return &c, nil
}

func (a *memoryAPI) PatchSecret(_ context.Context, ns, name string, patch []byte) (*kubeapi.Secret, error) {
	k := ns + "/" + name
	s, ok := a.secrets[k]
	if !ok {
		return nil, &kubeapi.StatusError{Verb: "patch", Code: 404, Reason: "NotFound", Message: k}
	}
	var p struct {
		Metadata kubeapi.ObjectMeta `json:"metadata"`
		Data     map[string][]byte  `json:"data"`
	}
	if err := json.Unmarshal(patch, &p); err != nil {
		return nil, err
	}
	if p.Metadata.ResourceVersion != "" && p.Metadata.ResourceVersion != s.Metadata.ResourceVersion {
		return nil, &kubeapi.StatusError{Verb: "patch", Code: 409, Reason: "Conflict", Message: k}
	}
	if s.Metadata.Labels == nil {
		s.Metadata.Labels = map[string]string{}
	}
	if s.Metadata.Annotations == nil {
		s.Metadata.Annotations = map[string]string{}
	}
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	maps.Copy(s.Metadata.Labels, p.Metadata.Labels)
	maps.Copy(s.Metadata.Annotations, p.Metadata.Annotations)
	maps.Copy(s.Data, p.Data)
	a.rv++
	s.Metadata.ResourceVersion = strconv.Itoa(a.rv)
	return s, nil
}

var _ secretinit.API = (*memoryAPI)(nil)
