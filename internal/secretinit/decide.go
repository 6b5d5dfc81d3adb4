package secretinit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"

	"github.com/kommons/kommons/internal/kubeapi"
)

// Verb is what a run does to one Secret.
type Verb string

// The verbs.
const (
	None   Verb = "unchanged" // the Secret matches the spec
	Create Verb = "created"   // the Secret is missing: create it whole
	Patch  Verb = "updated"   // merge-patch keys, labels or annotations
	Wait   Verb = "waiting"   // a fromSecret or fromConfigMap source is missing: observe again later
)

// Observed is what a run read from the cluster before deciding about one
// Secret.
type Observed struct {
	// Secret is the live Secret, nil when it does not exist.
	Secret *kubeapi.Secret
	// From holds the value of each fromSecret reference found, by RefID.
	From map[string]string
	// FromConfigMap holds the value of each fromConfigMap reference found,
	// by ConfigMapRefID.
	FromConfigMap map[string]string
	// Candidates holds a freshly generated value for each generate key,
	// used only when the live Secret has none (so Decide stays pure).
	Candidates map[string]string
}

// RefID identifies a fromSecret reference in Observed.From.
func RefID(r SecretRef) string { return r.Namespace + "/" + r.Name + "/" + r.Key }

// ConfigMapRefID identifies a fromConfigMap reference in
// Observed.FromConfigMap.
func ConfigMapRefID(r ConfigMapRef) string { return r.Namespace + "/" + r.Name + "/" + r.Key }

// Action is the decision about one Secret: what to write, and the names
// (never the values) of the keys written.
type Action struct {
	Verb Verb
	// Secret is the whole Secret to create (Verb Create).
	Secret *kubeapi.Secret
	// Patch is the JSON merge patch (Verb Patch), with the observed
	// resourceVersion as precondition.
	Patch []byte
	// Keys are the keys created or changed, sorted; Metadata lists the
	// labels and annotations added or changed.
	Keys, Metadata []string
	// Reason says what a Wait waits for.
	Reason string
}

// Decide computes the Action that makes the cluster match spec, from what
// was observed. It is pure: no I/O, no randomness (generated values come
// from obs.Candidates). A generate key keeps any non-empty live value; facts
// (value, fromSecret, fromConfigMap, template) are set to their computed value.
func Decide(spec SecretSpec, obs *Observed) (Action, error) {
	var live map[string][]byte
	if obs.Secret != nil {
		live = obs.Secret.Data
	}
	values := map[string]string{}
	for _, k := range sortedKeys(spec.Data) {
		src := spec.Data[k]
		switch src.Kind() {
		case KindGenerate:
			if v := live[k]; len(v) > 0 {
				values[k] = string(v)
			} else if c, ok := obs.Candidates[k]; ok && c != "" {
				values[k] = c
			} else {
				return Action{}, fmt.Errorf("data.%s: no generated candidate value", k)
			}
		case KindValue:
			values[k] = *src.Value
		case KindFromSecret:
			v, ok := obs.From[RefID(*src.FromSecret)]
			if !ok && !src.FromSecret.Optional {
				r := src.FromSecret
				return Action{Verb: Wait, Reason: fmt.Sprintf("key %q of Secret %s/%s (data.%s.fromSecret)", r.Key, r.Namespace, r.Name, k)}, nil
			}
			values[k] = v
		case KindFromConfigMap:
			v, ok := obs.FromConfigMap[ConfigMapRefID(*src.FromConfigMap)]
			if !ok && !src.FromConfigMap.Optional {
				r := src.FromConfigMap
				return Action{Verb: Wait, Reason: fmt.Sprintf("key %q of ConfigMap %s/%s (data.%s.fromConfigMap)", r.Key, r.Namespace, r.Name, k)}, nil
			}
			values[k] = v
		}
	}
	values, err := resolveTemplates(spec.Data, values)
	if err != nil {
		return Action{}, fmt.Errorf("data.%s", err)
	}
	labels := maps.Clone(spec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[ManagedByLabel] = ManagedByValue

	if obs.Secret == nil {
		data := make(map[string][]byte, len(values))
		for k := range spec.Data {
			data[k] = []byte(values[k])
		}
		return Action{
			Verb: Create,
			Secret: &kubeapi.Secret{
				Metadata: kubeapi.ObjectMeta{Name: spec.Name, Namespace: spec.Namespace,
					Labels: labels, Annotations: maps.Clone(spec.Annotations)},
				Type: spec.Type,
				Data: data,
			},
			Keys: sortedKeys(spec.Data),
		}, nil
	}

	changed := map[string][]byte{}
	for _, k := range sortedKeys(spec.Data) {
		if v := values[k]; !bytes.Equal(live[k], []byte(v)) || live[k] == nil {
			changed[k] = []byte(v)
		}
	}
	addLabels := diffMeta(obs.Secret.Metadata.Labels, labels)
	addAnnotations := diffMeta(obs.Secret.Metadata.Annotations, spec.Annotations)
	var metaNames []string
	for _, k := range sortedKeys(addLabels) {
		metaNames = append(metaNames, "label "+k)
	}
	for _, k := range sortedKeys(addAnnotations) {
		metaNames = append(metaNames, "annotation "+k)
	}
	if len(changed) == 0 && len(metaNames) == 0 {
		return Action{Verb: None}, nil
	}
	patch := map[string]any{}
	meta := map[string]any{"resourceVersion": obs.Secret.Metadata.ResourceVersion}
	if len(addLabels) > 0 {
		meta["labels"] = addLabels
	}
	if len(addAnnotations) > 0 {
		meta["annotations"] = addAnnotations
	}
	patch["metadata"] = meta
	if len(changed) > 0 {
		patch["data"] = changed
	}
	b, err := json.Marshal(patch)
	if err != nil {
		return Action{}, fmt.Errorf("encode the patch: %w", err)
	}
	return Action{Verb: Patch, Patch: b, Keys: sortedKeys(changed), Metadata: metaNames}, nil
}

// DecideCertificate is Decide for a certificate Secret: create it when
// missing (the run issues it), otherwise only add the spec's labels and
// annotations: a certificate is never re-issued automatically.
func DecideCertificate(spec CertificateSpec, live *kubeapi.Secret) (Action, error) {
	labels := maps.Clone(spec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[ManagedByLabel] = ManagedByValue
	if live == nil {
		return Action{
			Verb: Create,
			Secret: &kubeapi.Secret{
				Metadata: kubeapi.ObjectMeta{Name: spec.Name, Namespace: spec.Namespace,
					Labels: labels, Annotations: maps.Clone(spec.Annotations)},
				Type: "kubernetes.io/tls",
			},
			Keys: []string{"ca.crt", "tls.crt", "tls.key"},
		}, nil
	}
	addLabels := diffMeta(live.Metadata.Labels, labels)
	addAnnotations := diffMeta(live.Metadata.Annotations, spec.Annotations)
	if len(addLabels) == 0 && len(addAnnotations) == 0 {
		return Action{Verb: None}, nil
	}
	meta := map[string]any{"resourceVersion": live.Metadata.ResourceVersion}
	var names []string
	if len(addLabels) > 0 {
		meta["labels"] = addLabels
		for _, k := range sortedKeys(addLabels) {
			names = append(names, "label "+k)
		}
	}
	if len(addAnnotations) > 0 {
		meta["annotations"] = addAnnotations
		for _, k := range sortedKeys(addAnnotations) {
			names = append(names, "annotation "+k)
		}
	}
	b, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return Action{}, fmt.Errorf("encode the patch: %w", err)
	}
	return Action{Verb: Patch, Patch: b, Metadata: names}, nil
}

// diffMeta returns the entries of want that live lacks or holds with
// another value (labels and annotations are added, never removed).
func diffMeta(live, want map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range want {
		if lv, ok := live[k]; !ok || lv != v {
			out[k] = v
		}
	}
	return out
}
