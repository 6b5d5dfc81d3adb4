package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// workloadRow is one line of the placement table.
type workloadRow struct {
	Namespace, Kind, Name string
	Pools                 []string // node pool of each pod, from its node's labels
	Claims                []string // claim=storageClass
	Databases             []string // physical databases the workload uses (PGDATABASE) or, for pg-init, creates
	instance              string
	class                 []string // kommons.io/workload-class of its pods
}

// workloadClassLabel is the label commons puts on its PostgreSQL
// ("database") and MinIO ("object-store") pods.
const workloadClassLabel = "kommons.io/workload-class"

// placementTable reads the live pods of the commons and module namespaces
// and prints, per workload, the pool its pods run on, the storage class of
// each claim and the physical database names.
func (r *demoRun) placementTable(ctx context.Context) error {
	cs := r.cluster.Client()
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	poolOf := map[string]string{}
	for _, n := range nodes.Items {
		poolOf[n.Name] = "(none)"
		for _, pool := range r.policy.Pools {
			match := len(pool.NodeSelector) > 0
			for k, v := range pool.NodeSelector {
				if n.Labels[k] != v {
					match = false
				}
			}
			if match {
				poolOf[n.Name] = pool.Name
			}
		}
	}
	rows := map[string]*workloadRow{}
	var order []string
	for _, ns := range []string{"commons", r.cfg.namespace} {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, pod := range pods.Items {
			kind, name := "Pod", pod.Name
			for _, o := range pod.OwnerReferences {
				if o.Controller == nil || !*o.Controller {
					continue
				}
				kind, name = o.Kind, o.Name
				if o.Kind == "ReplicaSet" {
					rs, err := cs.AppsV1().ReplicaSets(ns).Get(ctx, o.Name, metav1.GetOptions{})
					if err == nil && len(rs.OwnerReferences) > 0 {
						kind, name = rs.OwnerReferences[0].Kind, rs.OwnerReferences[0].Name
					}
				}
			}
			key := ns + "/" + kind + "/" + name
			row, ok := rows[key]
			if !ok {
				row = &workloadRow{Namespace: ns, Kind: kind, Name: name, instance: pod.Labels["app.kubernetes.io/instance"]}
				rows[key] = row
				order = append(order, key)
			}
			pool := "(unscheduled)"
			if pod.Spec.NodeName != "" {
				pool = poolOf[pod.Spec.NodeName]
			}
			row.Pools = appendUnique(row.Pools, pool)
			for _, v := range pod.Spec.Volumes {
				if v.PersistentVolumeClaim == nil {
					continue
				}
				pvc, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, v.PersistentVolumeClaim.ClaimName, metav1.GetOptions{})
				if err != nil {
					return fmt.Errorf("claim %s/%s of pod %s: %w", ns, v.PersistentVolumeClaim.ClaimName, pod.Name, err)
				}
				class := "(none)"
				if pvc.Spec.StorageClassName != nil {
					class = *pvc.Spec.StorageClassName
				}
				row.Claims = appendUnique(row.Claims, pvc.Name+"="+class)
			}
			row.class = appendUnique(row.class, pod.Labels[workloadClassLabel])
			if ns != r.cfg.namespace {
				continue // commons' own Jobs connect to the maintenance database
			}
			for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
				for _, e := range c.Env {
					if e.Name == "PGDATABASE" && e.ValueFrom == nil && e.Value != "" {
						row.Databases = appendUnique(row.Databases, e.Value)
					}
				}
			}
		}
	}
	// pg-init Jobs create the databases their release's pods use.
	for _, key := range order {
		row := rows[key]
		if row.Kind != "Job" || !strings.Contains(row.Name, "pg-init") {
			continue
		}
		var dbs []string
		for _, other := range order {
			o := rows[other]
			if o != row && o.Namespace == row.Namespace && o.instance == row.instance {
				for _, d := range o.Databases {
					dbs = appendUnique(dbs, d)
				}
			}
		}
		for i, d := range dbs {
			dbs[i] = "creates " + d
		}
		row.Databases = dbs
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i] < order[j] })
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "    NAMESPACE\tKIND\tNAME\tNODE POOL\tCLAIM=STORAGE CLASS\tDATABASE (physical)")
	for _, key := range order {
		row := rows[key]
		r.rows = append(r.rows, *row)
		fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t%s\t%s\n", row.Namespace, row.Kind, row.Name, strings.Join(row.Pools, ","),
			dash(row.Claims), dash(row.Databases))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var problems []string
	for _, row := range r.rows {
		for _, p := range row.Pools {
			if p == "(unscheduled)" || p == "(none)" {
				problems = append(problems, fmt.Sprintf("%s %s/%s: pod on %s", row.Kind, row.Namespace, row.Name, p))
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("workloads outside the policy's pools: %s", strings.Join(problems, "; "))
	}
	return r.checkDataPlacement()
}

// checkDataPlacement checks that commons' database and object store (pods
// labelled kommons.io/workload-class database or object-store) run on the
// policy's database pool, named by --db-pool.
func (r *demoRun) checkDataPlacement() error {
	if r.cfg.dbPool == "" {
		return nil
	}
	var gaps []string
	for _, row := range r.rows {
		if !contains(row.class, "database") && !contains(row.class, "object-store") {
			continue
		}
		for _, p := range row.Pools {
			if p != r.cfg.dbPool {
				gaps = append(gaps, fmt.Sprintf("%s %s/%s (%s=%s) runs on pool %s, not %s", row.Kind, row.Namespace, row.Name,
					workloadClassLabel, strings.Join(row.class, ","), p, r.cfg.dbPool))
			}
		}
	}
	if len(gaps) > 0 {
		return fmt.Errorf("placement: %s: does %s have a rule for the %s label?", strings.Join(gaps, "; "), rel(r.cfg.policy), workloadClassLabel)
	}
	r.p.say("commons' database and object store run on pool %s; everything else on the policy's default pool", r.cfg.dbPool)
	return nil
}

func dash(list []string) string {
	if len(list) == 0 {
		return "-"
	}
	return strings.Join(list, " ")
}

func appendUnique(list []string, s string) []string {
	if contains(list, s) {
		return list
	}
	return append(list, s)
}

// expectedDatabases are the physical names the table shows pg-init creating
// for the module release.
func (r *demoRun) expectedDatabases() []string {
	var out []string
	for _, row := range r.rows {
		if row.Namespace == r.cfg.namespace && row.Kind == "Job" && strings.Contains(row.Name, "pg-init") {
			for _, d := range row.Databases {
				out = appendUnique(out, strings.TrimPrefix(d, "creates "))
			}
		}
	}
	return out
}
