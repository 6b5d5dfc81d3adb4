package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFlagEnvFallback(t *testing.T) {
	t.Setenv("KT_NAME", "from-env")
	t.Setenv("KT_TIMEOUT", "7s")
	t.Setenv("KT_COUNT", "3")
	var name string
	var timeout time.Duration
	var count int
	var quiet bool
	fs := NewFlagSet("t")
	fs.String(&name, "name", "KT_NAME", "def", "a name")
	fs.Duration(&timeout, "timeout", "KT_TIMEOUT", time.Second, "a timeout")
	fs.Int(&count, "count", "KT_COUNT", 1, "a count")
	fs.Bool(&quiet, "quiet", "KT_QUIET", false, "quiet")
	require.NoError(t, fs.Parse([]string{"--count=5"}))
	require.Equal(t, "from-env", name)
	require.Equal(t, 7*time.Second, timeout)
	require.Equal(t, 5, count, "a flag beats its env var")
	require.False(t, quiet)
	require.Contains(t, fs.Lookup("name").Usage, "(env KT_NAME)")
}

func TestFlagEnvInvalid(t *testing.T) {
	t.Setenv("KT_TIMEOUT", "soon")
	var timeout time.Duration
	fs := NewFlagSet("t")
	fs.Duration(&timeout, "timeout", "KT_TIMEOUT", time.Second, "a timeout")
	err := fs.Parse(nil)
	require.ErrorContains(t, err, "KT_TIMEOUT")
}

func TestLoggerFormats(t *testing.T) {
	var buf bytes.Buffer
	l, err := NewLogger(&buf, LogOptions{Format: "auto", Level: "info"})
	require.NoError(t, err)
	l.Info("hello", "k", "v")
	var m map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &m), "a non-terminal gets JSON")
	require.Equal(t, "hello", m["msg"])

	buf.Reset()
	l, err = NewLogger(&buf, LogOptions{Format: "text", Level: "warn"})
	require.NoError(t, err)
	l.Info("dropped")
	l.Warn("kept")
	require.NotContains(t, buf.String(), "dropped")
	require.Contains(t, buf.String(), "msg=kept")

	_, err = NewLogger(&buf, LogOptions{Format: "xml"})
	require.ErrorContains(t, err, "xml")
	_, err = NewLogger(&buf, LogOptions{Level: "loud"})
	require.ErrorContains(t, err, "loud")
}

func TestSignalContext(t *testing.T) {
	ctx, stop := SignalContext(context.Background())
	defer stop()
	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGTERM))
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("context not cancelled by SIGTERM")
	}
	var se *SignalError
	require.True(t, errors.As(context.Cause(ctx), &se))
	require.Equal(t, syscall.SIGTERM, se.Signal)
}

func TestLogFlagsAndParseArgs(t *testing.T) {
	t.Setenv("KT_LOG_LEVEL", "debug")
	var o LogOptions
	var out bytes.Buffer
	fs := NewFlagSet("t")
	fs.LogFlags(&o, "KT")
	help, err := fs.ParseArgs([]string{"--log-format=json"}, &out, "Usage: t\n")
	require.False(t, help)
	require.NoError(t, err)
	require.Equal(t, LogOptions{Format: "json", Level: "debug"}, o)

	fs = NewFlagSet("t")
	fs.LogFlags(&o, "KT")
	help, err = fs.ParseArgs([]string{"--help"}, &out, "Usage: t\n")
	require.True(t, help)
	require.NoError(t, err)
	require.Contains(t, out.String(), "Usage: t\n")
	require.Contains(t, out.String(), "(env KT_LOG_FORMAT)")

	_, err = NewFlagSet("t").ParseArgs([]string{"--nope"}, &out, "")
	require.ErrorContains(t, err, "nope")
}

func TestVersionAndOneLineParseErrors(t *testing.T) {
	var out, ver bytes.Buffer
	VersionOutput = &ver
	t.Cleanup(func() { VersionOutput = os.Stdout })
	fs := NewFlagSet("tool")
	var name string
	fs.String(&name, "name", "KT_NAME2", "", "a name")
	help, err := fs.ParseArgs([]string{"--version"}, &out, "Usage: tool\n")
	require.NoError(t, err)
	require.True(t, help, "--version exits 0 like --help")
	require.Equal(t, "tool dev\n", ver.String())
	require.Empty(t, out.String())

	fs = NewFlagSet("tool")
	fs.String(&name, "name", "KT_NAME2", "", "a name")
	_, err = fs.ParseArgs([]string{"--nope"}, &out, "Usage: tool\n")
	require.EqualError(t, err, "flag provided but not defined: -nope (see --help)")
	require.Empty(t, out.String(), "no usage dump on a parse error")
}
