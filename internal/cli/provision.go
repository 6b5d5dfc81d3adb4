package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/kommons/kommons/internal/outcome"
)

// Exit codes of the provisioning tools (pg-init, s3-init), documented in
// their --help and docs.
const (
	ExitOK       = 0 // done: everything matches the spec
	ExitFailure  = 1 // runtime failure (server unreachable past the deadline, a statement failed, interrupted)
	ExitUsage    = 2 // invalid spec, flag or environment
	ExitConflict = 3 // ownership conflict: an object exists with another scope's marker or none, and no --adopt
)

// FinishRun turns the result of a provisioning run into the tool's exit
// code: an *outcome.ConflictError exits ExitConflict, any other error
// ExitFailure, each logged once as "ownership conflict" or "<tool> failed".
// After a successful run, a non-nil output is rendered by it and written
// to w as indented JSON (the --output json document), all at once.
func FinishRun(log *slog.Logger, tool string, err error, w io.Writer, output func() any) int {
	var conflict *outcome.ConflictError
	switch {
	case errors.As(err, &conflict):
		log.Error("ownership conflict", "error", err.Error())
		return ExitConflict
	case err != nil:
		log.Error(tool+" failed", "error", err.Error())
		return ExitFailure
	}
	if output == nil {
		return ExitOK
	}
	b, err := json.MarshalIndent(output(), "", "  ")
	if err != nil {
		log.Error("render output", "error", err.Error())
		return ExitFailure
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		log.Error("write output", "error", err.Error())
		return ExitFailure
	}
	return ExitOK
}

// StartRun is the common start of a provisioning tool: it parses args
// (usage and the flag defaults on --help), refuses positional arguments
// and builds the logger from the log flags o. When it returns done, the
// tool exits with exit: ExitOK after --help, ExitUsage after a line on w
// prefixed with the tool's name saying what is wrong.
func (f *FlagSet) StartRun(tool string, args []string, w io.Writer, usage string, o *LogOptions) (log *slog.Logger, exit int, done bool) {
	if help, err := f.ParseArgs(args, w, usage); help {
		return nil, ExitOK, true
	} else if err != nil {
		fmt.Fprintf(w, "%s: %v\n", tool, err)
		return nil, ExitUsage, true
	}
	if f.NArg() > 0 {
		fmt.Fprintf(w, "%s: unexpected argument %q (see --help)\n", tool, f.Arg(0))
		return nil, ExitUsage, true
	}
	log, err := NewLogger(w, *o)
	if err != nil {
		fmt.Fprintf(w, "%s: --log-format/--log-level: %v\n", tool, err)
		return nil, ExitUsage, true
	}
	return log, ExitOK, false
}

// specError is an invalid spec that names its file and lists every problem
// with its field path: *specfile.Error, which this package does not import,
// since that would link YAML libraries into wait-for-pg.
type specError interface {
	error
	SpecSource() string
	SpecProblems() []string
}

// FailSpec logs an invalid spec (a *specfile.Error: the file and every
// problem with its field path) or usage error once and returns ExitUsage.
func FailSpec(log *slog.Logger, err error) int {
	var se specError
	if errors.As(err, &se) {
		log.Error("invalid spec", "file", se.SpecSource(), "problems", strings.Join(se.SpecProblems(), "; "))
		return ExitUsage
	}
	log.Error("invalid spec", "error", err.Error())
	return ExitUsage
}
