package postrender

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kommons/kommons/pkg/postrender/policy"
)

// manifest renders an object of kind and apiVersion whose pod template sits
// at path (empty: the object is the pod), in block style.
func manifest(apiVersion, kind string, path []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: %s\nkind: %s\nmetadata:\n  name: w\n", apiVersion, kind)
	indent := ""
	for _, k := range path {
		fmt.Fprintf(&b, "%s%s:\n", indent, k)
		indent += "  "
	}
	fmt.Fprintf(&b, "%smetadata:\n%s  labels: {app: w}\n%sspec:\n%s  containers: []\n", indent, indent, indent, indent)
	if len(path) == 0 {
		// The pod's own metadata was written above; drop the duplicate.
		return strings.Replace(b.String(), "metadata:\n  labels: {app: w}\n", "", 1)
	}
	return b.String()
}

// TestWorkloadTable places the pod template of every kind in the workload
// table (built-in, and a policy's podTemplatePaths), at the table's path,
// and leaves the same kind in another API group alone: the kind filter,
// the reader's keys and the walk all follow the one table.
func TestWorkloadTable(t *testing.T) {
	p := &policy.Policy{
		Pools:            []policy.Pool{{Name: "app", NodeSelector: map[string]string{"pool": "app"}}},
		Placement:        policy.Placement{DefaultPool: "app"},
		PodTemplatePaths: []policy.PodTemplatePath{{APIVersion: "argoproj.io/v1alpha1", Kind: "Rollout", Path: "spec.template"}},
	}
	e, err := New(p, Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	tmpl := []string{"spec", "template"}
	for _, c := range []struct {
		apiVersion, kind string
		path             []string
	}{
		{"v1", "Pod", nil},
		{"v1", "ReplicationController", tmpl},
		{"apps/v1", "Deployment", tmpl},
		{"extensions/v1beta1", "Deployment", tmpl},
		{"apps/v1", "StatefulSet", tmpl},
		{"apps/v1", "DaemonSet", tmpl},
		{"extensions/v1beta1", "DaemonSet", tmpl},
		{"apps/v1", "ReplicaSet", tmpl},
		{"batch/v1", "Job", tmpl},
		{"batch/v1", "CronJob", []string{"spec", "jobTemplate", "spec", "template"}},
		{"argoproj.io/v1alpha1", "Rollout", tmpl},
	} {
		t.Run(c.kind+" "+c.apiVersion, func(t *testing.T) {
			want := strings.Join(append(append([]string{}, c.path...), "spec", "nodeSelector"), ".")
			res, err := e.Process([]byte(manifest(c.apiVersion, c.kind, c.path)))
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Changes) != 1 || res.Changes[0].Path != want {
				t.Fatalf("changes %+v, want one at %s", res.Changes, want)
			}
			res, err = e.Process([]byte(manifest("example.com/v1", c.kind, c.path)))
			if err != nil {
				t.Fatal(err)
			}
			if res.Changed() {
				t.Fatalf("example.com/v1 %s placed: %+v", c.kind, res.Changes)
			}
		})
	}
}

// TestLookupCreate checks that the setter inserts the missing rest of a
// path at the first absent or empty step, in one edit, and merges into
// what exists.
func TestLookupCreate(t *testing.T) {
	p := &policy.Policy{
		Pools:     []policy.Pool{{Name: "db", RequiredNodeAffinity: []policy.NodeSelectorRequirement{{Key: "disk", Operator: "In", Values: []string{"ssd"}}}}},
		Placement: policy.Placement{DefaultPool: "db"},
	}
	e, err := New(p, Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	const head = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers: []\n"
	const term = "{matchExpressions: [{key: zone, operator: In, values: [a]}]}"
	for _, c := range []struct{ name, spec, path string }{
		{"nothing", "", "spec.affinity"},
		{"empty affinity", "  affinity: {}\n", "spec.affinity"},
		{"podAntiAffinity only", "  affinity:\n    podAntiAffinity: {x: y}\n", "spec.affinity.nodeAffinity"},
		{"preferred only", "  affinity:\n    nodeAffinity:\n      preferredDuringSchedulingIgnoredDuringExecution: [{weight: 1, preference: " + term + "}]\n", "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"},
		{"no terms", "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms: []\n", "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"},
		{"a term", "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - " + term + "\n", "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[1]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := e.Process([]byte(head + c.spec))
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Changes) != 1 || res.Changes[0].Path != c.path {
				t.Fatalf("changes %+v, want one at %s", res.Changes, c.path)
			}
			again, err := e.Process(res.Bytes())
			if err != nil || again.Changed() {
				t.Fatalf("second run: %v %+v\n%s", err, again, res.Bytes())
			}
		})
	}
}
