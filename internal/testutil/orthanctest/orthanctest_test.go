package orthanctest_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/testutil/orthanctest"
	"github.com/kommons/kommons/internal/testutil/pgtest"
)

func TestMain(m *testing.M) {
	orthanctest.EnterPrivateNetwork()
	pgtest.Main(m)
}

func TestUIDsAreDeterministicDistinctAndValid(t *testing.T) {
	seen := map[string]bool{}
	for _, kind := range []string{"study", "series", "sop"} {
		for n := 1; n <= 50; n++ {
			u := orthanctest.UID("r1", kind, n)
			assert.Equal(t, u, orthanctest.UID("r1", kind, n), "same inputs, same UID")
			assert.LessOrEqual(t, len(u), 64, "UI values are at most 64 bytes")
			assert.Regexp(t, `^2\.25\.(0|[1-9][0-9]*)$`, u)
			assert.False(t, seen[u], "UID %s repeated", u)
			seen[u] = true
		}
	}
	assert.NotEqual(t, orthanctest.UID("r1", "sop", 1), orthanctest.UID("r2", "sop", 1), "the run namespaces UIDs")
}

func TestInstanceIsPart10ExplicitLittleEndian(t *testing.T) {
	spec := orthanctest.DicomSpec{Run: "fmt", Study: 2, Instance: 3, Size: 9}
	f := orthanctest.DicomFile(spec)
	assert.Equal(t, f, orthanctest.DicomFile(spec), "deterministic bytes")
	require.Greater(t, len(f), 132)
	assert.Equal(t, make([]byte, 128), f[:128], "preamble")
	assert.Equal(t, "DICM", string(f[128:132]))
	assert.Equal(t, []byte{0x02, 0x00, 0x00, 0x00, 'U', 'L', 4, 0}, f[132:140], "(0002,0000) UL group length first")
	assert.Contains(t, string(f), "1.2.840.10008.1.2.1\x00", "transfer syntax Explicit VR Little Endian, NUL-padded")
	assert.Zero(t, len(f)%2, "every element has even length")
	// Size 9: 81 bytes of pixels, padded to 82, at the very end.
	assert.Equal(t, []byte{0xE0, 0x7F, 0x10, 0x00, 'O', 'B', 0, 0, 82, 0, 0, 0}, f[len(f)-82-12:len(f)-82])
}

func TestMapPluginsRejectsMissingLibrary(t *testing.T) {
	cfg := map[string]any{"Plugins": []any{"/usr/share/orthanc/plugins-available/libNope.so"}}
	err := orthanctest.MapPlugins(cfg, t.TempDir())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Plugins[0]")
	assert.Contains(t, err.Error(), "libNope.so")
}

// TestOrthancParsesGeneratedFilesAndStopsByPID runs a real Orthanc (SQLite
// index, files on disk): the generated file is accepted, its tags read back,
// its bytes returned unchanged, and Stop ends the process.
func TestOrthancParsesGeneratedFilesAndStopsByPID(t *testing.T) {
	orthanctest.Require(t)
	dir := t.TempDir()
	in := orthanctest.Start(t, orthanctest.Options{
		Config: map[string]any{
			"Name": "harness", "StorageDirectory": filepath.Join(dir, "storage"), "DicomServerEnabled": false,
			"RemoteAccessAllowed": true, "AuthenticationEnabled": true,
			"RegisteredUsers": map[string]any{"${U}": "${P}"},
		},
		Env: []string{"U=alice", "P=s3cret"}, Dir: dir, User: "alice", Password: "s3cret",
	})
	spec := orthanctest.DicomSpec{Run: "harness", Study: 4, Instance: 2}
	file := orthanctest.DicomFile(spec)
	r, err := in.Upload(file)
	require.NoError(t, err)
	assert.Equal(t, "Success", r.Status)

	var tags map[string]any
	_, err = in.GetJSON("/instances/"+r.ID+"/simplified-tags", &tags)
	require.NoError(t, err)
	assert.Equal(t, orthanctest.PatientID("harness", 4), tags["PatientID"])
	assert.Equal(t, spec.SOPInstanceUID(), tags["SOPInstanceUID"])
	assert.Equal(t, "2", tags["InstanceNumber"])

	code, back, err := in.Do(http.MethodGet, "/instances/"+r.ID+"/file", "", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	assert.True(t, bytes.Equal(file, back), "downloaded file differs from the upload")

	// ${VAR} substitution fed the credentials: a wrong password is refused.
	req, err := http.NewRequest(http.MethodGet, in.URL+"/system", nil)
	require.NoError(t, err)
	req.SetBasicAuth("alice", "wrong")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	pid := in.PID()
	in.Stop()
	assert.False(t, in.Running())
	assert.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "process %d still exists after Stop", pid)
}

// TestConnectionURIFromLibpqEnvironment checks the chart's connection
// design on the real PostgreSQL plugin: "ConnectionUri": "postgresql://"
// leaves host, port, user, password, database and sslmode to libpq's PG*
// environment variables, so no connection fact is written in orthanc.json.
func TestConnectionURIFromLibpqEnvironment(t *testing.T) {
	orthanctest.Require(t)
	pg := pgtest.Shared(t)
	db := pg.NewDatabase(t, "orthanc_uri")
	dir := t.TempDir()
	env := []string{
		"PGHOST=127.0.0.1", "PGPORT=" + strconv.Itoa(pg.Port()), "PGUSER=" + pgtest.AdminUser,
		"PGPASSWORD=" + pg.AdminPassword(), "PGDATABASE=" + db, "PGSSLMODE=disable",
	}
	in := orthanctest.Start(t, orthanctest.Options{
		Config: map[string]any{
			"Name": "uri", "StorageDirectory": filepath.Join(dir, "storage"), "DicomServerEnabled": false,
			"RemoteAccessAllowed": true, "AuthenticationEnabled": true, "RegisteredUsers": map[string]any{"a": "b"},
			"Plugins":    []any{"/anywhere/libOrthancPostgreSQLIndex.so"},
			"PostgreSQL": map[string]any{"EnableIndex": true, "EnableStorage": false, "ConnectionUri": "postgresql://", "Lock": false},
		},
		Env: env, Dir: dir, User: "a", Password: "b",
	})
	var sys map[string]any
	_, err := in.GetJSON("/system", &sys)
	require.NoError(t, err)
	assert.Contains(t, toJSON(sys["DatabaseBackendPlugin"]), "PostgreSQLIndex", "/system names the PostgreSQL index plugin")
	_, err = in.Upload(orthanctest.DicomFile(orthanctest.DicomSpec{Run: "uri", Study: 1, Instance: 1}))
	require.NoError(t, err)
	conn := pgtest.Connect(t, pg.DSN(pgtest.AdminUser, pg.AdminPassword(), db))
	var n int
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT count(*) FROM resources WHERE resourcetype = 3").Scan(&n))
	assert.Equal(t, 1, n, "the instance is indexed in the database named by PGDATABASE")
}

func toJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestStudyDateIsWritten(t *testing.T) {
	def := orthanctest.DicomFile(orthanctest.DicomSpec{Run: "date", Study: 1, Instance: 1})
	assert.True(t, bytes.Contains(def, []byte("20260101")), "default StudyDate")
	f := orthanctest.DicomFile(orthanctest.DicomSpec{Run: "date", Study: 1, Instance: 1, StudyDate: "19991231"})
	assert.True(t, bytes.Contains(f, []byte{0x08, 0x00, 0x20, 0x00, 'D', 'A', 8, 0, '1', '9', '9', '9', '1', '2', '3', '1'}), "(0008,0020) DA 19991231")
	assert.False(t, bytes.Contains(f, []byte("20260101")))
}

func TestDumpValues(t *testing.T) {
	dump := "I: (0008,0052) CS [STUDY ]                                  #   6, 1 QueryRetrieveLevel\n" +
		"I: (0020,000d) UI [1.2.3]                                 #   6, 1 StudyInstanceUID\n" +
		"I: (0020,000D) UI [1.2.4\x00]                             #   6, 1 StudyInstanceUID\n"
	assert.Equal(t, []string{"1.2.3", "1.2.4"}, orthanctest.DumpValues(dump, "0020,000d"))
	assert.Equal(t, []string{"STUDY"}, orthanctest.DumpValues(dump, "0008,0052"))
	assert.Empty(t, orthanctest.DumpValues(dump, "0010,0020"))
}
