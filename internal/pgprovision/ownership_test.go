package pgprovision

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/kommons/kommons/internal/outcome"
)

func TestDecideRoleOwnership(t *testing.T) {
	marker := NewMarker(Scope{Namespace: "b", Release: "r"}, "app", ReclaimRetain).String()
	pg15, pg16 := 150000, 160000
	tenant := func(v int) adminFactsForDecision { return adminFactsForDecision{serverVersion: v} }
	super := func(v int) adminFactsForDecision { return adminFactsForDecision{superuser: true, serverVersion: v} }
	for _, tc := range []struct {
		name       string
		admin      adminFactsForDecision
		st         roleState
		markedOurs bool
		want       Ownership
		reason     string
	}{
		{"created by this provisioner (16+)", tenant(pg16), roleState{comment: &marker, control: roleControl{adminOption: true, anchored: true}}, true, Ours, ""},
		{"created by this provisioner, no marker: adoptable", tenant(pg16), roleState{control: roleControl{adminOption: true, anchored: true}}, false, Adoptable, "no kommons ownership marker"},
		{"ADMIN OPTION granted by a tenant, not by the server (16+)", tenant(pg16), roleState{comment: &marker, control: roleControl{adminOption: true}}, true, Foreign, "does not hold ADMIN OPTION"},
		{"orphaned squat seen by a superuser admin: no anchor (16+)", super(pg16), roleState{comment: &marker}, true, Adoptable, "did not create it"},
		{"forged marker, no ADMIN OPTION (16+)", tenant(pg16), roleState{comment: &marker}, true, Foreign, "does not hold ADMIN OPTION"},
		{"squatted: another provisioner holds membership", tenant(pg16), roleState{comment: &marker, control: roleControl{adminOption: true, otherMembers: []string{"kommons_tenant_a"}}}, true, Foreign, "kommons_tenant_a"},
		{"squatted, seen by a superuser admin", super(pg16), roleState{comment: &marker, control: roleControl{otherMembers: []string{"kommons_tenant_a"}}}, true, Foreign, "other roles hold membership"},
		{"superuser role", super(pg16), roleState{super: true, comment: &marker}, true, Foreign, "superuser"},
		{"superuser admin: its anchor, no ADMIN OPTION needed", super(pg16), roleState{comment: &marker, control: roleControl{anchored: true}}, true, Ours, ""},
		{"PostgreSQL 15, superuser admin: no anchor bookkeeping", super(pg15), roleState{comment: &marker}, true, Ours, ""},
		{"PostgreSQL 15 has no ADMIN OPTION bookkeeping", tenant(pg15), roleState{comment: &marker}, true, Ours, ""},
		{"PostgreSQL 15, another member", tenant(pg15), roleState{comment: &marker, control: roleControl{otherMembers: []string{"x"}}}, true, Foreign, "x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, reason := decideRoleOwnership(tc.admin, &tc.st, tc.markedOurs)
			if got != tc.want {
				t.Fatalf("verdict %d, want %d (reason %q)", got, tc.want, reason)
			}
			if !strings.Contains(reason, tc.reason) {
				t.Fatalf("reason %q does not contain %q", reason, tc.reason)
			}
		})
	}
}

func TestDecideDatabaseOwnership(t *testing.T) {
	forged := NewMarker(Scope{Namespace: "b", Release: "r"}, "db", ReclaimDelete).String()
	for _, tc := range []struct {
		name string
		st   databaseState
		want Ownership
	}{
		{"owned by the planned role", databaseState{owner: "b_r_app"}, Ours},
		{"owned by the planned role, marker rewritten by the owner", databaseState{owner: "b_r_app", comment: &forged}, Ours},
		{"squatted under b's name with b's marker", databaseState{owner: "a_x_app", comment: &forged}, Adoptable},
		{"unmarked, other owner", databaseState{owner: "someone"}, Adoptable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, reason := decideDatabaseOwnership(&tc.st, "b_r_app")
			if got != tc.want {
				t.Fatalf("verdict %d, want %d (reason %q)", got, tc.want, reason)
			}
			if got != Ours && !strings.Contains(reason, tc.st.owner) {
				t.Fatalf("reason %q does not name the owner %s", reason, tc.st.owner)
			}
		})
	}
}

func TestPinSearchPathOverridesDefaults(t *testing.T) {
	cfg := mustConfig(t, "postgres://u@127.0.0.1:5432/db?search_path=public")
	pinned := pinSearchPath(cfg)
	if got := pinned.RuntimeParams["search_path"]; got != pinnedSearchPath {
		t.Fatalf("search_path %q, want %q", got, pinnedSearchPath)
	}
	if cfg.RuntimeParams["search_path"] != "public" {
		t.Fatal("pinSearchPath changed its input")
	}
}

func TestCreateExtensionStatement(t *testing.T) {
	if got := createExtension("pg_trgm", false); got != `CREATE EXTENSION IF NOT EXISTS "pg_trgm" SCHEMA public` {
		t.Fatal(got)
	}
	if got := createExtension("plpgsql", true); got != `CREATE EXTENSION IF NOT EXISTS "plpgsql"` {
		t.Fatal(got)
	}
}

func mustConfig(t *testing.T, dsn string) *pgx.ConnConfig {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestDecideProvisioner(t *testing.T) {
	super := adminFactsForDecision{superuser: true, serverVersion: 180000}
	managed := adminFactsForDecision{serverVersion: 180000}
	p := TenantProvisioner{Namespace: "imaging", Role: "kommons_tenant_imaging", Password: "a-password-of-24-chars!!"}
	marker := provisionerMarker{ManagedBy: ProvisionerManagedBy, Tenant: "imaging"}.String()
	always := func(v bool) func(*roleState) bool { return func(*roleState) bool { return v } }
	good := roleState{canLogin: true, createDB: true, createRole: true, comment: &marker, control: roleControl{adminOption: true, anchored: true}}
	for _, tc := range []struct {
		name     string
		admin    adminFactsForDecision
		st       *roleState
		samePW   bool
		action   Action
		changes  []string
		stmts    []string // statement prefixes, in order
		refusal  string
		errorMsg string
	}{
		{name: "missing: created with its marker", admin: super, st: nil, action: outcome.Created,
			stmts: []string{`CREATE ROLE "kommons_tenant_imaging" WITH LOGIN NOSUPERUSER CREATEDB CREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD $1`, `COMMENT ON ROLE`, `GRANT "kommons_tenant_imaging" TO CURRENT_USER`}},
		{name: "missing, managed admin: the server records the anchor", admin: managed, st: nil, action: outcome.Created,
			stmts: []string{`CREATE ROLE "kommons_tenant_imaging"`, `COMMENT ON ROLE`}},
		{name: "existing but not created by this superuser admin: never adopted", admin: super, samePW: true, action: outcome.Refused, refusal: "did not create it",
			st: &roleState{canLogin: true, createDB: true, createRole: true, comment: &marker}},
		{name: "as it should be", admin: managed, st: &good, samePW: true, action: outcome.Unchanged},
		{name: "rotated password", admin: super, st: &good, samePW: false, action: outcome.Updated,
			changes: []string{"password"}, stmts: []string{`ALTER ROLE "kommons_tenant_imaging" WITH PASSWORD $1`}},
		{name: "attributes repaired, marker set", admin: super, samePW: true, action: outcome.Updated,
			st:      &roleState{canLogin: false, createDB: true, createRole: false, replication: true, control: roleControl{anchored: true}},
			changes: []string{"LOGIN", "CREATEROLE", "NOREPLICATION", "marker"},
			stmts:   []string{`ALTER ROLE "kommons_tenant_imaging" WITH LOGIN CREATEROLE NOREPLICATION`, `COMMENT ON ROLE`}},
		{name: "squatted by another tenant's provisioner", admin: super, samePW: true, action: outcome.Refused, refusal: "kommons_tenant_lab",
			st: &roleState{canLogin: true, createDB: true, createRole: true, comment: &marker, control: roleControl{otherMembers: []string{"kommons_tenant_lab"}}}},
		{name: "created by someone else (managed admin, 16+)", admin: managed, samePW: true, action: outcome.Refused, refusal: "ADMIN OPTION",
			st: &roleState{canLogin: true, createDB: true, createRole: true}},
		{name: "a superuser role", admin: super, samePW: true, action: outcome.Refused, refusal: "superuser", st: &roleState{super: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, stmts, err := decideProvisioner(tc.admin, "postgres", p, tc.st, always(tc.samePW))
			if err != nil {
				t.Fatal(err)
			}
			if res.Action != tc.action || !strings.Contains(res.Reason, tc.refusal) {
				t.Fatalf("result %+v, want %s (reason containing %q)", res, tc.action, tc.refusal)
			}
			if strings.Join(res.Changes, ",") != strings.Join(tc.changes, ",") {
				t.Fatalf("changes %v, want %v", res.Changes, tc.changes)
			}
			if len(stmts) != len(tc.stmts) {
				t.Fatalf("statements %v, want %d", stmts, len(tc.stmts))
			}
			for i, s := range stmts {
				if !strings.HasPrefix(s.sql, tc.stmts[i]) {
					t.Fatalf("statement %d: %q, want prefix %q", i, s.sql, tc.stmts[i])
				}
				if strings.Contains(s.sql, p.Password) {
					t.Fatal("a password in a statement's text (it must be the $1 literal, a SCRAM verifier)")
				}
			}
		})
	}
	if _, _, err := decideProvisioner(super, "kommons_tenant_imaging", p, nil, always(true)); err == nil {
		t.Fatal("the admin itself as a tenant's provisioner must be an error")
	}
}
