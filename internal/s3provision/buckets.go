package s3provision

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/tags"

	"github.com/kommons/kommons/internal/outcome"
)

// bucketReconciler makes one bucket of the plan true.
type bucketReconciler struct {
	s3     *minio.Client
	scope  Scope
	region string
	adopt  bool
	// unmarkedWait is how long an unmarked bucket created recently is
	// watched for a marker (a concurrent s3-init may have created it and
	// not yet tagged it) before it is refused.
	unmarkedWait time.Duration
	// createdByUs remembers buckets this process created, across retried
	// attempts: an attempt cut off between create and tag must not refuse
	// its own bucket.
	createdByUs map[string]bool
	log         *slog.Logger
	// creation holds ListBuckets' creation dates.
	creation map[string]time.Time
	now      func() time.Time
}

// recentWindow: an unmarked bucket created less than this long ago (either
// way, for clock skew) may still be tagged by a concurrent run.
const recentWindow = 5 * time.Minute

func (r *bucketReconciler) reconcile(ctx context.Context, b PlannedBucket) (ObjectResult, error) {
	res := ObjectResult{Kind: KindBucket, Name: b.Name, Physical: b.Physical, Action: outcome.Unchanged}
	exists, err := r.s3.BucketExists(ctx, b.Physical)
	if err != nil {
		if code := errorCode(err); code == "AccessDenied" || code == "Forbidden" {
			res.Action, res.Reason = outcome.Refused, "the name exists and these credentials cannot access it (another account's bucket?)"
			return res, nil
		}
		return res, fmt.Errorf("bucket %s: exists: %w", b.Physical, err)
	}
	if exists && r.createdByUs[b.Physical] {
		// An earlier attempt of this run created it and then failed (the
		// server died, perhaps after applying a change whose answer was
		// lost): report it as created, not as found unchanged.
		res.Action = outcome.Created
	}
	if !exists {
		err := r.s3.MakeBucket(ctx, b.Physical, minio.MakeBucketOptions{Region: r.region})
		switch code := errorCode(err); {
		case err == nil:
			r.createdByUs[b.Physical] = true
			res.Action = outcome.Created
		case code == "BucketAlreadyOwnedByYou":
			// A concurrent run created it between our check and create.
		case code == "BucketAlreadyExists":
			// On AWS: another account owns the name. On MinIO: a race.
			if ok, _ := r.s3.BucketExists(ctx, b.Physical); !ok {
				res.Action, res.Reason = outcome.Refused, "the bucket name is taken by another account"
				return res, nil
			}
		default:
			if IsTransient(err) {
				// The server may have created it and lost the answer: the
				// name is this scope's and was free a moment ago.
				r.createdByUs[b.Physical] = true
			}
			return res, fmt.Errorf("bucket %s: create: %w", b.Physical, err)
		}
	}
	current, err := r.tags(ctx, b.Physical)
	if err != nil {
		return res, err
	}
	if res.Action != outcome.Created && !r.createdByUs[b.Physical] {
		owner, marked := ownerOfTags(current)
		if !marked && !r.adopt && r.recent(b.Physical) {
			current, err = r.awaitMarker(ctx, b.Physical)
			if err != nil {
				return res, err
			}
			owner, marked = ownerOfTags(current)
		}
		switch {
		case marked && owner == r.scope.String():
		case r.adopt:
			res.Changes = append(res.Changes, "adopted ("+describeBucketOwner(owner, marked)+")")
		default:
			res.Action, res.Reason = outcome.Refused, describeBucketOwner(owner, marked)+"; rerun with --adopt to take it over"
			return res, nil
		}
	}
	want := maps.Clone(current)
	if want == nil {
		want = map[string]string{}
	}
	maps.Copy(want, markerTags(r.scope, b.ReclaimPolicy))
	if !maps.Equal(want, current) {
		t, err := tags.NewTags(want, false)
		if err != nil {
			return res, fmt.Errorf("bucket %s: marker tags: %w", b.Physical, err)
		}
		if err := r.s3.SetBucketTagging(ctx, b.Physical, t); err != nil {
			return res, fmt.Errorf("bucket %s: set marker tags: %w", b.Physical, err)
		}
		if res.Action != outcome.Created && len(res.Changes) == 0 {
			res.Changes = append(res.Changes, "marker tags")
		}
	}
	if b.Versioning != nil {
		cfg, err := r.s3.GetBucketVersioning(ctx, b.Physical)
		if err != nil {
			return res, fmt.Errorf("bucket %s: get versioning: %w", b.Physical, err)
		}
		switch enabled := cfg.Enabled(); {
		case *b.Versioning && !enabled:
			if err := r.s3.EnableVersioning(ctx, b.Physical); err != nil {
				return res, fmt.Errorf("bucket %s: enable versioning: %w", b.Physical, err)
			}
			res.Changes = append(res.Changes, "versioning enabled")
		case !*b.Versioning && enabled:
			if err := r.s3.SuspendVersioning(ctx, b.Physical); err != nil {
				return res, fmt.Errorf("bucket %s: suspend versioning: %w", b.Physical, err)
			}
			res.Changes = append(res.Changes, "versioning suspended")
		}
	}
	if res.Action == outcome.Unchanged && len(res.Changes) > 0 {
		res.Action = outcome.Updated
	}
	return res, nil
}

// tags returns a bucket's tags (empty when it has none).
func (r *bucketReconciler) tags(ctx context.Context, bucket string) (map[string]string, error) {
	t, err := r.s3.GetBucketTagging(ctx, bucket)
	if err != nil {
		if errorCode(err) == "NoSuchTagSet" {
			return map[string]string{}, nil
		}
		return nil, fmt.Errorf("bucket %s: get tags: %w", bucket, err)
	}
	return t.ToMap(), nil
}

// recent reports whether the bucket was created within recentWindow of
// now, or its creation date is unknown.
func (r *bucketReconciler) recent(bucket string) bool {
	created, ok := r.creation[bucket]
	if !ok || created.IsZero() {
		return true
	}
	d := r.now().Sub(created)
	return d < recentWindow && d > -recentWindow
}

// awaitMarker re-reads an unmarked bucket's tags for up to unmarkedWait.
func (r *bucketReconciler) awaitMarker(ctx context.Context, bucket string) (map[string]string, error) {
	r.log.Info("bucket has no marker yet, waiting for a concurrent run to tag it", "physicalName", bucket,
		"unmarkedWait", r.unmarkedWait.String())
	deadline := r.now().Add(r.unmarkedWait)
	delay := 100 * time.Millisecond
	for {
		current, err := r.tags(ctx, bucket)
		if err != nil {
			return nil, err
		}
		if _, marked := ownerOfTags(current); marked || !r.now().Before(deadline) {
			return current, nil
		}
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

func describeBucketOwner(owner string, marked bool) string {
	if !marked {
		return "it has no kommons ownership marker (tag " + TagScope + ")"
	}
	return "its marker names scope " + owner
}
