package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/tags"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/outcome"
	"github.com/kommons/kommons/internal/s3names"
	"github.com/kommons/kommons/internal/s3provision"
	"github.com/kommons/kommons/internal/testutil/badsecret"
	"github.com/kommons/kommons/internal/testutil/miniotest"
)

// tenant is one module's spec: a bucket "data" (versioned), a bucket
// "scratch" and a user "app" with read-write on both.
type tenant struct {
	ns, rel    string
	spec       string // path
	secret     string
	secretFile string
	data       string // physical bucket names
	scratch    string
	accessKey  string
}

func newTenant(t *testing.T) *tenant {
	t.Helper()
	ns, rel := scope(t)
	tn := &tenant{ns: ns, rel: rel, secret: secretKey()}
	tn.secretFile = writeFile(t, "secret-key", tn.secret+"\n")
	tn.spec = writeFile(t, "spec.yaml", fmt.Sprintf(`scope: {namespace: %s, release: %s}
buckets:
  - name: data
    versioning: true
  - name: scratch
    reclaimPolicy: delete
users:
  - name: app
    secretKeyFile: %s
    buckets: [data, scratch]
`, ns, rel, tn.secretFile))
	tn.data, _ = s3names.Physical(ns, rel, "data")
	tn.scratch, _ = s3names.Physical(ns, rel, "scratch")
	tn.accessKey, _ = s3names.Physical(ns, rel, "app")
	return tn
}

func (tn *tenant) run(t *testing.T, srv *miniotest.Server, extra ...string) result {
	t.Helper()
	r := runS3Init(t, srv, nil, append([]string{"--spec", tn.spec, "--minio-admin", "--output", "json"}, extra...)...)
	requireNoSecrets(t, r, srv.RootPassword(), tn.secret)
	return r
}

func bucketTags(t *testing.T, c *minio.Client, bucket string) map[string]string {
	t.Helper()
	tg, err := c.GetBucketTagging(ctxT(t), bucket)
	if minio.ToErrorResponse(err).Code == "NoSuchTagSet" {
		return map[string]string{}
	}
	require.NoError(t, err)
	return tg.ToMap()
}

func actions(o s3provision.Output) map[string]s3provision.Action {
	m := map[string]s3provision.Action{}
	for _, b := range o.Buckets {
		m["bucket "+b.Name] = b.Action
	}
	for _, u := range o.Users {
		m["user "+u.Name] = u.Action
	}
	return m
}

// TestFreshCreateThenRerunIsNoop: a first run creates and marks everything,
// a second run changes nothing and says so, one log line per object.
func TestFreshCreateThenRerunIsNoop(t *testing.T) {
	srv := miniotest.Shared(t)
	tn := newTenant(t)
	root := srv.Client(t)
	ctx := ctxT(t)

	r := tn.run(t, srv)
	requireExit(t, r, 0)
	out := output(t, r)
	require.Equal(t, map[string]s3provision.Action{"bucket data": "created", "bucket scratch": "created", "user app": "created"}, actions(out))
	require.Equal(t, srv.Endpoint(), out.Endpoint.URL)
	require.True(t, out.Endpoint.PathStyle)
	require.Equal(t, tn.data, out.Buckets[0].Bucket)
	require.Equal(t, tn.accessKey, out.Users[0].AccessKey)
	require.Equal(t, []string{tn.data, tn.scratch}, out.Users[0].Buckets)

	for _, b := range []string{tn.data, tn.scratch} {
		ok, err := root.BucketExists(ctx, b)
		require.NoError(t, err)
		require.True(t, ok, b)
		tg := bucketTags(t, root, b)
		require.Equal(t, "s3-init", tg[s3provision.TagManagedBy])
		require.Equal(t, tn.ns+"/"+tn.rel, tg[s3provision.TagScope])
	}
	require.Equal(t, "delete", bucketTags(t, root, tn.scratch)[s3provision.TagReclaimPolicy])
	v, err := root.GetBucketVersioning(ctx, tn.data)
	require.NoError(t, err)
	require.True(t, v.Enabled())

	r = tn.run(t, srv)
	requireExit(t, r, 0)
	require.Equal(t, map[string]s3provision.Action{"bucket data": "unchanged", "bucket scratch": "unchanged", "user app": "unchanged"}, actions(output(t, r)))
	var objectLines, summary int
	for _, l := range logLines(t, r) {
		if l["kind"] != nil {
			objectLines++
			require.Equal(t, "unchanged", l["action"])
		}
		if l["msg"] == "s3-init done" {
			summary++
			require.EqualValues(t, 3, l["unchanged"])
		}
	}
	require.Equal(t, 3, objectLines)
	require.Equal(t, 1, summary)
}

// TestTenantIsolation: with real S3 calls, each tenant's key reads and
// writes its own buckets and nothing of the other tenant's, and cannot
// delete its bucket nor rewrite its ownership marker.
func TestTenantIsolation(t *testing.T) {
	srv := miniotest.Shared(t)
	a, b := newTenant(t), newTenant(t)
	requireExit(t, a.run(t, srv), 0)
	requireExit(t, b.run(t, srv), 0)
	ctx := ctxT(t)
	ca := srv.ClientFor(t, a.accessKey, a.secret)
	cb := srv.ClientFor(t, b.accessKey, b.secret)

	put := func(c *minio.Client, bucket, key string) error {
		_, err := c.PutObject(ctx, bucket, key, bytes.NewReader([]byte("payload")), 7, minio.PutObjectOptions{})
		return err
	}
	get := func(c *minio.Client, bucket, key string) (string, error) {
		o, err := c.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
		if err != nil {
			return "", err
		}
		defer o.Close()
		data, err := io.ReadAll(o)
		return string(data), err
	}
	denied := func(err error) {
		t.Helper()
		require.Error(t, err)
		require.Equal(t, "AccessDenied", minio.ToErrorResponse(err).Code, "%v", err)
	}

	// Own buckets: full object access.
	require.NoError(t, put(ca, a.data, "x"))
	got, err := get(ca, a.data, "x")
	require.NoError(t, err)
	require.Equal(t, "payload", got)
	require.NoError(t, put(cb, b.scratch, "y"))
	for o := range ca.ListObjects(ctx, a.data, minio.ListObjectsOptions{}) {
		require.NoError(t, o.Err)
	}
	require.NoError(t, ca.RemoveObject(ctx, a.data, "x", minio.RemoveObjectOptions{}))

	// The other tenant's buckets: nothing.
	denied(put(ca, b.scratch, "intruder"))
	_, err = get(ca, b.scratch, "y")
	denied(err)
	for o := range ca.ListObjects(ctx, b.scratch, minio.ListObjectsOptions{}) {
		denied(o.Err)
	}
	denied(ca.RemoveObject(ctx, b.scratch, "y", minio.RemoveObjectOptions{}))
	denied(put(cb, a.data, "intruder"))

	// Not even its own bucket's settings: no delete, no marker forgery.
	denied(ca.RemoveBucket(ctx, a.scratch))
	tg, _ := tags.NewTags(map[string]string{s3provision.TagManagedBy: "s3-init", s3provision.TagScope: b.ns + "/" + b.rel}, false)
	denied(ca.SetBucketTagging(ctx, a.data, tg))
	denied(ca.MakeBucket(ctx, "tenant-made-"+a.ns, minio.MakeBucketOptions{}))
	got, err = get(cb, b.scratch, "y")
	require.NoError(t, err, "B's object is intact")
	require.Equal(t, "payload", got)
}

// TestSecretKeyRotation: changing the secret key file rotates the key on
// the next run; the old key stops working.
func TestSecretKeyRotation(t *testing.T) {
	srv := miniotest.Shared(t)
	tn := newTenant(t)
	requireExit(t, tn.run(t, srv), 0)
	old := tn.secret
	tn.secret = secretKey()
	require.NoError(t, os.WriteFile(tn.secretFile, []byte(tn.secret), 0o600))
	r := tn.run(t, srv)
	requireNoSecrets(t, r, old)
	requireExit(t, r, 0)
	require.Equal(t, outcome.Updated, actions(output(t, r))["user app"])
	require.Contains(t, r.stderr, "secret key rotated")

	ctx := ctxT(t)
	_, err := srv.ClientFor(t, tn.accessKey, old).BucketExists(ctx, tn.data)
	require.Error(t, err, "the old key must stop working")
	ok, err := srv.ClientFor(t, tn.accessKey, tn.secret).BucketExists(ctx, tn.data)
	require.NoError(t, err)
	require.True(t, ok)
	requireExit(t, tn.run(t, srv), 0)
}

// TestForeignBucketRefusedThenAdopted: a bucket with the physical name but
// no marker, or another scope's marker, is refused (exit 3) and left alone;
// --adopt takes it over without touching its objects or other tags.
func TestForeignBucketRefusedThenAdopted(t *testing.T) {
	srv := miniotest.Shared(t)
	root := srv.Client(t)
	ctx := ctxT(t)
	tn := newTenant(t)
	require.NoError(t, root.MakeBucket(ctx, tn.data, minio.MakeBucketOptions{}))
	_, err := root.PutObject(ctx, tn.data, "precious", bytes.NewReader([]byte("keep")), 4, minio.PutObjectOptions{})
	require.NoError(t, err)
	require.NoError(t, root.MakeBucket(ctx, tn.scratch, minio.MakeBucketOptions{}))
	foreign, _ := tags.NewTags(map[string]string{s3provision.TagManagedBy: "s3-init", s3provision.TagScope: "other/owner", "team": "blue"}, false)
	require.NoError(t, root.SetBucketTagging(ctx, tn.scratch, foreign))

	r := tn.run(t, srv, "--unmarked-wait", "1s")
	requireExit(t, r, 3)
	require.Contains(t, r.stderr, "no kommons ownership marker")
	require.Contains(t, r.stderr, "marker names scope other/owner")
	require.Contains(t, r.stderr, "--adopt")
	require.Contains(t, r.stderr, `its bucket \"data\" was refused`, "the user must not get access to a foreign bucket")
	require.Empty(t, bucketTags(t, root, tn.data), "a refused bucket is left alone")
	require.Equal(t, "other/owner", bucketTags(t, root, tn.scratch)[s3provision.TagScope])
	_, err = srv.Admin(t).GetUserInfo(ctx, tn.accessKey)
	require.Error(t, err, "no user is created for a refused bucket")

	r = tn.run(t, srv, "--adopt")
	requireExit(t, r, 0)
	a := actions(output(t, r))
	require.Equal(t, outcome.Updated, a["bucket data"])
	require.Equal(t, outcome.Updated, a["bucket scratch"])
	require.Contains(t, r.stderr, "adopted")
	require.Equal(t, tn.ns+"/"+tn.rel, bucketTags(t, root, tn.data)[s3provision.TagScope])
	tg := bucketTags(t, root, tn.scratch)
	require.Equal(t, tn.ns+"/"+tn.rel, tg[s3provision.TagScope])
	require.Equal(t, "blue", tg["team"], "other tags are kept")
	o, err := root.StatObject(ctx, tn.data, "precious", minio.StatObjectOptions{})
	require.NoError(t, err)
	require.EqualValues(t, 4, o.Size)
	requireExit(t, tn.run(t, srv), 0)
}

// TestForeignUserRefused: a MinIO user with the module's access key that
// s3-init did not create is refused, and --adopt takes it over.
func TestForeignUserRefused(t *testing.T) {
	srv := miniotest.Shared(t)
	tn := newTenant(t)
	ctx := ctxT(t)
	adm := srv.Admin(t)
	require.NoError(t, adm.AddUser(ctx, tn.accessKey, "someone-elses-key"))
	r := tn.run(t, srv)
	requireExit(t, r, 3)
	require.Contains(t, r.stderr, "the user exists without s3-init's policy")
	r = tn.run(t, srv, "--adopt")
	requireExit(t, r, 0)
	require.Contains(t, r.stderr, "secret key rotated")
	ok, err := srv.ClientFor(t, tn.accessKey, tn.secret).BucketExists(ctx, tn.data)
	require.NoError(t, err)
	require.True(t, ok)
}

// TestHostileNames: logical names that are not bucket names at all become
// valid, distinct, working buckets and access keys.
func TestHostileNames(t *testing.T) {
	srv := miniotest.Shared(t)
	ns, rel := scope(t)
	names := []string{"../../etc/passwd", "UPPER case", "日本語", strings.Repeat("long", 60), "xn--punycode",
		"x-s3alias", "192.168.0.1", "a..b", "-lead", "trail-", "a_b", "a-b", "$(rm -rf /)", "'; DROP TABLE x; --"}
	secret := secretKey()
	keyFile := writeFile(t, "key", secret)
	var spec strings.Builder
	fmt.Fprintf(&spec, "scope: {namespace: %s, release: %s}\nbuckets:\n", ns, rel)
	for _, n := range names {
		fmt.Fprintf(&spec, "  - name: %q\n", n)
	}
	fmt.Fprintf(&spec, "users:\n  - name: %q\n    secretKeyFile: %s\n    buckets: [%q]\n", names[0], keyFile, names[2])
	r := runS3Init(t, srv, nil, "--spec", writeFile(t, "spec.yaml", spec.String()), "--minio-admin", "--output", "json")
	requireNoSecrets(t, r, srv.RootPassword(), secret)
	requireExit(t, r, 0)
	out := output(t, r)
	seen := map[string]bool{}
	root := srv.Client(t)
	for i, b := range out.Buckets {
		require.Equal(t, names[i], b.Name)
		require.NoError(t, s3names.ValidBucketName(b.Bucket))
		require.False(t, seen[b.Bucket], "distinct names")
		seen[b.Bucket] = true
		require.Equal(t, outcome.Created, b.Action)
		ok, err := root.BucketExists(ctxT(t), b.Bucket)
		require.NoError(t, err)
		require.True(t, ok)
	}
	u := out.Users[0]
	c := srv.ClientFor(t, u.AccessKey, secret)
	_, err := c.PutObject(ctxT(t), out.Buckets[2].Bucket, "k", bytes.NewReader([]byte("v")), 1, minio.PutObjectOptions{})
	require.NoError(t, err)
	_, err = c.PutObject(ctxT(t), out.Buckets[1].Bucket, "k", bytes.NewReader([]byte("v")), 1, minio.PutObjectOptions{})
	require.Equal(t, "AccessDenied", minio.ToErrorResponse(err).Code)
}

// TestConcurrentRuns: eight s3-init processes with the same spec at once
// all succeed; each bucket is created exactly once.
func TestConcurrentRuns(t *testing.T) {
	srv := miniotest.Shared(t)
	tn := newTenant(t)
	const n = 8
	procs := make([]*proc, n)
	for i := range procs {
		procs[i] = start(t, srv, nil, "--spec", tn.spec, "--minio-admin", "--output", "json")
	}
	created := map[string]int{}
	for _, p := range procs {
		r := p.wait(t)
		requireNoSecrets(t, r, srv.RootPassword(), tn.secret)
		requireExit(t, r, 0)
		for k, a := range actions(output(t, r)) {
			if a == outcome.Created {
				created[k]++
			}
		}
	}
	require.Equal(t, 1, created["bucket data"])
	require.Equal(t, 1, created["bucket scratch"])
	ok, err := srv.ClientFor(t, tn.accessKey, tn.secret).BucketExists(ctxT(t), tn.data)
	require.NoError(t, err)
	require.True(t, ok)
	r := tn.run(t, srv)
	requireExit(t, r, 0)
	for k, a := range actions(output(t, r)) {
		require.Equal(t, outcome.Unchanged, a, k)
	}
}

// TestServerStoppedMidRunConverges: the server dies (SIGKILL) after s3-init
// has created its first bucket and comes back later; s3-init waits with
// backoff and converges before its deadline.
func TestServerStoppedMidRunConverges(t *testing.T) {
	srv := miniotest.New(t, miniotest.Options{})
	ns, rel := scope(t)
	var spec strings.Builder
	fmt.Fprintf(&spec, "scope: {namespace: %s, release: %s}\nbuckets:\n", ns, rel)
	for i := 0; i < 100; i++ { // ~400 requests: the run is far from done when the server dies
		fmt.Fprintf(&spec, "  - name: b%d\n    versioning: true\n", i)
	}
	p := start(t, srv, nil, "--spec", writeFile(t, "spec.yaml", spec.String()), "--output", "json", "--deadline", "3m")
	waitFor(t, "the first bucket", func() bool { return strings.Contains(p.stderr.String(), `"bucket created"`) })
	srv.Kill() // immediate, unlike a graceful stop that lets requests in flight finish
	waitFor(t, "s3-init to notice and retry", func() bool { return strings.Contains(p.stderr.String(), "retrying") })
	require.NoError(t, srv.Start())
	r := p.wait(t)
	requireExit(t, r, 0)
	requireNoSecrets(t, r, srv.RootPassword())
	out := output(t, r)
	root := srv.Client(t)
	for _, b := range out.Buckets {
		require.Contains(t, []s3provision.Action{outcome.Created, outcome.Updated}, b.Action, b.Bucket)
		require.Equal(t, ns+"/"+rel, bucketTags(t, root, b.Bucket)[s3provision.TagScope], b.Bucket)
	}
}

// TestUnreachableEndpoint: with no server, s3-init retries until its
// deadline and fails with exit 1; SIGTERM ends it promptly with exit 1.
func TestUnreachableEndpoint(t *testing.T) {
	srv := miniotest.Shared(t)
	port, err := miniotest.FreePort()
	require.NoError(t, err)
	spec := writeFile(t, "spec.yaml", "scope: {namespace: a, release: b}\nbuckets: [{name: c}]\n")
	nowhere := []string{fmt.Sprintf("S3_ENDPOINT=http://127.0.0.1:%d", port)}

	r := runS3Init(t, srv, nowhere, "--spec", spec, "--deadline", "3s")
	requireExit(t, r, 1)
	require.Contains(t, r.stderr, "--deadline 3s reached")
	require.Contains(t, r.stderr, "retrying")
	requireNoSecrets(t, r, srv.RootPassword())

	p := start(t, srv, nowhere, "--spec", spec, "--deadline", "3m")
	waitFor(t, "a retry", func() bool { return strings.Contains(p.stderr.String(), "retrying") })
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	r = p.wait(t)
	requireExit(t, r, 1)
	require.Contains(t, r.stderr, "interrupted by terminated")
}

// TestWrongAdminCredentials fail fast (exit 1), without the secret in
// any output.
func TestWrongAdminCredentials(t *testing.T) {
	srv := miniotest.Shared(t)
	spec := writeFile(t, "spec.yaml", "scope: {namespace: a, release: b}\nbuckets: [{name: c}]\n")
	wrong := "wrong-" + secretKey()
	r := runS3Init(t, srv, []string{"AWS_SECRET_ACCESS_KEY=" + wrong}, "--spec", spec, "--deadline", "2m")
	requireExit(t, r, 1)
	require.Contains(t, r.stderr, "signature")
	requireNoSecrets(t, r, wrong, srv.RootPassword())
	keyFile := writeFile(t, "sk", wrong+"\n")
	r = runS3Init(t, srv, nil, "--spec", spec, "--secret-key-file", keyFile)
	requireExit(t, r, 1)
	requireNoSecrets(t, r, wrong)
}

// TestUsageErrors: bad flags and specs exit 2 with a message naming the
// flag, file or field, before touching the server.
func TestUsageErrors(t *testing.T) {
	srv := miniotest.Shared(t)
	secret := secretKey()
	key := writeFile(t, "key", secret)
	good := writeFile(t, "good.yaml", "scope: {namespace: a, release: b}\nbuckets: [{name: c}]\n")
	withUser := writeFile(t, "user.yaml", "scope: {namespace: a, release: b}\nbuckets: [{name: c}]\nusers: [{name: u, secretKeyFile: "+key+", buckets: [c]}]\n")
	cases := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"no spec", nil, nil, "--spec"},
		{"unknown field", nil, []string{"--spec", writeFile(t, "s.yaml", "scope: {namespace: a, release: b}\nbuckets: [{name: c, versioned: true}]\n")}, `buckets[0].versioned: unknown field`},
		{"bad scope", nil, []string{"--spec", good, "--namespace", "zz"}, `scope.namespace: \"a\" contradicts --namespace \"zz\"`},
		{"users need --minio-admin", nil, []string{"--spec", withUser}, "--minio-admin"},
		{"bad endpoint", []string{"S3_ENDPOINT=ftp://x"}, []string{"--spec", good}, "want http://host"},
		{"no credentials", []string{"AWS_ACCESS_KEY_ID="}, []string{"--spec", good}, "--access-key-file"},
		{"bad output", nil, []string{"--spec", good, "--output", "yaml"}, "--output"},
		{"bad env", []string{"S3_PATH_STYLE=maybe"}, []string{"--spec", good}, "S3_PATH_STYLE"},
		{"missing spec file", nil, []string{"--spec", "/nonexistent.yaml"}, "/nonexistent.yaml"},
		{"bad CA file", nil, []string{"--spec", good, "--ca-file", writeFile(t, "bad.pem", "not a certificate")}, "no PEM certificate"},
		{"bad user secret", nil, []string{"--spec", writeFile(t, "short.yaml", "scope: {namespace: a, release: b}\nbuckets: [{name: c}]\nusers: [{name: u, secretKeyFile: "+writeFile(t, "short", "tiny")+", buckets: [c]}]\n"), "--minio-admin"}, "users[0].secretKeyFile"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runS3Init(t, srv, c.env, c.args...)
			requireExit(t, r, 2)
			require.Contains(t, r.stderr, c.want)
			require.Empty(t, r.stdout)
			requireNoSecrets(t, r, secret, srv.RootPassword())
		})
	}
}

// TestRunInProcess drives s3provision.Run directly (the library API) and
// checks the buckets-only mode used on AWS S3: no admin API call.
func TestRunInProcess(t *testing.T) {
	srv := miniotest.Shared(t)
	ns, rel := scope(t)
	spec := &s3provision.Spec{Scope: s3provision.Scope{Namespace: ns, Release: rel}, Buckets: []s3provision.Bucket{{Name: "only"}}}
	plan, err := s3provision.NewPlan("inline", spec)
	require.NoError(t, err)
	conn := s3provision.Connection{Endpoint: srv.Endpoint(), Region: miniotest.Region, PathStyle: true,
		AccessKey: srv.RootUser(), SecretKey: srv.RootPassword()}
	rep, err := s3provision.Run(context.Background(), conn, plan, s3provision.Options{})
	require.NoError(t, err)
	require.Equal(t, 1, rep.Count(outcome.Created))
}

// TestTLS: an HTTPS endpoint with a private CA fails at once (exit 1)
// without --ca-file, and works with --ca-file or --insecure.
func TestTLS(t *testing.T) {
	srv := miniotest.New(t, miniotest.Options{TLS: true})
	tn := newTenant(t)
	r := tn.run(t, srv, "--deadline", "2m")
	requireExit(t, r, 1)
	require.Contains(t, r.stderr, "certificate")
	require.NotContains(t, r.stderr, "retrying", "an untrusted certificate is not transient")

	r = tn.run(t, srv, "--ca-file", srv.CAFile())
	requireExit(t, r, 0)
	require.Equal(t, "https://"+srv.HostPort(), output(t, r).Endpoint.URL)
	r = tn.run(t, srv, "--insecure")
	requireExit(t, r, 0)
	for k, a := range actions(output(t, r)) {
		require.Equal(t, outcome.Unchanged, a, k)
	}
}

// TestPrune: nothing is deleted without --prune; with it, only this
// scope's objects that left the spec and say reclaimPolicy delete go, and
// a bucket only when empty.
func TestPrune(t *testing.T) {
	srv := miniotest.Shared(t)
	ctx := ctxT(t)
	root := srv.Client(t)
	ns, rel := scope(t)
	secret := secretKey()
	key := writeFile(t, "key", secret)
	v1 := writeFile(t, "v1.yaml", fmt.Sprintf(`scope: {namespace: %s, release: %s}
buckets:
  - {name: keep}
  - {name: kept, reclaimPolicy: retain}
  - {name: gone, reclaimPolicy: delete}
  - {name: full, reclaimPolicy: delete}
users:
  - {name: stays, secretKeyFile: %s, buckets: [keep]}
  - {name: leaves, secretKeyFile: %s, buckets: [gone], reclaimPolicy: delete}
  - {name: lingers, secretKeyFile: %s, buckets: [kept]}
`, ns, rel, key, key, key))
	v2 := writeFile(t, "v2.yaml", fmt.Sprintf(`scope: {namespace: %s, release: %s}
buckets: [{name: keep}]
users: [{name: stays, secretKeyFile: %s, buckets: [keep]}]
`, ns, rel, key))
	phys := func(l string) string { p, _ := s3names.Physical(ns, rel, l); return p }
	// Another scope's deletable bucket must survive our prune.
	other := newTenant(t)
	requireExit(t, other.run(t, srv), 0)

	requireExit(t, runS3Init(t, srv, nil, "--spec", v1, "--minio-admin"), 0)
	_, err := root.PutObject(ctx, phys("full"), "obj", bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{})
	require.NoError(t, err)

	r := runS3Init(t, srv, nil, "--spec", v2, "--minio-admin", "--output", "json")
	requireExit(t, r, 0)
	require.Empty(t, output(t, r).Pruned, "no --prune: nothing reported, nothing deleted")
	for _, b := range []string{"kept", "gone", "full"} {
		ok, err := root.BucketExists(ctx, phys(b))
		require.NoError(t, err)
		require.True(t, ok, b)
	}

	r = runS3Init(t, srv, nil, "--spec", v2, "--minio-admin", "--prune", "--output", "json")
	requireNoSecrets(t, r, secret, srv.RootPassword())
	requireExit(t, r, 0)
	got := map[string]s3provision.Action{}
	for _, o := range output(t, r).Pruned {
		got[o.Kind+" "+o.Physical] = o.Action
	}
	require.Equal(t, map[string]s3provision.Action{
		"bucket " + phys("kept"):  outcome.Retained,
		"bucket " + phys("gone"):  outcome.Deleted,
		"bucket " + phys("full"):  outcome.Retained,
		"user " + phys("leaves"):  outcome.Deleted,
		"user " + phys("lingers"): outcome.Retained,
	}, got)
	require.Contains(t, r.stderr, "not empty")
	ok, err := root.BucketExists(ctx, phys("gone"))
	require.NoError(t, err)
	require.False(t, ok)
	ok, err = root.BucketExists(ctx, phys("full"))
	require.NoError(t, err)
	require.True(t, ok)
	_, err = srv.Admin(t).GetUserInfo(ctx, phys("leaves"))
	require.Error(t, err)
	_, err = srv.Admin(t).InfoCannedPolicyV2(ctx, s3provision.PolicyPrefix+phys("leaves"))
	require.Error(t, err)
	_, err = srv.Admin(t).GetUserInfo(ctx, phys("lingers"))
	require.NoError(t, err)
	ok, err = root.BucketExists(ctx, other.scratch)
	require.NoError(t, err)
	require.True(t, ok, "another scope's bucket is never pruned")
}

// TestLeastPrivilegeAdmin: the permissions docs/s3-init.md lists are
// enough, for buckets, users and --prune: run s3-init as a MinIO user
// holding exactly those, not as root.
func TestLeastPrivilegeAdmin(t *testing.T) {
	srv := miniotest.Shared(t)
	ctx := ctxT(t)
	adm := srv.Admin(t)
	policy := `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":["s3:ListAllMyBuckets","s3:CreateBucket","s3:ListBucket","s3:GetBucketTagging","s3:PutBucketTagging",
  "s3:GetBucketVersioning","s3:PutBucketVersioning","s3:DeleteBucket"],"Resource":["arn:aws:s3:::*"]},
 {"Effect":"Allow","Action":["admin:CreateUser","admin:GetUser","admin:CreatePolicy","admin:GetPolicy","admin:AttachUserOrGroupPolicy",
  "admin:ListUserPolicies","admin:DeleteUser","admin:DeletePolicy"]}]}`
	provisioner, provSecret := "provisioner-"+secretKey()[:6], secretKey()
	require.NoError(t, adm.AddCannedPolicy(ctx, "s3-init-test-provisioner", []byte(policy)))
	require.NoError(t, adm.AddUser(ctx, provisioner, provSecret))
	require.NoError(t, adm.SetPolicy(ctx, "s3-init-test-provisioner", provisioner, false))
	env := []string{"AWS_ACCESS_KEY_ID=" + provisioner, "AWS_SECRET_ACCESS_KEY=" + provSecret}

	tn := newTenant(t)
	r := runS3Init(t, srv, env, "--spec", tn.spec, "--minio-admin", "--prune", "--output", "json")
	requireNoSecrets(t, r, provSecret, tn.secret)
	requireExit(t, r, 0)
	require.Equal(t, map[string]s3provision.Action{"bucket data": "created", "bucket scratch": "created", "user app": "created"}, actions(output(t, r)))
	ok, err := srv.ClientFor(t, tn.accessKey, tn.secret).BucketExists(ctx, tn.data)
	require.NoError(t, err)
	require.True(t, ok)
	r = runS3Init(t, srv, env, "--spec", tn.spec, "--minio-admin", "--prune", "--output", "json")
	requireExit(t, r, 0)

	// Without admin:CreateUser the same run fails: the permissions matter.
	weaker := strings.Replace(policy, `"admin:CreateUser",`, "", 1)
	require.NoError(t, adm.AddCannedPolicy(ctx, "s3-init-test-provisioner", []byte(weaker)))
	r = runS3Init(t, srv, env, "--spec", newTenant(t).spec, "--minio-admin")
	requireExit(t, r, 1)
	require.Contains(t, r.stderr, "Access Denied")
}

// TestUnmarkedBucketTaggedMeanwhile: a fresh bucket without a marker may be
// one a concurrent run created and is about to tag: s3-init waits, and
// accepts it once the marker of its own scope appears.
func TestUnmarkedBucketTaggedMeanwhile(t *testing.T) {
	srv := miniotest.Shared(t)
	ctx := ctxT(t)
	root := srv.Client(t)
	ns, rel := scope(t)
	bucket, _ := s3names.Physical(ns, rel, "b")
	require.NoError(t, root.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}))
	spec := writeFile(t, "spec.yaml", fmt.Sprintf("scope: {namespace: %s, release: %s}\nbuckets: [{name: b}]\n", ns, rel))
	p := start(t, srv, nil, "--spec", spec, "--unmarked-wait", "3m", "--output", "json")
	waitFor(t, "s3-init to wait for a marker", func() bool { return strings.Contains(p.stderr.String(), "waiting for a concurrent run") })
	tg, _ := tags.NewTags(map[string]string{s3provision.TagManagedBy: "s3-init", s3provision.TagScope: ns + "/" + rel,
		s3provision.TagReclaimPolicy: "retain"}, false)
	require.NoError(t, root.SetBucketTagging(ctx, bucket, tg))
	r := p.wait(t)
	requireExit(t, r, 0)
	require.Equal(t, outcome.Unchanged, output(t, r).Buckets[0].Action)
}

// TestSecretFilesMustBeSmallRegularFiles: a key file (--access-key-file,
// --secret-key-file, spec secretKeyFile) that is a device, a FIFO, a
// directory or larger than 64 KiB exits 2 at once naming the flag or field,
// without reading it. No server is needed: s3-init refuses before
// connecting.
func TestSecretFilesMustBeSmallRegularFiles(t *testing.T) {
	key := writeFile(t, "key", secretKey())
	env := append(os.Environ(), asBinaryEnv+"=1", "S3_INIT_LOG_FORMAT=json", "S3_ENDPOINT=http://127.0.0.1:1",
		"AWS_ACCESS_KEY_ID=admin", "AWS_SECRET_ACCESS_KEY="+secretKey())
	for i, c := range badsecret.Cases(t) {
		spec := writeFile(t, fmt.Sprintf("spec%d.yaml", i), "scope: {namespace: a, release: b}\nbuckets: [{name: c}]\n"+
			"users: [{name: u, secretKeyFile: "+c.Path+", buckets: [c]}]\n")
		good := writeFile(t, fmt.Sprintf("good%d.yaml", i), "scope: {namespace: a, release: b}\nbuckets: [{name: c}]\n")
		for name, tc := range map[string]struct {
			args []string
			want string
		}{
			"spec":       {[]string{"--spec", spec, "--minio-admin"}, "users[0].secretKeyFile: " + c.Path + ": " + c.Want},
			"access key": {[]string{"--spec", good, "--access-key-file", c.Path, "--secret-key-file", key}, "--access-key-file " + c.Path + ": " + c.Want},
			"secret key": {[]string{"--spec", good, "--secret-key-file", c.Path}, "--secret-key-file " + c.Path + ": " + c.Want},
		} {
			t.Run(c.Name+"/"+name, func(t *testing.T) {
				r := badsecret.Run(t, env, os.Args[0], append(tc.args, "--deadline", "2s")...)
				require.Equal(t, 2, r.Code, r.Stderr)
				require.Contains(t, r.Stderr, tc.want)
			})
		}
	}
}

// TestSecretKeysShorterThanTheMinimumAreRefused: s3-init sets user secret
// keys, so it refuses ones shorter than 12 characters (MinIO would take 8;
// redaction relies on 12), before contacting the server, without quoting
// them.
func TestSecretKeysShorterThanTheMinimumAreRefused(t *testing.T) {
	short := writeFile(t, "short", "elevenchars\n")
	spec := writeFile(t, "spec.yaml", "scope: {namespace: a, release: b}\nbuckets: [{name: c}]\n"+
		"users: [{name: u, secretKeyFile: "+short+", buckets: [c]}]\n")
	env := append(os.Environ(), asBinaryEnv+"=1", "S3_INIT_LOG_FORMAT=json", "S3_ENDPOINT=http://127.0.0.1:1",
		"AWS_ACCESS_KEY_ID=admin", "AWS_SECRET_ACCESS_KEY="+secretKey())
	r := badsecret.Run(t, env, os.Args[0], "--spec", spec, "--minio-admin", "--deadline", "2s")
	require.Equal(t, 2, r.Code, r.Stderr)
	require.Contains(t, r.Stderr, "users[0].secretKeyFile: "+short+": the secret key must have 12 to 40 characters")
	require.NotContains(t, r.Stderr, "elevenchars")
}
