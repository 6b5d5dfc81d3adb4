package render

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// tieringValues: the smallest values that render the tiering CronJob.
func tieringValues(extra map[string]any) map[string]any {
	v := map[string]any{
		"storage":        map[string]any{"s3": map[string]any{"hybridMode": "WriteToFileSystem"}},
		"jobsInstance":   map[string]any{"enabled": true},
		"storageTiering": map[string]any{"enabled": true},
	}
	for k, val := range extra {
		v[k] = val
	}
	return v
}

func tieringCronJob(t *testing.T, m *Manifest) *batchv1.CronJob {
	t.Helper()
	return Decode[batchv1.CronJob](t, m.MustGet(t, "CronJob", orthancNS, "pacs-orthanc-tiering"))
}

// TestOrthancStorageTieringOffByDefault: no CronJob unless enabled.
func TestOrthancStorageTieringOffByDefault(t *testing.T) {
	assert.Empty(t, orthancRender(t, nil).ByKind("CronJob"))
}

// TestOrthancStorageTieringCronJob: the rendered CronJob runs orthanc-tiering
// from the kommons-tools image against the jobs instance with the values'
// settings, the administrator's credentials from the auth Secret, the
// chart's security contexts, one run at a time and no immediate retry.
func TestOrthancStorageTieringCronJob(t *testing.T) {
	m := orthancRender(t, tieringValues(map[string]any{"storageTiering": map[string]any{
		"enabled": true, "schedule": "0 3 * * 6", "timeZone": "Europe/Brussels", "ageDays": 30, "batchSize": 50,
		"concurrency": 4, "jobTimeoutSeconds": 600, "podLabels": map[string]any{"team": "pacs"},
	}}))
	cj := tieringCronJob(t, m)
	assert.Equal(t, "0 3 * * 6", cj.Spec.Schedule)
	require.NotNil(t, cj.Spec.TimeZone)
	assert.Equal(t, "Europe/Brussels", *cj.Spec.TimeZone)
	assert.Equal(t, batchv1.ForbidConcurrent, cj.Spec.ConcurrencyPolicy)
	job := cj.Spec.JobTemplate.Spec
	require.NotNil(t, job.BackoffLimit)
	assert.EqualValues(t, 0, *job.BackoffLimit)
	require.NotNil(t, job.ActiveDeadlineSeconds)
	assert.EqualValues(t, 21600, *job.ActiveDeadlineSeconds)
	pod := job.Template.Spec
	assert.Equal(t, corev1.RestartPolicyNever, pod.RestartPolicy)
	assert.False(t, *pod.AutomountServiceAccountToken)
	assert.Equal(t, "pacs", job.Template.Labels["team"])
	assert.Equal(t, "tiering", job.Template.Labels["app.kubernetes.io/component"])
	require.NotNil(t, pod.SecurityContext.RunAsNonRoot)
	assert.True(t, *pod.SecurityContext.RunAsNonRoot)
	require.Len(t, pod.Containers, 1)
	c := pod.Containers[0]
	assert.Equal(t, "ghcr.io/kommons/kommons-tools:0.1.0", c.Image, "the kommons-tools image of postgresInit.image")
	assert.Equal(t, []string{"/usr/local/bin/orthanc-tiering"}, c.Command)
	assert.Equal(t, []string{"--url=http://pacs-orthanc-jobs:8042", "--age-days=30", "--batch-size=50", "--concurrency=4",
		"--target-storage=object-storage", "--job-timeout=600s", "--log-format=json"}, c.Args)
	env := orthancEnv(c)
	require.NotNil(t, env["ORTHANC_TIERING_PASSWORD"].ValueFrom)
	assert.Equal(t, "pacs-orthanc-auth", env["ORTHANC_TIERING_PASSWORD"].ValueFrom.SecretKeyRef.Name)
	assert.Equal(t, "password", env["ORTHANC_TIERING_PASSWORD"].ValueFrom.SecretKeyRef.Key)
	assert.Equal(t, "username", env["ORTHANC_TIERING_USER"].ValueFrom.SecretKeyRef.Key)
	require.NotNil(t, c.SecurityContext)
	assert.True(t, *c.SecurityContext.ReadOnlyRootFilesystem)
	assert.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
	assert.NotEmpty(t, c.Resources.Limits)

	// Without the jobs instance (one web replica) it calls the web Service; an existing auth Secret is used.
	m = orthancRender(t, tieringValues(map[string]any{"jobsInstance": map[string]any{"enabled": false}, "replicaCount": 1,
		"auth": map[string]any{"existingSecret": "orthanc-admin", "usernameKey": "u", "passwordKey": "p"}}))
	c = tieringCronJob(t, m).Spec.JobTemplate.Spec.Template.Spec.Containers[0]
	assert.Contains(t, c.Args, "--url=http://pacs-orthanc:8042")
	env = orthancEnv(c)
	assert.Equal(t, "orthanc-admin", env["ORTHANC_TIERING_PASSWORD"].ValueFrom.SecretKeyRef.Name)
	assert.Equal(t, "p", env["ORTHANC_TIERING_PASSWORD"].ValueFrom.SecretKeyRef.Key)
	assert.Equal(t, "u", env["ORTHANC_TIERING_USER"].ValueFrom.SecretKeyRef.Key)

	// The global registry and pull secrets reach the tiering pod too.
	m = orthancRender(t, tieringValues(map[string]any{"global": map[string]any{"imageRegistry": "mirror.local", "imagePullSecrets": []any{"pull"}}}))
	pod = tieringCronJob(t, m).Spec.JobTemplate.Spec.Template.Spec
	assert.Equal(t, "mirror.local/kommons/kommons-tools:0.1.0", pod.Containers[0].Image)
	assert.Equal(t, []corev1.LocalObjectReference{{Name: "pull"}}, pod.ImagePullSecrets)
}

// TestOrthancStorageTieringEgress: the NetworkPolicy (which selects the
// tiering pods too) lets them reach Orthanc's HTTP port on the jobs instance.
func TestOrthancStorageTieringEgress(t *testing.T) {
	np := Decode[networkingv1.NetworkPolicy](t, orthancRender(t, tieringValues(nil)).MustGet(t, "NetworkPolicy", orthancNS, "pacs-orthanc"))
	var found bool
	for _, r := range np.Spec.Egress {
		if len(r.Ports) == 1 && r.Ports[0].Port.IntValue() == 8042 && len(r.To) == 1 && r.To[0].PodSelector != nil {
			found = found || r.To[0].PodSelector.MatchLabels["app.kubernetes.io/component"] == "jobs"
		}
	}
	assert.True(t, found, "egress to the jobs instance's HTTP port: %+v", np.Spec.Egress)
}

// TestOrthancStorageTieringRejects: the combinations the CronJob cannot work with fail the render.
func TestOrthancStorageTieringRejects(t *testing.T) {
	cases := []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"filesystem storage", tieringValues(map[string]any{"storage": map[string]any{"type": "filesystem"}}), "storageTiering.enabled needs storage.type s3"},
		{"s3 without hybrid mode", tieringValues(map[string]any{"storage": map[string]any{"type": "s3"}}), "hybridMode"},
		{"several web replicas without the jobs instance", tieringValues(map[string]any{"jobsInstance": map[string]any{"enabled": false}}), "needs jobsInstance.enabled"},
		{"HPA without the jobs instance", tieringValues(map[string]any{"jobsInstance": map[string]any{"enabled": false}, "replicaCount": 1, "autoscaling": map[string]any{"enabled": true}}), "needs jobsInstance.enabled"},
		{"unknown target", tieringValues(map[string]any{"storageTiering": map[string]any{"enabled": true, "targetStorage": "tape"}}), "targetStorage"},
		{"zero batch", tieringValues(map[string]any{"storageTiering": map[string]any{"enabled": true, "batchSize": 0}}), "batchSize"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := orthancRenderErr(t, tc.values)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestOrthancDicomCheckCalledAet: rendered as DicomCheckCalledAet, off by default.
func TestOrthancDicomCheckCalledAet(t *testing.T) {
	assert.Equal(t, false, orthancConfig(t, orthancRender(t, nil), "web")["DicomCheckCalledAet"])
	cfg := orthancConfig(t, orthancRender(t, map[string]any{"orthanc": map[string]any{"dicomCheckCalledAet": true}}), "web")
	assert.Equal(t, true, cfg["DicomCheckCalledAet"])
}
