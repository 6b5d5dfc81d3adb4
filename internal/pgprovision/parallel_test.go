package pgprovision

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/outcome"
	"github.com/kommons/kommons/internal/testutil/pgtest"
)

// uniqueRelease names a release no earlier run on the shared server used
// (go test -count=N reuses the server).
func uniqueRelease() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "r" + hex.EncodeToString(b)
}

// modules is a spec of n modules (a role owning a database each) named prefix0, prefix1, ...
func (e *env) modules(scope Scope, prefix string, n int) *Spec {
	spec := &Spec{Scope: scope}
	for i := 0; i < n; i++ {
		m, _ := e.module(scope, fmt.Sprintf("%s%d", prefix, i))
		spec.Roles = append(spec.Roles, m.Roles...)
		spec.Databases = append(spec.Databases, m.Databases...)
	}
	return spec
}

// logged returns the physicalName of every log line whose msg is one of msgs, in order.
func (e *env) logged(msgs ...string) []string {
	var out []string
	for _, l := range strings.Split(e.logText(), "\n") {
		var rec struct {
			Msg      string `json:"msg"`
			Physical string `json:"physicalName"`
		}
		if json.Unmarshal([]byte(l), &rec) == nil && contains(msgs, rec.Msg) {
			out = append(out, rec.Physical)
		}
	}
	return out
}

// TestParallelRunReportsInPlanOrder holds the first module's role back
// with an uncommitted CREATE ROLE of the same name, so that the other
// sessions create the other roles first: that can only finish with more
// than one session at work. The log and the report must still follow the
// plan's order, and the databases are then created by several sessions at
// once from template1.
func TestParallelRunReportsInPlanOrder(t *testing.T) {
	srv := pgtest.Shared(t)
	e := newEnv(t, srv)
	scope := Scope{Namespace: "order", Release: uniqueRelease()}
	const n = 6
	spec := e.modules(scope, "m", n)
	var names []string
	for i := 0; i < n; i++ {
		names = append(names, phys(t, scope, fmt.Sprintf("m%d", i)))
	}
	blocker := pgtest.Connect(t, srv.AdminDSN())
	ctx := context.Background()
	_, err := blocker.Exec(ctx, "BEGIN")
	require.NoError(t, err)
	_, err = blocker.Exec(ctx, "CREATE ROLE "+pgx.Identifier{names[0]}.Sanitize())
	require.NoError(t, err)

	type finished struct {
		rep *Report
		err error
	}
	done := make(chan finished, 1)
	go func() {
		plan, err := NewPlan("test", spec)
		if err != nil {
			done <- finished{nil, err}
			return
		}
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		rep, err := Reconcile(rctx, e.cfg, plan, Options{Parallel: 3, Logger: slog.New(slog.NewJSONHandler(e, nil))})
		done <- finished{rep, err}
	}()
	watcher := pgtest.Connect(t, srv.AdminDSN())
	deadline := time.Now().Add(time.Minute)
	for {
		var created int
		require.NoError(t, watcher.QueryRow(ctx, "SELECT count(*)::int FROM pg_roles WHERE rolname = ANY($1)", names[1:]).Scan(&created))
		if created == n-1 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the other sessions must create the other roles while the first one waits")
		time.Sleep(20 * time.Millisecond)
	}
	_, err = blocker.Exec(ctx, "ROLLBACK")
	require.NoError(t, err)
	res := <-done
	require.NoError(t, res.err)

	var want, got []string
	for _, kind := range []string{KindRole, KindDatabase} {
		for _, name := range names {
			want = append(want, kind+":"+name)
		}
	}
	for _, o := range res.rep.Objects {
		got = append(got, o.Kind+":"+o.Physical)
		assert.Equal(t, outcome.Created, o.Action, o.Physical)
	}
	assert.Equal(t, want, got, "report in plan order")
	assert.Equal(t, append(append([]string(nil), names...), names...), e.logged("role created", "database created"), "log in plan order")
	var marked int
	queryRow(t, srv.AdminDSN(), `SELECT count(*)::int FROM pg_database WHERE datname = ANY($1)
		AND shobj_description(oid, 'pg_database') LIKE '{"managedBy":"kommons/pg-init",%' AND NOT has_database_privilege('public', oid, 'CONNECT')`,
		[]any{names}, &marked)
	assert.Equal(t, n, marked)
}

// TestFailureNamesItsObject: a database whose extension cannot be created
// fails the run; the log names that database, the modules before it are
// done and reported, and no further module is started (one session, so the
// order is known).
func TestFailureNamesItsObject(t *testing.T) {
	srv := pgtest.Shared(t)
	e := newEnv(t, srv)
	scope := Scope{Namespace: "failing", Release: uniqueRelease()}
	spec := e.modules(scope, "m", 3)
	spec.Databases[1].Extensions = []string{"no_such_extension_kommons"}
	rep, err := e.reconcile(spec, Options{Parallel: 1})
	require.Error(t, err)
	m0, m1, m2 := phys(t, scope, "m0"), phys(t, scope, "m1"), phys(t, scope, "m2")
	assert.Contains(t, err.Error(), "create extension no_such_extension_kommons in database "+m1)
	assert.False(t, Retryable(err))
	assert.Nil(t, rep)
	assert.Equal(t, []string{m1}, e.logged("database failed"))
	assert.Equal(t, []string{m0, m1}, e.logged("database created"), "m0 done, m1 created before its extension failed, m2 not started")
	var exists int
	queryRow(t, srv.AdminDSN(), "SELECT count(*)::int FROM pg_database WHERE datname = $1", []any{m2}, &exists)
	assert.Equal(t, 0, exists)
}

func TestTemplateAdminDatabaseRefused(t *testing.T) {
	srv := pgtest.Shared(t)
	e := newEnv(t, srv)
	cfg := e.cfg.Copy()
	cfg.Database = "template1"
	spec, _ := e.module(Scope{Namespace: "tpl", Release: "r"}, "app")
	_, err := e.reconcileAs(cfg, spec, Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "admin database template1 is a template")
	assert.False(t, Retryable(err))
}

func TestRetryableSeveralFailures(t *testing.T) {
	race := fmt.Errorf("create database a: %w", &pgconn.PgError{Code: "42P04"})
	lost := fmt.Errorf("create database b: %w", &pgconn.PgError{Code: "57P01"})
	denied := fmt.Errorf("create extension c: %w", &pgconn.PgError{Code: "42501"})
	assert.True(t, Retryable(&ObjectErrors{Errs: []error{race, lost}}), "every failure is transient")
	assert.False(t, Retryable(&ObjectErrors{Errs: []error{race, denied}}), "one failure a rerun cannot fix")
	assert.False(t, Retryable(fmt.Errorf("reconcile: %w", &ObjectErrors{Errs: []error{ErrInterrupted, race}})))
	several := &ObjectErrors{Errs: []error{race, denied}}
	assert.Contains(t, several.Error(), "2 objects failed: create database a:")
	var pgErr *pgconn.PgError
	require.True(t, errors.As(several, &pgErr))
	assert.Equal(t, "42P04", pgErr.Code, "errors.As finds the first")
}

// TestFewerSessionsWhenTheServerRefusesMore: the admin role may open only
// 3 connections, so the fourth session is refused (53300); the run goes on
// with the sessions it has and creates everything.
func TestFewerSessionsWhenTheServerRefusesMore(t *testing.T) {
	srv := pgtest.Shared(t)
	e := newEnv(t, srv)
	provPW := "limited-" + strings.Repeat("q", 12)
	e.passwords = append(e.passwords, provPW)
	_, err := EnsureProvisioners(context.Background(), e.cfg, []TenantProvisioner{{Namespace: "limited", Role: "limited_provisioner", Password: provPW}},
		ProvisionerOptions{Logger: slog.New(slog.NewJSONHandler(e, nil))})
	require.NoError(t, err)
	srv.Exec(t, "ALTER ROLE limited_provisioner CONNECTION LIMIT 3")
	provCfg, err := pgx.ParseConfig(srv.DSN("limited_provisioner", provPW, "postgres"))
	require.NoError(t, err)

	scope := Scope{Namespace: "limited", Release: uniqueRelease()}
	spec := e.modules(scope, "m", 4) // no extensions or schemas: admin sessions only
	rep, err := e.reconcileAs(provCfg, spec, Options{Parallel: 4})
	require.NoError(t, err)
	assert.Equal(t, 8, rep.Count(outcome.Created))
	assert.Contains(t, e.logText(), "continuing with fewer parallel sessions")
	var n int
	queryRow(t, srv.AdminDSN(), `SELECT count(*)::int FROM pg_database WHERE datname LIKE $1`, []any{"limited\\_" + scope.Release + "\\_%"}, &n)
	assert.Equal(t, 4, n)
}
