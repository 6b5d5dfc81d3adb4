package isolation

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/kommons/kommons/internal/s3provision"
	"github.com/kommons/kommons/internal/testutil/miniotest"
)

// s3Tenant is what one tenant namespace holds of the object store: its
// access key pair (the commons tenant Secret) and its buckets.
type s3Tenant struct {
	ns      string
	key     string
	secret  string
	buckets []string
	plan    *s3Plan
}

type s3Plan = s3provision.Plan

// provisionS3Tenant runs s3-init as commons' s3-init Job does for tenant
// ns: scope {ns, commons}, the tenant's buckets, one user "tenant" limited
// to them.
func provisionS3Tenant(t *testing.T, srv *miniotest.Server, ns string, buckets ...string) *s3Tenant {
	t.Helper()
	secret := randomPassword()
	keyFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(keyFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	spec, err := s3provision.DecodeSpec("spec.yaml", []byte(fmt.Sprintf(`scope: {namespace: %s, release: commons}
buckets: [%s]
users: [{name: tenant, secretKeyFile: %s, buckets: [%s]}]
`, ns, strings.Join(namesAsBuckets(buckets), ", "), keyFile, strings.Join(buckets, ", "))))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := s3provision.NewPlan("spec.yaml", spec)
	if err != nil {
		t.Fatal(err)
	}
	conn := s3provision.Connection{Endpoint: srv.Endpoint(), AccessKey: srv.RootUser(), SecretKey: srv.RootPassword(), PathStyle: true}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := s3provision.Run(ctx, conn, plan, s3provision.Options{MinIOAdmin: true, UnmarkedWait: time.Second}); err != nil {
		t.Fatalf("s3-init for tenant %s: %v", ns, err)
	}
	tn := &s3Tenant{ns: ns, key: plan.Users[0].AccessKey, secret: secret, plan: plan}
	for _, b := range plan.Buckets {
		tn.buckets = append(tn.buckets, b.Physical)
	}
	return tn
}

func namesAsBuckets(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "{name: " + n + "}"
	}
	return out
}

func (tn *s3Tenant) client(t *testing.T, srv *miniotest.Server) *minio.Client {
	t.Helper()
	c, err := s3provision.Connection{Endpoint: srv.Endpoint(), AccessKey: tn.key, SecretKey: tn.secret, PathStyle: true}.S3Client()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestObjectStoreTenantAgainstTenant: tenant a's access key (what a's
// namespace holds) can use a's bucket, and cannot list, read, write or
// delete b's bucket or its objects, change its policy or tags, nor create
// buckets (in b's name or any other), on the real MinIO the harness runs.
func TestObjectStoreTenantAgainstTenant(t *testing.T) {
	srv := miniotest.New(t, miniotest.Options{})
	ctx := context.Background()
	a := provisionS3Tenant(t, srv, "tenant-a", "dicom")
	b := provisionS3Tenant(t, srv, "tenant-b", "dicom")
	root, err := s3provision.Connection{Endpoint: srv.Endpoint(), AccessKey: srv.RootUser(), SecretKey: srv.RootPassword(), PathStyle: true}.S3Client()
	if err != nil {
		t.Fatal(err)
	}
	bBucket := b.buckets[0]
	if _, err := b.client(t, srv).PutObject(ctx, bBucket, "study/1.dcm", bytes.NewReader([]byte("b's pixels")), 10, minio.PutObjectOptions{}); err != nil {
		t.Fatalf("b writes its own bucket: %v", err)
	}
	ac := a.client(t, srv)
	if _, err := ac.PutObject(ctx, a.buckets[0], "x", bytes.NewReader([]byte("a")), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatalf("a writes its own bucket: %v", err)
	}
	// b's next bucket name, as s3-init would derive it.
	future := strings.Replace(bBucket, "dicom", "exports", 1)

	attempts := []struct {
		what string
		do   func() error
	}{
		{"list b's bucket", func() error {
			for o := range ac.ListObjects(ctx, bBucket, minio.ListObjectsOptions{Recursive: true}) {
				return o.Err
			}
			return nil
		}},
		{"read b's object", func() error {
			o, err := ac.GetObject(ctx, bBucket, "study/1.dcm", minio.GetObjectOptions{})
			if err != nil {
				return err
			}
			defer o.Close()
			_, err = o.Stat()
			return err
		}},
		{"stat b's object", func() error {
			_, err := ac.StatObject(ctx, bBucket, "study/1.dcm", minio.StatObjectOptions{})
			return err
		}},
		{"write into b's bucket", func() error {
			_, err := ac.PutObject(ctx, bBucket, "planted", bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{})
			return err
		}},
		{"overwrite b's object", func() error {
			_, err := ac.PutObject(ctx, bBucket, "study/1.dcm", bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{})
			return err
		}},
		{"copy b's object into a's bucket", func() error {
			_, err := ac.CopyObject(ctx, minio.CopyDestOptions{Bucket: a.buckets[0], Object: "stolen"}, minio.CopySrcOptions{Bucket: bBucket, Object: "study/1.dcm"})
			return err
		}},
		{"delete b's object", func() error {
			if err := ac.RemoveObject(ctx, bBucket, "study/1.dcm", minio.RemoveObjectOptions{}); err != nil {
				return err
			}
			// S3 answers 204 for a missing key; make sure it is still there.
			if _, err := root.StatObject(ctx, bBucket, "study/1.dcm", minio.StatObjectOptions{}); err != nil {
				return nil // deleted: reported by the caller as a success of the attack
			}
			return errAccessDeniedSilently
		}},
		{"delete b's bucket", func() error { return ac.RemoveBucket(ctx, bBucket) }},
		{"read b's bucket policy", func() error { _, err := ac.GetBucketPolicy(ctx, bBucket); return err }},
		{"set b's bucket policy", func() error {
			return ac.SetBucketPolicy(ctx, bBucket, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::`+bBucket+`/*"]}]}`)
		}},
		{"read b's bucket tags (its ownership marker)", func() error { _, err := ac.GetBucketTagging(ctx, bBucket); return err }},
		{"remove b's bucket tags", func() error { return ac.RemoveBucketTagging(ctx, bBucket) }},
		{"create a bucket under b's next name", func() error { return ac.MakeBucket(ctx, future, minio.MakeBucketOptions{}) }},
		{"create any bucket", func() error { return ac.MakeBucket(ctx, "a-made-this", minio.MakeBucketOptions{}) }},
		{"delete a's own bucket (only s3-init may)", func() error { return ac.RemoveBucket(ctx, a.buckets[0]) }},
	}
	for _, at := range attempts {
		err := at.do()
		switch {
		case err == errAccessDeniedSilently:
			t.Logf("refused (no effect): %s", at.what)
		case err == nil:
			t.Errorf("ATTACK SUCCEEDED with tenant-a's key: %s", at.what)
		default:
			t.Logf("refused: %s: %v", at.what, err)
		}
	}
	// b's data is intact and b's key still works.
	o, err := b.client(t, srv).GetObject(ctx, bBucket, "study/1.dcm", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(o); err != nil || buf.String() != "b's pixels" {
		t.Fatalf("b's object after the attacks: %q %v", buf.String(), err)
	}
	if ok, _ := root.BucketExists(ctx, future); ok {
		t.Errorf("a bucket exists under b's next name")
	}
}

// errAccessDeniedSilently marks an attempt the server answered with success
// but that had no effect (S3's DeleteObject of an object one may not see).
var errAccessDeniedSilently = fmt.Errorf("no effect")
