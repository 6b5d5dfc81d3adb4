package render

import (
	"testing"

	"github.com/kommons/kommons/internal/secretinit"
	"github.com/kommons/kommons/internal/specfile"
)

// SecretInitRun computes what secret-init writes from the spec a chart
// renders (the spec.yaml of ConfigMap namespace/configMap) on a cluster
// holding only the Secrets in existing (namespace/name -> key -> value):
// the spec is validated as secret-init validates it, then each Secret is
// decided in spec order with secretinit.Decide (generated values from
// crypto/rand), later Secrets reading earlier ones, as a run does. It
// returns every Secret written, by namespace/name, so render tests can check
// the connection Secrets a chart no longer renders itself. An existing
// Secret the spec names keeps its generated keys and gets its facts
// recomputed, as a run's patch does (the decision is taken as for a
// create, the live generated values standing in for new ones).
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
	cluster := map[string]map[string]string{}
	for k, v := range existing {
		cluster[k] = v
	}
	out := map[string]map[string]string{}
	for _, s := range spec.Secrets {
		id := s.Namespace + "/" + s.Name
		live := cluster[id]
		obs := &secretinit.Observed{From: map[string]string{}, Candidates: map[string]string{}}
		for key, src := range s.Data {
			switch {
			case src.Generate != nil && live[key] != "":
				obs.Candidates[key] = live[key] // a generated value is never replaced
			case src.Generate != nil:
				v, err := secretinit.GenerateValue(*src.Generate, nil)
				if err != nil {
					t.Fatal(err)
				}
				obs.Candidates[key] = v
			case src.FromSecret != nil:
				if v, ok := cluster[src.FromSecret.Namespace+"/"+src.FromSecret.Name][src.FromSecret.Key]; ok {
					obs.From[secretinit.RefID(*src.FromSecret)] = v
				}
			}
		}
		a, err := secretinit.Decide(s, obs)
		if err != nil {
			t.Fatalf("secret-init: Secret %s: %v", id, err)
		}
		if a.Verb != secretinit.Create {
			t.Fatalf("secret-init: Secret %s: %s (%s), want create", id, a.Verb, a.Reason)
		}
		written := map[string]string{}
		for k, v := range live {
			written[k] = v
		}
		for k, v := range a.Secret.Data {
			written[k] = string(v)
		}
		cluster[id], out[id] = written, written
	}
	return out
}
