// Package provisioncli is the start and finish of the provisioning tools
// (pg-init, s3-init): their exit codes, stdout and stderr with every secret
// they learn masked, flag parsing and the logger, the run's deadline, and
// how an invalid spec, an ownership conflict or the --output json document
// end the run. It is apart from package cli, which every binary uses, so
// that wait-for-pg and postrender do not link what only provisioning needs
// (the run outcomes, the spec decoder's YAML libraries).
package provisioncli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/kommons/kommons/internal/cli"
	"github.com/kommons/kommons/internal/outcome"
	"github.com/kommons/kommons/internal/redact"
	"github.com/kommons/kommons/internal/specfile"
)

// Exit codes of the provisioning tools (pg-init, s3-init), documented in
// their --help and docs.
const (
	ExitOK       = 0 // done: everything matches the spec
	ExitFailure  = 1 // runtime failure (server unreachable past the deadline, a statement failed, interrupted)
	ExitUsage    = 2 // invalid spec, flag or environment
	ExitConflict = 3 // ownership conflict: an object exists with another scope's marker or none, and no --adopt
)

// Tool is one run of a provisioning tool: its name, its stdout and stderr
// (every secret given to Hide is masked on both), and its logger, set by
// Start.
type Tool struct {
	Name     string
	Out, Err *redact.Writer
	Log      *slog.Logger
}

// New returns the run of tool name writing to stdout and stderr through
// redacting writers.
func New(name string, stdout, stderr io.Writer) *Tool {
	return &Tool{Name: name, Out: redact.NewWriter(stdout), Err: redact.NewWriter(stderr)}
}

// Hide masks secrets (passwords, keys) on stdout and stderr from now on.
func (t *Tool) Hide(secrets ...string) {
	t.Err.Add(secrets...)
	t.Out.Add(secrets...)
}

// Start parses args with fs (usage and the flag defaults on --help, on
// stderr), refuses positional arguments and sets t.Log from the log flags
// o. When it returns done, the tool exits with exit: ExitOK after --help,
// ExitUsage after a line prefixed with the tool's name saying what is wrong.
func (t *Tool) Start(fs *cli.FlagSet, args []string, usage string, o *cli.LogOptions) (exit int, done bool) {
	if help, err := fs.ParseArgs(args, t.Err, usage); help {
		return ExitOK, true
	} else if err != nil {
		fmt.Fprintf(t.Err, "%s: %v\n", t.Name, err)
		return ExitUsage, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(t.Err, "%s: unexpected argument %q (see --help)\n", t.Name, fs.Arg(0))
		return ExitUsage, true
	}
	log, err := cli.NewLogger(t.Err, *o)
	if err != nil {
		fmt.Fprintf(t.Err, "%s: --log-format/--log-level: %v\n", t.Name, err)
		return ExitUsage, true
	}
	t.Log = log
	return ExitOK, false
}

// Usage logs an invalid flag (its name and what is wrong) and returns
// ExitUsage.
func (t *Tool) Usage(flag, problem string) int {
	t.Log.Error("invalid usage", "flag", flag, "error", problem)
	return ExitUsage
}

// CheckOutput returns the problem with an --output value, or "".
func CheckOutput(format string) string {
	if format != "none" && format != "json" {
		return fmt.Sprintf("%q: want none or json", format)
	}
	return ""
}

// Context is the context of a run: it ends on SIGTERM or SIGINT (cause
// "interrupted by <signal>") or once deadline has passed (cause "--deadline
// <deadline> reached"). Call cancel when done.
func Context(parent context.Context, deadline time.Duration) (ctx context.Context, cancel context.CancelFunc) {
	sigCtx, stop := cli.SignalContext(parent)
	ctx, cancelTimeout := context.WithTimeoutCause(sigCtx, deadline, fmt.Errorf("--deadline %s reached", deadline))
	return ctx, func() { cancelTimeout(); stop() }
}

// FailSpec logs an invalid spec (a *specfile.Error: the file and every
// problem with its field path) or usage error once and returns ExitUsage.
func (t *Tool) FailSpec(err error) int {
	var se *specfile.Error
	if errors.As(err, &se) {
		t.Log.Error("invalid spec", "file", se.Source, "problems", strings.Join(se.Problems, "; "))
		return ExitUsage
	}
	t.Log.Error("invalid spec", "error", err.Error())
	return ExitUsage
}

// Finish turns the result of a provisioning run into the tool's exit code:
// an *outcome.ConflictError exits ExitConflict, any other error
// ExitFailure, each logged once as "ownership conflict" or "<tool>
// failed". After a successful run, a non-nil output is rendered by it and
// written to stdout as indented JSON (the --output json document), all at
// once.
func (t *Tool) Finish(err error, output func() any) int {
	var conflict *outcome.ConflictError
	switch {
	case errors.As(err, &conflict):
		t.Log.Error("ownership conflict", "error", err.Error())
		return ExitConflict
	case err != nil:
		t.Log.Error(t.Name+" failed", "error", err.Error())
		return ExitFailure
	}
	if output == nil {
		return ExitOK
	}
	b, err := json.MarshalIndent(output(), "", "  ")
	if err != nil {
		t.Log.Error("render output", "error", err.Error())
		return ExitFailure
	}
	if _, err := t.Out.Write(append(b, '\n')); err != nil {
		t.Log.Error("write output", "error", err.Error())
		return ExitFailure
	}
	return ExitOK
}
