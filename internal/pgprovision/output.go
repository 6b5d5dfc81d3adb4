package pgprovision

import (
	"github.com/jackc/pgx/v5"

	"github.com/kommons/kommons/internal/pgconfig"
)

// Output is pg-init's machine-readable result (--output json): physical
// names and connection facts, never a password.
type Output struct {
	Scope     Scope            `json:"scope"`
	Server    ServerFacts      `json:"server"`
	Roles     []RoleOutput     `json:"roles"`
	Databases []DatabaseOutput `json:"databases"`
	Pruned    []ObjectResult   `json:"pruned,omitempty"`
}

// ServerFacts says where applications connect.
type ServerFacts struct {
	Host    string `json:"host"`
	Port    uint16 `json:"port"`
	SSLMode string `json:"sslmode"`
}

// RoleOutput is one role of the plan.
type RoleOutput struct {
	Name         string `json:"name"`
	PhysicalName string `json:"physicalName"`
	PasswordFile string `json:"passwordFile,omitempty"`
	PasswordEnv  string `json:"passwordEnv,omitempty"`
	Action       Action `json:"action"`
}

// DatabaseOutput is one database of the plan.
type DatabaseOutput struct {
	Name          string   `json:"name"`
	PhysicalName  string   `json:"physicalName"`
	Owner         string   `json:"owner"`
	OwnerPhysical string   `json:"ownerPhysicalName"`
	Extensions    []string `json:"extensions"`
	Schemas       []string `json:"schemas"`
	Action        Action   `json:"action"`
}

// NewOutput combines a plan, the admin config (for host, port and sslmode)
// and a run's report.
func NewOutput(plan *Plan, cfg *pgx.ConnConfig, rep *Report) Output {
	out := Output{Scope: plan.Scope, Server: ServerFacts{Host: cfg.Host, Port: cfg.Port, SSLMode: pgconfig.SSLMode(&cfg.Config)},
		Roles: []RoleOutput{}, Databases: []DatabaseOutput{}}
	action := func(kind, phys string) Action {
		if rep == nil {
			return ""
		}
		o, _ := rep.Find(kind, phys)
		return o.Action
	}
	for _, r := range plan.Roles {
		out.Roles = append(out.Roles, RoleOutput{Name: r.Name, PhysicalName: r.Physical, PasswordFile: r.PasswordFile, PasswordEnv: r.PasswordEnv, Action: action(KindRole, r.Physical)})
	}
	for _, d := range plan.Databases {
		out.Databases = append(out.Databases, DatabaseOutput{Name: d.Name, PhysicalName: d.Physical, Owner: d.Owner,
			OwnerPhysical: d.OwnerPhysical, Extensions: nonNil(d.Extensions), Schemas: nonNil(d.Schemas), Action: action(KindDatabase, d.Physical)})
	}
	if rep != nil {
		out.Pruned = rep.Pruned
	}
	return out
}
