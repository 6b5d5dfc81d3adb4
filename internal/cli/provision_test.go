package cli

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/outcome"
	"github.com/kommons/kommons/internal/specfile"
)

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestFinishRun(t *testing.T) {
	doc := func() any { return map[string]string{"physicalName": "imaging_orthanc"} }
	var logs, out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	require.Equal(t, ExitOK, FinishRun(log, "pg-init", nil, &out, doc))
	assert.Equal(t, "{\n  \"physicalName\": \"imaging_orthanc\"\n}\n", out.String())
	assert.Empty(t, logs.String())

	out.Reset()
	require.Equal(t, ExitOK, FinishRun(log, "pg-init", nil, &out, nil), "no --output json: nothing on stdout")
	assert.Empty(t, out.String())

	conflict := fmt.Errorf("attempt 1: %w", &outcome.ConflictError{Refused: []outcome.Result{{Kind: "role", Physical: "x", Reason: "no marker"}}})
	require.Equal(t, ExitConflict, FinishRun(log, "pg-init", conflict, &out, doc), "a wrapped conflict is still a conflict")
	assert.Contains(t, logs.String(), `msg="ownership conflict"`)
	assert.Contains(t, logs.String(), "role x: no marker")
	assert.Empty(t, out.String(), "no output document after a failed run")

	logs.Reset()
	require.Equal(t, ExitFailure, FinishRun(log, "s3-init", errors.New("endpoint unreachable"), &out, doc))
	assert.Contains(t, logs.String(), `msg="s3-init failed"`)
	assert.Empty(t, out.String())

	logs.Reset()
	require.Equal(t, ExitFailure, FinishRun(log, "pg-init", nil, failingWriter{}, doc))
	assert.Contains(t, logs.String(), "disk full")

	require.Equal(t, ExitFailure, FinishRun(log, "pg-init", nil, &out, func() any { return func() {} }), "an output that cannot be rendered")
	assert.Empty(t, out.String())
}

func TestStartRun(t *testing.T) {
	start := func(args ...string) (*FlagSet, string, *slog.Logger, int, bool) {
		var w bytes.Buffer
		var o LogOptions
		var name string
		fs := NewFlagSet("tool")
		fs.String(&name, "name", "TOOL_NAME", "", "a name")
		fs.LogFlags(&o, "TOOL")
		log, exit, done := fs.StartRun("tool", args, &w, "Usage: tool [flags]\n", &o)
		return fs, w.String(), log, exit, done
	}
	_, out, log, exit, done := start("--name", "x", "--log-format", "json", "--log-level", "debug")
	require.False(t, done)
	require.Equal(t, ExitOK, exit)
	require.Empty(t, out)
	require.True(t, log.Enabled(t.Context(), slog.LevelDebug), "the parsed --log-level is applied")

	_, out, _, exit, done = start("--help")
	require.True(t, done)
	require.Equal(t, ExitOK, exit)
	assert.Contains(t, out, "Usage: tool [flags]")
	assert.Contains(t, out, "-log-level")

	for args, want := range map[string]string{
		"--nme x":          "tool: flag provided but not defined: -nme",
		"stray":            `tool: unexpected argument "stray" (see --help)`,
		"--log-level loud": "tool: --log-format/--log-level:",
	} {
		_, out, _, exit, done = start(strings.Fields(args)...)
		require.True(t, done, args)
		require.Equal(t, ExitUsage, exit, args)
		assert.Contains(t, out, want, args)
	}
}

func TestFailSpec(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	require.Equal(t, ExitUsage, FailSpec(log, fmt.Errorf("load: %w", &specfile.Error{Source: "spec.yaml", Problems: []string{"roles[0].name: required", "databases: nothing"}})))
	assert.Contains(t, logs.String(), `"file":"spec.yaml"`)
	assert.Contains(t, logs.String(), `"problems":"roles[0].name: required; databases: nothing"`)
	logs.Reset()
	require.Equal(t, ExitUsage, FailSpec(log, errors.New("open spec.yaml: permission denied")))
	assert.Contains(t, logs.String(), `"error":"open spec.yaml: permission denied"`)
}
