package pgprovision

import (
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/kommons/kommons/internal/outcome"
)

// ledger collects a run's results, shared by the jobs reconciling objects
// in parallel: the report, the refusals, and which roles are this scope's.
type ledger struct {
	log     *slog.Logger
	mu      sync.Mutex // guards report, refused and ours
	report  *Report
	ours    map[string]bool // physical role names owned by this scope after reconcile
	refused []ObjectResult
}

func newLedger(log *slog.Logger) *ledger {
	return &ledger{log: log, report: &Report{}, ours: map[string]bool{}}
}

// markOurs notes that the role with physical name phys belongs to this scope.
func (l *ledger) markOurs(phys string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ours[phys] = true
}

// roleIsOurs reports whether the role with physical name phys was found or
// made this scope's in this run.
func (l *ledger) roleIsOurs(phys string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ours[phys]
}

// ourRoles lists the physical names of the roles found or made this
// scope's in this run, sorted.
func (l *ledger) ourRoles() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.ours))
	for name := range l.ours {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// emit logs a finished job's results and adds them to the report; a
// failed job also gets a line naming its object and the error.
func (l *ledger) emit(j *job, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, o := range j.results {
		if o.Action == outcome.Refused {
			l.refused = append(l.refused, o)
		}
		l.report.Record(o)
		outcome.Log(l.log, o)
	}
	if err != nil {
		s := j.subject
		// Warn, not Error: Run retries transient failures from the top, and
		// its final error is logged by the caller.
		l.log.Warn(s.Kind+" failed", "kind", s.Kind, "name", s.Name, "physicalName", s.Physical, "error", err.Error())
	}
}

// recordPruned logs and reports one unlisted object of the scope.
func (l *ledger) recordPruned(o ObjectResult) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.report.Record(o)
	outcome.Log(l.log, o)
}

// finish logs the summary and returns the report, with a *ConflictError
// when objects were refused.
func (l *ledger) finish(scope Scope, took time.Duration) (*Report, error) {
	l.log.Info("summary", "scope", scope.String(), "created", l.report.Count(outcome.Created),
		"updated", l.report.Count(outcome.Updated), "unchanged", l.report.Count(outcome.Unchanged),
		"refused", l.report.Count(outcome.Refused), "deleted", l.report.Count(outcome.Deleted),
		"retained", l.report.Count(outcome.Retained), "duration", took.Round(time.Millisecond).String())
	if len(l.refused) > 0 {
		return l.report, &ConflictError{Refused: l.refused}
	}
	return l.report, nil
}
