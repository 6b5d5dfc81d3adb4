package s3provision

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/outcome"
	"github.com/kommons/kommons/internal/testutil/miniotest"
)

// TestObjectsCreatedByAnEarlierAttemptAreReportedCreated: when an attempt
// creates a bucket or a user and then fails (the server died after
// applying the last change, whose answer was lost), the retried attempt of
// the same run finds everything in place; the run still reports them as
// created, as it would have without the failure. A later run reports them
// unchanged.
func TestObjectsCreatedByAnEarlierAttemptAreReportedCreated(t *testing.T) {
	srv := miniotest.New(t, miniotest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	keyFile := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(keyFile, []byte("a-secret-key-of-the-spec\n"), 0o600))
	spec, err := DecodeSpec("spec.yaml", []byte(`scope: {namespace: imaging, release: retried}
buckets: [{name: data, versioning: true}]
users: [{name: app, secretKeyFile: `+keyFile+`, buckets: [data]}]
`))
	require.NoError(t, err)
	plan, err := NewPlan("spec.yaml", spec)
	require.NoError(t, err)
	conn := Connection{Endpoint: srv.Endpoint(), AccessKey: srv.RootUser(), SecretKey: srv.RootPassword(), PathStyle: true}
	s3, err := conn.S3Client()
	require.NoError(t, err)
	adm, err := conn.AdminClient()
	require.NoError(t, err)
	newRun := func() (*bucketReconciler, *userReconciler) {
		return &bucketReconciler{s3: s3, scope: plan.Scope, unmarkedWait: time.Second, createdByUs: map[string]bool{}, now: time.Now},
			&userReconciler{adm: adm, conn: conn, scope: plan.Scope, createdByUs: map[string]bool{}}
	}
	bucket, user := plan.Buckets[0], plan.Users[0]

	br, ur := newRun()
	for attempt := 1; attempt <= 2; attempt++ {
		res, err := br.reconcile(ctx, bucket)
		require.NoError(t, err)
		require.Equal(t, outcome.Created, res.Action, "bucket, attempt %d", attempt)
		res, err = ur.reconcile(ctx, user)
		require.NoError(t, err)
		require.Equal(t, outcome.Created, res.Action, "user, attempt %d", attempt)
	}

	br, ur = newRun()
	res, err := br.reconcile(ctx, bucket)
	require.NoError(t, err)
	require.Equal(t, outcome.Unchanged, res.Action, "bucket, next run")
	res, err = ur.reconcile(ctx, user)
	require.NoError(t, err)
	require.Equal(t, outcome.Unchanged, res.Action, "user, next run")
}
