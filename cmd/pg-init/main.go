// Command pg-init creates the PostgreSQL roles and databases one module
// needs, named after its scope (Kubernetes namespace + Helm release), on a
// server shared by many modules: idempotently, with ownership markers,
// SCRAM verifiers computed client-side and PUBLIC locked out. See
// docs/pg-init.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kommons/kommons/internal/cli"
	"github.com/kommons/kommons/internal/pgconfig"
	"github.com/kommons/kommons/internal/pgprovision"
	"github.com/kommons/kommons/internal/pgready"
	"github.com/kommons/kommons/internal/provisioncli"
)

// maxParallel bounds --parallel: each unit is up to two connections.
const maxParallel = 64

const usageText = `Usage: pg-init [flags]
       pg-init bootstrap-provisioner [flags]

Creates the roles and databases listed in --spec (YAML), named
<namespace>_<release>_<name>, idempotently, on the server given by the libpq
environment (PGHOST, PGPORT, PGUSER, PGPASSWORD or PGPASSFILE, PGDATABASE,
PGSSLMODE, PGCONNECT_TIMEOUT) or --dsn. The admin needs CREATEROLE and
CREATEDB (SUPERUSER is not required). Logs go to stderr, --output json to stdout.

bootstrap-provisioner creates (or repairs) one NOSUPERUSER CREATEDB CREATEROLE
login role per tenant for pg-init itself (--tenants ns=role,... with a password
file per namespace in --passwords-dir, or one --role with --password-file), as
a superuser or a CREATEDB CREATEROLE admin. On PostgreSQL 16+ the server
confines each to the roles it creates; older servers accept one tenant only
(exit 2). --legacy-role hands the roles of the shared provisioner of earlier
kommons versions to their tenants' provisioners and disables it. --pooler-role
(CloudNativePG's cnpg_pooler_pgbouncer; superuser admin) first hardens the
pooler's auth_query function public.user_search in template1 and every
database: pinned search_path, schema public owned by the superuser.
--pin-admin-search-path gives the admin role a search_path of its own, which
overrides the one a database's owner may set on its database.

Exit codes:
  0  done: the server matches the spec
  1  runtime failure (server unreachable before --deadline, SQL error,
     interrupted by SIGTERM/SIGINT: the statement in flight completes, no
     further statement is sent)
  2  invalid spec or usage (the message names the file, field or flag)
  3  ownership conflict: a role, database or schema exists without this
     scope's marker (rerun with --adopt to take it over)

Flags:
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	spec, namespace, release, dsn, adminPasswordFile, output string
	poolerRole                                               string
	adopt, prune, pinAdminSearchPath                         bool
	parallel                                                 int
	deadline                                                 time.Duration
	logOpts                                                  cli.LogOptions
	role, passwordFile, tenants, passwordsDir, legacyRole    string // bootstrap-provisioner
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	bootstrap := len(args) > 0 && args[0] == "bootstrap-provisioner"
	if bootstrap {
		args = args[1:]
	}
	t := provisioncli.New("pg-init", stdout, stderr)
	var o options
	fs := cli.NewFlagSet("pg-init")
	if !bootstrap {
		fs.String(&o.spec, "spec", "PG_INIT_SPEC", "", "spec file (YAML) listing roles and databases (required)")
		fs.String(&o.namespace, "namespace", "PG_INIT_NAMESPACE", "", "scope namespace (overrides nothing: must equal scope.namespace when the spec has one)")
		fs.String(&o.release, "release", "PG_INIT_RELEASE", "", "scope release (must equal scope.release when the spec has one)")
		fs.Bool(&o.adopt, "adopt", "PG_INIT_ADOPT", false, "take over existing objects without this scope's marker")
		fs.Bool(&o.prune, "prune", "PG_INIT_PRUNE", false, "drop this scope's objects no longer in the spec whose reclaimPolicy is delete")
		fs.String(&o.output, "output", "PG_INIT_OUTPUT", "none", "stdout format: none or json (physical names and connection facts, never a password)")
		fs.Int(&o.parallel, "parallel", "PG_INIT_PARALLEL", pgprovision.DefaultParallel(),
			"roles, then databases, reconciled at once, each over its own admin session (at most 2x this many connections)")
		fs.String(&o.poolerRole, "pooler-role", "PG_INIT_POOLER_ROLE", "",
			"role granted CONNECT on every database of the spec, when it exists: a connection pooler's auth_query role (CloudNativePG: cnpg_pooler_pgbouncer)")
	} else {
		fs.String(&o.tenants, "tenants", "PG_INIT_TENANTS", "", "tenant provisioners to create, as namespace=role,... (passwords in --passwords-dir)")
		fs.String(&o.passwordsDir, "passwords-dir", "PG_INIT_PASSWORDS_DIR", "", "directory holding one password file per tenant, named after its namespace")
		fs.String(&o.role, "role", "PG_INIT_PROVISIONER_ROLE", "", "one provisioner role to create (instead of --tenants)")
		fs.String(&o.passwordFile, "password-file", "PG_INIT_PROVISIONER_PASSWORD_FILE", "", "file holding --role's password")
		fs.String(&o.poolerRole, "pooler-role", "PG_INIT_POOLER_ROLE", "",
			"CloudNativePG pooler's auth_query role (cnpg_pooler_pgbouncer): harden its public.user_search function in template1 and every database (superuser admin only)")
		fs.Bool(&o.pinAdminSearchPath, "pin-admin-search-path", "PG_INIT_PIN_ADMIN_SEARCH_PATH", false,
			"set the admin role's own search_path (\"$user\", public) unless it has one, over any database's: CloudNativePG's instance manager runs unqualified names as the superuser in every database")
		fs.String(&o.legacyRole, "legacy-role", "PG_INIT_LEGACY_ROLE", "", "shared provisioner of earlier versions to migrate away from (its roles go to their tenants' provisioners; it loses LOGIN)")
	}
	fs.String(&o.dsn, "dsn", "PG_INIT_DSN", "", "admin connection string (URL or key=value); unset fields come from the libpq environment")
	fs.String(&o.adminPasswordFile, "admin-password-file", "PG_INIT_ADMIN_PASSWORD_FILE", "", "file holding the admin password (overrides PGPASSWORD and --dsn)")
	fs.Duration(&o.deadline, "deadline", "PG_INIT_DEADLINE", 5*time.Minute, "overall deadline, including waiting for the server")
	fs.LogFlags(&o.logOpts, "PG_INIT")
	if exit, done := t.Start(fs, args, usageText, &o.logOpts); done {
		return exit
	}
	log := t.Log
	if o.deadline <= 0 {
		log.Error("invalid flag", "flag", "--deadline", "error", "must be positive")
		return provisioncli.ExitUsage
	}
	if !bootstrap && (o.parallel < 1 || o.parallel > maxParallel) {
		log.Error("invalid flag", "flag", "--parallel", "error", fmt.Sprintf("%d: want 1 to %d", o.parallel, maxParallel))
		return provisioncli.ExitUsage
	}
	cfg, err := pgconfig.Load(pgconfig.Source{DSN: o.dsn, PasswordFile: o.adminPasswordFile, PasswordFileFlag: "--admin-password-file"})
	if err != nil {
		log.Error("invalid admin connection settings", "error", err.Error())
		return provisioncli.ExitUsage
	}
	t.Hide(cfg.Password)
	if cfg.Database == "" {
		// The advisory lock that serializes pg-init runs is per database:
		// default to the maintenance database rather than the user's.
		cfg.Database = "postgres"
	}
	if pgprovision.IsTemplateDatabase(cfg.Database) {
		log.Error("invalid admin connection settings", "error", fmt.Sprintf("admin database %s is a template: "+
			"use another one (normally postgres); CREATE DATABASE copies template1 and fails while another session is connected to it", cfg.Database))
		return provisioncli.ExitUsage
	}

	runCtx, cancel := provisioncli.Context(ctx, o.deadline)
	defer cancel()

	if bootstrap {
		return bootstrapProvisioner(runCtx, t, cfg, o)
	}
	return provision(runCtx, t, cfg, o)
}

func provision(ctx context.Context, t *provisioncli.Tool, cfg *pgx.ConnConfig, o options) int {
	if o.spec == "" {
		return t.Usage("--spec", "required (the spec file)")
	}
	if problem := provisioncli.CheckOutput(o.output); problem != "" {
		return t.Usage("--output", problem)
	}
	spec, err := pgprovision.LoadSpecFile(o.spec)
	if err != nil {
		return t.FailSpec(err)
	}
	if err := spec.Scope.Load(o.spec, o.namespace, o.release, "PG_INIT"); err != nil {
		return t.FailSpec(err)
	}
	plan, err := pgprovision.NewPlan(o.spec, spec)
	if err != nil {
		return t.FailSpec(err)
	}
	t.Hide(plan.Secrets()...)
	t.Log.Info("provisioning", "scope", plan.Scope.String(), "server", pgconfig.Describe(cfg),
		"roles", len(plan.Roles), "databases", len(plan.Databases), "adopt", o.adopt, "prune", o.prune)
	rep, err := pgprovision.Run(ctx, cfg, plan, pgprovision.RunOptions{
		Options: pgprovision.Options{Adopt: o.adopt, Prune: o.prune, Logger: t.Log, Parallel: o.parallel, PoolerRole: o.poolerRole},
		Ready:   pgready.Options{FailFastAuth: true, WatchInterval: 200 * time.Millisecond},
	})
	var output func() any
	if o.output == "json" {
		output = func() any { return pgprovision.NewOutput(plan, cfg, rep) }
	}
	return t.Finish(err, output)
}
