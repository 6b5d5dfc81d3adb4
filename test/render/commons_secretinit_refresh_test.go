package render_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"

	"github.com/kommons/kommons/test/render"
)

// TestCommonsSecretInitRefresh: in cloudnativepg mode a CronJob runs the
// secret-init Job's own pod template (same spec ConfigMap, same
// ServiceAccount) on a schedule, so tenant Secrets follow the operator's
// renewed CA; no CronJob in the other modes or with an empty schedule.
func TestCommonsSecretInitRefresh(t *testing.T) {
	tenants := map[string]any{"tenants": []any{map[string]any{"namespace": "team-a"}}}
	m := renderCommons(t, cnpgValues(nil, tenants))
	cj := render.Decode[batchv1.CronJob](t, m.MustGet(t, "CronJob", "commons", "commons-secret-init-refresh"))
	assert.Equal(t, "23 3 * * *", cj.Spec.Schedule)
	assert.Equal(t, batchv1.ForbidConcurrent, cj.Spec.ConcurrencyPolicy)

	var job *batchv1.Job
	for _, o := range m.ByKind("Job") {
		j := render.Decode[batchv1.Job](t, o)
		if j.Labels["app.kubernetes.io/component"] == "secret-init" {
			job = j
		}
	}
	require.NotNil(t, job, "the secret-init Job")
	assert.Equal(t, job.Spec.Template, cj.Spec.JobTemplate.Spec.Template, "the CronJob runs exactly the Job's pod (spec, ServiceAccount, image)")

	off := renderCommons(t, cnpgValues(nil, tenants, map[string]any{"secretInit": map[string]any{"refresh": map[string]any{"schedule": ""}}}))
	_, ok := off.Get("CronJob", "commons", "commons-secret-init-refresh")
	assert.False(t, ok, "an empty schedule renders no CronJob")
	bundled := renderCommons(t, tenants)
	_, ok = bundled.Get("CronJob", "commons", "commons-secret-init-refresh")
	assert.False(t, ok, "bundled mode copies no operator CA")
}
