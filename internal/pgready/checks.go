package pgready

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Privilege is a privilege the connecting role must hold before it counts as
// ready, e.g. "SELECT,INSERT ON TABLE public.orders", "CREATE ON SCHEMA app"
// or "TEMPORARY ON DATABASE" (the current database). Every listed privilege
// is required, not just one of them.
type Privilege struct {
	Privileges []string // upper case, e.g. SELECT, INSERT
	Kind       string   // TABLE, SEQUENCE, SCHEMA or DATABASE
	Object     string   // name as SQL would resolve it; "" for the current database
}

var privilegesByKind = map[string][]string{
	"TABLE":    {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"},
	"SEQUENCE": {"USAGE", "SELECT", "UPDATE"},
	"SCHEMA":   {"USAGE", "CREATE"},
	"DATABASE": {"CREATE", "CONNECT", "TEMPORARY", "TEMP"},
}

// ParsePrivilege parses "PRIV[,PRIV...] ON KIND [NAME]"; keywords are case-insensitive.
func ParsePrivilege(s string) (Privilege, error) {
	f := strings.Fields(s)
	bad := func(why string) (Privilege, error) {
		return Privilege{}, fmt.Errorf("privilege %q: %s (want e.g. \"SELECT,INSERT ON TABLE orders\", \"CREATE ON SCHEMA app\", \"CONNECT ON DATABASE\")", s, why)
	}
	if len(f) < 3 || !strings.EqualFold(f[1], "ON") {
		return bad("not of the form PRIV ON KIND NAME")
	}
	p := Privilege{Kind: strings.ToUpper(f[2])}
	allowed, ok := privilegesByKind[p.Kind]
	if !ok {
		return bad("kind " + f[2] + " is not TABLE, SEQUENCE, SCHEMA or DATABASE")
	}
	for _, priv := range strings.Split(f[0], ",") {
		priv = strings.ToUpper(strings.TrimSpace(priv))
		if !slices.Contains(allowed, priv) {
			return bad(fmt.Sprintf("%s is not a %s privilege (%s)", priv, p.Kind, strings.Join(allowed, ", ")))
		}
		p.Privileges = append(p.Privileges, priv)
	}
	switch {
	case len(f) == 4:
		p.Object = f[3]
	case len(f) > 4:
		return bad("too many words")
	case p.Kind != "DATABASE":
		return bad(p.Kind + " needs a name")
	}
	return p, nil
}

// String renders p in the form ParsePrivilege reads.
func (p Privilege) String() string {
	s := strings.Join(p.Privileges, ",") + " ON " + p.Kind
	if p.Object != "" {
		s += " " + p.Object
	}
	return s
}

// checks are the extra conditions of LevelQuery beyond SELECT 1.
type checks struct {
	primary    bool
	tables     []string
	privileges []Privilege
}

// run returns nil when every check passes, else an error naming the first
// that does not.
func (c checks) run(ctx context.Context, conn *pgx.Conn) error {
	if c.primary {
		var inRecovery bool
		if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
			return fmt.Errorf("check primary: %w", err)
		}
		if inRecovery {
			return fmt.Errorf("check primary: server is a standby (pg_is_in_recovery() = true)")
		}
	}
	for _, t := range c.tables {
		if err := tableExists(ctx, conn, t); err != nil {
			return err
		}
	}
	for _, p := range c.privileges {
		if err := hasPrivilege(ctx, conn, p); err != nil {
			return err
		}
	}
	return nil
}

func tableExists(ctx context.Context, conn *pgx.Conn, name string) error {
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", name).Scan(&ok); err != nil {
		return fmt.Errorf("check table %s: %w", name, err)
	}
	if !ok {
		return fmt.Errorf("check table %s: does not exist (or is not on the search_path of user %s)", name, conn.Config().User)
	}
	return nil
}

func hasPrivilege(ctx context.Context, conn *pgx.Conn, p Privilege) error {
	var exists bool
	var err error
	switch p.Kind {
	case "TABLE", "SEQUENCE":
		err = conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", p.Object).Scan(&exists)
	case "SCHEMA":
		err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", p.Object).Scan(&exists)
	case "DATABASE":
		obj := p.Object
		if obj == "" {
			obj = conn.Config().Database
		}
		err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", obj).Scan(&exists)
	}
	if err != nil {
		return fmt.Errorf("check privilege %s: %w", p, err)
	}
	if !exists {
		return fmt.Errorf("check privilege %s: %s %s does not exist", p, strings.ToLower(p.Kind), p.Object)
	}
	fn := map[string]string{"TABLE": "has_table_privilege", "SEQUENCE": "has_sequence_privilege",
		"SCHEMA": "has_schema_privilege", "DATABASE": "has_database_privilege"}[p.Kind]
	for _, priv := range p.Privileges {
		var ok bool
		var err error
		if p.Kind == "DATABASE" && p.Object == "" {
			err = conn.QueryRow(ctx, "SELECT "+fn+"(current_database(), $1)", priv).Scan(&ok)
		} else {
			err = conn.QueryRow(ctx, "SELECT "+fn+"($1, $2)", p.Object, priv).Scan(&ok)
		}
		if err != nil {
			return fmt.Errorf("check privilege %s: %w", p, err)
		}
		if !ok {
			return fmt.Errorf("check privilege %s: user %s lacks %s", p, conn.Config().User, priv)
		}
	}
	return nil
}
