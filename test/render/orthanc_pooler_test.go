package render

import (
	"bytes"
	"errors"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// orthancInitContainers maps each Orthanc Deployment to its init containers.
func orthancInitContainers(t *testing.T, m *Manifest) map[string][]corev1.Container {
	t.Helper()
	out := map[string][]corev1.Container{}
	for _, o := range m.ByKind("Deployment") {
		d := Decode[appsv1.Deployment](t, o)
		out[d.Name] = d.Spec.Template.Spec.InitContainers
	}
	require.NotEmpty(t, out)
	return out
}

// runPoolerModeCheck runs the pooler-mode init container's command with sh
// and the container's literal env, plus PGPOOLER_MODE when mode is not nil
// (the optional Secret key); it returns the exit code and stderr.
func runPoolerModeCheck(t *testing.T, c corev1.Container, mode *string) (int, string) {
	t.Helper()
	require.Equal(t, "sh", c.Command[0])
	sh, err := exec.LookPath("sh")
	require.NoError(t, err, "sh runs the init container's script")
	cmd := exec.Command(sh, c.Command[1:]...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			cmd.Env = append(cmd.Env, e.Name+"="+e.Value)
		}
	}
	if mode != nil {
		cmd.Env = append(cmd.Env, "PGPOOLER_MODE="+*mode)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), stderr.String()
	}
	require.NoError(t, err)
	return 0, stderr.String()
}

// TestOrthancPoolerModeCheck: with postgresInit.connection.hostKey/portKey
// naming commons' pooler, Orthanc's pods (web and jobs) and their wait-for-pg
// connect through it, and an init container pooler-mode, first, reads the
// tenant Secret's PGPOOLER_MODE (optional) and stops the pod with a message
// naming the key, the Secret, the mode and the way out unless it is session
// or absent (the plugin fails through transaction pooling). Without hostKey,
// or with poolerModeKey empty, there is no such container.
func TestOrthancPoolerModeCheck(t *testing.T) {
	pooled := map[string]any{
		"jobsInstance": map[string]any{"enabled": true},
		"postgresInit": map[string]any{"connection": map[string]any{"hostKey": "PGHOST_POOLER", "portKey": "PGPORT_POOLER"}},
	}
	inits := orthancInitContainers(t, orthancRender(t, pooled))
	require.Len(t, inits, 2, "web and jobs Deployments")
	for name, cs := range inits {
		require.GreaterOrEqual(t, len(cs), 2, name)
		check := cs[0]
		require.Equal(t, "pooler-mode", check.Name, "%s: the check runs first, before wait-for-pg", name)
		assert.Equal(t, "wait-for-pg", cs[1].Name, name)
		env := envByName(check.Env)
		ref := env["PGPOOLER_MODE"].ValueFrom.SecretKeyRef
		require.NotNil(t, ref, name)
		assert.Equal(t, "kommons-commons", ref.Name)
		assert.Equal(t, "PGPOOLER_MODE", ref.Key)
		require.NotNil(t, ref.Optional)
		assert.True(t, *ref.Optional, "a tenant Secret without a pooler has no PGPOOLER_MODE")
		assert.Equal(t, "PGHOST_POOLER", envByName(cs[1].Env)["PGHOST"].ValueFrom.SecretKeyRef.Key, "%s: wait-for-pg goes through the pooler", name)
		require.NotNil(t, check.SecurityContext)
		assert.True(t, *check.SecurityContext.ReadOnlyRootFilesystem)
		assert.False(t, check.Resources.Limits.Memory().IsZero())

		for _, mode := range []string{"transaction", "statement"} {
			code, stderr := runPoolerModeCheck(t, check, &mode)
			assert.Equal(t, 1, code, "%s: pool mode %s stops the pod", name, mode)
			for _, want := range []string{`pool mode is "` + mode + `"`, "key PGPOOLER_MODE of Secret kommons-commons", "postgresInit.connection.hostKey PGHOST_POOLER", "needs session pooling", "prepared statement", "connect to PGHOST"} {
				assert.Contains(t, stderr, want, "%s: the message", name)
			}
		}
		session := "session"
		code, stderr := runPoolerModeCheck(t, check, &session)
		assert.Equal(t, 0, code, "session mode passes: %s", stderr)
		code, stderr = runPoolerModeCheck(t, check, nil)
		assert.Equal(t, 0, code, "no PGPOOLER_MODE (a pooler commons does not describe) passes: %s", stderr)
	}
	var web appsv1.Deployment
	require.NoError(t, orthancRender(t, pooled).MustGet(t, "Deployment", orthancNS, "pacs-orthanc").DecodeInto(&web))
	assert.Equal(t, "PGHOST_POOLER", orthancEnv(orthancContainer(t, &web))["PGHOST"].ValueFrom.SecretKeyRef.Key, "Orthanc's index through the pooler")
	assert.Equal(t, "PGPORT_POOLER", orthancEnv(orthancContainer(t, &web))["PGPORT"].ValueFrom.SecretKeyRef.Key)

	for what, values := range map[string]map[string]any{
		"defaults (-rw)": {},
		"poolerModeKey empty": {
			"orthanc":      map[string]any{"postgresql": map[string]any{"poolerModeKey": ""}},
			"postgresInit": map[string]any{"connection": map[string]any{"hostKey": "PGHOST_POOLER", "portKey": "PGPORT_POOLER"}},
		},
	} {
		for name, cs := range orthancInitContainers(t, orthancRender(t, values)) {
			for _, c := range cs {
				assert.NotEqual(t, "pooler-mode", c.Name, "%s: %s", what, name)
			}
		}
	}
}
