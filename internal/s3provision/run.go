package s3provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/minio/madmin-go/v3"

	"github.com/kommons/kommons/internal/outcome"
	"github.com/kommons/kommons/internal/retry"
)

// Options tunes a run.
type Options struct {
	// Adopt takes over buckets and users that exist without this scope's
	// marker (or with another scope's).
	Adopt bool
	// Prune deletes this scope's buckets (when empty) and users that the
	// spec no longer lists and whose marker says reclaimPolicy delete.
	Prune bool
	// MinIOAdmin enables users (MinIO's admin API). A plan with users
	// needs it.
	MinIOAdmin bool
	// UnmarkedWait is how long a recently created bucket without a marker
	// is watched for one before it is refused (0: 15s).
	UnmarkedWait time.Duration
	// Logger gets one line per object and per retry (nil: discard).
	Logger *slog.Logger
	// Backoff paces the attempts after a transient failure (zero:
	// DefaultBackoff: 250ms growing by 1.5x to 10s, ±50% jitter).
	Backoff retry.Backoff
}

// DefaultBackoff is the pause between s3-init's attempts: 250 ms growing by
// 1.5x to 10 s, with ±50 % jitter.
func DefaultBackoff() retry.Backoff {
	return retry.Backoff{Initial: 250 * time.Millisecond, Multiplier: 1.5, Max: 10 * time.Second, Jitter: 0.5}
}

// ErrNeedsMinIOAdmin is returned for a plan with users run without MinIOAdmin.
var ErrNeedsMinIOAdmin = errors.New("users need the MinIO admin API (--minio-admin); on AWS S3, per-tenant keys are IAM's job")

// Run makes the object store match plan: it waits for the endpoint (with
// exponential backoff and jitter until ctx ends), reconciles every bucket
// then every user, and on a transient failure (network, 5xx, a server
// starting) waits again and reruns the whole, idempotent reconcile. It
// returns a *ConflictError when objects were refused (after reconciling
// all the others), and ctx's cause when ctx ends first.
func Run(ctx context.Context, conn Connection, plan *Plan, opts Options) (*Report, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(plan.Users) > 0 && !opts.MinIOAdmin {
		return nil, ErrNeedsMinIOAdmin
	}
	s3, err := conn.S3Client()
	if err != nil {
		return nil, err
	}
	var adm *madmin.AdminClient
	if opts.MinIOAdmin {
		if adm, err = conn.AdminClient(); err != nil {
			return nil, err
		}
	}
	wait := opts.UnmarkedWait
	if wait <= 0 {
		wait = 15 * time.Second
	}
	br := &bucketReconciler{s3: s3, scope: plan.Scope, region: conn.Region, adopt: opts.Adopt,
		unmarkedWait: wait, createdByUs: map[string]bool{}, log: log, now: time.Now}
	ur := &userReconciler{adm: adm, conn: conn, scope: plan.Scope, adopt: opts.Adopt, createdByUs: map[string]bool{}}

	bo := opts.Backoff
	if bo == (retry.Backoff{}) {
		bo = DefaultBackoff()
	}
	rep := &Report{}
	err = retry.Do(ctx, retry.Policy{
		Backoff:   bo,
		Transient: IsTransient,
		OnRetry: func(attempt int, err error, pause time.Duration) {
			log.Warn("object store unavailable, retrying", "attempt", attempt, "retryIn", pause.Round(time.Millisecond).String(), "error", err.Error())
		},
	}, func(ctx context.Context, _ int) error {
		return attemptOnce(ctx, log, br, ur, plan, rep, opts)
	})
	if err != nil {
		return rep, err
	}
	var refused []ObjectResult
	for _, o := range rep.Objects {
		if o.Action == outcome.Refused {
			refused = append(refused, o)
		}
	}
	log.Info("s3-init done", "scope", plan.Scope.String(), "created", rep.Count(outcome.Created), "updated", rep.Count(outcome.Updated),
		"unchanged", rep.Count(outcome.Unchanged), "refused", len(refused), "deleted", rep.Count(outcome.Deleted), "retained", rep.Count(outcome.Retained))
	if len(refused) > 0 {
		return rep, &ConflictError{Refused: refused}
	}
	return rep, nil
}

// attemptOnce checks the endpoint and credentials, then reconciles every
// object of the plan, logging and merging each result into rep.
func attemptOnce(ctx context.Context, log *slog.Logger, br *bucketReconciler, ur *userReconciler, plan *Plan, rep *Report, opts Options) error {
	buckets, err := br.s3.ListBuckets(ctx)
	if err != nil {
		return fmt.Errorf("list buckets (endpoint check): %w", err)
	}
	br.creation = map[string]time.Time{}
	existing := make([]string, 0, len(buckets))
	for _, b := range buckets {
		br.creation[b.Name] = b.CreationDate
		existing = append(existing, b.Name)
	}
	refused := map[string]bool{}
	for _, b := range plan.Buckets {
		res, err := br.reconcile(ctx, b)
		if err != nil {
			return err
		}
		if res.Action == outcome.Refused {
			refused[b.Name] = true
		}
		outcome.Log(log, res)
		rep.Record(res)
	}
	for _, u := range plan.Users {
		var res ObjectResult
		if b := firstRefused(u.Buckets, refused); b != "" {
			// Never grant a key access to a bucket that is not ours.
			res = ObjectResult{Kind: KindUser, Name: u.Name, Physical: u.AccessKey, Action: outcome.Refused,
				Reason: fmt.Sprintf("its bucket %q was refused", b)}
		} else if res, err = ur.reconcile(ctx, u); err != nil {
			return err
		}
		outcome.Log(log, res)
		rep.Record(res)
	}
	if !opts.Prune {
		return nil
	}
	// Users first, so that no key outlives the bucket it was for.
	var pruned []ObjectResult
	if opts.MinIOAdmin {
		res, err := ur.pruneUsers(ctx, plan)
		pruned = append(pruned, res...)
		if err != nil {
			logAll(log, rep, pruned)
			return err
		}
	}
	res, err := br.pruneBuckets(ctx, plan, existing)
	pruned = append(pruned, res...)
	logAll(log, rep, pruned)
	return err
}

func logAll(log *slog.Logger, rep *Report, results []ObjectResult) {
	for _, o := range results {
		outcome.Log(log, o)
		rep.Record(o)
	}
}

func firstRefused(buckets []string, refused map[string]bool) string {
	for _, b := range buckets {
		if refused[b] {
			return b
		}
	}
	return ""
}
