package miniotest_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/testutil/miniotest"
)

func TestMain(m *testing.M) { miniotest.Main(m) }

// TestRoundTrip proves the harness is a real server: an object goes in and
// comes back, wrong credentials are rejected.
func TestRoundTrip(t *testing.T) {
	s := miniotest.Shared(t)
	ctx := context.Background()
	c := s.Client(t)
	b := s.NewBucketName("smoke")
	require.NoError(t, c.MakeBucket(ctx, b, minio.MakeBucketOptions{}))
	_, err := c.PutObject(ctx, b, "k", bytes.NewReader([]byte("seven")), 5, minio.PutObjectOptions{})
	require.NoError(t, err)
	obj, err := c.GetObject(ctx, b, "k", minio.GetObjectOptions{})
	require.NoError(t, err)
	got, err := io.ReadAll(obj)
	require.NoError(t, err)
	require.Equal(t, "seven", string(got))

	_, err = s.ClientFor(t, s.RootUser(), "wrong-password").ListBuckets(ctx)
	require.Error(t, err)
	require.Equal(t, "SignatureDoesNotMatch", minio.ToErrorResponse(err).Code)
}

// TestStopKillRestart exercises the fault-test controls on a private server:
// the port survives restarts, data survives a SIGKILL.
func TestStopKillRestart(t *testing.T) {
	s := miniotest.New(t, miniotest.Options{})
	ctx := context.Background()
	c := s.Client(t)
	require.NoError(t, c.MakeBucket(ctx, "survives", minio.MakeBucketOptions{}))
	port := s.Port()

	s.Stop()
	require.False(t, s.Running())
	_, err := c.ListBuckets(ctx)
	require.Error(t, err, "a stopped server must refuse requests")

	require.NoError(t, s.Start())
	require.Equal(t, port, s.Port())

	s.Kill()
	require.NoError(t, s.Start())
	ok, err := c.BucketExists(ctx, "survives")
	require.NoError(t, err)
	require.True(t, ok)
}

// TestTLS: a TLS server is reached over HTTPS with its own certificate.
func TestTLS(t *testing.T) {
	s := miniotest.New(t, miniotest.Options{TLS: true})
	require.Contains(t, s.Endpoint(), "https://")
	require.FileExists(t, s.CAFile())
	_, err := s.Client(t).ListBuckets(context.Background())
	require.NoError(t, err)
}
