package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeOrthanc replays the answers Orthanc and the AWS S3 storage plugin
// document for the calls orthanc-tiering makes: GET /system, GET /plugins,
// POST /tools/find (StudyDate range, Expand, Limit, Since), POST
// /move-storage (asynchronous: {"ID", "Path"}) and GET /jobs/{id}, whose
// State goes Pending, Running, then Success, or Failure with ErrorCode,
// ErrorDescription and ErrorDetails as Orthanc's job API reports them. It is
// a contract, not the plugin: the real plugin is not packaged here (see
// docs/orthanc.md for what ran against a real Orthanc).
type fakeOrthanc struct {
	t            *testing.T
	studies      []Study
	moveStorage  bool            // the plugin is loaded
	failStudies  map[string]bool // studies whose job ends in Failure
	forgetJobs   bool            // /jobs/{id} answers 404 (another process)
	mu           sync.Mutex
	finds        []map[string]any
	moves        []map[string]any
	polls        map[string][]string // job -> states answered
	jobStudy     map[string]string
	active, peak int
	done         map[string]bool
}

func newFake(t *testing.T, studies []Study) *fakeOrthanc {
	return &fakeOrthanc{t: t, studies: studies, moveStorage: true, failStudies: map[string]bool{},
		polls: map[string][]string{}, jobStudy: map[string]string{}, done: map[string]bool{}}
}

// serve starts the fake on a local port until the test ends.
func (f *fakeOrthanc) serve() *httptest.Server {
	srv := httptest.NewServer(f)
	f.t.Cleanup(srv.Close)
	return srv
}

func (f *fakeOrthanc) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if u, p, ok := r.BasicAuth(); !ok || u != "admin" || p != "secret" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	reply := func(v any) { _ = json.NewEncoder(w).Encode(v) }
	var body map[string]any
	if r.Method == http.MethodPost {
		require.NoError(f.t, json.NewDecoder(r.Body).Decode(&body), r.URL.Path)
		assert.Equal(f.t, "application/json", r.Header.Get("Content-Type"))
	}
	switch {
	case r.URL.Path == "/system" && r.Method == http.MethodGet:
		reply(map[string]any{"Name": "fake", "Version": "1.12.9"})
	case r.URL.Path == "/plugins" && r.Method == http.MethodGet:
		if f.moveStorage {
			reply([]string{"AWS S3 Storage", "postgresql-index"})
		} else {
			reply([]string{"postgresql-index"})
		}
	case r.URL.Path == "/tools/find" && r.Method == http.MethodPost:
		f.finds = append(f.finds, body)
		q := body["Query"].(map[string]any)
		last := strings.TrimPrefix(q["StudyDate"].(string), "-")
		var match []map[string]any
		for _, s := range f.studies {
			if s.StudyDate <= last {
				match = append(match, map[string]any{"ID": s.ID, "Type": "Study",
					"MainDicomTags": map[string]string{"StudyDate": s.StudyDate, "StudyInstanceUID": s.StudyInstanceUID}})
			}
		}
		since, limit := int(body["Since"].(float64)), int(body["Limit"].(float64))
		if since > len(match) {
			since = len(match)
		}
		end := len(match)
		if limit > 0 && since+limit < end {
			end = since + limit
		}
		reply(match[since:end])
	case r.URL.Path == "/move-storage" && !f.moveStorage:
		w.WriteHeader(http.StatusNotFound) // Orthanc: URI nobody registered
		reply(map[string]any{"HttpError": "Not Found", "HttpStatus": 404, "Message": "Unknown resource", "OrthancError": "Unknown resource", "OrthancStatus": 17})
	case r.URL.Path == "/move-storage" && r.Method != http.MethodPost:
		w.WriteHeader(http.StatusMethodNotAllowed) // the plugin's route is POST-only
	case r.URL.Path == "/move-storage":
		f.moves = append(f.moves, body)
		id := fmt.Sprintf("job-%02d", len(f.moves))
		res := body["Resources"].([]any)
		f.jobStudy[id] = res[0].(string)
		f.active++
		if f.active > f.peak {
			f.peak = f.active
		}
		reply(map[string]any{"ID": id, "Path": "/jobs/" + id})
	case strings.HasPrefix(r.URL.Path, "/jobs/") && r.Method == http.MethodGet:
		id := strings.TrimPrefix(r.URL.Path, "/jobs/")
		study, ok := f.jobStudy[id]
		if !ok || f.forgetJobs {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		n := len(f.polls[id])
		state := []string{"Pending", "Running", "Success"}[min(n, 2)]
		if state == "Success" && f.failStudies[study] {
			state = "Failure"
		}
		f.polls[id] = append(f.polls[id], state)
		job := map[string]any{"ID": id, "State": state, "Type": "MoveStorage", "Progress": []int{0, 50, 100}[min(n, 2)],
			"ErrorCode": 0, "ErrorDescription": "Success", "ErrorDetails": "", "Priority": 0}
		if state == "Failure" {
			job["ErrorCode"], job["ErrorDescription"], job["ErrorDetails"] = 1, "Internal error", "Error while writing to object storage"
		}
		if (state == "Success" || state == "Failure") && !f.done[id] {
			f.done[id] = true
			f.active--
		}
		reply(job)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// The clock of the tests: 2026-12-07, so --age-days=30 selects StudyDate < 20261107.
var testNow = time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)

func contractStudies() []Study {
	return []Study{
		{ID: "s-old-1", StudyInstanceUID: "1.1", StudyDate: "20200101"},
		{ID: "s-new-1", StudyInstanceUID: "1.2", StudyDate: "20261201"},
		{ID: "s-old-2", StudyInstanceUID: "1.3", StudyDate: "20261106"}, // the last day selected
		{ID: "s-edge", StudyInstanceUID: "1.4", StudyDate: "20261107"},  // the cutoff itself: kept
		{ID: "s-old-3", StudyInstanceUID: "1.5", StudyDate: "20251231"},
	}
}

func runTool(t *testing.T, srv *httptest.Server, extra ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	args := append([]string{"--url=" + srv.URL, "--user=admin", "--password=secret", "--age-days=30",
		"--batch-size=2", "--concurrency=2", "--poll-interval=20ms", "--log-format=json"}, extra...)
	code := runAt(context.Background(), args, &out, &errb, testNow)
	return code, out.String(), errb.String()
}

// TestContractMoveStorageJobs checks the request/response contract against
// the replayed plugin answers: the selection query and paging, the exact
// /move-storage body, each job followed Pending -> Running -> Success, a
// Failure reported with Orthanc's error, the concurrency bound, the exit code.
func TestContractMoveStorageJobs(t *testing.T) {
	f := newFake(t, contractStudies())
	f.failStudies["s-old-3"] = true
	srv := f.serve()

	code, _, logs := runTool(t, srv)
	assert.Equal(t, exitFailures, code, logs)

	// Selection: StudyDate range up to the day before the cutoff, pages of 2 until a short page.
	require.Len(t, f.finds, 2, "3 old studies in pages of 2: a full page then a short one")
	for i, q := range f.finds {
		assert.Equal(t, "Study", q["Level"])
		assert.Equal(t, map[string]any{"StudyDate": "-20261106"}, q["Query"])
		assert.Equal(t, true, q["Expand"])
		assert.Equal(t, float64(2), q["Limit"])
		assert.Equal(t, float64(2*i), q["Since"])
	}
	// One job per old study, with the documented body.
	var moved []string
	for _, m := range f.moves {
		assert.Equal(t, "object-storage", m["TargetStorage"])
		assert.Equal(t, true, m["Asynchronous"])
		assert.Equal(t, float64(0), m["Priority"])
		res := m["Resources"].([]any)
		require.Len(t, res, 1)
		moved = append(moved, res[0].(string))
	}
	assert.ElementsMatch(t, []string{"s-old-1", "s-old-2", "s-old-3"}, moved)
	// Every job followed to its end.
	for id, states := range f.polls {
		want := []string{"Pending", "Running", "Success"}
		if f.jobStudy[id] == "s-old-3" {
			want = []string{"Pending", "Running", "Failure"}
		}
		assert.Equal(t, want, states, id)
	}
	assert.Equal(t, 2, f.peak, "at most --concurrency jobs in flight, and that many used")
	assert.Zero(t, f.active, "no job left unfollowed")

	// Logs: one progress line per batch, the failure with Orthanc's error, the final report.
	lines := logLines(t, logs)
	var batches int
	var final, failure map[string]any
	for _, l := range lines {
		switch l["msg"] {
		case "batch done":
			batches++
		case "tiering done":
			final = l
		case "study not moved":
			failure = l
		}
	}
	assert.Equal(t, 2, batches)
	require.NotNil(t, final, logs)
	assert.Equal(t, float64(3), final["selected"])
	assert.Equal(t, float64(2), final["moved"])
	assert.Equal(t, float64(1), final["failed"])
	require.NotNil(t, failure, logs)
	assert.Equal(t, "s-old-3", failure["study"])
	assert.Contains(t, failure["error"], "Error while writing to object storage")
	assert.NotContains(t, logs, "secret", "the password is never logged")

	// A second run submits the same moves again (idempotent: the plugin skips files already there).
	f.failStudies = map[string]bool{}
	code, _, logs = runTool(t, srv)
	assert.Equal(t, exitOK, code, logs)
	assert.Len(t, f.moves, 6)
}

// TestContractNoMoveStorage: without the plugin Orthanc answers 404 on
// /move-storage; the run stops before listing or moving anything.
func TestContractNoMoveStorage(t *testing.T) {
	f := newFake(t, contractStudies())
	f.moveStorage = false
	srv := f.serve()
	code, out, logs := runTool(t, srv)
	assert.Equal(t, exitPermanent, code)
	assert.Contains(t, logs, "AWS S3 storage plugin")
	assert.Contains(t, logs, "loaded plugins: postgresql-index")
	assert.Empty(t, f.moves)
	assert.Empty(t, f.finds)
	assert.Empty(t, out)

	// A dry run still lists (and warns).
	code, out, logs = runTool(t, srv, "--dry-run")
	assert.Equal(t, exitOK, code, logs)
	assert.Empty(t, f.moves)
	var ids []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var s Study
		require.NoError(t, json.Unmarshal([]byte(l), &s), l)
		ids = append(ids, s.ID)
	}
	assert.ElementsMatch(t, []string{"s-old-1", "s-old-2", "s-old-3"}, ids)
}

// TestContractUnknownJob: a job the answering Orthanc does not know (GET
// /jobs/{id} 404: --url spreads over several processes) is a failure naming the cause.
func TestContractUnknownJob(t *testing.T) {
	f := newFake(t, contractStudies())
	f.forgetJobs = true
	srv := f.serve()
	code, _, logs := runTool(t, srv)
	assert.Equal(t, exitFailures, code)
	assert.Contains(t, logs, "unknown to this Orthanc")
}

// TestContractInterrupted: a cancelled run submits nothing more and reports
// the jobs left running in Orthanc.
func TestContractInterrupted(t *testing.T) {
	f := newFake(t, contractStudies())
	srv := f.serve()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb bytes.Buffer
	tr := &Tiering{Client: NewClient(srv.URL, "admin", "secret", time.Minute), AgeDays: 30, BatchSize: 2, Concurrency: 1,
		Target: "object-storage", JobTimeout: time.Minute, Poll: time.Hour, Log: slog.New(slog.NewJSONHandler(&errb, nil)), Out: &out,
		Now: func() time.Time { return testNow }}
	go func() {
		for {
			f.mu.Lock()
			n := len(f.moves)
			f.mu.Unlock()
			if n > 0 {
				cancel()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	r, err := tr.Run(ctx)
	require.NoError(t, err)
	assert.Len(t, f.moves, 1, "nothing submitted after the interruption")
	assert.Equal(t, []string{"job-01"}, r.Abandoned)
	assert.Zero(t, r.Moved)
	assert.Empty(t, r.Failed)
}

// TestFlags: invalid values exit 2 before any request.
func TestFlags(t *testing.T) {
	for _, args := range [][]string{{}, {"--url=ftp://x"}, {"--url=http://x", "--batch-size=0"}, {"--url=http://x", "--target-storage=tape"}} {
		var out, errb bytes.Buffer
		assert.Equal(t, exitPermanent, run(context.Background(), args, &out, &errb), args)
		assert.Contains(t, errb.String(), "see --help")
	}
	var out, errb bytes.Buffer
	assert.Equal(t, exitOK, run(context.Background(), []string{"--help"}, &out, &errb))
	assert.Contains(t, errb.String(), "ORTHANC_TIERING_PASSWORD")
}

func logLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), l)
		out = append(out, m)
	}
	return out
}
