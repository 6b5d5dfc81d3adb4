// Command postrender sets storage classes and node-pool placement on
// Kubernetes manifests, splicing its edits into the original text so that
// everything it does not change stays byte for byte identical.
//
// It works as a Helm 3 post-renderer executable, as a Helm 4 post-renderer
// plugin (plugins/kommons-postrender) and standalone:
//
//	helm install r chart --post-renderer postrender --post-renderer-args=--config=policy.yaml
//	helm template r chart | postrender -f policy.yaml > out.yaml
//
// See docs/postrender.md.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kommons/kommons/internal/cli"
	"github.com/kommons/kommons/pkg/postrender"
	"github.com/kommons/kommons/pkg/postrender/policy"
)

// Exit codes.
const (
	exitOK       = 0 // success (with --check: nothing would change)
	exitChanged  = 1 // --check: the policy would change the input
	exitUsage    = 2 // bad flags or policy
	exitInput    = 3 // the manifest stream is invalid or conflicts with the policy
	exitIO       = 4 // reading input or writing output failed
	exitSignaled = 5 // interrupted by SIGTERM or SIGINT
)

const helpText = `Usage: postrender [flags] < manifests.yaml > placed.yaml

Sets storageClassName on PersistentVolumeClaims and StatefulSet
volumeClaimTemplates and merges node-pool placement (nodeSelector,
tolerations, node affinity, topology spread) into every pod template, as a
policy says. Unchanged documents are copied byte for byte; edits are spliced
into the original text. Reads stdin, writes stdout; nothing is written on error.

Helm 3:     helm install r chart --post-renderer postrender --post-renderer-args=--config=policy.yaml
Helm 4:     helm plugin install plugins/kommons-postrender
            helm install r chart --post-renderer kommons-postrender --post-renderer-args=--config=policy.yaml
Standalone: helm template r chart | postrender -f policy.yaml | kubectl apply -f -

Exit codes:
  0  success (with --check: nothing would change)
  1  --check: the policy would change the input
  2  bad flags or policy (unknown field, unknown pool, ...)
  3  invalid input or conflict with the policy (malformed YAML, a document
     that is not an object, a pod template that is not a mapping, duplicate
     key, conflicting nodeSelector value, YAML merge key "<<" where
     postrender reads); the message names the document, its "# Source:"
     template and line
  4  reading input or writing output failed
  5  interrupted by SIGTERM or SIGINT

Flags:
`

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// reportFlag accepts --report (text) or --report=text|json.
type reportFlag string

func (r *reportFlag) String() string   { return string(*r) }
func (r *reportFlag) IsBoolFlag() bool { return true }
func (r *reportFlag) Set(v string) error {
	switch v {
	case "true", "text":
		*r = "text"
	case "json":
		*r = "json"
	case "false", "":
		*r = ""
	default:
		return fmt.Errorf("want text or json")
	}
	return nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

type options struct {
	config, input, namespace, errorLog string
	logOpts                            cli.LogOptions
	check                              bool
	workers                            int
	report                             reportFlag
	short                              policy.Shorthand
	pools, rules                       listFlag
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var o options
	fs := cli.NewFlagSet("postrender")
	fs.SetOutput(stderr)
	fs.String(&o.config, "config", "POSTRENDER_CONFIG", "", "policy file (YAML, strictly decoded)")
	fs.StringVar(&o.config, "f", o.config, "shorthand for --config")
	fs.String(&o.input, "input", "", "-", "read manifests from this file instead of stdin")
	fs.String(&o.short.StorageClass, "storage-class", "POSTRENDER_STORAGE_CLASS", "", "default storage class for claims without one")
	fs.Var(&o.pools, "pool", "define a pool: name=db,nodeSelector=k=v,taint=k=v:NoSchedule,spread=topology.kubernetes.io/zone,require=k=v1|v2 (repeatable)")
	fs.Var(&o.rules, "place", "placement rule: pool=db,kind=StatefulSet,label=k=glob,name=glob,namespace=glob[,override=true] or skip=true,... (repeatable; after the file's rules)")
	fs.String(&o.short.DefaultPool, "default-pool", "POSTRENDER_DEFAULT_POOL", "", "pool for workloads no rule selects")
	fs.String(&o.namespace, "namespace", "HELM_NAMESPACE", "", "release namespace, for matching manifests without metadata.namespace")
	fs.Bool(&o.check, "check", "POSTRENDER_CHECK", false, "write nothing; exit 1 if the policy would change the input (CI gate)")
	fs.Var(&o.report, "report", "list every change on stderr: --report (text table) or --report=json")
	fs.Int(&o.workers, "workers", "POSTRENDER_WORKERS", 0, "documents processed in parallel (0: one per CPU)")
	fs.String(&o.errorLog, "error-log", "POSTRENDER_ERROR_LOG", "", "also write errors to this file (default when run as a Helm 4 plugin: <user cache dir>/kommons-postrender/last-error.log, because Helm 4 drops a plugin's stderr)")
	fs.LogFlags(&o.logOpts, "POSTRENDER")
	if help, err := fs.ParseArgs(args, stderr, helpText); help {
		return exitOK
	} else if err != nil {
		fmt.Fprintf(stderr, "postrender: %v\n", err)
		return exitUsage
	}
	log, err := cli.NewLogger(stderr, o.logOpts)
	if err != nil {
		fmt.Fprintf(stderr, "postrender: %v\n", err)
		return exitUsage
	}
	if o.errorLog == "" && os.Getenv("HELM_PLUGIN_NAME") != "" {
		if dir, err := os.UserCacheDir(); err == nil {
			o.errorLog = filepath.Join(dir, "kommons-postrender", "last-error.log")
		}
	}
	code, err := process(o, fs.Args(), stdin, stdout, stderr, log)
	if err != nil && code == exitChanged {
		log.Info("check: the policy would change the input", "detail", err.Error(), "exitCode", code)
		return code
	}
	if err != nil {
		log.Error("postrender failed", "error", err.Error(), "exitCode", code)
		if o.errorLog != "" {
			writeErrorLog(o.errorLog, err, code)
		}
	}
	return code
}

func writeErrorLog(path string, err error, code int) {
	_ = os.MkdirAll(filepath.Dir(path), 0o755)
	msg := fmt.Sprintf("%s postrender exit %d: %v\n", time.Now().UTC().Format(time.RFC3339), code, err)
	_ = os.WriteFile(path, []byte(msg), 0o644)
}

func process(o options, rest []string, stdin io.Reader, stdout, stderr io.Writer, log *slog.Logger) (int, error) {
	if len(rest) > 0 {
		return exitUsage, fmt.Errorf("unexpected arguments %q (manifests are read from stdin or --input)", rest)
	}
	if o.workers < 0 {
		return exitUsage, fmt.Errorf("--workers (POSTRENDER_WORKERS): %d is negative; want 0 (one per CPU) or more", o.workers)
	}
	eng, err := newEngine(o, log)
	if err != nil {
		return exitUsage, err
	}
	ctx, stop := cli.SignalContext(context.Background())
	defer stop()
	done := make(chan outcome, 1)
	go func() { done <- readAndProcess(eng, o.input, stdin) }()
	var out outcome
	select {
	case out = <-done:
	case <-ctx.Done():
		return exitSignaled, context.Cause(ctx)
	}
	if out.err != nil {
		return out.code, out.err
	}
	return emit(o, out.res, stdout, stderr, log)
}

// newEngine builds the policy from the file and the shorthand flags.
func newEngine(o options, log *slog.Logger) (*postrender.Engine, error) {
	p := &policy.Policy{}
	if o.config != "" {
		var err error
		if p, err = policy.Load(o.config); err != nil {
			return nil, err
		}
	}
	o.short.Pools, o.short.Rules = o.pools, o.rules
	if err := o.short.Apply(p); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if p.Storage.DefaultClass == "" && len(p.Storage.Rules) == 0 && p.Placement.DefaultPool == "" && len(p.Placement.Rules) == 0 {
		log.Warn("the policy places nothing (no storage class, no placement rule, no default pool): the input is copied unchanged; pass --config or the shorthand flags")
	}
	return postrender.New(p, postrender.Options{Namespace: o.namespace, Workers: o.workers})
}

// outcome is the result of reading and processing the input, or the exit
// code and error that stopped it.
type outcome struct {
	res  *postrender.Result
	code int
	err  error
}

// readAndProcess reads the input (stdin when input is "-") and applies the
// policy to it.
func readAndProcess(eng *postrender.Engine, input string, stdin io.Reader) outcome {
	in := stdin
	if input != "-" {
		f, err := os.Open(input)
		if err != nil {
			return outcome{code: exitIO, err: fmt.Errorf("open input: %w", err)}
		}
		defer f.Close()
		in = f
	}
	data, err := readAll(in)
	if err != nil {
		return outcome{code: exitIO, err: fmt.Errorf("read input: %w", err)}
	}
	// The stream is held once, parse trees are short-lived and the output
	// is written from the input: collect rarely (GOGC 400) but keep the
	// heap under 2.5x the input plus 16 MiB (soft limit).
	debug.SetMemoryLimit(int64(len(data))*5/2 + 16<<20)
	debug.SetGCPercent(400)
	res, err := eng.Process(data)
	if err != nil {
		return outcome{code: exitInput, err: err}
	}
	return outcome{res: res}
}

// emit writes the report and warnings to stderr and, unless --check, the
// edited stream to stdout.
func emit(o options, res *postrender.Result, stdout, stderr io.Writer, log *slog.Logger) (int, error) {
	if o.report != "" {
		if err := writeReport(stderr, string(o.report), res.Changes); err != nil {
			return exitIO, fmt.Errorf("write report: %w", err)
		}
	}
	for _, c := range res.Changes {
		if c.Warning != "" {
			log.Warn(c.Warning, "document", c.Document, "source", c.Source, "path", c.Path)
		}
	}
	log.Debug("processed", "documents", res.Documents, "parsed", res.Parsed, "changes", len(res.Changes))
	if o.check {
		if len(res.Changes) > 0 {
			return exitChanged, fmt.Errorf("%d change(s) would be made (run with --report to list them)", len(res.Changes))
		}
		return exitOK, nil
	}
	w := bufio.NewWriterSize(stdout, 1<<20)
	if _, err := res.WriteTo(w); err != nil {
		return exitIO, fmt.Errorf("write output: %w", err)
	}
	if err := w.Flush(); err != nil {
		return exitIO, fmt.Errorf("write output: %w", err)
	}
	return exitOK, nil
}

// readAll reads the whole input, into a buffer of the right size when the
// input is a regular file (no doubling copies, fewer pages touched).
func readAll(r io.Reader) ([]byte, error) {
	if f, ok := r.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > 0 {
			buf := bytes.NewBuffer(make([]byte, 0, st.Size()+bytes.MinRead))
			_, err := buf.ReadFrom(f)
			return buf.Bytes(), err
		}
	}
	return io.ReadAll(r)
}

func writeReport(w io.Writer, format string, changes []postrender.Change) error {
	if format == "json" {
		if changes == nil {
			changes = []postrender.Change{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(changes)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DOC\tSOURCE\tOBJECT\tPATH\tOLD\tNEW\tRULE")
	for _, c := range changes {
		old := c.Old
		if old == "" {
			old = "-"
		}
		src := c.Source
		if src == "" {
			src = "-"
		}
		fmt.Fprintf(tw, "%d\t%s:%d\t%s/%s\t%s\t%s\t%s\t%s\n", c.Document, src, c.Line, c.Kind, c.Name, c.Path, old, c.New, c.Rule)
		if c.Warning != "" {
			fmt.Fprintf(tw, "\tWARNING: %s\t\t\t\t\t\n", c.Warning)
		}
	}
	fmt.Fprintf(tw, "%d change(s)\n", len(changes))
	return tw.Flush()
}
