package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kommons/kommons/internal/pgprovision"
	"github.com/kommons/kommons/internal/pgready"
	"github.com/kommons/kommons/internal/provisioncli"
)

// bootstrapProvisioner creates (or repairs) the tenants' provisioner roles
// (--tenants with --passwords-dir, or one --role with --password-file) and
// migrates away from the legacy shared provisioner (--legacy-role). With
// --pin-admin-search-path it first pins the admin's search_path
// (pgprovision.PinAdminSearchPath), with --pooler-role it hardens
// CloudNativePG's pooler auth_query function (pgprovision.HardenPoolerAuth).
func bootstrapProvisioner(ctx context.Context, t *provisioncli.Tool, cfg *pgx.ConnConfig, o options) int {
	log := t.Log
	provs, flag, err := provisionersFromFlags(o)
	if err != nil {
		log.Error("invalid usage", "flag", flag, "error", err.Error())
		return provisioncli.ExitUsage
	}
	for _, p := range provs {
		t.Hide(p.Password)
	}
	if err := pgprovision.ValidateProvisioners(provs); err != nil {
		log.Error("invalid usage", "flag", flag, "error", err.Error())
		return provisioncli.ExitUsage
	}
	if _, err := pgready.Wait(ctx, cfg, pgready.Options{FailFastAuth: true, Primary: true, Logger: log}); err != nil {
		log.Error("waiting for the server", "error", err.Error())
		return provisioncli.ExitFailure
	}
	if o.pinAdminSearchPath {
		if err := pgprovision.PinAdminSearchPath(ctx, cfg, log); err != nil {
			log.Error("bootstrap-provisioner failed", "flag", "--pin-admin-search-path", "error", err.Error())
			return provisioncli.ExitFailure
		}
	}
	if o.poolerRole != "" {
		if _, err := pgprovision.HardenPoolerAuth(ctx, cfg, o.poolerRole, log); err != nil {
			log.Error("bootstrap-provisioner failed", "flag", "--pooler-role", "error", err.Error())
			return provisioncli.ExitFailure
		}
	}
	_, err = pgprovision.EnsureProvisioners(ctx, cfg, provs, pgprovision.ProvisionerOptions{Legacy: o.legacyRole, Logger: log})
	var conflict *pgprovision.ConflictError
	switch {
	case err == nil:
		return provisioncli.ExitOK
	case errors.Is(err, pgprovision.ErrUnconfinedCreateRole):
		log.Error("bootstrap-provisioner refused", "error", err.Error())
		return provisioncli.ExitUsage
	case errors.As(err, &conflict):
		log.Error("bootstrap-provisioner refused", "error", err.Error())
		return provisioncli.ExitConflict
	}
	log.Error("bootstrap-provisioner failed", "error", err.Error())
	return provisioncli.ExitFailure
}

// provisionersFromFlags reads the provisioner identities: --tenants
// (ns=role,...) with a password file per tenant in --passwords-dir named
// after the namespace, or one --role with --password-file. flag names the
// flags an error is about.
func provisionersFromFlags(o options) ([]pgprovision.TenantProvisioner, string, error) {
	switch {
	case o.tenants != "" && (o.role != "" || o.passwordFile != ""):
		return nil, "--tenants, --role", errors.New("give either --tenants with --passwords-dir, or --role with --password-file")
	case o.tenants != "":
		if o.passwordsDir == "" {
			return nil, "--passwords-dir", errors.New("required with --tenants")
		}
		var provs []pgprovision.TenantProvisioner
		for _, item := range strings.Split(o.tenants, ",") {
			ns, role, ok := strings.Cut(strings.TrimSpace(item), "=")
			if !ok || ns == "" || role == "" || strings.ContainsAny(ns, `/\`) || ns == "." || ns == ".." {
				return nil, "--tenants", fmt.Errorf("%q: want namespace=role", item)
			}
			pw, err := pgprovision.ReadPassword(filepath.Join(o.passwordsDir, ns))
			if err != nil {
				return nil, "--passwords-dir", fmt.Errorf("--passwords-dir, tenant %s: %w", ns, err)
			}
			provs = append(provs, pgprovision.TenantProvisioner{Namespace: ns, Role: role, Password: pw})
		}
		return provs, "--tenants", nil
	case o.role != "" && o.passwordFile != "":
		pw, err := pgprovision.ReadPassword(o.passwordFile)
		if err != nil {
			return nil, "--password-file", fmt.Errorf("--password-file %w", err)
		}
		return []pgprovision.TenantProvisioner{{Role: o.role, Password: pw}}, "--role", nil
	}
	return nil, "--tenants, --role", errors.New("give --tenants with --passwords-dir, or --role with --password-file")
}
