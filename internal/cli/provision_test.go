package cli

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/outcome"
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
