package postrender_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"

	"github.com/kommons/kommons/pkg/postrender"
	"github.com/kommons/kommons/pkg/postrender/policy"
	"github.com/kommons/kommons/pkg/postrender/yamlstream"
)

// exampleDBClass is the storage class each example policy gives the volumes
// of the workloads it places on the db pool.
var exampleDBClass = map[string]string{
	"db-app-split.yaml": "fast-ssd",
	"aks.yaml":          "managed-csi-premium",
	"eks.yaml":          "io2",
	"gke.yaml":          "premium-rwo",
}

// chartShapes are manifests in the shapes common public charts render
// (Bitnami postgresql-ha, redis, minio; release "r"), written for this test.
// Claim templates carry no labels of their own: the storage rules must
// select them by the StatefulSet's labels, as the placement rules do.
const chartShapes = `---
# Source: postgresql-ha/templates/postgresql/statefulset.yaml
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: r-postgresql-ha-postgresql
  labels:
    app.kubernetes.io/instance: r
    app.kubernetes.io/managed-by: Helm
    app.kubernetes.io/name: postgresql-ha
    app.kubernetes.io/version: 17.2.0
    helm.sh/chart: postgresql-ha-15.1.0
    app.kubernetes.io/component: postgresql
spec:
  replicas: 3
  podManagementPolicy: Parallel
  serviceName: r-postgresql-ha-postgresql-headless
  selector:
    matchLabels:
      app.kubernetes.io/instance: r
      app.kubernetes.io/name: postgresql-ha
      app.kubernetes.io/component: postgresql
  template:
    metadata:
      labels:
        app.kubernetes.io/instance: r
        app.kubernetes.io/managed-by: Helm
        app.kubernetes.io/name: postgresql-ha
        app.kubernetes.io/component: postgresql
    spec:
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - podAffinityTerm:
              labelSelector:
                matchLabels:
                  app.kubernetes.io/name: postgresql-ha
              topologyKey: kubernetes.io/hostname
            weight: 1
      containers:
      - name: postgresql
        image: docker.io/bitnami/postgresql-repmgr:17.2.0
        volumeMounts:
        - name: data
          mountPath: /bitnami/postgresql
  volumeClaimTemplates:
  - apiVersion: v1
    kind: PersistentVolumeClaim
    metadata:
      name: data
    spec:
      accessModes:
      - "ReadWriteOnce"
      resources:
        requests:
          storage: "8Gi"
---
# Source: postgresql-ha/templates/pgpool/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: r-postgresql-ha-pgpool
  labels:
    app.kubernetes.io/instance: r
    app.kubernetes.io/name: postgresql-ha
    app.kubernetes.io/component: pgpool
spec:
  selector:
    matchLabels:
      app.kubernetes.io/instance: r
      app.kubernetes.io/name: postgresql-ha
      app.kubernetes.io/component: pgpool
  template:
    metadata:
      labels:
        app.kubernetes.io/instance: r
        app.kubernetes.io/name: postgresql-ha
        app.kubernetes.io/component: pgpool
    spec:
      containers:
      - name: pgpool
        image: docker.io/bitnami/pgpool:4.5.5
---
# Source: redis/templates/master/application.yaml
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: r-redis-master
  namespace: "prod"
  labels:
    app.kubernetes.io/instance: r
    app.kubernetes.io/managed-by: Helm
    app.kubernetes.io/name: redis
    app.kubernetes.io/version: 7.4.2
    helm.sh/chart: redis-20.6.2
    app.kubernetes.io/component: master
spec:
  replicas: 1
  selector:
    matchLabels:
      app.kubernetes.io/instance: r
      app.kubernetes.io/name: redis
      app.kubernetes.io/component: master
  serviceName: r-redis-headless
  updateStrategy:
    type: RollingUpdate
  template:
    metadata:
      labels:
        app.kubernetes.io/instance: r
        app.kubernetes.io/managed-by: Helm
        app.kubernetes.io/name: redis
        app.kubernetes.io/component: master
      annotations:
        checksum/configmap: 86bcc953bb473748a3d3dc60b7c11f34e60c93519234d4c37f42e22ada559d47
    spec:
      securityContext:
        fsGroup: 1001
      serviceAccountName: r-redis-master
      containers:
        - name: redis
          image: docker.io/bitnami/redis:7.4.2-debian-12-r0
          volumeMounts:
            - name: redis-data
              mountPath: /data
  volumeClaimTemplates:
    - apiVersion: v1
      kind: PersistentVolumeClaim
      metadata:
        name: redis-data
        labels:
          app.kubernetes.io/instance: r
          app.kubernetes.io/name: redis
          app.kubernetes.io/component: master
      spec:
        accessModes:
          - "ReadWriteOnce"
        resources:
          requests:
            storage: "8Gi"
---
# Source: redis/templates/replicas/application.yaml
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: r-redis-replicas
  namespace: "prod"
  labels:
    app.kubernetes.io/instance: r
    app.kubernetes.io/name: redis
    app.kubernetes.io/component: replica
spec:
  replicas: 3
  selector:
    matchLabels:
      app.kubernetes.io/instance: r
      app.kubernetes.io/name: redis
      app.kubernetes.io/component: replica
  serviceName: r-redis-headless
  template:
    metadata:
      labels:
        app.kubernetes.io/instance: r
        app.kubernetes.io/name: redis
        app.kubernetes.io/component: replica
    spec:
      containers:
        - name: redis
          image: docker.io/bitnami/redis:7.4.2-debian-12-r0
  volumeClaimTemplates:
    - apiVersion: v1
      kind: PersistentVolumeClaim
      metadata:
        name: redis-data
      spec:
        accessModes:
          - "ReadWriteOnce"
        resources:
          requests:
            storage: "8Gi"
---
# Source: minio/templates/distributed/statefulset.yaml
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: r-minio
  namespace: "prod"
  labels:
    app.kubernetes.io/instance: r
    app.kubernetes.io/managed-by: Helm
    app.kubernetes.io/name: minio
    app.kubernetes.io/version: 2025.1.20
    helm.sh/chart: minio-15.0.0
spec:
  selector:
    matchLabels:
      app.kubernetes.io/instance: r
      app.kubernetes.io/name: minio
  serviceName: r-minio-headless
  replicas: 4
  podManagementPolicy: Parallel
  template:
    metadata:
      labels:
        app.kubernetes.io/instance: r
        app.kubernetes.io/name: minio
    spec:
      containers:
        - name: minio
          image: docker.io/bitnami/minio:2025.1.20-debian-12-r0
  volumeClaimTemplates:
    - metadata:
        name: data
      spec:
        accessModes:
          - "ReadWriteOnce"
        resources:
          requests:
            storage: "8Gi"
---
# Source: minio/templates/standalone/pvc.yaml
kind: PersistentVolumeClaim
apiVersion: v1
metadata:
  name: r-minio-standalone
  namespace: "prod"
  labels:
    app.kubernetes.io/instance: r
    app.kubernetes.io/managed-by: Helm
    app.kubernetes.io/name: minio
spec:
  accessModes:
    - "ReadWriteOnce"
  resources:
    requests:
      storage: "8Gi"
---
# Source: minio/templates/standalone/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: r-minio-standalone
  namespace: "prod"
  labels:
    app.kubernetes.io/instance: r
    app.kubernetes.io/name: minio
spec:
  selector:
    matchLabels:
      app.kubernetes.io/instance: r
      app.kubernetes.io/name: minio
  strategy:
    type: Recreate
  template:
    metadata:
      labels:
        app.kubernetes.io/instance: r
        app.kubernetes.io/name: minio
    spec:
      containers:
        - name: minio
          image: docker.io/bitnami/minio:2025.1.20-debian-12-r0
          volumeMounts:
            - name: data
              mountPath: /bitnami/minio/data
      volumes:
        - name: data
          persistentVolumeClaim:
            claimName: r-minio-standalone
`

// TestExamplePoliciesPlaceDatabasesWithTheirVolumes runs every example
// policy over database and object-store workloads in the shapes public
// charts render them, and checks that each is placed on the db pool and
// that its claims get the db pool's storage class.
func TestExamplePoliciesPlaceDatabasesWithTheirVolumes(t *testing.T) {
	files, err := filepath.Glob("../../examples/policies/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example policies: %v", err)
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
			res, err := eng.Process([]byte(chartShapes))
			if err != nil {
				t.Fatal(err)
			}
			claims := 0
			for _, d := range yamlstream.Split(res.Bytes()) {
				var obj map[string]any
				if err := yaml.Unmarshal(d.Raw, &obj); err != nil {
					t.Fatal(err)
				}
				if obj == nil {
					continue
				}
				kind := obj["kind"].(string)
				objName := lookup(obj, "metadata", "name")
				id := fmt.Sprintf("%s %s (%s)", kind, objName, d.Source)
				switch kind {
				case "PersistentVolumeClaim":
					claims++
					if got := lookup(obj, "spec", "storageClassName"); got != class {
						t.Errorf("%s: storageClassName %v, want %s (the db pool's class)", id, got, class)
					}
					continue
				case "StatefulSet":
					vcts, _ := lookup(obj, "spec", "volumeClaimTemplates").([]any)
					for i, v := range vcts {
						claims++
						if got := lookup(v, "spec", "storageClassName"); got != class {
							t.Errorf("%s: volumeClaimTemplates[%d] (%v): storageClassName %v, want %s (the db pool's class)", id, i, lookup(v, "metadata", "name"), got, class)
						}
					}
				}
				spec := lookup(obj, "spec", "template", "spec")
				for k, v := range db.NodeSelector {
					if got := lookup(spec, "nodeSelector", k); got != v {
						t.Errorf("%s: nodeSelector %s=%v, want %s (pool db)", id, k, got, v)
					}
				}
				tols, _ := lookup(spec, "tolerations").([]any)
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

// lookup walks nested maps by key; nil when a step is missing.
func lookup(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}
