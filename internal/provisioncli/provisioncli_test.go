package provisioncli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/cli"
	"github.com/kommons/kommons/internal/outcome"
	"github.com/kommons/kommons/internal/specfile"
)

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func tool(out, logs *bytes.Buffer) *Tool {
	t := New("pg-init", out, logs)
	t.Log = slog.New(slog.NewTextHandler(t.Err, nil))
	return t
}

func TestFinish(t *testing.T) {
	doc := func() any { return map[string]string{"physicalName": "imaging_orthanc"} }
	var logs, out bytes.Buffer
	tl := tool(&out, &logs)

	require.Equal(t, ExitOK, tl.Finish(nil, doc))
	assert.Equal(t, "{\n  \"physicalName\": \"imaging_orthanc\"\n}\n", out.String())
	assert.Empty(t, logs.String())

	out.Reset()
	require.Equal(t, ExitOK, tl.Finish(nil, nil), "no --output json: nothing on stdout")
	assert.Empty(t, out.String())

	conflict := fmt.Errorf("attempt 1: %w", &outcome.ConflictError{Refused: []outcome.Result{{Kind: "role", Physical: "x", Reason: "no marker"}}})
	require.Equal(t, ExitConflict, tl.Finish(conflict, doc), "a wrapped conflict is still a conflict")
	assert.Contains(t, logs.String(), `msg="ownership conflict"`)
	assert.Contains(t, logs.String(), "role x: no marker")
	assert.Empty(t, out.String(), "no output document after a failed run")

	logs.Reset()
	require.Equal(t, ExitFailure, tl.Finish(errors.New("connection refused"), doc))
	assert.Contains(t, logs.String(), `msg="pg-init failed"`)
	assert.Empty(t, out.String())

	tl = New("pg-init", failingWriter{}, &logs)
	tl.Log = slog.New(slog.NewTextHandler(&logs, nil))
	require.Equal(t, ExitFailure, tl.Finish(nil, doc), "stdout that cannot be written")
	assert.Contains(t, logs.String(), "disk full")
	require.Equal(t, ExitFailure, tl.Finish(nil, func() any { return func() {} }), "an output that cannot be rendered")
}

func TestHideMasksBothOutputs(t *testing.T) {
	var logs, out bytes.Buffer
	tl := tool(&out, &logs)
	tl.Hide("a-secret-of-twelve", "")
	tl.Log.Info("x", "password", "a-secret-of-twelve")
	require.Equal(t, ExitOK, tl.Finish(nil, func() any { return "a-secret-of-twelve" }))
	assert.NotContains(t, logs.String()+out.String(), "a-secret-of-twelve")
	assert.Contains(t, out.String(), `"`, "the document is still written")
}

func TestStart(t *testing.T) {
	start := func(args ...string) (string, *Tool, int, bool) {
		var w bytes.Buffer
		var o cli.LogOptions
		var name string
		tl := New("tool", &bytes.Buffer{}, &w)
		fs := cli.NewFlagSet("tool")
		fs.String(&name, "name", "TOOL_NAME", "", "a name")
		fs.LogFlags(&o, "TOOL")
		exit, done := tl.Start(fs, args, "Usage: tool [flags]\n", &o)
		return w.String(), tl, exit, done
	}
	out, tl, exit, done := start("--name", "x", "--log-format", "json", "--log-level", "debug")
	require.False(t, done)
	require.Equal(t, ExitOK, exit)
	require.Empty(t, out)
	require.True(t, tl.Log.Enabled(t.Context(), slog.LevelDebug), "the parsed --log-level is applied")

	out, _, exit, done = start("--help")
	require.True(t, done)
	require.Equal(t, ExitOK, exit)
	assert.Contains(t, out, "Usage: tool [flags]")
	assert.Contains(t, out, "-log-level")

	for args, want := range map[string]string{
		"--nme x":          "tool: flag provided but not defined: -nme",
		"stray":            `tool: unexpected argument "stray" (see --help)`,
		"--log-level loud": "tool: --log-format/--log-level:",
	} {
		out, _, exit, done = start(strings.Fields(args)...)
		require.True(t, done, args)
		require.Equal(t, ExitUsage, exit, args)
		assert.Contains(t, out, want, args)
	}
}

func TestFailSpec(t *testing.T) {
	var logs bytes.Buffer
	tl := New("pg-init", &bytes.Buffer{}, &logs)
	tl.Log = slog.New(slog.NewJSONHandler(&logs, nil))
	require.Equal(t, ExitUsage, tl.FailSpec(fmt.Errorf("load: %w", &specfile.Error{Source: "spec.yaml", Problems: []string{"roles[0].name: required", "databases: nothing"}})))
	assert.Contains(t, logs.String(), `"file":"spec.yaml"`)
	assert.Contains(t, logs.String(), `"problems":"roles[0].name: required; databases: nothing"`)
	logs.Reset()
	require.Equal(t, ExitUsage, tl.FailSpec(errors.New("open spec.yaml: permission denied")))
	assert.Contains(t, logs.String(), `"error":"open spec.yaml: permission denied"`)
}

func TestCheckOutput(t *testing.T) {
	assert.Empty(t, CheckOutput("none"))
	assert.Empty(t, CheckOutput("json"))
	assert.Equal(t, `"yaml": want none or json`, CheckOutput("yaml"))
}

func TestContextEndsAtTheDeadlineNamingIt(t *testing.T) {
	ctx, cancel := Context(context.Background(), time.Millisecond)
	defer cancel()
	<-ctx.Done()
	assert.EqualError(t, context.Cause(ctx), "--deadline 1ms reached")
}
