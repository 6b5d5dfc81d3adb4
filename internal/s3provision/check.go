package s3provision

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/minio/minio-go/v7"
)

// ErrCheck marks a bucket that did not answer CheckBuckets.
var ErrCheck = errors.New("bucket check failed")

// CheckBuckets verifies that every bucket (physical names) answers with the
// connection's credentials: it exists (HeadBucket) and its objects can be
// listed (ListObjectsV2, at most one key). It creates and changes nothing;
// charts/commons' helm test hook runs it with a tenant's own key. The error
// names every bucket that failed and why.
func CheckBuckets(ctx context.Context, conn Connection, buckets []string) error {
	if len(buckets) == 0 {
		return fmt.Errorf("%w: no bucket to check", ErrCheck)
	}
	cl, err := conn.S3Client()
	if err != nil {
		return err
	}
	var failed []string
	for _, b := range buckets {
		if err := checkBucket(ctx, cl, b); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", b, err))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%w: %s", ErrCheck, strings.Join(failed, "; "))
	}
	return nil
}

func checkBucket(ctx context.Context, cl *minio.Client, bucket string) error {
	ok, err := cl.BucketExists(ctx, bucket)
	if err != nil {
		return fmt.Errorf("HeadBucket: %w", err)
	}
	if !ok {
		return errors.New("HeadBucket: no such bucket")
	}
	ctx, cancel := context.WithCancel(ctx) // stops the listing after the first key
	defer cancel()
	for o := range cl.ListObjects(ctx, bucket, minio.ListObjectsOptions{MaxKeys: 1}) {
		if o.Err != nil {
			return fmt.Errorf("ListObjectsV2: %w", o.Err)
		}
		break
	}
	return nil
}
