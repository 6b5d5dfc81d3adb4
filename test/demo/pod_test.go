package main

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"

	"github.com/kommons/kommons/internal/testutil/testcluster"
	"github.com/kommons/kommons/test/render"
)

// renderedPgInitJob renders the orthanc chart as the demo does and returns
// the data-path state and the pg-init Job.
func renderedPgInitJob(t *testing.T) (*dataPathRun, *batchv1.Job) {
	t.Helper()
	root, err := testcluster.RepoRoot()
	require.NoError(t, err)
	m, err := render.Chart(filepath.Join(root, "charts", "orthanc"), render.Options{ReleaseName: "orthanc", Namespace: "imaging",
		Values: map[string]any{"storage": map[string]any{"type": "filesystem"}}})
	require.NoError(t, err)
	d := &dataPathRun{pl: plan{Namespace: "imaging", Dir: t.TempDir(), BinDir: t.TempDir()}, m: m, secrets: map[string]map[string]string{}}
	for _, o := range m.ByKind("Secret") {
		data := map[string]string{}
		for k, v := range o.Fields["data"].(map[string]any) {
			data[k] = decodeB64(t, v.(string))
		}
		d.secrets[o.Name] = data
	}
	for _, o := range m.ByKind("Job") {
		if strings.Contains(o.Name, "pg-init") {
			var j batchv1.Job
			require.NoError(t, o.DecodeInto(&j))
			return d, &j
		}
	}
	t.Fatalf("no pg-init Job rendered: %s", m.Index())
	return nil, nil
}

// The tenant Secret commons renders is missing: the error names it, as the
// kubelet would refuse to start the container.
func TestRunContainerMissingSecret(t *testing.T) {
	d, job := renderedPgInitJob(t)
	pod := &job.Spec.Template.Spec
	_, err := d.runContainer(context.Background(), pod, pod.Containers[0], "pg-init", "", time.Minute)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Secret kommons-commons")
}

// A Secret key the pod references is absent: the error names Secret and key.
func TestEnvMissingKey(t *testing.T) {
	d, job := renderedPgInitJob(t)
	d.secrets["kommons-commons"] = map[string]string{"PGHOST": "127.0.0.1"}
	_, err := d.env(job.Spec.Template.Spec.Containers[0], "", nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `Secret kommons-commons has no key "PGPORT"`)
}

// The mounted files land under a private root with the mount paths in the
// spec rewritten, and the rendered args point there; the process runs with
// exactly the pod's environment (plus PATH and HOME).
func TestRunContainerMaterialisesMounts(t *testing.T) {
	d, job := renderedPgInitJob(t)
	d.secrets["kommons-commons"] = map[string]string{"PGHOST": "h", "PGPORT": "1", "PGSSLMODE": "disable",
		"PGUSER": "u", "PGPASSWORD": "secret-pw", "PGDATABASE": "postgres"}
	// A stand-in pg-init that reports its args, env and the spec it reads.
	script := "#!/bin/sh\nfor a in \"$@\"; do echo \"ARG $a\"; case $a in --spec=*) cat \"${a#--spec=}\";; esac; done\nenv | sort | sed 's/^/ENV /'\n"
	require.NoError(t, os.WriteFile(filepath.Join(d.pl.BinDir, "pg-init"), []byte(script), 0o755))
	require.NoError(t, d.writeJobSecrets(job), "the init container's secret-init writes the role's Secret")
	pod := &job.Spec.Template.Spec
	res, err := d.runContainer(context.Background(), pod, pod.Containers[0], "pg-init", "", time.Minute)
	require.NoError(t, err)
	out := string(res.stdout)
	assert.NotContains(t, out, "ARG --spec=/etc/pg-init/spec/spec.yaml", "the mount path is rewritten")
	assert.Regexp(t, `ARG --spec=/.+/etc/pg-init/spec/spec.yaml`, out)
	assert.Contains(t, out, "passwordEnv: PG_INIT_PASSWORD_ORTHANC", "the role's password comes through env")
	role := d.secrets["orthanc-pg-orthanc"]["password"]
	require.Len(t, role, 32, "secret-init generated the role's password")
	assert.Contains(t, out, "ENV PG_INIT_PASSWORD_ORTHANC="+role, "from the Secret the init container wrote")
	assert.Contains(t, out, "ENV PGPASSWORD=secret-pw")
	assert.NotContains(t, out, "ENV GOPATH", "nothing leaks from this process's environment")
}

func decodeB64(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	require.NoError(t, err)
	return string(b)
}
