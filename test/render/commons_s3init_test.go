package render_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"

	"github.com/kommons/kommons/internal/testutil/miniotest"
	"github.com/kommons/kommons/test/render"
)

// buildS3Init builds cmd/s3-init into a temporary directory.
func buildS3Init(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "s3-init")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/s3-init")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build ./cmd/s3-init:\n%s", out)
	return bin
}

// runRenderedS3Init runs the s3-init binary exactly as a rendered Job's
// container would: its args and env, its Secret and ConfigMap mounts
// materialized under a temporary root (absolute paths prefixed with it), the
// endpoint pointed at the test server.
func runRenderedS3Init(t *testing.T, bin string, m *render.Manifest, job *batchv1.Job, srv *miniotest.Server) (string, error) {
	t.Helper()
	pod := job.Spec.Template.Spec
	root := t.TempDir()
	mounts := m.MountFiles(t, "commons", pod, "s3-init", root, nil)
	require.Contains(t, mounts, "/config")
	rebase := func(s string) string {
		for mp, dir := range mounts {
			if strings.HasPrefix(s, mp+"/") {
				return dir + strings.TrimPrefix(s, mp)
			}
		}
		return s
	}
	// The spec refers to mounted files by absolute path: rebase those too.
	specPath := filepath.Join(mounts["/config"], "spec.yaml")
	spec, err := os.ReadFile(specPath)
	require.NoError(t, err)
	for mp, dir := range mounts {
		spec = bytes.ReplaceAll(spec, []byte(" "+mp+"/"), []byte(" "+dir+"/"))
	}
	require.NoError(t, os.WriteFile(specPath, spec, 0o600))

	c := pod.Containers[0]
	require.Equal(t, []string{"s3-init"}, c.Command)
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		args[i] = rebase(a)
	}
	env := []string{"PATH=/usr/bin:/bin", "HOME=" + root, "S3_INIT_LOG_FORMAT=json"}
	for _, e := range c.Env {
		require.Nil(t, e.ValueFrom, "s3-init reads its secrets from files, not env (%s)", e.Name)
		v := rebase(e.Value)
		if e.Name == "S3_ENDPOINT" {
			require.Equal(t, "http://commons-minio.commons.svc.cluster.local:9000", v)
			v = srv.Endpoint() // the Service name only resolves in a cluster
		}
		env = append(env, e.Name+"="+v)
	}
	cmd := exec.CommandContext(context.Background(), bin, args...)
	cmd.Env = env
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err = cmd.Run()
	return buf.String(), err
}

// TestRenderedS3InitAgainstMinIO runs the s3-init Jobs charts/commons renders
// against a real MinIO server, then uses the credentials and bucket names of
// the rendered tenant Secrets: each tenant can write its own buckets and not
// another tenant's.
func TestRenderedS3InitAgainstMinIO(t *testing.T) {
	srv := miniotest.New(t, miniotest.Options{})
	bin := buildS3Init(t)
	m := renderCommons(t, tenants(
		map[string]any{"namespace": "imaging", "buckets": []any{"dicom", "exports"}},
		map[string]any{"namespace": "lab-b", "buckets": []any{"results"}},
	))
	// The rendered root Secret holds random credentials; the test server has
	// its own: runRenderedS3InitWithRoot substitutes them.
	m2 := withRootSecret(m, srv)
	jobs := s3InitJobs(t, m)
	require.Len(t, jobs, 2)
	for ns, job := range jobs {
		out, err := runRenderedS3Init(t, bin, m2, job, srv)
		require.NoError(t, err, "s3-init for %s:\n%s", ns, out)
		require.NotContains(t, out, srv.RootPassword())
	}
	// Idempotent: a rerun of the same Job changes nothing.
	out, err := runRenderedS3Init(t, bin, m2, jobs["imaging"], srv)
	require.NoError(t, err, out)
	require.NotContains(t, out, `"action":"created"`)
	require.Contains(t, out, `"unchanged":3`)

	ctx := context.Background()
	imaging := secretData(t, m.MustGet(t, "Secret", "imaging", "kommons-commons"))
	lab := secretData(t, m.MustGet(t, "Secret", "lab-b", "kommons-commons"))
	client := srv.ClientFor(t, imaging["S3_ACCESS_KEY_ID"], imaging["S3_SECRET_ACCESS_KEY"])
	for _, b := range strings.Split(imaging["S3_BUCKETS"], ",") {
		_, err := client.PutObject(ctx, b, "study.dcm", strings.NewReader("DICM"), 4, minio.PutObjectOptions{})
		require.NoError(t, err, "tenant imaging writes its bucket %s", b)
	}
	_, err = client.PutObject(ctx, lab["S3_BUCKET_RESULTS"], "x", strings.NewReader("x"), 1, minio.PutObjectOptions{})
	require.Error(t, err, "tenant imaging must not write lab-b's bucket")
	labClient := srv.ClientFor(t, lab["S3_ACCESS_KEY_ID"], lab["S3_SECRET_ACCESS_KEY"])
	_, err = labClient.StatObject(ctx, imaging["S3_BUCKET_DICOM"], "study.dcm", minio.StatObjectOptions{})
	require.Error(t, err, "tenant lab-b must not read imaging's objects")
}

// withRootSecret returns a copy of m whose commons-minio-root Secret holds
// the test server's root credentials instead of the rendered random ones.
func withRootSecret(m *render.Manifest, srv *miniotest.Server) *render.Manifest {
	out := *m
	out.Objects = nil
	for _, o := range m.Objects {
		if !(o.Kind == "Secret" && o.Name == "commons-minio-root") {
			out.Objects = append(out.Objects, o)
		}
	}
	out.Objects = append(out.Objects, &render.Object{APIVersion: "v1", Kind: "Secret", Namespace: "commons", Name: "commons-minio-root",
		YAML: []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: commons-minio-root, namespace: commons}\nstringData:\n" +
			"  rootUser: " + srv.RootUser() + "\n  rootPassword: " + srv.RootPassword() + "\n")})
	return &out
}
