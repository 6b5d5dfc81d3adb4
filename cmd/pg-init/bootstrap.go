package main

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5"

	"github.com/kommons/kommons/internal/cli"
	"github.com/kommons/kommons/internal/pgprovision"
	"github.com/kommons/kommons/internal/pgready"
	"github.com/kommons/kommons/internal/redact"
)

// bootstrapProvisioner creates the CREATEDB CREATEROLE login role pg-init runs as.
func bootstrapProvisioner(ctx context.Context, log *slog.Logger, errw *redact.Writer, cfg *pgx.ConnConfig, o options) int {
	if o.role == "" || o.passwordFile == "" {
		log.Error("invalid usage", "flag", "--role, --password-file", "error", "both are required")
		return cli.ExitUsage
	}
	pw, err := pgprovision.ReadPassword(o.passwordFile)
	if err != nil {
		log.Error("invalid usage", "flag", "--password-file", "error", "--password-file "+err.Error())
		return cli.ExitUsage
	}
	errw.Add(pw)
	if _, err := pgready.Wait(ctx, cfg, pgready.Options{FailFastAuth: true, Primary: true, Logger: log}); err != nil {
		log.Error("waiting for the server", "error", err.Error())
		return cli.ExitFailure
	}
	if _, err := pgprovision.EnsureProvisioner(ctx, cfg, o.role, pw, log); err != nil {
		log.Error("bootstrap-provisioner failed", "error", err.Error())
		return cli.ExitFailure
	}
	return cli.ExitOK
}
