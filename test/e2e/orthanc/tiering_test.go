package orthanc_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/testutil/orthanctest"
	"github.com/kommons/kommons/internal/testutil/pgtest"
	"github.com/kommons/kommons/test/e2e/orthanc"
	"github.com/kommons/kommons/test/render"
)

// tieringCommand renders the chart's tiering CronJob with the given
// storageTiering values and returns its container's command and args.
func tieringCommand(t *testing.T, tiering map[string]any) []string {
	t.Helper()
	tiering["enabled"] = true
	m, err := render.Chart(orthanc.ChartDir(), render.Options{ReleaseName: orthanc.Release, Namespace: "e2e-tiering", Values: map[string]any{
		"storage":        map[string]any{"type": "s3", "s3": map[string]any{"hybridMode": "WriteToFileSystem"}},
		"jobsInstance":   map[string]any{"enabled": true},
		"storageTiering": tiering,
	}})
	require.NoError(t, err)
	cj := m.MustGet(t, "CronJob", "e2e-tiering", orthanc.Fullname+"-tiering")
	c := cj.Fields["spec"].(map[string]any)["jobTemplate"].(map[string]any)["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	var out []string
	for _, key := range []string{"command", "args"} {
		for _, a := range c[key].([]any) {
			out = append(out, fmt.Sprint(a))
		}
	}
	return out
}

// runTiering runs the built orthanc-tiering with the rendered CronJob's
// args, its --url pointed at in (the jobs Service's place) and the
// administrator's credentials in the environment, as the CronJob's Secret refs give them.
func runTiering(t *testing.T, s *orthanc.Stack, in *orthanctest.Instance, rendered []string, extra ...string) (int, string, string) {
	t.Helper()
	require.Equal(t, "/usr/local/bin/orthanc-tiering", rendered[0])
	var args []string
	for _, a := range rendered[1:] {
		if strings.HasPrefix(a, "--url=") {
			require.Equal(t, "--url=http://"+orthanc.Fullname+"-jobs:8042", a, "the CronJob calls the jobs instance")
			a = "--url=" + in.URL
		}
		args = append(args, a)
	}
	cmd := exec.Command(orthanc.Tool(t, "orthanc-tiering"), append(args, extra...)...)
	cmd.Env = []string{"ORTHANC_TIERING_USER=" + s.AdminUser, "ORTHANC_TIERING_PASSWORD=" + s.AdminPassword}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return code, stdout.String(), stderr.String()
}

// TestTieringOnRealOrthanc runs orthanc-tiering, with the args the chart's
// CronJob renders, against a real Orthanc 1.10.1 (rendered configuration,
// PostgreSQL index) holding studies of known StudyDates:
//   - the selection and its paging (--dry-run): exactly the studies dated
//     more than ageDays days ago, each once, in ceil(old/batchSize) batches;
//   - without the S3 plugin, /move-storage is absent: exit 2, an error naming
//     the plugin, and nothing moved (no job, every file still on the volume).
//
// The /move-storage jobs themselves are covered by the contract test in
// cmd/orthanc-tiering (the plugin is not packaged for Debian).
func TestTieringOnRealOrthanc(t *testing.T) {
	orthanctest.Require(t)
	s := orthanc.Provision(t, pgtest.Shared(t), "e2e-tiering", map[string]any{"storage": map[string]any{"type": "filesystem"}, "replicaCount": 1})
	storageDir := filepath.Join(t.TempDir(), "storage")
	in := s.StartReplica(t, "web", orthanc.Fullname+"-tiering-web", storageDir)

	const ageDays = 30
	today := time.Now().UTC()
	day := func(daysAgo int) string { return today.AddDate(0, 0, -daysAgo).Format("20060102") }
	// Study n -> StudyDate. Old: more than 30 days ago (31 is the first old day). Recent: 0 to 30 days ago.
	dates := map[int]string{1: day(31), 2: day(100), 3: day(400), 4: day(3000), 5: "19991231", 6: day(0), 7: day(29), 8: day(30), 9: day(45)}
	old := map[int]bool{1: true, 2: true, 3: true, 4: true, 5: true, 9: true}
	var wantOld []string
	for n := 1; n <= len(dates); n++ {
		for i := 1; i <= 2; i++ {
			_, err := in.Upload(orthanctest.DicomFile(orthanctest.DicomSpec{Run: "tiering", Study: n, Instance: i, StudyDate: dates[n]}))
			require.NoError(t, err)
		}
		if old[n] {
			wantOld = append(wantOld, orthanctest.UID("tiering", "study", n)+"@"+dates[n])
		}
	}
	sort.Strings(wantOld)
	filesBefore := filesUnder(t, storageDir)
	require.Equal(t, 18, filesBefore)

	rendered := tieringCommand(t, map[string]any{"ageDays": ageDays, "batchSize": 4, "concurrency": 2})
	assert.Contains(t, rendered, "--age-days=30")
	assert.Contains(t, rendered, "--batch-size=4")

	t.Run("selection and paging", func(t *testing.T) {
		code, stdout, stderr := runTiering(t, s, in, rendered, "--dry-run")
		require.Equal(t, 0, code, stderr)
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
			var st struct{ ID, StudyInstanceUID, StudyDate string }
			require.NoError(t, json.Unmarshal([]byte(l), &st), l)
			got = append(got, st.StudyInstanceUID+"@"+st.StudyDate)
		}
		sort.Strings(got)
		assert.Equal(t, wantOld, got, "exactly the studies dated more than %d days ago, each once", ageDays)
		assert.Equal(t, 2, strings.Count(stderr, `"msg":"batch done"`), "6 old studies in pages of 4: 2 batches\n%s", stderr)
		assert.Contains(t, stderr, "/move-storage", "the dry run warns that the plugin is missing")

		// Pages of 1 list the same studies.
		code, stdout1, stderr := runTiering(t, s, in, rendered, "--dry-run", "--batch-size=1")
		require.Equal(t, 0, code, stderr)
		assert.Equal(t, len(wantOld), strings.Count(stdout1, "\n"))
		assert.Equal(t, len(wantOld), strings.Count(stderr, `"msg":"batch done"`))
		t.Logf("%d studies (%d old, %d recent); selected %d in 2 pages of <=4 and in %d pages of 1", len(dates), len(old), len(dates)-len(old), len(got), len(wantOld))
	})

	t.Run("no S3 plugin: exit 2, nothing moved", func(t *testing.T) {
		code, stdout, stderr := runTiering(t, s, in, rendered)
		assert.Equal(t, 2, code, stderr)
		assert.Contains(t, stderr, "AWS S3 storage plugin (libOrthancAwsS3Storage) is not loaded")
		assert.Contains(t, stderr, "loaded plugins:")
		assert.Contains(t, stderr, "nothing was moved")
		assert.Empty(t, stdout)
		var jobs []string
		_, err := in.GetJSON("/jobs", &jobs)
		require.NoError(t, err)
		assert.Empty(t, jobs, "no job was submitted")
		assert.Equal(t, filesBefore, filesUnder(t, storageDir), "every file is still on the volume")
		st, err := in.Stats()
		require.NoError(t, err)
		assert.Equal(t, 18, st.CountInstances)
		t.Logf("refusal: %s", lastLine(stderr))
	})
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
