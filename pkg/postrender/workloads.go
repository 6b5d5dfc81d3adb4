package postrender

import (
	"strings"

	"github.com/kommons/kommons/pkg/postrender/internal/blockyaml"
	"github.com/kommons/kommons/pkg/postrender/policy"
)

// workload is a kind whose objects carry a pod template, and where.
type workload struct {
	kind string
	// groups lists the API groups of a built-in kind ("" is the core
	// group); the version is not compared.
	groups []string
	// apiVersion, for a policy's podTemplatePaths entry (custom is true),
	// is compared whole; "" matches any.
	apiVersion string
	custom     bool
	// template is the path of mapping keys from the object to its pod
	// template (metadata + spec); empty for a Pod, which is its own.
	template []string
}

// builtinWorkloads is the one table of the Kubernetes kinds whose pod
// templates the engine places. A kind with the right name in another API
// group (example.com/v1 Deployment) is not one of them.
var builtinWorkloads = []workload{
	{kind: "Pod", groups: []string{""}},
	{kind: "ReplicationController", groups: []string{""}, template: []string{"spec", "template"}},
	{kind: "Deployment", groups: []string{"apps", "extensions"}, template: []string{"spec", "template"}},
	{kind: "StatefulSet", groups: []string{"apps", "extensions"}, template: []string{"spec", "template"}},
	{kind: "DaemonSet", groups: []string{"apps", "extensions"}, template: []string{"spec", "template"}},
	{kind: "ReplicaSet", groups: []string{"apps", "extensions"}, template: []string{"spec", "template"}},
	{kind: "Job", groups: []string{"batch"}, template: []string{"spec", "template"}},
	{kind: "CronJob", groups: []string{"batch"}, template: []string{"spec", "jobTemplate", "spec", "template"}},
}

// claimSource is a kind that carries PersistentVolumeClaim specs: the
// claim itself, or a StatefulSet's volumeClaimTemplates.
type claimSource struct {
	kind   string
	groups []string
	// templates is the path to a sequence of claim templates (metadata +
	// spec); empty when the object is the claim and its spec is "spec".
	templates []string
}

// claimSources is the table of the kinds whose claims the storage filter
// edits.
var claimSources = []claimSource{
	{kind: "PersistentVolumeClaim", groups: []string{""}},
	{kind: "StatefulSet", groups: []string{"apps"}, templates: []string{"spec", "volumeClaimTemplates"}},
}

// workloadTable is the built-in table followed by the policy's
// podTemplatePaths (the built-in entry wins for a built-in kind and group).
func workloadTable(p *policy.Policy) []workload {
	t := append([]workload(nil), builtinWorkloads...)
	for _, c := range p.PodTemplatePaths {
		t = append(t, workload{kind: c.Kind, apiVersion: c.APIVersion, custom: true, template: strings.Split(c.Path, ".")})
	}
	return t
}

// matches reports whether an object of kind, API group and apiVersion is
// this workload.
func (w *workload) matches(kind, group, apiVersion string) bool {
	if w.kind != kind {
		return false
	}
	if w.custom {
		return w.apiVersion == "" || w.apiVersion == apiVersion
	}
	return isGroup(group, w.groups...)
}

// isGroup reports whether group (the part of an apiVersion before its last
// "/", up to its first "/") is one of want.
func isGroup(group string, want ...string) bool {
	g := group
	if i := strings.Index(g, "/"); i >= 0 {
		g = g[:i]
	}
	for _, w := range want {
		if g == w {
			return true
		}
	}
	return false
}

// lookupWorkload returns the table entry of an object, or nil.
func (e *Engine) lookupWorkload(kind, group, apiVersion string) *workload {
	for i := range e.workloads {
		if e.workloads[i].matches(kind, group, apiVersion) {
			return &e.workloads[i]
		}
	}
	return nil
}

// editedKinds returns every kind the engine may edit, from the tables
// (List kinds are recognised by their suffix).
func editedKinds(table []workload) []string {
	var kinds []string
	seen := map[string]bool{}
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			kinds = append(kinds, k)
		}
	}
	for _, w := range table {
		add(w.kind)
	}
	for _, c := range claimSources {
		add(c.kind)
	}
	add("List")
	return kinds
}

// readKeys returns the subtrees of a document the engine reads or edits;
// the parser validates the others (containers, volumes, probes, ...)
// without building them. Path keys lead to what is read (from the tables),
// Full keys are read whole (what the filters read and edit). A key missing
// here reads as absent (and an edit of it is refused by the splice), never
// as wrong.
func readKeys(table []workload) *blockyaml.Keep {
	k := &blockyaml.Keep{Path: map[string]bool{}, Full: map[string]bool{}}
	for _, key := range []string{"labels", "selector", "nodeSelector", "tolerations", "affinity", "topologySpreadConstraints"} {
		k.Full[key] = true
	}
	path := func(keys []string) {
		for _, key := range keys {
			if !k.Full[key] {
				k.Path[key] = true
			}
		}
	}
	path([]string{"metadata", "spec", "items"})
	for _, w := range table {
		path(w.template)
	}
	for _, c := range claimSources {
		path(c.templates)
	}
	return k
}
