package postrender_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kommons/kommons/pkg/postrender"
	"github.com/kommons/kommons/pkg/postrender/policy"
)

// exampleDBClass is the storage class each example policy gives the volumes
// of the workloads it places on the db pool.
var exampleDBClass = map[string]string{
	"db-app-split.yaml": "fast-ssd",
	"aks.yaml":          "managed-csi-premium",
	"eks.yaml":          "io2",
	"gke.yaml":          "premium-rwo",
}

// TestExamplePoliciesPlaceDatabasesWithTheirVolumes runs every example
// policy over database and object-store workloads in the shapes public
// charts render them (testdata/chart-shapes.yaml), and checks that each is
// placed on the db pool and that its claims get the db pool's storage class.
func TestExamplePoliciesPlaceDatabasesWithTheirVolumes(t *testing.T) {
	files, err := filepath.Glob("../../examples/policies/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example policies: %v", err)
	}
	shapes, err := os.ReadFile("testdata/chart-shapes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			class, ok := exampleDBClass[name]
			if !ok {
				t.Fatalf("no database storage class known for %s: add it to exampleDBClass", name)
			}
			p, err := policy.Load(file)
			if err != nil {
				t.Fatal(err)
			}
			var db *policy.Pool
			for i := range p.Pools {
				if p.Pools[i].Name == "db" {
					db = &p.Pools[i]
				}
			}
			if db == nil {
				t.Fatalf("no pool named db")
			}
			eng, err := postrender.New(p, postrender.Options{Namespace: "prod"})
			if err != nil {
				t.Fatal(err)
			}
			res, err := eng.Process(shapes)
			if err != nil {
				t.Fatal(err)
			}
			claims := 0
			objs := parseManifest(t, string(res.Bytes()))
			for _, id := range slices.Sorted(maps.Keys(objs)) {
				obj := objs[id]
				switch obj["kind"] {
				case "PersistentVolumeClaim":
					claims++
					if got := dig(obj, "spec", "storageClassName"); got != class {
						t.Errorf("%s: storageClassName %v, want %s (the db pool's class)", id, got, class)
					}
					continue
				case "StatefulSet":
					vcts, _ := dig(obj, "spec", "volumeClaimTemplates").([]any)
					for i, v := range vcts {
						claims++
						if got := dig(v, "spec", "storageClassName"); got != class {
							t.Errorf("%s: volumeClaimTemplates[%d] (%v): storageClassName %v, want %s (the db pool's class)", id, i, dig(v, "metadata", "name"), got, class)
						}
					}
				}
				spec := dig(obj, "spec", "template", "spec")
				for k, v := range db.NodeSelector {
					if got := dig(spec, "nodeSelector", k); got != v {
						t.Errorf("%s: nodeSelector %s=%v, want %s (pool db)", id, k, got, v)
					}
				}
				tols, _ := dig(spec, "tolerations").([]any)
				for _, want := range db.Tolerations {
					found := false
					for _, tol := range tols {
						m, _ := tol.(map[string]any)
						if m["key"] == want.Key && m["value"] == want.Value && m["effect"] == want.Effect {
							found = true
						}
					}
					if !found {
						t.Errorf("%s: lacks the db pool's toleration %+v: %v", id, want, tols)
					}
				}
			}
			if claims != 5 {
				t.Errorf("checked %d claims, want 5", claims)
			}
		})
	}
}

// TestExamplePoliciesStorageFollowsPlacement checks that every placement
// rule of an example policy sending workloads to the db pool has a storage
// rule with the same match giving the db class, and the other way round:
// the volumes of exactly the workloads on the db pool get the fast class.
func TestExamplePoliciesStorageFollowsPlacement(t *testing.T) {
	files, _ := filepath.Glob("../../examples/policies/*.yaml")
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			p, err := policy.Load(file)
			if err != nil {
				t.Fatal(err)
			}
			class := exampleDBClass[name]
			var placed, stored []string
			for _, r := range p.Placement.Rules {
				if r.Pool == "db" {
					placed = append(placed, matchKey(r.Match))
				}
			}
			for _, r := range p.Storage.Rules {
				if r.StorageClass == class {
					stored = append(stored, matchKey(r.Match))
				}
			}
			if !reflect.DeepEqual(placed, stored) {
				t.Errorf("placement rules for pool db and storage rules for class %s select different workloads:\nplacement: %s\nstorage:   %s", class, strings.Join(placed, " "), strings.Join(stored, " "))
			}
		})
	}
}

// matchKey renders a match compactly (set fields only, map keys sorted).
func matchKey(m policy.Match) string {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	return string(b)
}
