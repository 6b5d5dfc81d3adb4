package testcluster

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// SecretInitComponent is the app.kubernetes.io/component label of the
// kommons charts' secret-init Job pods. On the kwok cluster no container
// runs, so kwok does not complete these pods: RunSecretInitPods runs each
// one's secret-init for real (the repository's cmd/secret-init, the pod's
// spec ConfigMap, a token of the pod's ServiceAccount, so that the rendered
// Roles apply) and then sets the pod Succeeded or Failed, as a kubelet
// would. The credentials Secrets the charts no longer render then exist,
// with the Job's own RBAC.
const SecretInitComponent = "secret-init"

// secretInitSpecVolume is the pod volume of the spec (kommons-common.secretInit.volumes).
const secretInitSpecVolume = "secret-init-spec"

// RunSecretInitPods runs the secret-init pods of the kwok cluster (see
// SecretInitComponent) every second until ctx ends. repoRoot is the
// repository whose cmd/secret-init is built (once, into workDir); cfg is the
// admin REST config (the API server's URL and CA).
func RunSecretInitPods(ctx context.Context, cs kubernetes.Interface, cfg *rest.Config, repoRoot, workDir string, logger *log.Logger) {
	r := &secretInitRunner{cs: cs, cfg: cfg, repoRoot: repoRoot, workDir: workDir, logger: logger}
	for {
		if err := r.once(ctx); err != nil && ctx.Err() == nil && logger != nil {
			logger.Print(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

type secretInitRunner struct {
	cs                kubernetes.Interface
	cfg               *rest.Config
	repoRoot, workDir string
	logger            *log.Logger

	buildOnce sync.Once
	bin       string
	buildErr  error
}

func (r *secretInitRunner) logf(format string, args ...any) {
	if r.logger != nil {
		r.logger.Printf(format, args...)
	}
}

func (r *secretInitRunner) build() (string, error) {
	r.buildOnce.Do(func() {
		dir := filepath.Join(r.workDir, "secret-init-bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			r.buildErr = err
			return
		}
		r.bin = filepath.Join(dir, "secret-init")
		cmd := exec.Command("go", "build", "-o", r.bin, "./cmd/secret-init")
		cmd.Dir = r.repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			r.buildErr = fmt.Errorf("testcluster: go build ./cmd/secret-init: %w\n%s", err, out)
		}
	})
	return r.bin, r.buildErr
}

func (r *secretInitRunner) once(ctx context.Context) error {
	pods, err := r.cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/component=" + SecretInitComponent})
	if err != nil {
		return err
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || p.Spec.RestartPolicy == corev1.RestartPolicyAlways {
			continue
		}
		out, runErr := r.run(ctx, p)
		if ctx.Err() != nil {
			return nil
		}
		r.logf("secret-init pod %s/%s: err=%v\n%s", p.Namespace, p.Name, runErr, out)
		if err := r.finish(ctx, p, runErr); err != nil {
			return err
		}
	}
	return nil
}

// run runs the pod's secret-init and returns its log.
func (r *secretInitRunner) run(ctx context.Context, p *corev1.Pod) (string, error) {
	var cm string
	for _, v := range p.Spec.Volumes {
		if v.Name == secretInitSpecVolume && v.ConfigMap != nil {
			cm = v.ConfigMap.Name
		}
	}
	if cm == "" || p.Spec.ServiceAccountName == "" {
		return "", fmt.Errorf("no %s ConfigMap volume or no serviceAccountName", secretInitSpecVolume)
	}
	spec, err := r.cs.CoreV1().ConfigMaps(p.Namespace).Get(ctx, cm, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	exp := int64(600)
	tr, err := r.cs.CoreV1().ServiceAccounts(p.Namespace).CreateToken(ctx, p.Spec.ServiceAccountName,
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token of ServiceAccount %s: %w", p.Spec.ServiceAccountName, err)
	}
	ca := r.cfg.CAData
	if len(ca) == 0 {
		if ca, err = os.ReadFile(r.cfg.CAFile); err != nil {
			return "", err
		}
	}
	bin, err := r.build()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(r.workDir, "secret-init-run-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	for name, b := range map[string][]byte{"spec.yaml": []byte(spec.Data["spec.yaml"]), "token": []byte(tr.Status.Token), "ca.crt": ca} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return "", err
		}
	}
	runCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(runCtx, bin, "--spec", filepath.Join(dir, "spec.yaml"), "--namespace", p.Namespace,
		"--server", r.cfg.Host, "--token-file", filepath.Join(dir, "token"), "--ca-file", filepath.Join(dir, "ca.crt"),
		"--log-format", "json", "--deadline", "2m")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	return stderr.String(), err
}

// finish sets the pod's phase from the run, as a kubelet would.
func (r *secretInitRunner) finish(ctx context.Context, p *corev1.Pod, runErr error) error {
	now := metav1.Now()
	phase, code, reason := corev1.PodSucceeded, int32(0), "Completed"
	if runErr != nil {
		phase, code, reason = corev1.PodFailed, 1, "Error"
	}
	p.Status.Phase = phase
	p.Status.ContainerStatuses = nil
	for _, c := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: code, Reason: reason, StartedAt: now, FinishedAt: now}},
		})
	}
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady || p.Status.Conditions[i].Type == corev1.ContainersReady {
			p.Status.Conditions[i].Status = corev1.ConditionFalse
		}
	}
	_, err := r.cs.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	return err
}
