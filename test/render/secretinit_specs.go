package render

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kommons/kommons/internal/kubeapi"
	"github.com/kommons/kommons/internal/secretinit"
	"github.com/kommons/kommons/internal/specfile"
)

// SecretInitRun runs the secret-init spec of one rendered ConfigMap
// (namespace/configMap, key spec.yaml) through the real internal/secretinit
// reconciler over an in-memory store holding existing (namespace/name ->
// key -> value; an id "ConfigMap/namespace/name" is a ConfigMap), and
// returns every Secret it wrote, by namespace/name. Unlike
// RunSecretInit it takes the Secrets a cluster would already hold (a
// tenant Secret a fromSecret reads, a Secret from an earlier run whose
// generated keys must be kept) and any ConfigMap, whatever its labels: the
// module charts' specs (postgres-init's) read a tenant Secret no render has.
func (m *Manifest) SecretInitRun(t testing.TB, namespace, configMap string, existing map[string]map[string]string) map[string]map[string]string {
	t.Helper()
	cm := m.MustGet(t, "ConfigMap", namespace, configMap)
	data, _ := cm.Fields["data"].(map[string]any)
	text, _ := data["spec.yaml"].(string)
	return SecretInitRun(t, namespace+"/"+configMap+"/spec.yaml", namespace, text, existing)
}

// SecretInitRun is Manifest.SecretInitRun for a spec's text (source names
// it in errors; namespace is the pod's, the default of the spec's Secrets).
func SecretInitRun(t testing.TB, source, namespace, specYAML string, existing map[string]map[string]string) map[string]map[string]string {
	t.Helper()
	spec, err := specfile.DecodeAs[secretinit.Spec](source, []byte(specYAML))
	if err != nil {
		t.Fatalf("secret-init spec: %v", err)
	}
	if err := spec.Validate(source, namespace); err != nil {
		t.Fatalf("secret-init spec: %v", err)
	}
	store := &memoryAPI{secrets: map[string]*kubeapi.Secret{}, configMaps: map[string]*kubeapi.ConfigMap{}}
	for id, kv := range existing {
		if cmID, ok := strings.CutPrefix(id, "ConfigMap/"); ok {
			ns, name, _ := strings.Cut(cmID, "/")
			store.configMaps[cmID] = &kubeapi.ConfigMap{Metadata: kubeapi.ObjectMeta{Namespace: ns, Name: name}, Data: kv}
			continue
		}
		ns, name, _ := strings.Cut(id, "/")
		s := &kubeapi.Secret{Metadata: kubeapi.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: "1"}, Data: map[string][]byte{}}
		for k, v := range kv {
			s.Data[k] = []byte(v)
		}
		store.secrets[id] = s
	}
	// A missing fromSecret source is waited for: the deadline turns it into an error.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r := &secretinit.Runner{API: store, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := r.Run(ctx, spec); err != nil {
		t.Fatalf("secret-init %s: %v", source, err)
	}
	out := map[string]map[string]string{}
	for id, s := range store.secrets {
		if s.Metadata.Labels[secretinit.ManagedByLabel] != secretinit.ManagedByValue {
			continue // existing, not written
		}
		kv := map[string]string{}
		for k, v := range s.Data {
			kv[k] = string(v)
		}
		out[id] = kv
	}
	return out
}
