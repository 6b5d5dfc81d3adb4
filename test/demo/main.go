// Command demo runs kommons end to end on one machine (`make demo`):
//
//  1. a local Kubernetes control plane (test harness, kwok nodes) with a `db`
//     and an `app` node pool and the storage classes of the example policy;
//  2. `commons` (tenant `imaging`) and then a module (charts/orthanc)
//     installed with the Helm 3 CLI through the post-renderer and
//     examples/policies/db-app-split.yaml, and a table of where every
//     workload landed;
//  3. the real data path on loopback: a throwaway PostgreSQL, the rendered
//     pg-init Job and wait-for-pg init container run as processes with the
//     rendered args, env and mounts, two Orthanc replicas (Debian packages)
//     with the rendered configuration, DICOM uploads to one replica and what
//     each replica sees.
//
// Usage:
//
//	demo [up] [flags]   run the demo (KEEP=1: leave everything running)
//	demo down           stop what `KEEP=1` left running, by PID, and remove its state
//
// Exit status: 0 success, 1 a phase failed (the message names it), 2 bad
// flags, 130 interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/kommons/kommons/internal/cli"
	"github.com/kommons/kommons/internal/testutil/testcluster"
)

// config is the demo's command line.
type config struct {
	keep       bool
	stateDir   string
	chart      string
	policy     string
	binDir     string
	orthanc    string // auto, require, skip
	release    string
	namespace  string
	instances  int
	aptInstall bool
	dbPool     string
}

func main() {
	args := os.Args[1:]
	cmd := "up"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "up":
		err = runUp(args)
	case "down":
		err = runDown(args)
	case "fakeprov":
		err = runFakeProvisioner(args)
	case "datapath":
		err = runDataPath(args)
	default:
		fmt.Fprintf(os.Stderr, "demo: unknown command %q (want up or down)\n", cmd)
		os.Exit(2)
	}
	var usage usageError
	var sig *cli.SignalError
	switch {
	case err == nil:
	case errors.As(err, &usage):
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(2)
	case errors.As(err, &sig):
		fmt.Fprintln(os.Stderr, "demo: interrupted; everything started was stopped")
		os.Exit(130)
	default:
		fmt.Fprintln(os.Stderr, "demo: FAILED:", err)
		os.Exit(1)
	}
}

// usageError is a bad flag or environment value (exit 2).
type usageError struct{ error }

func defaultStateDir() string { return filepath.Join(testcluster.CacheDir(), "run", "demo") }

func parseFlags(name string, args []string) (*config, error) {
	root, err := testcluster.RepoRoot()
	if err != nil {
		return nil, err
	}
	c := &config{}
	fs := cli.NewFlagSet("demo " + name)
	fs.SetOutput(io.Discard)
	fs.Bool(&c.keep, "keep", "KEEP", false, "leave the cluster, PostgreSQL and Orthanc running and print the URLs and the stop command")
	fs.String(&c.stateDir, "state-dir", "KOMMONS_DEMO_DIR", defaultStateDir(), "run directory (cluster, logs, PID files)")
	fs.String(&c.chart, "chart", "KOMMONS_DEMO_CHART", filepath.Join(root, "charts", "orthanc"), "module chart installed after commons")
	fs.String(&c.policy, "policy", "KOMMONS_DEMO_POLICY", filepath.Join(root, "examples", "policies", "db-app-split.yaml"), "post-renderer placement policy")
	fs.String(&c.binDir, "bin", "KOMMONS_DEMO_BIN", filepath.Join(root, "bin"), "directory with pg-init, wait-for-pg and postrender (make build)")
	fs.String(&c.orthanc, "orthanc", "KOMMONS_DEMO_ORTHANC", "auto", "real Orthanc part: auto (install the Debian packages when missing; skip, saying why, when that is impossible), require, skip")
	fs.Bool(&c.aptInstall, "apt-install", "KOMMONS_DEMO_APT_INSTALL", true, "run apt-get install orthanc orthanc-postgresql when they are missing")
	fs.Int(&c.instances, "instances", "KOMMONS_DEMO_INSTANCES", 12, "DICOM instances uploaded to the first replica")
	fs.String(&c.dbPool, "db-pool", "KOMMONS_DEMO_DB_POOL", "db", "policy pool where commons' database and object store must land (empty: no check)")
	c.namespace = "imaging"
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stderr)
			fs.PrintDefaults()
			os.Exit(0)
		}
		return nil, usageError{err}
	}
	switch c.orthanc {
	case "auto", "require", "skip":
	default:
		return nil, usageError{fmt.Errorf("--orthanc=%q: want auto, require or skip", c.orthanc)}
	}
	if c.instances < 1 {
		return nil, usageError{fmt.Errorf("--instances=%d: want at least 1", c.instances)}
	}
	for _, p := range []*string{&c.stateDir, &c.chart, &c.policy, &c.binDir} {
		if *p, err = filepath.Abs(*p); err != nil {
			return nil, usageError{err}
		}
	}
	// The release is named after the chart (orthanc: imaging_orthanc_orthanc).
	c.release = filepath.Base(c.chart)
	return c, nil
}

// progress prints one line per phase with its elapsed time.
type progress struct {
	w     io.Writer
	start time.Time
	n     int
	total int
}

// phase runs fn as the next numbered phase.
func (p *progress) phase(ctx context.Context, title string, fn func() error) error {
	if err := context.Cause(ctx); ctx.Err() != nil {
		return err
	}
	p.n++
	t := time.Now()
	fmt.Fprintf(p.w, "==> [%d/%d] %s\n", p.n, p.total, title)
	if err := fn(); err != nil {
		if c := context.Cause(ctx); ctx.Err() != nil {
			return c
		}
		fmt.Fprintf(p.w, "    FAILED after %s\n", since(t))
		return fmt.Errorf("phase %d (%s): %w", p.n, title, err)
	}
	fmt.Fprintf(p.w, "    ok  %s  (total %s)\n", since(t), since(p.start))
	return nil
}

func since(t time.Time) string { return time.Since(t).Round(100 * time.Millisecond).String() }

// say prints an indented detail line under the current phase.
func (p *progress) say(format string, args ...any) {
	fmt.Fprintf(p.w, "    "+format+"\n", args...)
}
