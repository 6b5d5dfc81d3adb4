package pgprovision

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/kommons/kommons/internal/outcome"
	"github.com/kommons/kommons/internal/pgready"
)

// reconcileInside observes the extensions and schemas of pd over a
// connection to that database, opened here, decides (decideInside) and
// creates or adopts them. A superuser admin creates extensions itself (any
// extension); any other admin acts as the owner role (SET ROLE), which can
// create trusted extensions because it owns the database.
func (r *run) reconcileInside(j *job, pd *PlannedDatabase) error {
	if len(pd.Extensions) == 0 && len(pd.Schemas) == 0 {
		return nil
	}
	if err := r.interrupted(); err != nil {
		return err
	}
	c := r.cfg.Copy()
	c.Database = pd.Physical
	conn, err := pgx.ConnectConfig(r.ctx, c)
	if err != nil {
		return r.redact(fmt.Errorf("connect to database %s: %w", pd.Physical, err))
	}
	defer conn.Close(context.Background())
	st, err := r.readInside(conn, pd)
	if err != nil {
		return err
	}
	roleSet := r.facts.superuser
	for _, d := range decideInside(pd, st, r.opts.Adopt) {
		if d.sql != "" {
			if !roleSet {
				roleSet = true
				if err := r.exec(conn, "SET ROLE "+pd.OwnerPhysical+" in "+pd.Physical, setRoleSQL(pd.OwnerPhysical)); err != nil {
					return err
				}
			}
			if err := r.exec(conn, insideWhat(d.result), d.sql); err != nil {
				if d.result.Kind == KindExtension && pgready.SQLState(err) == "42501" && !r.facts.superuser {
					return fmt.Errorf("%w (extension %s is not trusted: it needs a superuser admin, or the managed service's extension allow-list)", err, d.result.Name)
				}
				return err
			}
		}
		j.record(d.result)
	}
	return nil
}

// insideWhat names an extension or schema statement for errors.
func insideWhat(o ObjectResult) string {
	verb := "create"
	if o.Action == outcome.Updated {
		verb = "set owner of"
	}
	return verb + " " + o.Kind + " " + o.Name + " in database " + o.Database
}

// readInside observes which of pd's extensions are installed, which
// schemas exist and who owns them, and which extensions fix their schema.
func (r *run) readInside(conn *pgx.Conn, pd *PlannedDatabase) (insideState, error) {
	st := insideState{extensions: map[string]bool{}, fixedSchema: map[string]bool{}, schemaOwner: map[string]string{}}
	rows, err := conn.Query(r.stmtCtx, `SELECT 'e', e.extname::text, '' FROM pg_catalog.pg_extension e WHERE e.extname = ANY($1)
		UNION ALL SELECT 's', n.nspname::text, pg_catalog.pg_get_userbyid(n.nspowner) FROM pg_catalog.pg_namespace n WHERE n.nspname = ANY($2)
		UNION ALL SELECT 'f', a.name::text, '' FROM pg_catalog.pg_available_extensions a
			JOIN pg_catalog.pg_available_extension_versions v ON v.name = a.name AND v.version = a.default_version
			WHERE a.name = ANY($1) AND v.schema IS NOT NULL`,
		nonNil(pd.Extensions), nonNil(pd.Schemas))
	if err != nil {
		return st, r.redact(fmt.Errorf("read extensions and schemas of %s: %w", pd.Physical, err))
	}
	for rows.Next() {
		var kind, name, owner string
		if err := rows.Scan(&kind, &name, &owner); err != nil {
			rows.Close()
			return st, fmt.Errorf("read extensions and schemas of %s: %w", pd.Physical, err)
		}
		switch kind {
		case "e":
			st.extensions[name] = true
		case "f":
			st.fixedSchema[name] = true
		default:
			st.schemaOwner[name] = owner
		}
	}
	if err := rows.Err(); err != nil {
		return st, r.redact(fmt.Errorf("read extensions and schemas of %s: %w", pd.Physical, err))
	}
	return st, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
