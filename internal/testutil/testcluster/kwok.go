package testcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	kwokNodeAnnotation = "kwok.x-k8s.io/node"
	// FailAnnotation on a pod makes kwok fail it (exit code 1) instead of
	// completing it: the way tests simulate a failing Job.
	FailAnnotation = "kommons.test/fail"
	// DefaultNode is the node every cluster starts with.
	DefaultNode = "kwok-node-0"
	// DefaultStorageClass is the cluster's default StorageClass, served by the fake provisioner.
	DefaultStorageClass = "standard"
)

// writeKwokStages writes kwok's upstream "fast" stages plus two of ours:
// every run-to-completion pod (restartPolicy Never or OnFailure: Jobs, Helm
// hooks and tests, bare pods) succeeds unless annotated FailAnnotation=true,
// in which case it fails with exit code 1, and except the secret-init pods,
// which RunSecretInitPods runs and finishes (see SecretInitComponent).
func writeKwokStages(upstream, out string) error {
	var b strings.Builder
	for _, f := range []string{"node-initialize.yaml", "node-heartbeat-with-lease.yaml", "pod-ready.yaml", "pod-delete.yaml"} {
		data, err := os.ReadFile(filepath.Join(upstream, f))
		if err != nil {
			return fmt.Errorf("testcluster: kwok stage: %w", err)
		}
		b.WriteString("---\n")
		b.Write(data)
	}
	complete, err := os.ReadFile(filepath.Join(upstream, "pod-complete.yaml"))
	if err != nil {
		return fmt.Errorf("testcluster: kwok stage: %w", err)
	}
	s := string(complete)
	for old, repl := range map[string]string{
		"name: pod-complete\n": "name: pod-complete-run-to-completion\n",
		"    - key: '.metadata.ownerReferences.[].kind'\n      operator: 'In'\n      values:\n      - 'Job'\n": "    - key: '.spec.restartPolicy'\n      operator: 'In'\n      values: ['Never', 'OnFailure']\n" +
			"    - key: '.metadata.annotations[\"" + FailAnnotation + "\"]'\n      operator: 'NotIn'\n      values: ['true']\n" +
			"    - key: '.metadata.labels[\"app.kubernetes.io/component\"]'\n      operator: 'NotIn'\n      values: ['" + SecretInitComponent + "']\n",
	} {
		if !strings.Contains(s, old) {
			return fmt.Errorf("testcluster: kwok's pod-complete stage changed shape (missing %q): update writeKwokStages", old)
		}
		s = strings.Replace(s, old, repl, 1)
	}
	b.WriteString("---\n")
	b.WriteString(s)
	b.WriteString(`---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-fail-on-annotation
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: '.metadata.deletionTimestamp', operator: 'DoesNotExist'}
    - {key: '.status.phase', operator: 'In', values: ['Running']}
    - {key: '.metadata.annotations["` + FailAnnotation + `"]', operator: 'In', values: ['true']}
  next:
    statusTemplate: |
      {{ $now := Now }}
      containerStatuses:
      {{ range $index, $item := .spec.containers }}
      - image: {{ $item.image | Quote }}
        name: {{ $item.name | Quote }}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated:
            exitCode: 1
            finishedAt: {{ $now | Quote }}
            reason: Error
            startedAt: {{ $now | Quote }}
      {{ end }}
      phase: Failed
`)
	return os.WriteFile(out, []byte(b.String()), 0o644)
}

// NodeSpec describes a fake node.
type NodeSpec struct {
	Name   string
	Labels map[string]string
	Taints []corev1.Taint
}

// AddNode registers a kwok-managed node (e.g. a node pool with labels and
// taints) and waits until it is Ready.
func (c *Cluster) AddNode(ctx context.Context, n NodeSpec) error {
	labels := map[string]string{"kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux",
		"kubernetes.io/hostname": n.Name, "type": "kwok"}
	for k, v := range n.Labels {
		labels[k] = v
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods: resource.MustParse("250"), corev1.ResourceEphemeralStorage: resource.MustParse("1Ti"),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: labels,
			Annotations: map[string]string{kwokNodeAnnotation: "fake", "node.alpha.kubernetes.io/ttl": "0"}},
		Spec:   corev1.NodeSpec{Taints: n.Taints},
		Status: corev1.NodeStatus{Allocatable: capacity, Capacity: capacity},
	}
	if _, err := c.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("testcluster: create node %s: %w", n.Name, err)
	}
	return c.waitNodeReady(ctx, n.Name, 60*time.Second)
}

// waitNodeReady waits until the node reports condition Ready.
func (c *Cluster) waitNodeReady(ctx context.Context, name string, timeout time.Duration) error {
	return c.poll(ctx, "node "+name+" Ready", timeout, func() error {
		got, err := c.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, cond := range got.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return errNotReady
	})
}

// AddStorageClass creates a StorageClass served by the fake provisioner.
func (c *Cluster) AddStorageClass(ctx context.Context, name string, isDefault bool) error {
	mode := storagev1.VolumeBindingImmediate
	if c.node {
		// Like node-local provisioners (local-path): the claim binds once a
		// pod using it is scheduled, so the scheduler never parks a pod
		// whose claim is still pending.
		mode = storagev1.VolumeBindingWaitForFirstConsumer
	}
	reclaim := corev1.PersistentVolumeReclaimDelete
	expand := true
	sc := &storagev1.StorageClass{
		ObjectMeta:           metav1.ObjectMeta{Name: name},
		Provisioner:          ProvisionerName,
		ReclaimPolicy:        &reclaim,
		VolumeBindingMode:    &mode,
		AllowVolumeExpansion: &expand,
	}
	if isDefault {
		sc.Annotations = map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}
	}
	if _, err := c.client.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("testcluster: create storage class %s: %w", name, err)
	}
	return nil
}

func (c *Cluster) bootstrapObjects(ctx context.Context) error {
	// The API may accept connections before every built-in API group is served.
	return c.poll(ctx, "default StorageClass", 60*time.Second, func() error {
		return c.AddStorageClass(ctx, DefaultStorageClass, true)
	})
}

func (c *Cluster) waitReady(ctx context.Context, timeout time.Duration) error {
	if !c.node { // the real node registers itself (startNodeAgents)
		if err := c.AddNode(ctx, NodeSpec{Name: DefaultNode}); err != nil {
			return err
		}
	}
	if err := c.poll(ctx, "default ServiceAccount", timeout, func() error {
		_, err := c.client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err
	}); err != nil {
		return err
	}
	return c.poll(ctx, "kube-root-ca.crt", timeout, func() error {
		_, err := c.client.CoreV1().ConfigMaps("default").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err
	})
}
