package orthanc_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/testutil/orthanctest"
	"github.com/kommons/kommons/internal/testutil/pgtest"
	"github.com/kommons/kommons/internal/testutil/toolcache"
	"github.com/kommons/kommons/test/e2e/orthanc"
)

func TestMain(m *testing.M) {
	orthanctest.EnterPrivateNetwork()
	pgtest.Main(m, orthanc.RemoveTools)
}

// upload is one planned upload: which file goes to which replica.
type upload struct {
	spec   orthanctest.DicomSpec
	target int
}

// uploadAll sends every planned upload with `parallel` workers per replica,
// all replicas at the same time, and returns the statuses by SOP Instance UID.
func uploadAll(t *testing.T, replicas []*orthanctest.Instance, plan []upload, parallel int) map[string][]orthanctest.UploadResult {
	t.Helper()
	var mu sync.Mutex
	results := map[string][]orthanctest.UploadResult{}
	var errs []error
	retries := 0
	var wg sync.WaitGroup
	for r := range replicas {
		queue := make(chan orthanctest.DicomSpec)
		for w := 0; w < parallel; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for spec := range queue {
					res, retried, err := replicas[r].UploadRetrying(orthanctest.DicomFile(spec), 20)
					mu.Lock()
					retries += retried
					if err != nil {
						errs = append(errs, err)
					} else {
						results[spec.SOPInstanceUID()] = append(results[spec.SOPInstanceUID()], res)
					}
					mu.Unlock()
				}
			}()
		}
		go func() {
			for _, u := range plan {
				if u.target == r {
					queue <- u.spec
				}
			}
			close(queue)
		}()
	}
	wg.Wait()
	require.Empty(t, errs, "uploads failed")
	t.Logf("%d uploads, %d retried after HTTP 503 (PostgreSQL serialization failure)", len(plan), retries)
	return results
}

func countRows(t *testing.T, s *orthanc.Stack, query string) int {
	t.Helper()
	conn := pgtest.Connect(t, s.PG.DSN(s.Role, s.RolePassword, s.Database))
	var n int
	require.NoError(t, conn.QueryRow(context.Background(), query).Scan(&n), query)
	return n
}

func filesUnder(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			n++
		}
		return nil
	})
	require.NoError(t, err)
	return n
}

// runProbe runs the rendered readiness probe command as the kubelet would
// (exec in the container, with the container's environment), with the
// ConfigMap's probe.py and the replica's port.
func runProbe(t *testing.T, s *orthanc.Stack, in *orthanctest.Instance, env map[string]string) error {
	t.Helper()
	probe := orthancProbe(t, s)
	dir := t.TempDir()
	script := filepath.Join(dir, "probe.py")
	require.NoError(t, os.WriteFile(script, []byte(s.ConfigMapFile(t, "probe.py")), 0o600))
	args := make([]string, 0, len(probe))
	for _, a := range probe[1:] {
		a = strings.ReplaceAll(a, "/etc/orthanc/probe.py", script)
		a = strings.ReplaceAll(a, "127.0.0.1:8042", "127.0.0.1:"+strconv.Itoa(in.HTTPPort))
		args = append(args, a)
	}
	cmd := exec.Command(probe[0], args...)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

func orthancProbe(t *testing.T, s *orthanc.Stack) []string {
	t.Helper()
	c := s.OrthancContainer(t, "web")
	rp, _ := c["readinessProbe"].(map[string]any)
	ex, _ := rp["exec"].(map[string]any)
	raw, _ := ex["command"].([]any)
	require.NotEmpty(t, raw, "readinessProbe.exec.command")
	out := make([]string, len(raw))
	for i, a := range raw {
		out[i] = fmt.Sprint(a)
	}
	return out
}

// TestTwoReplicasOnOneIndex is the real-Orthanc check, for the two
// storage backends Debian can run (no S3 plugin is packaged).
func TestTwoReplicasOnOneIndex(t *testing.T) {
	for _, storage := range []string{"filesystem", "postgresql"} {
		t.Run(storage, func(t *testing.T) {
			orthanctest.Require(t)
			pg := pgtest.Shared(t)
			values := map[string]any{"storage": map[string]any{"type": storage}, "replicaCount": 2}
			s := orthanc.Provision(t, pg, "e2e-"+storage, values)

			// pg-init created the role and database; Orthanc owns its tables as that role.
			assert.Contains(t, string(s.PgInitOutput), s.Database, "pg-init --output=json names the database")
			assert.NotContains(t, string(s.PgInitOutput), s.RolePassword, "pg-init output carries no password")

			storageDir := filepath.Join(t.TempDir(), "storage") // one volume shared by both pods (ReadWriteMany)
			a := s.StartReplica(t, "web", orthanc.Fullname+"-7d9f8-aaaaa", storageDir)
			b := s.StartReplica(t, "web", orthanc.Fullname+"-7d9f8-bbbbb", storageDir)
			replicas := []*orthanctest.Instance{a, b}

			for _, in := range replicas {
				var sys map[string]any
				_, err := in.GetJSON("/system", &sys)
				require.NoError(t, err)
				assert.Contains(t, fmt.Sprint(sys["DatabaseBackendPlugin"]), "PostgreSQLIndex")
				if storage == "postgresql" {
					assert.Contains(t, fmt.Sprint(sys["StorageAreaPlugin"]), "PostgreSQLStorage")
				} else {
					assert.Nil(t, sys["StorageAreaPlugin"], "EnableStorage false: Orthanc's own file storage")
				}
				assert.Equal(t, true, sys["CheckRevisions"], "CheckRevisions from the rendered config")
			}
			assert.Equal(t, 1, countRows(t, s, fmt.Sprintf(
				"SELECT count(*) FROM pg_tables WHERE tablename = 'resources' AND tableowner = '%s'", s.Role)),
				"Orthanc created its schema as the provisioned role")

			// 3 studies x 20 instances, each study split across both replicas: concurrent writes into the same series.
			const studies, perStudy = 3, 20
			var plan []upload
			for st := 1; st <= studies; st++ {
				for i := 1; i <= perStudy; i++ {
					plan = append(plan, upload{orthanctest.DicomSpec{Run: "e2e-" + storage, Study: st, Instance: i}, i % 2})
				}
			}
			results := uploadAll(t, replicas, plan, 4)
			require.Len(t, results, studies*perStudy)
			for uid, rs := range results {
				require.Len(t, rs, 1, uid)
				assert.Equal(t, "Success", rs[0].Status, uid)
			}

			// The same 10 files raced to both replicas: one stores, the other finds it stored.
			var race []upload
			for i := 1; i <= 10; i++ {
				spec := orthanctest.DicomSpec{Run: "race-" + storage, Study: 9, Instance: i}
				race = append(race, upload{spec, 0}, upload{spec, 1})
			}
			raced := uploadAll(t, replicas, race, 4)
			require.Len(t, raced, 10)
			for uid, rs := range raced {
				require.Len(t, rs, 2, uid)
				statuses := []string{rs[0].Status, rs[1].Status}
				assert.ElementsMatch(t, []string{"Success", "AlreadyStored"}, statuses, uid)
				assert.Equal(t, rs[0].ID, rs[1].ID, "both replicas name the instance alike")
			}

			total := studies*perStudy + 10
			for _, in := range replicas {
				st, err := in.Stats()
				require.NoError(t, err)
				assert.Equal(t, orthanctest.Statistics{CountPatients: studies + 1, CountStudies: studies + 1, CountSeries: studies + 1, CountInstances: total}, st, in.Name)
			}

			// Byte-identical download from the replica that did not receive the file.
			for _, u := range plan {
				res := results[u.spec.SOPInstanceUID()][0]
				other := replicas[1-u.target]
				code, body, err := other.Do(http.MethodGet, "/instances/"+res.ID+"/file", "", nil)
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, code)
				require.True(t, bytes.Equal(orthanctest.DicomFile(u.spec), body), "instance %s differs when read from the other replica", res.ID)
			}

			// Rows in PostgreSQL; files where the storage backend puts them, and nowhere else.
			assert.Equal(t, total, countRows(t, s, "SELECT count(*) FROM resources WHERE resourcetype = 3"))
			assert.Equal(t, studies+1, countRows(t, s, "SELECT count(*) FROM resources WHERE resourcetype = 0"))
			assert.Equal(t, total, countRows(t, s, "SELECT count(*) FROM attachedfiles WHERE filetype = 1"), "one DICOM attachment per instance")
			storageArea := 0 // the storage plugin creates its table only when loaded
			if countRows(t, s, "SELECT count(*) FROM pg_tables WHERE tablename = 'storagearea'") > 0 {
				storageArea = countRows(t, s, "SELECT count(*) FROM storagearea")
			}
			largeObjects := countRows(t, s, "SELECT count(*) FROM pg_largeobject_metadata")
			if storage == "postgresql" {
				assert.Equal(t, countRows(t, s, "SELECT count(*) FROM attachedfiles"), storageArea, "every attachment in PostgreSQL's storage area")
				assert.Equal(t, storageArea, largeObjects)
				assert.Zero(t, filesUnder(t, storageDir), "EnableStorage true: nothing in the storage directory")
			} else {
				assert.Zero(t, storageArea, "EnableStorage false: nothing in PostgreSQL's storage area")
				assert.Zero(t, largeObjects, "EnableStorage false: no large objects")
				assert.Equal(t, countRows(t, s, "SELECT count(*) FROM attachedfiles"), filesUnder(t, storageDir), "one file per attachment in the shared volume")
			}

			t.Run("rendered readiness probe", func(t *testing.T) {
				if _, err := exec.LookPath("python3"); err != nil {
					toolcache.Missing(t, "python3, to run the chart's probe program", fmt.Errorf("%w (apt-get install python3)", err))
				}
				// It succeeds with the pod's credentials and fails without them.
				env := s.PodEnv(t, "web", "probe")
				assert.NoError(t, runProbe(t, s, a, env))
				env["ORTHANC_ADMIN_PASSWORD"] = "not-the-password"
				err := runProbe(t, s, a, env)
				require.Error(t, err)
				assert.Contains(t, err.Error(), "401")
				assert.NotContains(t, err.Error(), "not-the-password", "the probe never prints credentials")
			})

			for _, in := range replicas {
				assert.Empty(t, in.ErrorLines(), "E-level lines in %s's log", in.Name)
			}
		})
	}
}

// TestJobsInstanceConfig starts the distinguished jobs instance next to a web
// replica on one index: it alone listens for DICOM and lists the configured
// modalities; the web replica has none and no DICOM server.
func TestJobsInstanceConfig(t *testing.T) {
	orthanctest.Require(t)
	pg := pgtest.Shared(t)
	s := orthanc.Provision(t, pg, "e2e-jobs", map[string]any{
		"storage":      map[string]any{"type": "filesystem"},
		"jobsInstance": map[string]any{"enabled": true, "config": map[string]any{"DicomModalities": map[string]any{"scanner": []any{"SCANNER", "10.0.0.9", 104}}}},
	})
	storageDir := filepath.Join(t.TempDir(), "storage")
	web := s.StartReplica(t, "web", orthanc.Fullname+"-1-web", storageDir)
	jobs := s.StartReplica(t, "jobs", orthanc.Fullname+"-jobs-1-x", storageDir)

	var mods []string
	_, err := jobs.GetJSON("/modalities", &mods)
	require.NoError(t, err)
	assert.Equal(t, []string{"scanner"}, mods)
	_, err = web.GetJSON("/modalities", &mods)
	require.NoError(t, err)
	assert.Empty(t, mods)

	assert.Equal(t, true, s.OrthancConfig(t, "jobs")["DicomServerEnabled"])
	assert.Equal(t, false, s.OrthancConfig(t, "web")["DicomServerEnabled"])

	// Files ingested by the jobs instance are served by the web replica.
	spec := orthanctest.DicomSpec{Run: "jobs", Study: 1, Instance: 1}
	r, err := jobs.Upload(orthanctest.DicomFile(spec))
	require.NoError(t, err)
	// The index is shared and committed before the upload answers: no waiting.
	code, body, err := web.Do(http.MethodGet, "/instances/"+r.ID+"/file", "", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	assert.True(t, bytes.Equal(orthanctest.DicomFile(spec), body))
}

// TestLockWouldForbidASecondReplica shows why the chart renders
// PostgreSQL.Lock false: with the plugin's default (true) the first replica
// takes an exclusive advisory lock and a second one cannot start.
func TestLockWouldForbidASecondReplica(t *testing.T) {
	orthanctest.Require(t)
	s := orthanc.Provision(t, pgtest.Shared(t), "e2e-lock", map[string]any{"storage": map[string]any{"type": "filesystem"}})
	storageDir := filepath.Join(t.TempDir(), "storage")
	withLock := func(o orthanctest.Options) orthanctest.Options {
		pg := o.Config["PostgreSQL"].(map[string]any)
		require.Equal(t, false, pg["Lock"], "the chart renders Lock false")
		pg["Lock"] = true
		pg["MaximumConnectionRetries"] = 1
		pg["ConnectionRetryInterval"] = 1
		o.StartTimeout = 2 * time.Minute
		return o
	}
	first := withLock(s.ReplicaOptions(t, "web", orthanc.Fullname+"-lock-a", storageDir))
	_ = orthanctest.Start(t, first)
	second := withLock(s.ReplicaOptions(t, "web", orthanc.Fullname+"-lock-b", storageDir))
	in, err := orthanctest.TryStart(t, second)
	require.Error(t, err, "a second Orthanc started on a locked database")
	assert.Nil(t, in)
	assert.Contains(t, strings.ToLower(err.Error()), "lock", "the refusal names the lock")

	// A replica rendered by the chart (Lock false) does not take the lock and starts even beside it.
	_ = s.StartReplica(t, "web", orthanc.Fullname+"-lock-c", storageDir)
}
