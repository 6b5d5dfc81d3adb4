package outcome

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRecordRoutesPrunedObjects(t *testing.T) {
	var r Report
	r.Record(Result{Kind: "role", Physical: "a", Action: Created})
	r.Record(Result{Kind: "role", Physical: "old", Action: Deleted})
	r.Record(Result{Kind: "database", Physical: "kept", Action: Retained, Reason: "reclaimPolicy retain"})
	require.Len(t, r.Objects, 1)
	require.Len(t, r.Pruned, 2)
	assert.Equal(t, 1, r.Count(Created))
	assert.Equal(t, 1, r.Count(Deleted))
	assert.Equal(t, 1, r.Count(Retained))
	assert.Equal(t, 0, r.Count(Updated))
	o, ok := r.Find("role", "a")
	require.True(t, ok)
	assert.Equal(t, Created, o.Action)
	_, ok = r.Find("role", "old")
	assert.False(t, ok, "Find looks at the spec's objects, not the pruned ones")
}

func TestRecordMergesARetriedAttempt(t *testing.T) {
	var r Report
	// Attempt 1 created the bucket and set its policy, then failed later;
	// attempt 2 found it in place but fixed a tag.
	r.Record(Result{Kind: "bucket", Physical: "b", Action: Created, Changes: []string{"policy"}})
	r.Record(Result{Kind: "bucket", Physical: "b", Action: Updated, Changes: []string{"policy", "tag"}})
	require.Len(t, r.Objects, 1)
	assert.Equal(t, Created, r.Objects[0].Action, "the strongest action wins")
	assert.Equal(t, []string{"policy", "tag"}, r.Objects[0].Changes, "changes are the union, in order")

	// Unchanged in attempt 1, changes seen in attempt 2: updated.
	r.Record(Result{Kind: "user", Physical: "u", Action: Unchanged})
	r.Record(Result{Kind: "user", Physical: "u", Action: Unchanged, Changes: []string{"secret key"}})
	o, _ := r.Find("user", "u")
	assert.Equal(t, Updated, o.Action)

	// The same name in two databases is two objects.
	r.Record(Result{Kind: "extension", Physical: "pg_trgm", Database: "d1", Action: Created})
	r.Record(Result{Kind: "extension", Physical: "pg_trgm", Database: "d2", Action: Unchanged})
	assert.Len(t, r.Objects, 4)
}

func TestLogOneLinePerObject(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	Log(log, Result{Kind: "database", Name: "orthanc", Physical: "imaging_orthanc", Action: Updated, Changes: []string{"marker", "GRANT CONNECT to owner"}})
	Log(log, Result{Kind: "schema", Name: "s", Physical: "s", Database: "imaging_orthanc", Action: Refused, Reason: "owned by x"})
	Log(log, Result{Kind: "role", Name: "gone", Physical: "imaging_gone", Action: Deleted})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 3)
	var rec []map[string]any
	for _, l := range lines {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m))
		rec = append(rec, m)
	}
	assert.Equal(t, "INFO", rec[0]["level"])
	assert.Equal(t, "database updated", rec[0]["msg"])
	assert.Equal(t, "marker, GRANT CONNECT to owner", rec[0]["changes"])
	assert.NotContains(t, rec[0], "database", "no empty attributes")
	assert.NotContains(t, rec[0], "reason")
	assert.Equal(t, "WARN", rec[1]["level"])
	assert.Equal(t, "imaging_orthanc", rec[1]["database"])
	assert.Equal(t, "owned by x", rec[1]["reason"])
	assert.Equal(t, "WARN", rec[2]["level"], "a deletion is worth a warning")
}

func TestConflictErrorNamesEveryObject(t *testing.T) {
	err := &ConflictError{Refused: []Result{
		{Kind: "role", Physical: "imaging_orthanc", Reason: "it carries no marker"},
		{Kind: "schema", Physical: "audit", Database: "imaging_orthanc", Reason: "owned by bob"},
	}}
	assert.Equal(t, "ownership conflict: role imaging_orthanc: it carries no marker; schema audit in database imaging_orthanc: owned by bob", err.Error())
}
