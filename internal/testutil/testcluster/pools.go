package testcluster

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PoolPolicy is the post-renderer policy of the real-node tests: databases
// and object stores on pool db (with its toleration), everything else on
// pool app; LabelNodeForPools gives the one real node both pools' labels.
const PoolPolicy = `apiVersion: postrender.kommons.io/v1alpha1
kind: PlacementPolicy
storage:
  defaultClass: standard
pools:
- name: db
  nodeSelector: {kommons.test/pool-db: "true"}
  tolerations:
  - {key: kommons.test/dedicated, operator: Equal, value: db, effect: NoSchedule}
- name: app
  nodeSelector: {kommons.test/pool-app: "true"}
placement:
  defaultPool: app
  rules:
  - name: databases
    match: {labels: {kommons.io/workload-class: database}}
    pool: db
  - name: object-stores
    match: {labels: {kommons.io/workload-class: object-store}}
    pool: db
`

// LabelNodeForPools labels the real node (NodeName) for both pools of
// PoolPolicy, so that placed pods can run on it.
func (c *Cluster) LabelNodeForPools(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	node, err := c.Client().CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
	require.NoError(t, err)
	node.Labels["kommons.test/pool-db"] = "true"
	node.Labels["kommons.test/pool-app"] = "true"
	_, err = c.Client().CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{})
	require.NoError(t, err)
}
