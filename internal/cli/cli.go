// Package cli holds the conventions every kommons binary shares: flags with
// environment-variable fallbacks, a log/slog logger that writes text on a
// terminal and JSON otherwise, and a context that ends on SIGTERM or SIGINT.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kommons/kommons/internal/version"
)

// Env returns the value of the environment variable name, or def when unset or empty.
func Env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// usage appends the env-var name to a flag's help text.
func usage(text, env string) string {
	if env == "" {
		return text
	}
	return fmt.Sprintf("%s (env %s)", text, env)
}

// FlagSet wraps flag.FlagSet so that every flag can take its default from an
// environment variable; a bad env value is reported by Parse with its name.
type FlagSet struct {
	*flag.FlagSet
	envErrs []error
}

// NewFlagSet returns a FlagSet that reports errors instead of exiting.
func NewFlagSet(name string) *FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	return &FlagSet{FlagSet: fs}
}

// String defines a string flag whose default comes from env when set.
func (f *FlagSet) String(p *string, name, env, def, text string) {
	f.StringVar(p, name, Env(env, def), usage(text, env))
}

// Bool defines a bool flag whose default comes from env when set.
func (f *FlagSet) Bool(p *bool, name, env string, def bool, text string) {
	if v := Env(env, ""); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			f.envErrs = append(f.envErrs, fmt.Errorf("env %s=%q: not a boolean", env, v))
		} else {
			def = b
		}
	}
	f.BoolVar(p, name, def, usage(text, env))
}

// Int defines an int flag whose default comes from env when set.
func (f *FlagSet) Int(p *int, name, env string, def int, text string) {
	if v := Env(env, ""); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			f.envErrs = append(f.envErrs, fmt.Errorf("env %s=%q: not an integer", env, v))
		} else {
			def = n
		}
	}
	f.IntVar(p, name, def, usage(text, env))
}

// Float defines a float64 flag whose default comes from env when set.
func (f *FlagSet) Float(p *float64, name, env string, def float64, text string) {
	if v := Env(env, ""); v != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			f.envErrs = append(f.envErrs, fmt.Errorf("env %s=%q: not a number", env, v))
		} else {
			def = n
		}
	}
	f.Float64Var(p, name, def, usage(text, env))
}

// Duration defines a duration flag whose default comes from env when set.
func (f *FlagSet) Duration(p *time.Duration, name, env string, def time.Duration, text string) {
	if v := Env(env, ""); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			f.envErrs = append(f.envErrs, fmt.Errorf("env %s=%q: not a duration (e.g. 5s, 2m)", env, v))
		} else {
			def = d
		}
	}
	f.DurationVar(p, name, def, usage(text, env))
}

// Parse parses args and reports the first invalid env-var fallback.
func (f *FlagSet) Parse(args []string) error {
	if err := f.FlagSet.Parse(args); err != nil {
		return err
	}
	if len(f.envErrs) > 0 {
		return f.envErrs[0]
	}
	return nil
}

// LogOptions selects the log format and level.
type LogOptions struct {
	Format string // "auto" (text on a terminal, JSON otherwise), "text" or "json"
	Level  string // debug, info, warn, error
}

// NewLogger builds the slog logger every binary uses, writing to w (stderr:
// stdout is reserved for machine-readable output).
func NewLogger(w io.Writer, o LogOptions) (*slog.Logger, error) {
	level := slog.LevelInfo
	if o.Level != "" {
		if err := level.UnmarshalText([]byte(strings.ToLower(o.Level))); err != nil {
			return nil, fmt.Errorf("log level %q: want debug, info, warn or error", o.Level)
		}
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(o.Format) {
	case "", "auto":
		if IsTerminal(w) {
			return slog.New(slog.NewTextHandler(w, opts)), nil
		}
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("log format %q: want auto, text or json", o.Format)
	}
}

// IsTerminal reports whether w is a character device (a TTY).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// SignalContext returns a context cancelled on SIGTERM or SIGINT; its cause
// (context.Cause) is a *SignalError naming the signal.
func SignalContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		select {
		case s := <-ch:
			cancel(&SignalError{Signal: s})
		case <-ctx.Done():
		}
		signal.Stop(ch)
	}()
	return ctx, func() { cancel(context.Canceled) }
}

// SignalError is the cancellation cause of a SignalContext ended by a signal.
type SignalError struct{ Signal os.Signal }

func (e *SignalError) Error() string { return "interrupted by " + e.Signal.String() }

// LogFlags registers --log-format and --log-level, with the env fallbacks
// <envPrefix>_LOG_FORMAT and <envPrefix>_LOG_LEVEL, into o.
func (f *FlagSet) LogFlags(o *LogOptions, envPrefix string) {
	f.String(&o.Format, "log-format", envPrefix+"_LOG_FORMAT", "auto", "log format on stderr: auto (text on a terminal, JSON otherwise), text or json")
	f.String(&o.Level, "log-level", envPrefix+"_LOG_LEVEL", "info", "log level: debug, info, warn or error")
}

// ParseArgs parses args like Parse, with --version defined. On --help it
// prints usage followed by the flag defaults on w, on --version the
// binary's name and version on VersionOutput; both are reported as help
// (exit code 0). A parse error is returned as one line pointing to --help:
// the usage is not printed with it.
func (f *FlagSet) ParseArgs(args []string, w io.Writer, usage string) (help bool, err error) {
	var showVersion bool
	if f.Lookup("version") == nil {
		f.BoolVar(&showVersion, "version", false, "print the version and exit")
	}
	f.SetOutput(io.Discard) // the flag package would print the error and the whole usage
	f.Usage = func() {}
	err = f.Parse(args)
	f.SetOutput(w)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(w, usage)
		f.PrintDefaults()
		return true, nil
	case err != nil:
		return false, fmt.Errorf("%w (see --help)", err)
	case showVersion:
		fmt.Fprintf(VersionOutput, "%s %s\n", f.Name(), version.String())
		return true, nil
	}
	return false, nil
}

// VersionOutput receives --version's line (standard output by default).
var VersionOutput io.Writer = os.Stdout
