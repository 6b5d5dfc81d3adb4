package postrender_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/kommons/kommons/pkg/postrender"
)

// TestErrors checks that bad input fails with the document index, its
// "# Source:" template and the line in the stream, and returns no output.
func TestErrors(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []string // substrings of the error
		line int
	}{
		{
			name: "malformed yaml",
			in:   "---\n# Source: c/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\n---\n# Source: c/templates/dep.yaml\napiVersion: apps/v1\nkind: Deployment\nspec:\n  template: [unclosed\n",
			want: []string{"document 1", "# Source: c/templates/dep.yaml", "invalid YAML"},
			line: 10,
		},
		{
			name: "duplicate key",
			in:   "---\n# Source: c/templates/pvc.yaml\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: x\nspec:\n  resources: {}\n  resources: {}\n",
			want: []string{"document 0", "c/templates/pvc.yaml", `duplicate key "resources"`},
			line: 9,
		},
		{
			name: "duplicate key in an unaffected document (always validated)",
			in:   "---\n# Source: c/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\ndata:\n  a: 1\n  a: 2\n",
			want: []string{"document 0", "c/templates/cm.yaml", `duplicate key "a"`},
			line: 7,
		},
		{
			name: "malformed yaml in an unaffected document (always validated)",
			in:   "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n---\n# Source: c/templates/svc.yaml\napiVersion: v1\nkind: Service\nspec:\n  ports: [80\n",
			want: []string{"document 1", "c/templates/svc.yaml", "invalid YAML"},
			line: 10,
		},
		{
			name: "duplicate key inside a subtree the policy never reads",
			in:   "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  template:\n    spec:\n      containers:\n      - name: a\n        image: x\n        image: y\n",
			want: []string{"document 0", `duplicate key "image"`},
			line: 11,
		},
		{
			name: "conflicting nodeSelector",
			in:   "# Source: c/templates/d.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  template:\n    spec:\n      nodeSelector:\n        kommons.io/pool: gpu\n      containers: []\n",
			want: []string{"document 0", "spec.template.spec.nodeSelector.kommons.io/pool", `"gpu"`, "override: true"},
			line: 10,
		},
		{
			name: "pod spec shared through an alias",
			in:   "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: a}\n  spec: &spec\n    containers: []\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: b}\n  spec: *spec\n",
			want: []string{"document 0", "YAML alias"},
			line: 7,
		},
		{
			name: "document that is a scalar",
			in:   "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n---\n# Source: c/templates/notes.txt\njust text\n",
			want: []string{"document 1", "c/templates/notes.txt", "the document is a string", "not a Kubernetes object"},
			line: 7,
		},
		{
			name: "document that is a number",
			in:   "42\n",
			want: []string{"document 0", "the document is an integer"},
			line: 1,
		},
		{
			name: "document that is a flow sequence",
			in:   "[a, b]\n",
			want: []string{"document 0", "the document is a sequence"},
			line: 1,
		},
		{
			name: "List item that is a string",
			in:   "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  spec: {containers: []}\n- oops\n",
			want: []string{"document 0", "items[1] is a string", "not a Kubernetes object"},
			line: 7,
		},
		{
			name: "pod spec that is a string",
			in:   "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: s\nspec:\n  template:\n    metadata: {labels: {a: b}}\n    spec: \"containers: []\"\n",
			want: []string{"document 0", "StatefulSet s", "spec.template.spec is a string", "not a mapping"},
			line: 8,
		},
		{
			name: "Deployment spec that is a sequence",
			in:   "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n- template\n",
			want: []string{"document 0", "Deployment d", "spec is a sequence"},
			line: 6,
		},
		{
			name: "CronJob job template that is a string",
			in:   "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: c\nspec:\n  jobTemplate: x\n",
			want: []string{"document 0", "CronJob c", "spec.jobTemplate is a string"},
			line: 6,
		},
		{
			name: "claim spec that is a string",
			in:   "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\nspec: \"\"\n",
			want: []string{"document 0", "PersistentVolumeClaim data", "spec is a string", "not a mapping"},
			line: 5,
		},
		{
			name: "claim template that is a string",
			in:   "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: s\nspec:\n  volumeClaimTemplates:\n  - data\n  template:\n    spec: {containers: []}\n",
			want: []string{"document 0", "StatefulSet s", "spec.volumeClaimTemplates[0] is a string"},
			line: 7,
		},
		{
			name: "content after end marker",
			in:   "apiVersion: v1\nkind: Pod\n...\nkind: Pod\n",
			want: []string{"document 0"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			eng := testEngine(t, postrender.Options{})
			res, err := eng.Process([]byte(tc.in))
			if err == nil {
				t.Fatalf("no error; output:\n%s", res.Bytes())
			}
			if res != nil {
				t.Fatalf("output returned with an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			var de *postrender.DocumentError
			if !errors.As(err, &de) {
				t.Fatalf("error %T is not a *DocumentError", err)
			}
			if tc.line > 0 && de.Line != tc.line {
				t.Errorf("line = %d, want %d (%v)", de.Line, tc.line, err)
			}
		})
	}
}
