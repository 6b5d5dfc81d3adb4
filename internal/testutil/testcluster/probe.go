package testcluster

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Eventually calls fn every second until it returns nil; when timeout has
// passed the test fails with what and fn's last error.
func Eventually(t testing.TB, what string, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %v", what, timeout, err)
		}
		time.Sleep(time.Second)
	}
}

// PodsReady returns nil when every pod of namespace ns is Running and Ready,
// or Succeeded (Job pods), else an error naming the first that is not (a
// terminating pod is not ready; neither is a namespace without pods).
func (c *Cluster) PodsReady(ns string) error {
	pods, err := c.Client().CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list pods of %s: %w", ns, err)
	}
	if len(pods.Items) == 0 {
		return fmt.Errorf("no pods")
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp != nil {
			return fmt.Errorf("pod %s terminating", p.Name)
		}
		if p.Status.Phase == corev1.PodSucceeded {
			continue
		}
		if p.Status.Phase != corev1.PodRunning || !PodReady(p) {
			return fmt.Errorf("pod %s: %s, ready=%v", p.Name, p.Status.Phase, PodReady(p))
		}
	}
	return nil
}

// SecretData is the data of Secret ns/name, each value as a string; the
// test fails when the Secret cannot be read.
func (c *Cluster) SecretData(t testing.TB, ns, name string) map[string]string {
	t.Helper()
	sec, err := c.Client().CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Secret %s/%s: %v", ns, name, err)
	}
	out := map[string]string{}
	for k, v := range sec.Data {
		out[k] = string(v)
	}
	return out
}

// ServiceAddr is "ClusterIP:port" of the port named port of Service ns/name;
// the test fails when there is no such Service or port.
func (c *Cluster) ServiceAddr(t testing.TB, ns, name, port string) string {
	t.Helper()
	svc, err := c.Client().CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Service %s/%s: %v", ns, name, err)
	}
	for _, p := range svc.Spec.Ports {
		if p.Name == port {
			return net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(int(p.Port)))
		}
	}
	t.Fatalf("Service %s/%s has no port %s", ns, name, port)
	return ""
}

// Dump logs the state of the cluster when a step failed: pods, Jobs,
// PersistentVolumeClaims and Services, the events, the last 40 lines of
// every container's log (pods by name) and where the cluster's own logs are.
func (c *Cluster) Dump(t testing.TB) {
	t.Helper()
	kubectl := filepath.Join(c.Tools.KubeBin, "kubectl")
	out, _ := c.Exec(kubectl, "get", "pods,jobs,pvc,svc", "-A", "-o", "wide")
	t.Logf("state:\n%s", out)
	out, _ = c.Exec(kubectl, "get", "events", "-A", "--sort-by=.lastTimestamp")
	t.Logf("events:\n%s", out)
	pods, err := c.Client().CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Logf("list pods: %v", err)
		return
	}
	sort.Slice(pods.Items, func(i, j int) bool { return pods.Items[i].Name < pods.Items[j].Name })
	for _, p := range pods.Items {
		for _, ctr := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
			out, _ := c.Exec(kubectl, "logs", "-n", p.Namespace, p.Name, "-c", ctr.Name, "--tail", "40")
			t.Logf("logs %s/%s[%s]:\n%s", p.Namespace, p.Name, ctr.Name, out)
		}
	}
	t.Logf("cluster logs: %s", filepath.Join(c.Dir, "logs"))
}
