package testcluster

import (
	"context"
	"fmt"
	"sync"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

var (
	jobRunnersMu sync.Mutex
	jobRunners   = map[*Cluster]*secretInitRunner{}
)

// RunSecretInitJob does, on the kwok cluster, what the secret-init init
// container of job's pod does on a node: charts/postgres-init's pg-init Job
// writes the roles' connection Secrets that way, and kwok completes such
// pods without running anything (RunSecretInitPods only runs pods labelled
// SecretInitComponent). It runs the real cmd/secret-init with the pod's
// spec ConfigMap (volume secret-init-spec) as the pod's ServiceAccount, so
// the chart's Roles apply, and returns its log; a failure fails the test.
// Tests call it after each install or upgrade that (re)creates the Job.
func (c *Cluster) RunSecretInitJob(t testing.TB, job *batchv1.Job) string {
	t.Helper()
	cfg, err := c.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	jobRunnersMu.Lock()
	r, ok := jobRunners[c]
	if !ok {
		r = &secretInitRunner{cs: c.client, cfg: cfg, repoRoot: c.Tools.RepoRoot, workDir: c.Dir}
		jobRunners[c] = r
	}
	jobRunnersMu.Unlock()
	pod := &corev1.Pod{Spec: job.Spec.Template.Spec}
	pod.Namespace = job.Namespace
	out, err := r.run(context.Background(), pod)
	if err != nil {
		t.Fatal(fmt.Errorf("secret-init of Job %s/%s: %w\n%s", job.Namespace, job.Name, err, out))
	}
	return out
}
