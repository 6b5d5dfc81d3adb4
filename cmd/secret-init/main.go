// Command secret-init creates and reconciles the credentials Secrets listed
// in its spec, inside the cluster, so that no chart has to render a
// generated password: generated keys are created once and never
// overwritten, facts are reconciled on every run, certificates are issued
// once. It talks to the API server with the pod's ServiceAccount token and
// never logs a value. See docs/secret-init.md.
package main

import (
	"context"
	"io"
	"os"
	"time"

	"github.com/kommons/kommons/internal/cli"
	"github.com/kommons/kommons/internal/kubeapi"
	"github.com/kommons/kommons/internal/provisioncli"
	"github.com/kommons/kommons/internal/secretinit"
)

const usageText = `Usage: secret-init [flags]

Creates the Secrets listed in --spec (YAML) when they are missing and
reconciles them: a generated key (generate) is written once and never
overwritten while it holds a non-empty value; facts (value, fromSecret,
fromConfigMap, template) are set to their computed value on every run; certificates
(a self-signed CA and a server certificate) are issued once. Secrets are
processed in spec order, so a later one may copy a key of an earlier one.
Every Secret written carries the label
app.kubernetes.io/managed-by=kommons-secret-init. Values never reach the
logs: a line per Secret names its namespace, name, action and key names.

In a pod it uses the ServiceAccount's token, CA and namespace; --server,
--token-file and --ca-file replace them (tests, out-of-cluster runs).

Exit codes:
  0  done: every Secret matches the spec
  1  runtime failure (API unreachable or refusing before --deadline, a
     fromSecret or fromConfigMap source still missing at --deadline, interrupted by SIGTERM/SIGINT)
  2  invalid spec or usage (the message names the file and the field, or the flag)

Flags:
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	spec, namespace, server, tokenFile, caFile string
	deadline                                   time.Duration
	logOpts                                    cli.LogOptions
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	t := provisioncli.New("secret-init", stdout, stderr)
	var o options
	fs := cli.NewFlagSet("secret-init")
	fs.String(&o.spec, "spec", "SECRET_INIT_SPEC", "", "spec file (YAML) listing the Secrets and certificates (required)")
	fs.String(&o.namespace, "namespace", "SECRET_INIT_NAMESPACE", "", "default namespace of the spec's entries (default: the pod's namespace)")
	fs.String(&o.server, "server", "SECRET_INIT_SERVER", "", "API server URL (default: in-cluster, KUBERNETES_SERVICE_HOST/PORT)")
	fs.String(&o.tokenFile, "token-file", "SECRET_INIT_TOKEN_FILE", "", "bearer token file (default: the pod's ServiceAccount token)")
	fs.String(&o.caFile, "ca-file", "SECRET_INIT_CA_FILE", "", "PEM file of the API server's CA (default: the pod's ServiceAccount ca.crt)")
	fs.Duration(&o.deadline, "deadline", "SECRET_INIT_DEADLINE", 5*time.Minute, "overall deadline, including waiting for fromSecret and fromConfigMap sources and the API server")
	fs.LogFlags(&o.logOpts, "SECRET_INIT")
	if exit, done := t.Start(fs, args, usageText, &o.logOpts); done {
		return exit
	}
	switch {
	case o.spec == "":
		return t.Usage("--spec", "required (the spec file; or env SECRET_INIT_SPEC)")
	case o.deadline <= 0:
		return t.Usage("--deadline", "must be positive")
	case o.server == "" && (o.tokenFile != "" || o.caFile != ""):
		return t.Usage("--server", "required with --token-file or --ca-file")
	}
	cfg, code := config(t, o)
	if code != provisioncli.ExitOK {
		return code
	}
	ns := o.namespace
	if ns == "" {
		ns = cfg.Namespace
	}
	spec, err := secretinit.Load(o.spec, ns)
	if err != nil {
		return t.FailSpec(err)
	}
	client, err := kubeapi.New(cfg)
	if err != nil {
		return t.Usage("--server", err.Error())
	}
	runCtx, cancel := provisioncli.Context(ctx, o.deadline)
	defer cancel()
	t.Log.Info("reconciling", "spec", o.spec, "secrets", len(spec.Secrets), "certificates", len(spec.Certificates))
	r := &secretinit.Runner{API: client, Log: t.Log, Hide: t.Hide}
	return t.Finish(r.Run(runCtx, spec), nil)
}

// config is the API server access: the flags', else the pod's.
func config(t *provisioncli.Tool, o options) (kubeapi.Config, int) {
	if o.server == "" {
		cfg, err := kubeapi.InCluster("")
		if err != nil {
			t.Log.Error("no API server", "error", err.Error(), "hint", "run in a pod with a ServiceAccount token, or pass --server, --token-file and --ca-file")
			return cfg, provisioncli.ExitUsage
		}
		return cfg, provisioncli.ExitOK
	}
	cfg := kubeapi.Config{Server: o.server, TokenFile: o.tokenFile}
	if o.tokenFile == "" {
		return cfg, t.Usage("--token-file", "required with --server")
	}
	if o.caFile == "" {
		return cfg, t.Usage("--ca-file", "required with --server")
	}
	ca, err := os.ReadFile(o.caFile)
	if err != nil {
		return cfg, t.Usage("--ca-file", err.Error())
	}
	cfg.CAData = ca
	return cfg, provisioncli.ExitOK
}
