package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/testutil/miniotest"
)

// TestCheckBuckets: --check-buckets with a tenant's own key passes on its
// buckets, fails (exit 1, naming the bucket) on another tenant's bucket, a
// missing bucket or a wrong key (retried until --deadline), and creates
// nothing.
func TestCheckBuckets(t *testing.T) {
	srv := miniotest.Shared(t)
	a, b := newTenant(t), newTenant(t)
	requireExit(t, a.run(t, srv), 0)
	requireExit(t, b.run(t, srv), 0)
	as := func(key, secret string) []string {
		return []string{"AWS_ACCESS_KEY_ID=" + key, "AWS_SECRET_ACCESS_KEY=" + secret}
	}

	r := runS3Init(t, srv, as(a.accessKey, a.secret), "--check-buckets", a.data+","+a.scratch)
	requireExit(t, r, 0)
	requireNoSecrets(t, r, a.secret, srv.RootPassword())

	missing := a.data + "-missing"
	for name, c := range map[string]struct {
		env    []string
		bucket string
	}{
		"other tenant's bucket": {as(a.accessKey, a.secret), b.data},
		"missing bucket":        {as(srv.RootUser(), srv.RootPassword()), missing},
		"wrong key":             {as(a.accessKey, b.secret), a.data},
	} {
		t.Run(name, func(t *testing.T) {
			r := runS3Init(t, srv, c.env, "--check-buckets", c.bucket, "--deadline", "2s")
			requireExit(t, r, 1)
			require.Contains(t, r.stderr, c.bucket)
			requireNoSecrets(t, r, a.secret, b.secret, srv.RootPassword())
		})
	}
	exists, err := srv.ClientFor(t, srv.RootUser(), srv.RootPassword()).BucketExists(ctxT(t), missing)
	require.NoError(t, err)
	require.False(t, exists, "--check-buckets created nothing")

	r = runS3Init(t, srv, nil, "--check-buckets", a.data, "--spec", a.spec)
	requireExit(t, r, 2)
	require.Contains(t, r.stderr, "--check-buckets")
}
