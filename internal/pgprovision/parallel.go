package pgprovision

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"

	"github.com/kommons/kommons/internal/pgconfig"
	"github.com/kommons/kommons/internal/pgready"
)

// DefaultParallel is how many roles or databases a run reconciles at once
// when Options.Parallel is 0: min(4, 2*GOMAXPROCS). The work is mostly the
// server's (CREATE DATABASE copies template1, CREATE EXTENSION runs the
// extension's script), so a few sessions are enough to keep a server's
// cores busy while one of them waits for I/O or for pg-init.
func DefaultParallel() int { return min(4, 2*runtime.GOMAXPROCS(0)) }

// job is one unit of a parallel phase: one role, or one database with its
// extensions and schemas. It runs on one admin-database session and
// collects its results, which are logged in plan order (see run.each).
type job struct {
	subject ObjectResult // kind, name and physical name of the role or database
	conn    *pgx.Conn    // the worker's session on the admin database
	results []ObjectResult
}

func (j *job) record(o ObjectResult) { j.results = append(j.results, o) }

// decided records res with decision d's outcome, reason and changes; it
// returns nil, for the caller to return.
func (j *job) decided(res ObjectResult, d decision) error {
	res.Action, res.Reason, res.Changes = d.action, d.reason, d.notes()
	j.record(res)
	return nil
}

// session returns worker w's connection to the admin database: worker 0
// uses the coordinating session (the one holding the advisory lock), the
// others open their own on first use. No session ever connects to a
// template database (Reconcile refuses one as the admin database), so
// CREATE DATABASE never finds template1 "being accessed by other users"
// because of pg-init.
func (r *run) session(w int) (*pgx.Conn, error) {
	if w == 0 {
		return r.admin, nil
	}
	if c := r.sessions[w]; c != nil {
		return c, nil
	}
	if err := r.interrupted(); err != nil {
		return nil, err
	}
	c, err := pgx.ConnectConfig(r.ctx, r.cfg)
	if err != nil {
		return nil, r.redact(fmt.Errorf("connect as admin, session %d of %d (%s): %w", w+1, len(r.sessions), pgconfig.Describe(r.cfg), err))
	}
	r.sessions[w] = c
	return c, nil
}

// closeSessions closes the sessions the workers opened (not the coordinating one).
func (r *run) closeSessions() {
	for w, c := range r.sessions {
		if w > 0 && c != nil {
			_ = c.Close(context.Background())
		}
	}
}

// each runs fn for every subject (i is its index), up to len(r.sessions)
// at a time, worker w over session w. Results are logged and added to the
// report in the order of subjects as soon as all earlier subjects are done,
// so the output does not depend on scheduling. The first failure stops
// further subjects from starting; those in flight complete. Every failure
// is logged against its object and returned, in subject order: one as is,
// several as an *ObjectErrors.
//
// The extra sessions only speed things up: when the server refuses one
// (too many connections, for the server or for the admin role), its worker
// hands its subject back and stops, and the run goes on with fewer.
func (r *run) each(subjects []ObjectResult, fn func(i int, j *job) error) error {
	n := len(subjects)
	jobs := make([]job, n)
	errs := make([]error, n)
	done := make([]bool, n)
	var mu sync.Mutex
	emitted := 0         // subjects before this index are logged
	var handedBack []int // subjects whose worker could not open its session
	flush := func(all bool) {
		for ; emitted < n && (done[emitted] || all); emitted++ {
			if done[emitted] {
				r.emit(&jobs[emitted], errs[emitted])
			}
		}
	}
	var stop atomic.Bool
	runJob := func(i int, conn *pgx.Conn, err error) {
		j := &jobs[i]
		j.subject = subjects[i]
		if err == nil {
			j.conn = conn
			err = fn(i, j)
		}
		if err != nil {
			stop.Store(true)
		}
		mu.Lock()
		errs[i], done[i] = err, true
		flush(false)
		mu.Unlock()
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < min(len(r.sessions), n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				conn, err := r.session(w)
				if err != nil && w > 0 && pgready.SQLState(err) == "53300" {
					mu.Lock()
					handedBack = append(handedBack, i)
					mu.Unlock()
					r.log.Warn("continuing with fewer parallel sessions: the server refused another connection",
						"sessions", w, "error", err.Error())
					return
				}
				runJob(i, conn, err)
			}
		}()
	}
	wg.Wait()
	slices.Sort(handedBack)
	for _, i := range handedBack { // on the coordinating session, once the workers are done
		if stop.Load() {
			break
		}
		runJob(i, r.admin, nil)
	}
	flush(true) // subjects after a failure that never started leave gaps
	var failed []error
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	switch len(failed) {
	case 0:
		return nil
	case 1:
		return failed[0]
	}
	return &ObjectErrors{Errs: failed}
}

// ObjectErrors holds the failures of several objects reconciled in
// parallel, in plan order.
type ObjectErrors struct {
	Errs []error
}

func (e *ObjectErrors) Error() string {
	parts := make([]string, len(e.Errs))
	for i, err := range e.Errs {
		parts[i] = err.Error()
	}
	return fmt.Sprintf("%d objects failed: %s", len(e.Errs), strings.Join(parts, "; "))
}

// Unwrap returns the failures, for errors.Is and errors.As.
func (e *ObjectErrors) Unwrap() []error { return e.Errs }
