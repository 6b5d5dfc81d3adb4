package render

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

func envByName(env []corev1.EnvVar) map[string]corev1.EnvVar {
	out := map[string]corev1.EnvVar{}
	for _, e := range env {
		out[e.Name] = e
	}
	return out
}

// TestPostgresInitPooler: the pg-init Job always passes the tenant Secret's
// PGPOOLER_ROLE (optional: absent outside commons' pooler) as
// PG_INIT_POOLER_ROLE; connection.hostKey/portKey send the module
// (wait-for-pg, connectionEnv) to another host, the pooler's, while the Job
// keeps provisioner.keys.host (-rw).
func TestPostgresInitPooler(t *testing.T) {
	m := pgiMustRender(t, pgiHelloChart(t), "hello", "imaging", map[string]any{"postgresInit": map[string]any{
		"connection": map[string]any{"hostKey": "PGHOST_POOLER", "portKey": "PGPORT_POOLER"}}})
	job := pgiJob(t, m)
	env := envByName(job.Spec.Template.Spec.Containers[0].Env)
	require.Contains(t, env, "PG_INIT_POOLER_ROLE")
	ref := env["PG_INIT_POOLER_ROLE"].ValueFrom.SecretKeyRef
	require.NotNil(t, ref)
	assert.Equal(t, "kommons-commons", ref.Name)
	assert.Equal(t, "PGPOOLER_ROLE", ref.Key)
	require.NotNil(t, ref.Optional)
	assert.True(t, *ref.Optional, "a tenant Secret without a pooler has no such key")
	assert.Equal(t, "PGHOST", env["PGHOST"].ValueFrom.SecretKeyRef.Key, "pg-init stays on the primary's Service")
	assert.Equal(t, "PGPORT", env["PGPORT"].ValueFrom.SecretKeyRef.Key)

	var dep struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	m.One(t, "Deployment").Into(t, &dep)
	for _, c := range append(dep.Spec.Template.Spec.InitContainers, dep.Spec.Template.Spec.Containers...) {
		e := envByName(c.Env)
		if _, ok := e["PGHOST"]; !ok {
			continue
		}
		assert.Equal(t, "PGHOST_POOLER", e["PGHOST"].ValueFrom.SecretKeyRef.Key, c.Name)
		assert.Equal(t, "PGPORT_POOLER", e["PGPORT"].ValueFrom.SecretKeyRef.Key, c.Name)
	}

	// Unset: the module uses provisioner.keys.host/port as before; an empty
	// poolerRole key drops the variable.
	m = pgiMustRender(t, pgiHelloChart(t), "hello", "imaging", map[string]any{"postgresInit": map[string]any{
		"provisioner": map[string]any{"keys": map[string]any{"poolerRole": ""}}}})
	assert.NotContains(t, envByName(pgiJob(t, m).Spec.Template.Spec.Containers[0].Env), "PG_INIT_POOLER_ROLE")
	m.One(t, "Deployment").Into(t, &dep)
	assert.Equal(t, "PGHOST", envByName(dep.Spec.Template.Spec.InitContainers[0].Env)["PGHOST"].ValueFrom.SecretKeyRef.Key)
}
