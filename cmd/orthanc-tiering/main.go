// Command orthanc-tiering moves the studies whose StudyDate is older than a
// threshold from Orthanc's file-system storage to object storage (or back)
// with the AWS S3 storage plugin's POST /move-storage, one asynchronous job
// per study, following every job on /jobs/{id} to its end. It is the
// scheduled storage-tiering CronJob of charts/orthanc. See docs/orthanc.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/kommons/kommons/internal/cli"
)

// Exit codes: documented in --help and docs/orthanc.md.
const (
	exitOK         = 0
	exitFailures   = 1 // some move-storage jobs failed or timed out
	exitPermanent  = 2 // invalid flags, Orthanc unreachable or refusing, /move-storage absent
	exitSignalBase = 128
)

func main() {
	ctx, stop := cli.SignalContext(context.Background())
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usageHead = `Usage: orthanc-tiering [flags]

Moves the studies whose StudyDate is more than --age-days days before today
(UTC) to --target-storage with the S3 plugin's POST /move-storage: studies are
listed --batch-size at a time with POST /tools/find (StudyDate range), each is
moved by one asynchronous job, at most --concurrency jobs at a time, each
followed on GET /jobs/{id} until Success or Failure. One progress line per
batch, then a final report (stderr). Moving a study already in the target
storage moves nothing, so a run interrupted (SIGTERM) or failed is resumed by
the next one. --url must reach ONE Orthanc process (the jobs instance): a job
lives in the process that started it.

With --dry-run the selected studies are printed on stdout (one JSON object per
line: ID, StudyInstanceUID, StudyDate) and nothing is moved.

Exit codes:
  0    every selected study moved (or listed, with --dry-run)
  1    some move-storage jobs failed or timed out (the report names them)
  2    invalid flags, Orthanc unreachable or refusing the request, or
       /move-storage absent (the AWS S3 storage plugin is not loaded)
  130  interrupted by SIGINT, 143 terminated by SIGTERM (submitted jobs keep running in Orthanc)

Flags (the environment variable in parentheses is the fallback):
`

// config is everything the flags and environment select.
type config struct {
	url, user, password, target string
	ageDays, batchSize, workers int
	jobTimeout, poll, timeout   time.Duration
	dryRun                      bool
	logOpts                     cli.LogOptions
}

func newFlags(c *config) *cli.FlagSet {
	fs := cli.NewFlagSet("orthanc-tiering")
	fs.String(&c.url, "url", "ORTHANC_TIERING_URL", "", "base URL of the Orthanc REST API (the jobs instance), e.g. http://pacs-orthanc-jobs:8042")
	fs.String(&c.user, "user", "ORTHANC_TIERING_USER", "", "Orthanc user (HTTP basic authentication)")
	fs.String(&c.password, "password", "ORTHANC_TIERING_PASSWORD", "", "Orthanc password; prefer the environment variable")
	fs.Int(&c.ageDays, "age-days", "ORTHANC_TIERING_AGE_DAYS", 365, "move the studies whose StudyDate is more than this many days before today (UTC)")
	fs.Int(&c.batchSize, "batch-size", "ORTHANC_TIERING_BATCH_SIZE", 100, "studies listed per /tools/find page")
	fs.Int(&c.workers, "concurrency", "ORTHANC_TIERING_CONCURRENCY", 2, "move-storage jobs submitted and followed at the same time")
	fs.String(&c.target, "target-storage", "ORTHANC_TIERING_TARGET_STORAGE", "object-storage", "TargetStorage of /move-storage: object-storage or file-system")
	fs.Duration(&c.jobTimeout, "job-timeout", "ORTHANC_TIERING_JOB_TIMEOUT", time.Hour, "longest a move-storage job may take before it counts as failed (it keeps running in Orthanc)")
	fs.Duration(&c.poll, "poll-interval", "ORTHANC_TIERING_POLL_INTERVAL", time.Second, "interval between two GET /jobs/{id} of one job")
	fs.Duration(&c.timeout, "request-timeout", "ORTHANC_TIERING_REQUEST_TIMEOUT", 2*time.Minute, "timeout of one HTTP request")
	fs.Bool(&c.dryRun, "dry-run", "ORTHANC_TIERING_DRY_RUN", false, "list the selected studies on stdout, move nothing")
	fs.LogFlags(&c.logOpts, "ORTHANC_TIERING")
	return fs
}

func (c *config) validate() error {
	var errs []string
	if c.url == "" {
		errs = append(errs, "--url is required")
	} else if u, err := url.Parse(c.url); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Sprintf("--url %q: want http(s)://host[:port]", c.url))
	}
	if c.ageDays < 0 {
		errs = append(errs, "--age-days must be >= 0")
	}
	if c.batchSize < 1 {
		errs = append(errs, "--batch-size must be >= 1")
	}
	if c.workers < 1 {
		errs = append(errs, "--concurrency must be >= 1")
	}
	if c.target != "object-storage" && c.target != "file-system" {
		errs = append(errs, fmt.Sprintf("--target-storage %q: want object-storage or file-system", c.target))
	}
	if c.jobTimeout <= 0 || c.poll <= 0 || c.timeout <= 0 {
		errs = append(errs, "--job-timeout, --poll-interval and --request-timeout must be > 0")
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// run parses args, runs the tiering and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runAt(ctx, args, stdout, stderr, time.Time{})
}

// runAt is run with the clock fixed at now (the zero time: the real clock).
func runAt(ctx context.Context, args []string, stdout, stderr io.Writer, now time.Time) int {
	var c config
	fs := newFlags(&c)
	if help, err := fs.ParseArgs(args, stderr, usageHead); help {
		return exitOK
	} else if err != nil {
		fmt.Fprintf(stderr, "orthanc-tiering: %v (see --help)\n", err)
		return exitPermanent
	}
	if err := c.validate(); err != nil {
		fmt.Fprintf(stderr, "orthanc-tiering: %v (see --help)\n", err)
		return exitPermanent
	}
	log, err := cli.NewLogger(stderr, c.logOpts)
	if err != nil {
		fmt.Fprintf(stderr, "orthanc-tiering: %v\n", err)
		return exitPermanent
	}
	t := &Tiering{
		Client:      NewClient(c.url, c.user, c.password, c.timeout),
		AgeDays:     c.ageDays,
		BatchSize:   c.batchSize,
		Concurrency: c.workers,
		Target:      c.target,
		JobTimeout:  c.jobTimeout,
		Poll:        c.poll,
		DryRun:      c.dryRun,
		Log:         log,
		Out:         stdout,
		Now:         time.Now,
	}
	if !now.IsZero() {
		t.Now = func() time.Time { return now }
	}
	report, err := t.Run(ctx)
	var sig *cli.SignalError
	switch {
	case errors.As(context.Cause(ctx), &sig):
		log.Error("interrupted: no new job submitted; submitted jobs keep running in Orthanc and the next run resumes",
			"signal", sig.Signal.String(), "moved", report.Moved, "failed", len(report.Failed), "pendingJobs", report.Abandoned)
		if s, ok := sig.Signal.(syscall.Signal); ok {
			return exitSignalBase + int(s)
		}
		return exitSignalBase + int(syscall.SIGTERM)
	case err != nil:
		log.Error("tiering failed", "error", err.Error(), "moved", report.Moved)
		return exitPermanent
	case len(report.Failed) > 0:
		return exitFailures
	}
	return exitOK
}
