package pgprovision

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
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
		{"created by this provisioner (16+)", tenant(pg16), roleState{comment: &marker, control: roleControl{adminOption: true}}, true, Ours, ""},
		{"created by this provisioner, no marker: adoptable", tenant(pg16), roleState{control: roleControl{adminOption: true}}, false, Adoptable, "no kommons ownership marker"},
		{"forged marker, no ADMIN OPTION (16+)", tenant(pg16), roleState{comment: &marker}, true, Foreign, "does not hold ADMIN OPTION"},
		{"squatted: another provisioner holds membership", tenant(pg16), roleState{comment: &marker, control: roleControl{adminOption: true, otherMembers: []string{"kommons_tenant_a"}}}, true, Foreign, "kommons_tenant_a"},
		{"squatted, seen by a superuser admin", super(pg16), roleState{comment: &marker, control: roleControl{otherMembers: []string{"kommons_tenant_a"}}}, true, Foreign, "other roles hold membership"},
		{"superuser role", super(pg16), roleState{super: true, comment: &marker}, true, Foreign, "superuser"},
		{"superuser admin needs no ADMIN OPTION", super(pg16), roleState{comment: &marker}, true, Ours, ""},
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
