package secretinit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/kommons/kommons/internal/kubeapi"
	"github.com/kommons/kommons/internal/retry"
)

// API is the part of the Kubernetes API a run uses (*kubeapi.Client).
type API interface {
	GetSecret(ctx context.Context, namespace, name string) (*kubeapi.Secret, error)
	CreateSecret(ctx context.Context, s *kubeapi.Secret) (*kubeapi.Secret, error)
	PatchSecret(ctx context.Context, namespace, name string, patch []byte) (*kubeapi.Secret, error)
	GetConfigMap(ctx context.Context, namespace, name string) (*kubeapi.ConfigMap, error)
}

// Runner reconciles a spec against the cluster.
type Runner struct {
	API API
	// Log gets one line per Secret (namespace, name, action, key names):
	// never a value.
	Log *slog.Logger
	// Hide, when set, is given every value read or generated, so that the
	// caller can mask them on its outputs.
	Hide func(values ...string)
	// Rand is the randomness of generated values (crypto/rand when nil).
	Rand io.Reader
	// Backoff paces retries (retry.DefaultBackoff when zero).
	Backoff retry.Backoff
}

// errWait is a fromSecret or fromConfigMap source that does not exist yet.
type errWait struct{ reason string }

func (e *errWait) Error() string { return "waiting for " + e.reason }

// errRace is a write that lost a race (Conflict, AlreadyExists): observe
// again.
type errRace struct{ err error }

func (e *errRace) Error() string { return e.err.Error() }
func (e *errRace) Unwrap() error { return e.err }

// Run processes the spec's certificates, then its Secrets in order (a
// Secret may copy a certificate's ca.crt with fromSecret; certificates
// depend on nothing), each until it matches or ctx ends; it stops at the
// first that fails.
func (r *Runner) Run(ctx context.Context, spec *Spec) error {
	for i := range spec.Certificates {
		c := spec.Certificates[i]
		if err := r.retry(ctx, c.Namespace, c.Name, func(ctx context.Context) (Action, error) { return r.certificate(ctx, c) }); err != nil {
			return fmt.Errorf("certificate Secret %s/%s: %w", c.Namespace, c.Name, err)
		}
	}
	for i := range spec.Secrets {
		s := spec.Secrets[i]
		if err := r.retry(ctx, s.Namespace, s.Name, func(ctx context.Context) (Action, error) { return r.secret(ctx, s) }); err != nil {
			return fmt.Errorf("Secret %s/%s: %w", s.Namespace, s.Name, err)
		}
	}
	return nil
}

// retry runs one Secret's observe-decide-act until it succeeds: transient
// API errors, lost races and missing sources are retried until ctx ends.
func (r *Runner) retry(ctx context.Context, ns, name string, attempt func(context.Context) (Action, error)) error {
	var done Action
	err := retry.Do(ctx, retry.Policy{
		Backoff: r.Backoff,
		Transient: func(err error) bool {
			var w *errWait
			var race *errRace
			return errors.As(err, &w) || errors.As(err, &race) || kubeapi.IsTransient(err)
		},
		OnRetry: func(n int, err error, pause time.Duration) {
			r.Log.Info("retrying", "namespace", ns, "secret", name, "attempt", n, "reason", err.Error(), "retryIn", pause.Round(time.Millisecond))
		},
	}, func(ctx context.Context, _ int) error {
		a, err := attempt(ctx)
		done = a
		return err
	})
	if err != nil {
		if kubeapi.IsForbidden(err) {
			return fmt.Errorf("%w (the ServiceAccount's Role must allow it: see docs/secret-init.md)", err)
		}
		return err
	}
	attrs := []any{"namespace", ns, "secret", name, "action", string(done.Verb)}
	if len(done.Keys) > 0 {
		attrs = append(attrs, "keys", strings.Join(done.Keys, ","))
	}
	if len(done.Metadata) > 0 {
		attrs = append(attrs, "metadata", strings.Join(done.Metadata, ","))
	}
	r.Log.Info("secret", attrs...)
	return nil
}

// observe reads the Secret at ns/name: nil when it does not exist.
func (r *Runner) observe(ctx context.Context, ns, name string) (*kubeapi.Secret, error) {
	s, err := r.API.GetSecret(ctx, ns, name)
	if kubeapi.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r.hideData(s)
	return s, nil
}

func (r *Runner) hideData(s *kubeapi.Secret) {
	if r.Hide == nil || s == nil {
		return
	}
	for _, v := range s.Data {
		if len(v) >= 8 {
			r.Hide(string(v))
		}
	}
}

// secret is one attempt at spec: observe, Decide, act.
func (r *Runner) secret(ctx context.Context, spec SecretSpec) (Action, error) {
	live, err := r.observe(ctx, spec.Namespace, spec.Name)
	if err != nil {
		return Action{}, err
	}
	obs := &Observed{Secret: live, From: map[string]string{}, FromConfigMap: map[string]string{}, Candidates: map[string]string{}}
	for _, k := range sortedKeys(spec.Data) {
		src := spec.Data[k]
		switch src.Kind() {
		case KindGenerate:
			if live != nil && len(live.Data[k]) > 0 {
				continue
			}
			v, err := GenerateValue(*src.Generate, r.Rand)
			if err != nil {
				return Action{}, fmt.Errorf("data.%s: %w", k, err)
			}
			if r.Hide != nil {
				r.Hide(v)
			}
			obs.Candidates[k] = v
		case KindFromSecret:
			ref := *src.FromSecret
			from, err := r.observe(ctx, ref.Namespace, ref.Name)
			if err != nil {
				return Action{}, fmt.Errorf("data.%s.fromSecret: %w", k, err)
			}
			if from != nil {
				if v, ok := from.Data[ref.Key]; ok {
					obs.From[RefID(ref)] = string(v)
				}
			}
		case KindFromConfigMap:
			ref := *src.FromConfigMap
			cm, err := r.API.GetConfigMap(ctx, ref.Namespace, ref.Name)
			if kubeapi.IsNotFound(err) {
				continue
			}
			if err != nil {
				return Action{}, fmt.Errorf("data.%s.fromConfigMap: %w", k, err)
			}
			if v, ok := cm.Value(ref.Key); ok {
				obs.FromConfigMap[ConfigMapRefID(ref)] = v
			}
		}
	}
	a, err := Decide(spec, obs)
	if err != nil {
		return Action{}, err
	}
	return a, r.act(ctx, spec.Namespace, spec.Name, a)
}

// certificate is one attempt at a certificate Secret.
func (r *Runner) certificate(ctx context.Context, spec CertificateSpec) (Action, error) {
	live, err := r.observe(ctx, spec.Namespace, spec.Name)
	if err != nil {
		return Action{}, err
	}
	a, err := DecideCertificate(spec, live)
	if err != nil {
		return Action{}, err
	}
	if a.Verb == Create {
		if a.Secret.Data, err = Issue(spec, time.Now()); err != nil {
			return Action{}, fmt.Errorf("issue: %w", err)
		}
	}
	return a, r.act(ctx, spec.Namespace, spec.Name, a)
}

// act carries out a: a lost race (AlreadyExists, Conflict) is an *errRace
// to observe again.
func (r *Runner) act(ctx context.Context, ns, name string, a Action) error {
	var err error
	switch a.Verb {
	case None:
		return nil
	case Wait:
		return &errWait{reason: a.Reason}
	case Create:
		_, err = r.API.CreateSecret(ctx, a.Secret)
	case Patch:
		_, err = r.API.PatchSecret(ctx, ns, name, a.Patch)
	}
	if kubeapi.IsAlreadyExists(err) || kubeapi.IsConflict(err) {
		return &errRace{err: err}
	}
	return err
}
