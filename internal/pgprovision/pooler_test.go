package pgprovision

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/outcome"
	"github.com/kommons/kommons/internal/testutil/pgtest"
)

// TestPoolerRoleGetsConnect: a connection pooler's auth_query role
// (Options.PoolerRole, CloudNativePG's cnpg_pooler_pgbouncer) is granted
// CONNECT on the module databases, which pg-init closes to PUBLIC, by a
// non-superuser tenant provisioner; a missing role is skipped (no pooler
// yet) and granted on a later run; reruns change nothing.
func TestPoolerRoleGetsConnect(t *testing.T) {
	srv := pgtest.Shared(t)
	e := newEnv(t, srv)
	provPW := "prov-" + strings.Repeat("p", 10)
	e.passwords = append(e.passwords, provPW)
	provs := []TenantProvisioner{{Namespace: "pooled", Role: "kommons_tenant_pooled", Password: provPW}}
	_, err := EnsureProvisioners(context.Background(), e.cfg, provs, ProvisionerOptions{Logger: slog.New(slog.NewJSONHandler(e, nil))})
	require.NoError(t, err)
	provCfg, err := pgx.ParseConfig(srv.DSN("kommons_tenant_pooled", provPW, "postgres"))
	require.NoError(t, err)

	const pooler = "test_pooler_auth"
	poolerPW := "pooler-" + strings.Repeat("q", 10)
	e.passwords = append(e.passwords, poolerPW)
	admin := pgtest.Connect(t, srv.AdminDSN())
	ctx := context.Background()
	_, _ = admin.Exec(ctx, "DROP ROLE IF EXISTS "+pooler)

	scope := Scope{Namespace: "pooled", Release: "web"}
	spec, _ := e.module(scope, "app")
	name := phys(t, scope, "app")

	// No such role yet: the database is made as always, closed to it.
	rep, err := e.reconcileAs(provCfg, spec, Options{PoolerRole: pooler})
	require.NoError(t, err)
	assert.Equal(t, outcome.Created, actions(rep)["database:"+name])
	assert.Contains(t, e.logText(), `"msg":"pooler role does not exist: no CONNECT granted to it"`)
	_, err = admin.Exec(ctx, "CREATE ROLE "+pooler+" LOGIN PASSWORD '"+poolerPW+"'")
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), "REVOKE ALL ON DATABASE "+name+" FROM "+pooler)
		_, _ = admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+pooler)
	})
	err = login(srv, pooler, poolerPW, name)
	require.Error(t, err, "CONNECT is revoked from PUBLIC")
	assert.Contains(t, err.Error(), "permission denied for database")

	// Without the option nothing changes; with it the role gets CONNECT.
	rep, err = e.reconcileAs(provCfg, spec, Options{})
	require.NoError(t, err)
	assert.Equal(t, outcome.Unchanged, actions(rep)["database:"+name])
	rep, err = e.reconcileAs(provCfg, spec, Options{PoolerRole: pooler})
	require.NoError(t, err)
	o, ok := rep.Find(KindDatabase, name)
	require.True(t, ok)
	assert.Equal(t, outcome.Updated, o.Action)
	assert.Contains(t, o.Changes, "GRANT CONNECT to pooler role "+pooler)
	require.NoError(t, login(srv, pooler, poolerPW, name), "the pooler's role connects to the module database")
	rep, err = e.reconcileAs(provCfg, spec, Options{PoolerRole: pooler})
	require.NoError(t, err)
	assert.Equal(t, outcome.Unchanged, actions(rep)["database:"+name], "rerun: no DDL")

	// A database created while the role exists gets the grant at once.
	spec2, _ := e.module(scope, "second")
	rep, err = e.reconcileAs(provCfg, spec2, Options{PoolerRole: pooler})
	require.NoError(t, err)
	second := phys(t, scope, "second")
	assert.Equal(t, outcome.Created, actions(rep)["database:"+second])
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "REVOKE ALL ON DATABASE "+second+" FROM "+pooler) })
	require.NoError(t, login(srv, pooler, poolerPW, second))
	// Other roles still cannot.
	var public bool
	require.NoError(t, admin.QueryRow(ctx, "SELECT has_database_privilege('public', $1, 'CONNECT')", second).Scan(&public))
	assert.False(t, public)
}
