// Package postgresinit runs what charts/postgres-init renders as real
// processes, since the test cluster (kwok) never runs containers: the pg-init
// Job of the example module examples/charts/hello-module, rendered through
// the Helm SDK, is executed with exactly its command, args, env (secretKeyRef
// resolved) and mounted ConfigMap and Secrets against a real throwaway
// PostgreSQL, through a provisioner role that is CREATEDB CREATEROLE
// NOSUPERUSER; then the module's rendered wait-for-pg init container.
package postgresinit

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/kommons/kommons/internal/pgnames"
	"github.com/kommons/kommons/internal/pgprovision"
	"github.com/kommons/kommons/internal/testutil/pgtest"
	"github.com/kommons/kommons/test/render"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	provisionerRole = "kommons_provisioner"
	provisionerPw   = "prov-Secret-9f3c"
	processTimeout  = 2 * time.Minute
)

func repoRoot(t *testing.T) string {
	_, file, _, ok := runtime.Caller(0)
	require.True(t, ok)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// module is one rendered release of the example module.
type module struct {
	Namespace, Release string
	Manifest           *render.Manifest
	Objects            podObjects
	Job                *batchv1.Job
	Deployment         *appsv1.Deployment
}

// renderModule renders hello-module as release in namespace and collects
// the rendered Secrets and ConfigMaps plus the provisioner Secret that
// charts/commons would give the tenant namespace.
func renderModule(t *testing.T, s *pgtest.Server, namespace, release string, values map[string]any) *module {
	t.Helper()
	m := render.MustChart(t, filepath.Join(repoRoot(t), "examples", "charts", "hello-module"),
		render.Options{ReleaseName: release, Namespace: namespace, Values: values})
	objs := podObjects{Secrets: map[string]map[string][]byte{}, ConfigMaps: map[string]map[string]string{}}
	for _, o := range m.ByKind("Secret") {
		sec := render.Decode[corev1.Secret](t, o)
		objs.Secrets[sec.Name] = sec.Data
	}
	for _, o := range m.ByKind("ConfigMap") {
		cm := render.Decode[corev1.ConfigMap](t, o)
		objs.ConfigMaps[cm.Name] = cm.Data
	}
	// The tenant Secret of charts/commons (tenantSecret.name, libpq keys).
	objs.Secrets["kommons-commons"] = map[string][]byte{
		"PGHOST": []byte(s.Host()), "PGPORT": []byte(strconv.Itoa(s.Port())), "PGSSLMODE": []byte("disable"),
		"PGDATABASE": []byte("postgres"), "PGUSER": []byte(provisionerRole), "PGPASSWORD": []byte(provisionerPw),
	}
	// What the Job's secret-init init container writes before pg-init
	// starts: the role's connection Secret (secretinit.Decide on the
	// rendered spec, the tenant Secret being the only one in the namespace).
	tenant := map[string]string{}
	for k, v := range objs.Secrets["kommons-commons"] {
		tenant[k] = string(v)
	}
	for _, o := range m.ByKind("ConfigMap") {
		if !strings.HasSuffix(o.Name, "-secret-init") {
			continue
		}
		for id, data := range m.SecretInitRun(t, namespace, o.Name, map[string]map[string]string{namespace + "/kommons-commons": tenant}) {
			sec := map[string][]byte{}
			for k, v := range data {
				sec[k] = []byte(v)
			}
			objs.Secrets[strings.TrimPrefix(id, namespace+"/")] = sec
		}
	}
	jobs := m.ByKind("Job")
	require.Len(t, jobs, 1)
	deps := m.ByKind("Deployment")
	require.Len(t, deps, 1)
	return &module{Namespace: namespace, Release: release, Manifest: m, Objects: objs,
		Job: render.Decode[batchv1.Job](t, jobs[0]), Deployment: render.Decode[appsv1.Deployment](t, deps[0])}
}

func (md *module) runJob(t *testing.T, bins map[string]string) runResult {
	pod := md.Job.Spec.Template.Spec
	require.Len(t, pod.Containers, 1)
	return podRun(t, pod, pod.Containers[0], md.Objects, bins, processTimeout)
}

func (md *module) runWaitForPg(t *testing.T, bins map[string]string) runResult {
	pod := md.Deployment.Spec.Template.Spec
	require.Len(t, pod.InitContainers, 1)
	return podRun(t, pod, pod.InitContainers[0], md.Objects, bins, processTimeout)
}

// roleSecret is the credentials Secret of logical role "hello" (as the
// Job's secret-init init container writes it).
func (md *module) roleSecret(t *testing.T) map[string][]byte {
	for name, data := range md.Objects.Secrets {
		if strings.HasSuffix(name, "-pg-hello") {
			return data
		}
	}
	t.Fatalf("no credentials Secret rendered for role hello")
	return nil
}

// env is the rendered value of a literal env var of the module's web container.
func (md *module) env(t *testing.T, name string) string {
	for _, e := range md.Deployment.Spec.Template.Spec.Containers[0].Env {
		if e.Name == name {
			return e.Value
		}
	}
	t.Fatalf("web container has no env %s", name)
	return ""
}

func ensureProvisioner(t *testing.T, s *pgtest.Server) {
	conn := pgtest.Connect(t, s.AdminDSN())
	ctx := context.Background()
	var exists bool
	require.NoError(t, conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, provisionerRole).Scan(&exists))
	if !exists {
		_, err := conn.Exec(ctx, `CREATE ROLE `+provisionerRole+` LOGIN CREATEDB CREATEROLE NOSUPERUSER PASSWORD '`+provisionerPw+`'`)
		require.NoError(t, err)
	}
}

func TestModuleJobProvisionsWithRenderedSpec(t *testing.T) {
	s := pgtest.Shared(t)
	ensureProvisioner(t, s)
	dir := t.TempDir()
	bins := map[string]string{
		"pg-init":     buildBinary(t, repoRoot(t), dir, "pg-init"),
		"wait-for-pg": buildBinary(t, repoRoot(t), dir, "wait-for-pg"),
	}
	admin := pgtest.Connect(t, s.AdminDSN())
	ctx := context.Background()

	// Two releases of the same module: a plain scope in one tenant
	// namespace and a scope whose names pg-init must hash, in another.
	a := renderModule(t, s, "imaging", "hello", map[string]any{"postgresInit": map[string]any{"waitForPg": map[string]any{"timeout": "4s"}}})
	b := renderModule(t, s, "sandbox-7", "hello-v2", map[string]any{"postgresInit": map[string]any{"waitForPg": map[string]any{"timeout": "4s"}}})

	t.Run("wait-for-pg waits while the database is missing", func(t *testing.T) {
		r := a.runWaitForPg(t, bins)
		assert.Equal(t, 1, r.Code, "deadline exit before pg-init ran: %s", r)
		assert.NotContains(t, r.Stderr, string(a.roleSecret(t)["password"]))
	})

	for _, md := range []*module{a, b} {
		t.Run("pg-init "+md.Namespace+"/"+md.Release, func(t *testing.T) {
			r := md.runJob(t, bins)
			require.Equal(t, 0, r.Code, "pg-init Job: %s", r)
			for _, secret := range []string{provisionerPw, string(md.roleSecret(t)["password"])} {
				assert.NotContains(t, r.Stdout+r.Stderr, secret, "no password in pg-init's output")
			}

			var out pgprovision.Output
			require.NoError(t, json.Unmarshal([]byte(r.Stdout), &out), "--output json: %s", r.Stdout)
			wantName, err := pgnames.Physical(md.Namespace, md.Release, "hello")
			require.NoError(t, err)
			require.Len(t, out.Roles, 1)
			require.Len(t, out.Databases, 1)
			// The chart's names (env, Secret) equal the names pg-init created.
			assert.Equal(t, wantName, out.Roles[0].PhysicalName)
			assert.Equal(t, wantName, out.Databases[0].PhysicalName)
			assert.Equal(t, wantName, md.env(t, "PGUSER"))
			assert.Equal(t, wantName, md.env(t, "PGDATABASE"))
			assert.Equal(t, wantName, string(md.roleSecret(t)["username"]))
			assert.Equal(t, wantName, string(md.roleSecret(t)["dbname"]))

			// Role, database, owner, schema and markers on the server.
			var owner, dbComment, roleComment string
			var canLogin, super, createdb bool
			var connLimit int
			require.NoError(t, admin.QueryRow(ctx, `SELECT r.rolname, shobj_description(d.oid, 'pg_database')
				FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = $1`, wantName).Scan(&owner, &dbComment))
			assert.Equal(t, wantName, owner)
			require.NoError(t, admin.QueryRow(ctx, `SELECT rolcanlogin, rolsuper, rolcreatedb, rolconnlimit, shobj_description(oid, 'pg_authid')
				FROM pg_roles WHERE rolname = $1`, wantName).Scan(&canLogin, &super, &createdb, &connLimit, &roleComment))
			assert.True(t, canLogin)
			assert.False(t, super)
			assert.False(t, createdb)
			assert.Equal(t, 10, connLimit, "connectionLimit from the module's values")
			for what, comment := range map[string]string{"database": dbComment, "role": roleComment} {
				mk, ok := pgprovision.ParseMarker(comment)
				require.True(t, ok, "%s comment %q is a pg-init marker", what, comment)
				assert.Equal(t, pgprovision.NewMarker(pgprovision.Scope{Namespace: md.Namespace, Release: md.Release}, "hello", "retain"), mk, what)
			}

			// The module connects with the generated password and owns its schema.
			conn := pgtest.Connect(t, s.DSN(wantName, string(md.roleSecret(t)["password"]), wantName))
			var schemaOwner string
			require.NoError(t, conn.QueryRow(ctx, `SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'greetings'`).Scan(&schemaOwner))
			assert.Equal(t, wantName, schemaOwner)

			// The rendered wait-for-pg init container now succeeds.
			w := md.runWaitForPg(t, bins)
			assert.Equal(t, 0, w.Code, "wait-for-pg: %s", w)
			assert.NotContains(t, w.Stdout+w.Stderr, string(md.roleSecret(t)["password"]))

			// Rerunning the same Job is a no-op that succeeds.
			r2 := md.runJob(t, bins)
			require.Equal(t, 0, r2.Code, "second run: %s", r2)
		})
	}

	t.Run("isolation between the two releases", func(t *testing.T) {
		nameA, _ := pgnames.Physical(a.Namespace, a.Release, "hello")
		nameB, _ := pgnames.Physical(b.Namespace, b.Release, "hello")
		require.NotEqual(t, nameA, nameB)
		for _, pair := range [][2]*module{{a, b}, {b, a}} {
			from, to := pair[0], pair[1]
			user, _ := pgnames.Physical(from.Namespace, from.Release, "hello")
			db, _ := pgnames.Physical(to.Namespace, to.Release, "hello")
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			c, err := pgx.Connect(cctx, s.DSN(user, string(from.roleSecret(t)["password"]), db))
			cancel()
			if err == nil {
				c.Close(ctx)
			}
			var pgErr *pgconn.PgError
			require.True(t, errors.As(err, &pgErr), "%s must not connect to %s: %v", user, db, err)
			assert.Equal(t, "42501", pgErr.Code, "insufficient privilege (CONNECT revoked from PUBLIC)")
			// Nor does one release's password open the other's role.
			cctx, cancel = context.WithTimeout(ctx, 30*time.Second)
			c, err = pgx.Connect(cctx, s.DSN(db, string(from.roleSecret(t)["password"]), db))
			cancel()
			if err == nil {
				c.Close(ctx)
			}
			require.Error(t, err)
		}
	})

	t.Run("an existing database without this scope's marker fails the Job", func(t *testing.T) {
		c := renderModule(t, s, "imaging", "squat", nil)
		name, _ := pgnames.Physical("imaging", "squat", "hello")
		_, err := admin.Exec(ctx, "CREATE DATABASE "+name)
		require.NoError(t, err)
		t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name) })
		r := c.runJob(t, bins)
		assert.Equal(t, 3, r.Code, "ownership conflict exit: %s", r)
		assert.Contains(t, r.Stderr, name)
		var owner string
		require.NoError(t, admin.QueryRow(ctx, `SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1`, name).Scan(&owner))
		assert.Equal(t, pgtest.AdminUser, owner, "the squatter's database is untouched")
	})
}
