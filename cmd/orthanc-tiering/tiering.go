package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Client calls Orthanc's REST API with HTTP basic authentication.
type Client struct {
	base, user, password string
	http                 *http.Client
}

// NewClient returns a Client of the Orthanc at base (http://host:port).
func NewClient(base, user, password string, timeout time.Duration) *Client {
	return &Client{base: strings.TrimSuffix(base, "/"), user: user, password: password, http: &http.Client{Timeout: timeout}}
}

// HTTPError is an answer other than 200 from Orthanc.
type HTTPError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %.300s", e.Method, e.Path, e.Status, strings.TrimSpace(e.Body))
}

// do sends a request (in, when not nil, as a JSON body) and decodes a 200
// answer into out (when not nil); any other status is an *HTTPError.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode: %w", method, path, err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if c.user != "" || c.password != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return &HTTPError{Method: method, Path: path, Status: resp.StatusCode, Body: string(data)}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode %.200q: %w", method, path, data, err)
		}
	}
	return nil
}

// Study is one study selected for tiering.
type Study struct {
	ID               string
	StudyInstanceUID string
	StudyDate        string
}

// Failure is a study whose move did not succeed.
type Failure struct {
	Study Study
	JobID string
	Error string
}

// Report is the outcome of a run.
type Report struct {
	// Cutoff is the first StudyDate NOT moved (YYYYMMDD): studies dated before it are selected.
	Cutoff string
	// Selected counts the studies listed; Moved those whose job succeeded.
	Selected, Moved, Batches int
	// Failed are the studies whose job failed, timed out or could not be submitted.
	Failed []Failure
	// Abandoned are the IDs of jobs still running in Orthanc when the run was interrupted.
	Abandoned []string
}

// ErrNoMoveStorage is returned when Orthanc does not serve /move-storage.
var ErrNoMoveStorage = errors.New("Orthanc does not serve POST /move-storage: the AWS S3 storage plugin (libOrthancAwsS3Storage) is not loaded, or runs without HybridMode; nothing was moved")

// Tiering is one run of the storage tiering.
type Tiering struct {
	Client *Client
	// AgeDays: studies whose StudyDate is more than AgeDays days before today (UTC) are moved.
	AgeDays int
	// BatchSize is the page size of /tools/find; Concurrency the jobs in flight.
	BatchSize, Concurrency int
	// Target is the TargetStorage of /move-storage.
	Target string
	// JobTimeout bounds one job; Poll is the interval of GET /jobs/{id}.
	JobTimeout, Poll time.Duration
	// DryRun lists the selection on Out and moves nothing.
	DryRun bool
	Log    *slog.Logger
	Out    io.Writer
	// Now is the clock (time.Now).
	Now func() time.Time
}

// Cutoff is the first StudyDate not selected: today (UTC) minus AgeDays.
func (t *Tiering) Cutoff() time.Time {
	now := t.Now().UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	return today.AddDate(0, 0, -t.AgeDays)
}

// Run checks Orthanc and the plugin, then lists and moves the old studies batch by batch.
func (t *Tiering) Run(ctx context.Context) (Report, error) {
	start := time.Now()
	cutoff := t.Cutoff()
	r := Report{Cutoff: cutoff.Format("20060102")}
	var sys struct{ Name, Version string }
	if err := t.Client.do(ctx, http.MethodGet, "/system", nil, &sys); err != nil {
		return r, fmt.Errorf("Orthanc unreachable or refusing: %w", err)
	}
	if err := t.checkMoveStorage(ctx); err != nil {
		if !t.DryRun || !errors.Is(err, ErrNoMoveStorage) {
			return r, err
		}
		t.Log.Warn("dry run: " + err.Error())
	}
	t.Log.Info("selecting studies", "orthanc", sys.Name, "version", sys.Version, "studyDateBefore", r.Cutoff,
		"ageDays", t.AgeDays, "batchSize", t.BatchSize, "concurrency", t.Concurrency, "targetStorage", t.Target, "dryRun", t.DryRun)
	enc := json.NewEncoder(t.Out)
	last := cutoff.AddDate(0, 0, -1).Format("20060102")
	for since := 0; ; {
		if ctx.Err() != nil {
			return r, nil
		}
		page, err := t.find(ctx, last, since)
		if err != nil {
			return r, err
		}
		if len(page) == 0 {
			break
		}
		since += len(page)
		r.Batches++
		var selected []Study
		for _, s := range page {
			if s.StudyDate == "" || s.StudyDate >= r.Cutoff || len(s.StudyDate) != 8 {
				t.Log.Warn("skipping a study Orthanc matched outside the range", "study", s.ID, "studyDate", s.StudyDate)
				continue
			}
			selected = append(selected, s)
		}
		r.Selected += len(selected)
		batchStart := time.Now()
		moved, failed := 0, 0
		if t.DryRun {
			for _, s := range selected {
				if err := enc.Encode(s); err != nil {
					return r, fmt.Errorf("write the selection: %w", err)
				}
			}
		} else {
			res := t.moveBatch(ctx, selected)
			moved, failed = res.Moved, len(res.Failed)
			r.Moved += res.Moved
			r.Failed = append(r.Failed, res.Failed...)
			r.Abandoned = append(r.Abandoned, res.Abandoned...)
		}
		t.Log.Info("batch done", "batch", r.Batches, "studies", len(selected), "moved", moved, "failed", failed,
			"totalSelected", r.Selected, "totalMoved", r.Moved, "totalFailed", len(r.Failed),
			"batchSeconds", roundSeconds(time.Since(batchStart)))
		if len(page) < t.BatchSize {
			break
		}
	}
	for _, f := range r.Failed {
		t.Log.Error("study not moved", "study", f.Study.ID, "studyInstanceUID", f.Study.StudyInstanceUID, "job", f.JobID, "error", f.Error)
	}
	t.Log.Info("tiering done", "selected", r.Selected, "moved", r.Moved, "failed", len(r.Failed), "batches", r.Batches,
		"studyDateBefore", r.Cutoff, "dryRun", t.DryRun, "interrupted", ctx.Err() != nil, "seconds", roundSeconds(time.Since(start)))
	return r, nil
}

func roundSeconds(d time.Duration) float64 {
	return float64(d.Round(10*time.Millisecond)) / float64(time.Second)
}

// checkMoveStorage tells whether /move-storage exists: Orthanc answers 404
// for a URI nobody registered, the plugin answers a GET on its POST-only
// route otherwise (405). The error lists the plugins Orthanc loaded.
func (t *Tiering) checkMoveStorage(ctx context.Context) error {
	err := t.Client.do(ctx, http.MethodGet, "/move-storage", nil, nil)
	var he *HTTPError
	if err == nil || (errors.As(err, &he) && he.Status != http.StatusNotFound) {
		if he != nil && (he.Status == http.StatusUnauthorized || he.Status == http.StatusForbidden) {
			return fmt.Errorf("Orthanc refuses the credentials: %w", err)
		}
		return nil
	}
	if he == nil {
		return fmt.Errorf("probe /move-storage: %w", err)
	}
	var plugins []string
	if perr := t.Client.do(ctx, http.MethodGet, "/plugins", nil, &plugins); perr == nil {
		sort.Strings(plugins)
		return fmt.Errorf("%w (GET /move-storage: HTTP 404; loaded plugins: %s)", ErrNoMoveStorage, strings.Join(plugins, ", "))
	}
	return fmt.Errorf("%w (GET /move-storage: HTTP 404)", ErrNoMoveStorage)
}

// find lists one page of studies dated up to last (YYYYMMDD), from index since.
func (t *Tiering) find(ctx context.Context, last string, since int) ([]Study, error) {
	query := map[string]any{
		"Level":  "Study",
		"Query":  map[string]string{"StudyDate": "-" + last},
		"Expand": true,
		"Limit":  t.BatchSize,
		"Since":  since,
	}
	var found []struct {
		ID            string
		MainDicomTags map[string]string
	}
	if err := t.Client.do(ctx, http.MethodPost, "/tools/find", query, &found); err != nil {
		return nil, fmt.Errorf("list studies: %w", err)
	}
	out := make([]Study, 0, len(found))
	for _, f := range found {
		out = append(out, Study{ID: f.ID, StudyInstanceUID: f.MainDicomTags["StudyInstanceUID"], StudyDate: f.MainDicomTags["StudyDate"]})
	}
	return out, nil
}

// batchResult is the outcome of one batch.
type batchResult struct {
	Moved     int
	Failed    []Failure
	Abandoned []string
}

// moveBatch moves the studies, one job each, Concurrency at a time.
func (t *Tiering) moveBatch(ctx context.Context, studies []Study) batchResult {
	var (
		mu  sync.Mutex
		res batchResult
		wg  sync.WaitGroup
	)
	queue := make(chan Study)
	for w := 0; w < t.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range queue {
				jobID, err := t.move(ctx, s)
				mu.Lock()
				switch {
				case err == nil:
					res.Moved++
				case ctx.Err() != nil && jobID != "":
					res.Abandoned = append(res.Abandoned, jobID)
				case ctx.Err() == nil:
					res.Failed = append(res.Failed, Failure{Study: s, JobID: jobID, Error: err.Error()})
				}
				mu.Unlock()
			}
		}()
	}
	for _, s := range studies {
		if ctx.Err() != nil {
			break
		}
		select {
		case queue <- s:
		case <-ctx.Done():
		}
	}
	close(queue)
	wg.Wait()
	return res
}

// Job is the part of GET /jobs/{id} the tool reads.
type Job struct {
	ID               string
	State            string
	Progress         float64
	ErrorCode        int
	ErrorDescription string
	ErrorDetails     string
}

// move submits the move of one study and follows its job to the end.
func (t *Tiering) move(ctx context.Context, s Study) (string, error) {
	body := map[string]any{"Resources": []string{s.ID}, "TargetStorage": t.Target, "Asynchronous": true, "Priority": 0}
	var sub struct{ ID, Path string }
	if err := t.Client.do(ctx, http.MethodPost, "/move-storage", body, &sub); err != nil {
		return "", err
	}
	if sub.ID == "" {
		return "", errors.New("POST /move-storage answered no job ID")
	}
	deadline := time.Now().Add(t.JobTimeout)
	for {
		var j Job
		err := t.Client.do(ctx, http.MethodGet, "/jobs/"+sub.ID, nil, &j)
		var he *HTTPError
		switch {
		case errors.As(err, &he) && he.Status == http.StatusNotFound:
			return sub.ID, fmt.Errorf("job %s is unknown to this Orthanc (restarted, or --url reaches several Orthanc processes)", sub.ID)
		case err != nil && ctx.Err() != nil:
			return sub.ID, ctx.Err()
		case err != nil:
			t.Log.Warn("following a job", "job", sub.ID, "study", s.ID, "error", err.Error())
		case j.State == "Success":
			t.Log.Debug("study moved", "study", s.ID, "job", sub.ID)
			return sub.ID, nil
		case j.State == "Failure":
			return sub.ID, fmt.Errorf("job %s failed: error %d %s: %s", sub.ID, j.ErrorCode, j.ErrorDescription, j.ErrorDetails)
		}
		if time.Now().After(deadline) {
			return sub.ID, fmt.Errorf("job %s still %s after %s (it keeps running in Orthanc)", sub.ID, j.State, t.JobTimeout)
		}
		select {
		case <-ctx.Done():
			return sub.ID, ctx.Err()
		case <-time.After(t.Poll):
		}
	}
}
