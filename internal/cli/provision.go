package cli

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"

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
