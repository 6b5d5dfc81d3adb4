// Command s3-init creates the S3 buckets one module needs, named after its
// scope (Kubernetes namespace + Helm release), on an object store shared by
// many modules: idempotently, with ownership markers (bucket tags), never
// deleting anything. On MinIO (--minio-admin) it also creates one access key
// per module user whose policy is limited to that module's buckets. See
// docs/s3-init.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/minio/madmin-go/v3"

	"github.com/kommons/kommons/internal/cli"
	"github.com/kommons/kommons/internal/provisioncli"
	"github.com/kommons/kommons/internal/retry"
	"github.com/kommons/kommons/internal/s3provision"
	"github.com/kommons/kommons/internal/secretfile"
)

const usageText = `Usage: s3-init [flags]

Creates the buckets listed in --spec (YAML), named
<namespace>-<release>-<name>, idempotently, on the S3 endpoint --endpoint,
and marks them with the tags kommons.io/managed-by=s3-init and
kommons.io/scope=<namespace>/<release>. With --minio-admin it also creates
the spec's users: MinIO access keys <namespace>-<release>-<name> whose only
policy grants read-write on their own buckets. Nothing is deleted unless
--prune: then this scope's buckets (only empty ones) and users that the spec
no longer lists and whose marker says reclaimPolicy delete.
Logs go to stderr, --output json to stdout.

With --check-buckets (no --spec) it only checks, with the credentials given,
that each listed bucket (physical names) exists and lists its objects:
nothing is created or changed; failures are retried until --deadline
(charts/commons' helm test hook runs it with a tenant's key).

Admin credentials: --access-key-file/--secret-key-file, else the
environment variables AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and
AWS_SESSION_TOKEN).

Exit codes:
  0  done: the object store matches the spec (--check-buckets: every bucket answered)
  1  runtime failure (--check-buckets: a bucket did not answer) (endpoint unreachable before --deadline, credentials
     rejected, S3 error, interrupted by SIGTERM/SIGINT)
  2  invalid spec or usage (the message names the file, field or flag)
  3  ownership conflict: a bucket, user or policy exists without this
     scope's marker (rerun with --adopt to take it over)

Flags:
`

func main() {
	// Run retries whole reconciles with its own backoff and deadline;
	// madmin's own 10 retries per request (up to 30s apart) would only
	// delay a clean exit on SIGTERM.
	madmin.MaxRetry = 1
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	spec, namespace, release, output, checkBuckets         string
	endpoint, region, accessKeyFile, secretKeyFile, caFile string
	pathStyle, insecure, minioAdmin, adopt, prune          bool
	deadline, unmarkedWait                                 time.Duration
	logOpts                                                cli.LogOptions
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	t := provisioncli.New("s3-init", stdout, stderr)
	var o options
	fs := cli.NewFlagSet("s3-init")
	fs.String(&o.spec, "spec", "S3_INIT_SPEC", "", "spec file (YAML) listing buckets and users (required)")
	fs.String(&o.checkBuckets, "check-buckets", "S3_INIT_CHECK_BUCKETS", "", "comma-separated bucket names to check (exist, list) with the credentials given, creating nothing; replaces --spec")
	fs.String(&o.namespace, "namespace", "S3_INIT_NAMESPACE", "", "scope namespace (must equal scope.namespace when the spec has one)")
	fs.String(&o.release, "release", "S3_INIT_RELEASE", "", "scope release (must equal scope.release when the spec has one)")
	fs.String(&o.endpoint, "endpoint", "S3_ENDPOINT", "", "S3 API URL, http(s)://host[:port] (required)")
	fs.String(&o.region, "region", "S3_REGION", cli.Env("AWS_REGION", ""), "bucket region (empty: us-east-1; also env AWS_REGION)")
	fs.String(&o.accessKeyFile, "access-key-file", "S3_ACCESS_KEY_FILE", "", "file holding the admin access key (else env AWS_ACCESS_KEY_ID)")
	fs.String(&o.secretKeyFile, "secret-key-file", "S3_SECRET_KEY_FILE", "", "file holding the admin secret key (else env AWS_SECRET_ACCESS_KEY)")
	fs.Bool(&o.pathStyle, "path-style", "S3_PATH_STYLE", true, "path-style addressing (MinIO); false: virtual-host style (bucket.host)")
	fs.Bool(&o.insecure, "insecure", "S3_INSECURE", false, "skip TLS certificate verification")
	fs.String(&o.caFile, "ca-file", "S3_CA_FILE", "", "PEM file of CA certificates to trust for TLS, in addition to the system's")
	fs.Bool(&o.minioAdmin, "minio-admin", "S3_INIT_MINIO_ADMIN", false, "create the spec's users through the MinIO admin API (MinIO only)")
	fs.Bool(&o.adopt, "adopt", "S3_INIT_ADOPT", false, "take over existing buckets, users and policies without this scope's marker")
	fs.Bool(&o.prune, "prune", "S3_INIT_PRUNE", false, "delete this scope's buckets (only when empty) and users that the spec no longer lists and whose marker says reclaimPolicy delete")
	fs.String(&o.output, "output", "S3_INIT_OUTPUT", "none", "stdout format: none or json (bucket names, access keys and endpoint, never a secret)")
	fs.Duration(&o.deadline, "deadline", "S3_INIT_DEADLINE", 5*time.Minute, "overall deadline, including waiting for the endpoint")
	fs.Duration(&o.unmarkedWait, "unmarked-wait", "S3_INIT_UNMARKED_WAIT", 15*time.Second, "how long a recently created bucket without a marker is watched for one (a concurrent run may be tagging it) before it is refused")
	fs.LogFlags(&o.logOpts, "S3_INIT")
	if exit, done := t.Start(fs, args, usageText, &o.logOpts); done {
		return exit
	}
	usage := t.Usage
	switch {
	case o.spec == "" && o.checkBuckets == "":
		return usage("--spec", "required (the spec file), or --check-buckets")
	case o.spec != "" && o.checkBuckets != "":
		return usage("--check-buckets", "replaces --spec: give one of them")
	case o.endpoint == "":
		return usage("--endpoint", "required (or env S3_ENDPOINT)")
	case provisioncli.CheckOutput(o.output) != "":
		return usage("--output", provisioncli.CheckOutput(o.output))
	case o.deadline <= 0:
		return usage("--deadline", "must be positive")
	case o.unmarkedWait < 0:
		return usage("--unmarked-wait", "must not be negative")
	}
	conn := s3provision.Connection{Endpoint: o.endpoint, Region: o.region, PathStyle: o.pathStyle,
		Insecure: o.insecure, CAFile: o.caFile}
	if _, _, err := s3provision.ParseEndpoint(o.endpoint); err != nil {
		return usage("--endpoint", err.Error())
	}
	if o.caFile != "" {
		if _, err := s3provision.LoadCertPool(o.caFile); err != nil {
			return usage("--ca-file", err.Error())
		}
	}
	var err error
	if conn.AccessKey, err = credential("--access-key-file", o.accessKeyFile, "AWS_ACCESS_KEY_ID"); err != nil {
		return usage("--access-key-file", err.Error())
	}
	if conn.SecretKey, err = credential("--secret-key-file", o.secretKeyFile, "AWS_SECRET_ACCESS_KEY"); err != nil {
		return usage("--secret-key-file", err.Error())
	}
	conn.SessionToken = os.Getenv("AWS_SESSION_TOKEN")
	t.Hide(conn.SecretKey, conn.SessionToken)
	if o.checkBuckets != "" {
		return check(ctx, t, conn, o)
	}

	spec, err := s3provision.LoadSpecFile(o.spec)
	if err != nil {
		return t.FailSpec(err)
	}
	if err := spec.Scope.Load(o.spec, o.namespace, o.release, "S3_INIT"); err != nil {
		return t.FailSpec(err)
	}
	plan, err := s3provision.NewPlan(o.spec, spec)
	if err != nil {
		return t.FailSpec(err)
	}
	t.Hide(plan.Secrets()...)
	if len(plan.Users) > 0 && !o.minioAdmin {
		t.Log.Error("invalid usage", "flag", "--minio-admin", "file", o.spec,
			"error", "the spec has users: "+s3provision.ErrNeedsMinIOAdmin.Error())
		return provisioncli.ExitUsage
	}

	runCtx, cancel := provisioncli.Context(ctx, o.deadline)
	defer cancel()

	t.Log.Info("provisioning", "scope", plan.Scope.String(), "endpoint", o.endpoint, "region", o.region,
		"buckets", len(plan.Buckets), "users", len(plan.Users), "adopt", o.adopt, "prune", o.prune, "minioAdmin", o.minioAdmin)
	rep, err := s3provision.Run(runCtx, conn, plan, s3provision.Options{Adopt: o.adopt, Prune: o.prune, MinIOAdmin: o.minioAdmin,
		UnmarkedWait: o.unmarkedWait, Logger: t.Log})
	var output func() any
	if o.output == "json" {
		output = func() any { return s3provision.NewOutput(plan, conn, rep) }
	}
	return t.Finish(err, output)
}

// credential reads a key from file (secretfile.Read: a regular file of at
// most 64 KiB, one trailing newline ignored), else from the environment
// variable env. flag names the file's flag in errors.
func credential(flag, file, env string) (string, error) {
	if file == "" {
		if v := os.Getenv(env); v != "" {
			return v, nil
		}
		return "", fmt.Errorf("required (a file, or env %s)", env)
	}
	v, err := secretfile.Read(file)
	if err != nil {
		return "", fmt.Errorf("%s %w", flag, err)
	}
	return v, nil
}

// check is --check-buckets: each bucket must exist and list with conn's
// credentials; nothing is created or changed.
func check(ctx context.Context, t *provisioncli.Tool, conn s3provision.Connection, o options) int {
	var buckets []string
	for _, b := range strings.Split(o.checkBuckets, ",") {
		if b = strings.TrimSpace(b); b != "" {
			buckets = append(buckets, b)
		}
	}
	if len(buckets) == 0 {
		return t.Usage("--check-buckets", "no bucket name in "+strconv.Quote(o.checkBuckets))
	}
	runCtx, cancel := provisioncli.Context(ctx, o.deadline)
	defer cancel()
	t.Log.Info("checking buckets", "endpoint", o.endpoint, "buckets", buckets, "deadline", o.deadline)
	// Every failure is retried until --deadline: right after an install the
	// key and the buckets appear only once s3-init's own Job has run.
	err := retry.Do(runCtx, retry.Policy{
		Transient: func(error) bool { return true },
		OnRetry: func(n int, err error, pause time.Duration) {
			t.Log.Warn("buckets not answering yet", "attempt", n, "error", err, "retryIn", pause.Round(time.Millisecond))
		},
	}, func(ctx context.Context, _ int) error { return s3provision.CheckBuckets(ctx, conn, buckets) })
	if err != nil {
		t.Log.Error("check failed", "error", err)
		return 1
	}
	t.Log.Info("buckets answer", "buckets", len(buckets))
	return 0
}
