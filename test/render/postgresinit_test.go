package render

// Rendered-manifest tests of charts/postgres-init and of the example module
// examples/charts/hello-module that uses its named templates, through the
// Helm SDK's install action in client-only mode (what `helm template` does):
// dependency processing with aliases, values.schema.json validation,
// template rendering, hooks.

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/kommons/kommons/internal/pgnames"
	"github.com/kommons/kommons/internal/pgprovision"
	"github.com/kommons/kommons/internal/testutil/testca"
)

// pgiRepoRoot is the repository root, found from this file's path.
func pgiRepoRoot(t *testing.T) string {
	_, file, _, ok := runtime.Caller(0)
	require.True(t, ok)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// pgiChart loads charts/postgres-init.
func pgiChart(t *testing.T) *chart.Chart {
	c, err := Load(filepath.Join(pgiRepoRoot(t), "charts", "postgres-init"))
	require.NoError(t, err)
	return c
}

// pgiHelloChart loads examples/charts/hello-module with the postgres-init and
// kommons-common charts of this work tree as its dependencies (what `helm
// dependency build` packages under charts/).
func pgiHelloChart(t *testing.T) *chart.Chart {
	c, err := Load(filepath.Join(pgiRepoRoot(t), "examples", "charts", "hello-module"))
	require.NoError(t, err)
	return c
}

// pgiDoc is one rendered manifest.
type pgiDoc struct {
	Kind, Name string
	Hook       bool
	Object     map[string]any
	YAML       string
}

// pgiManifests is a rendered release: manifests and hooks.
type pgiManifests struct{ Docs []pgiDoc }

// pgiRender renders chrt as `helm template` does, returning every document
// (hooks included, flagged) or the render/validation error.
func pgiRender(t *testing.T, chrt *chart.Chart, release, namespace string, vals map[string]any) (*pgiManifests, error) {
	t.Helper()
	cfg := &action.Configuration{Log: func(string, ...any) {}}
	inst := action.NewInstall(cfg)
	inst.ClientOnly = true
	inst.DryRun = true
	inst.Replace = true
	inst.ReleaseName = release
	inst.Namespace = namespace
	// The SDK's built-in default (v1.20) predates the charts' kubeVersion
	// floor; the helm CLI reports its client-go version, as here.
	kv, err := chartutil.ParseKubeVersion("v1.33.0")
	require.NoError(t, err)
	inst.KubeVersion = kv
	if vals == nil {
		vals = map[string]any{}
	}
	rel, err := inst.Run(chrt, vals)
	if err != nil {
		return nil, err
	}
	out := &pgiManifests{}
	add := func(text string, hook bool) {
		for _, part := range strings.Split(text, "\n---") {
			if strings.TrimSpace(part) == "" {
				continue
			}
			var obj map[string]any
			require.NoError(t, yaml.Unmarshal([]byte(part), &obj), "rendered YAML:\n%s", part)
			if obj == nil {
				continue
			}
			md, _ := obj["metadata"].(map[string]any)
			name, _ := md["name"].(string)
			kind, _ := obj["kind"].(string)
			out.Docs = append(out.Docs, pgiDoc{Kind: kind, Name: name, Hook: hook, Object: obj, YAML: part})
		}
	}
	add(rel.Manifest, false)
	for _, h := range rel.Hooks {
		add(h.Manifest, true)
	}
	return out, nil
}

func pgiMustRender(t *testing.T, chrt *chart.Chart, release, namespace string, vals map[string]any) *pgiManifests {
	t.Helper()
	m, err := pgiRender(t, chrt, release, namespace, vals)
	require.NoError(t, err)
	return m
}

// ByKind returns the documents of one kind.
func (m *pgiManifests) ByKind(kind string) []pgiDoc {
	var out []pgiDoc
	for _, d := range m.Docs {
		if d.Kind == kind {
			out = append(out, d)
		}
	}
	return out
}

// One returns the single document of kind, failing otherwise.
func (m *pgiManifests) One(t *testing.T, kind string) pgiDoc {
	t.Helper()
	docs := m.ByKind(kind)
	require.Len(t, docs, 1, "want exactly one %s", kind)
	return docs[0]
}

// Named returns the document of kind and name.
func (m *pgiManifests) Named(t *testing.T, kind, name string) pgiDoc {
	t.Helper()
	for _, d := range m.Docs {
		if d.Kind == kind && d.Name == name {
			return d
		}
	}
	t.Fatalf("no %s %q rendered (have %v)", kind, name, m.names())
	return pgiDoc{}
}

func (m *pgiManifests) names() []string {
	var out []string
	for _, d := range m.Docs {
		out = append(out, d.Kind+"/"+d.Name)
	}
	sort.Strings(out)
	return out
}

// Into decodes a document into a typed Kubernetes object.
func (d pgiDoc) Into(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, yaml.Unmarshal([]byte(d.YAML), v))
}

func pgiJob(t *testing.T, m *pgiManifests) *batchv1.Job {
	var j batchv1.Job
	m.One(t, "Job").Into(t, &j)
	return &j
}

// pgiSpec is pg-init's spec (the ConfigMap <prefix>-init-spec).
func pgiSpec(t *testing.T, m *pgiManifests) *pgprovision.Spec {
	var spec *pgprovision.Spec
	for _, d := range m.ByKind("ConfigMap") {
		if strings.HasSuffix(d.Name, "-init-spec") {
			var cm corev1.ConfigMap
			d.Into(t, &cm)
			var err error
			spec, err = pgprovision.DecodeSpec("rendered ConfigMap", []byte(cm.Data["spec.yaml"]))
			require.NoError(t, err)
		}
	}
	require.NotNil(t, spec, "no pg-init spec ConfigMap rendered (have %v)", m.names())
	return spec
}

// pgiTenantSecret is the tenant Secret charts/commons gives a namespace.
func pgiTenantSecret(ns string) map[string]map[string]string {
	return map[string]map[string]string{ns + "/kommons-commons": {
		"PGHOST": "commons-postgresql.commons.svc.cluster.local", "PGPORT": "5432", "PGSSLMODE": "disable",
		"PGUSER": "kommons_tenant", "PGPASSWORD": "provisioner-Pw-123", "PGDATABASE": "postgres"}}
}

// pgiSecretInit is what the Job's secret-init init container writes from
// the rendered spec (ConfigMap <prefix>-secret-init) on a cluster holding
// existing (namespace/name -> data), by Secret name.
func pgiSecretInit(t *testing.T, m *pgiManifests, ns string, existing map[string]map[string]string) map[string]map[string]string {
	t.Helper()
	var cm corev1.ConfigMap
	found := false
	for _, d := range m.ByKind("ConfigMap") {
		if strings.HasSuffix(d.Name, "-secret-init") {
			d.Into(t, &cm)
			found = true
		}
	}
	require.True(t, found, "no secret-init spec ConfigMap rendered (have %v)", m.names())
	out := map[string]map[string]string{}
	for id, data := range SecretInitRun(t, cm.Name, ns, cm.Data["spec.yaml"], existing) {
		out[strings.TrimPrefix(id, ns+"/")] = data
	}
	return out
}

var pgiJobName = regexp.MustCompile(`^(.+)-([0-9a-f]{10})$`)

func TestPostgresInitDefaults(t *testing.T) {
	m := pgiMustRender(t, pgiChart(t), "billing", "sandbox", nil)
	var others []string
	for _, n := range m.names() {
		if !strings.HasPrefix(n, "Job/") {
			others = append(others, n)
		}
	}
	assert.Equal(t, []string{"ConfigMap/billing-pg-init-spec", "ConfigMap/billing-pg-secret-init", "NetworkPolicy/billing-pg-init", "NetworkPolicy/billing-pg-test",
		"Pod/billing-pg-test", "Role/billing-pg-secret-init", "RoleBinding/billing-pg-secret-init", "ServiceAccount/billing-pg-secret-init"}, others,
		"no Secret: the connection Secret is written in the cluster by secret-init")
	assert.Len(t, m.ByKind("Job"), 1)

	job := pgiJob(t, m)
	match := pgiJobName.FindStringSubmatch(job.Name)
	require.NotNil(t, match, "plain Job name carries a 10-hex hash: %s", job.Name)
	assert.Equal(t, "billing-pg-init", match[1])
	assert.Equal(t, match[2], job.Labels["kommons.io/spec-hash"])
	assert.Empty(t, job.Annotations["helm.sh/hook"], "default is a plain Job, not a hook")
	for _, d := range m.Docs {
		if d.Kind == "Pod" { // the helm test hook (helm_test_hooks_test.go)
			assert.True(t, d.Hook, d.Name)
			continue
		}
		assert.False(t, d.Hook, "%s/%s must not be a hook by default", d.Kind, d.Name)
	}

	// Job spec: limits, security, pg-init invocation, admin connection.
	assert.EqualValues(t, 3, *job.Spec.BackoffLimit)
	assert.EqualValues(t, 900, *job.Spec.ActiveDeadlineSeconds)
	assert.EqualValues(t, 86400, *job.Spec.TTLSecondsAfterFinished)
	pod := job.Spec.Template.Spec
	assert.Equal(t, corev1.RestartPolicyNever, pod.RestartPolicy)
	require.NotNil(t, pod.AutomountServiceAccountToken)
	assert.False(t, *pod.AutomountServiceAccountToken)
	require.Len(t, pod.Containers, 1)
	c := pod.Containers[0]
	assert.Equal(t, "ghcr.io/kommons/kommons-tools:0.1.0", c.Image, "tag defaults to the chart's appVersion")
	assert.Equal(t, []string{"/usr/local/bin/pg-init"}, c.Command)
	assert.Contains(t, c.Args, "--output=json")
	assert.Contains(t, c.Args, "--spec=/etc/pg-init/spec/spec.yaml")
	sc := c.SecurityContext
	require.NotNil(t, sc)
	assert.True(t, *sc.ReadOnlyRootFilesystem)
	assert.True(t, *sc.RunAsNonRoot)
	assert.False(t, *sc.AllowPrivilegeEscalation)
	assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop)
	assert.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, sc.SeccompProfile.Type)
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	// charts/commons' tenant Secret: kommons-commons with libpq-named keys.
	for _, name := range []string{"PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGSSLMODE", "PGDATABASE"} {
		key := name
		require.Contains(t, env, name)
		ref := env[name].ValueFrom.SecretKeyRef
		require.NotNil(t, ref, name)
		assert.Equal(t, "kommons-commons", ref.Name, name)
		assert.Equal(t, key, ref.Key, name)
	}

	// The spec maps the values one-to-one and is valid for pg-init.
	spec := pgiSpec(t, m)
	assert.Equal(t, pgprovision.Scope{Namespace: "sandbox", Release: "billing"}, spec.Scope)
	require.Len(t, spec.Roles, 1)
	assert.Equal(t, "app", spec.Roles[0].Name)
	assert.Equal(t, "PG_INIT_PASSWORD_APP", spec.Roles[0].PasswordEnv)
	assert.Empty(t, spec.Roles[0].PasswordFile)
	require.NoError(t, spec.Validate("rendered"))

	// The password reaches pg-init through env (resolved when pg-init
	// starts, after the init container wrote the Secret), never a volume
	// (set up before init containers run).
	require.Contains(t, env, "PG_INIT_PASSWORD_APP")
	ref := env["PG_INIT_PASSWORD_APP"].ValueFrom.SecretKeyRef
	assert.Equal(t, "billing-pg-app", ref.Name)
	assert.Equal(t, "password", ref.Key)
	for _, v := range pod.Volumes {
		if v.Name == "postgres-ca" && v.Secret != nil && v.Secret.SecretName == "kommons-commons" {
			continue // the tenant Secret's CA: commons writes that Secret, never this pod
		}
		assert.Nil(t, v.Secret, "volume %s: no Secret volume in the pod whose init container writes it", v.Name)
	}

	// The init container: secret-init with the spec, under its own
	// ServiceAccount, whose token only that container mounts.
	require.Len(t, pod.InitContainers, 1)
	ic := pod.InitContainers[0]
	assert.Equal(t, "secret-init", ic.Name)
	assert.Equal(t, c.Image, ic.Image)
	assert.Equal(t, "billing-pg-secret-init", pod.ServiceAccountName)
	for _, vm := range c.VolumeMounts {
		assert.NotEqual(t, "/var/run/secrets/kubernetes.io/serviceaccount", vm.MountPath, "pg-init gets no API token")
	}
	var role rbacv1.Role
	m.Named(t, "Role", "billing-pg-secret-init").Into(t, &role)
	var written, read []string
	for _, r := range role.Rules {
		switch {
		case slices.Contains(r.Verbs, "patch"):
			written = r.ResourceNames
		case len(r.ResourceNames) > 0:
			read = r.ResourceNames
		}
	}
	assert.Equal(t, []string{"billing-pg-app"}, written, "get/patch only the Secrets it writes")
	assert.Equal(t, []string{"kommons-commons"}, read, "get only the Secrets it reads")

	// The credentials Secret secret-init writes: CloudNativePG -app layout.
	data := pgiSecretInit(t, m, "sandbox", pgiTenantSecret("sandbox"))["billing-pg-app"]
	for _, k := range []string{"username", "user", "password", "host", "port", "sslmode", "dbname", "uri", "jdbc-uri", "pgpass"} {
		assert.Contains(t, data, k)
	}
	assert.Equal(t, "sandbox_billing_app", data["username"])
	assert.Equal(t, "sandbox_billing_app", data["dbname"])
	assert.Equal(t, "commons-postgresql.commons.svc.cluster.local", data["host"], "host from the tenant Secret, in the cluster")
	assert.Equal(t, "5432", data["port"])
	assert.Equal(t, "disable", data["sslmode"])
	assert.Regexp(t, `^[A-Za-z0-9]{32}$`, data["password"])
	for _, d := range m.Docs {
		assert.NotContains(t, d.YAML, data["password"], "%s/%s", d.Kind, d.Name)
	}
}

func TestPostgresInitConnectionSecretLayout(t *testing.T) {
	m := pgiMustRender(t, pgiChart(t), "shop", "tenant1", map[string]any{
		"connection": map[string]any{"host": "pg.commons.svc", "port": 6432, "sslmode": "require"},
		"roles":      []any{map[string]any{"name": "app"}, map[string]any{"name": "reader", "database": "app"}},
	})
	written := pgiSecretInit(t, m, "tenant1", nil)
	data := written["shop-pg-reader"]
	pw := data["password"]
	assert.Equal(t, "tenant1_shop_reader", data["username"])
	assert.Equal(t, "tenant1_shop_app", data["dbname"], "roles[].database picks the connection database")
	assert.Equal(t, "pg.commons.svc", data["host"])
	assert.Equal(t, "6432", data["port"])
	assert.Equal(t, "postgresql://tenant1_shop_reader:"+pw+"@pg.commons.svc:6432/tenant1_shop_app?sslmode=require", data["uri"])
	u, err := url.Parse(data["uri"])
	require.NoError(t, err)
	upw, _ := u.User.Password()
	assert.Equal(t, pw, upw)
	assert.Equal(t, "jdbc:postgresql://pg.commons.svc:6432/tenant1_shop_app?password="+pw+"&user=tenant1_shop_reader&sslmode=require", data["jdbc-uri"])
	assert.Equal(t, "pg.commons.svc:6432:tenant1_shop_app:tenant1_shop_reader:"+pw+"\n", data["pgpass"])
	// Two roles, two independent passwords.
	assert.NotEqual(t, pw, written["shop-pg-app"]["password"])

	// A password needing escapes: the templates escape it as the chart did.
	written = pgiSecretInit(t, m, "tenant1", map[string]map[string]string{
		"tenant1/shop-pg-reader": {"password": `p@ss:w/o\rd 1`}})
	data = written["shop-pg-reader"]
	assert.Equal(t, `p@ss:w/o\rd 1`, data["password"], "an existing password is kept")
	assert.Equal(t, "postgresql://tenant1_shop_reader:p%40ss%3Aw%2Fo%5Crd%201@pg.commons.svc:6432/tenant1_shop_app?sslmode=require", data["uri"])
	u, err = url.Parse(data["uri"])
	require.NoError(t, err)
	upw, _ = u.User.Password()
	assert.Equal(t, `p@ss:w/o\rd 1`, upw)
	assert.Equal(t, `pg.commons.svc:6432:tenant1_shop_app:tenant1_shop_reader:p@ss\:w/o\\rd 1`+"\n", data["pgpass"])
}

// TestPostgresInitConnectionSecrets: extra connection Secrets (values
// connectionSecrets) copy the role's password, so both always agree; a role
// with existingSecret copies it from there.
func TestPostgresInitConnectionSecrets(t *testing.T) {
	m := pgiMustRender(t, pgiChart(t), "shop", "tenant1", map[string]any{
		"roles": []any{map[string]any{"name": "app"}, map[string]any{"name": "ext", "existingSecret": "mine", "existingSecretPasswordKey": "pw", "database": "app"}},
		"connectionSecrets": []any{
			map[string]any{"name": "{{ .Release.Name }}-database", "role": "app"},
			map[string]any{"name": "ext-conn", "role": "ext"},
		},
	})
	written := pgiSecretInit(t, m, "tenant1", map[string]map[string]string{
		"tenant1/kommons-commons": pgiTenantSecret("tenant1")["tenant1/kommons-commons"],
		"tenant1/mine":            {"pw": "my-Own-password-1"}})
	require.Contains(t, written, "shop-database", "name rendered with tpl")
	assert.Equal(t, written["shop-pg-app"]["password"], written["shop-database"]["password"])
	assert.Equal(t, written["shop-pg-app"]["uri"], written["shop-database"]["uri"])
	assert.Equal(t, "my-Own-password-1", written["ext-conn"]["password"])
	assert.Equal(t, "tenant1_shop_ext", written["ext-conn"]["username"])
	assert.NotContains(t, written, "mine", "an existingSecret is only read")

	_, err := pgiRender(t, pgiChart(t), "shop", "tenant1", map[string]any{
		"connectionSecrets": []any{map[string]any{"name": "x", "role": "ghost"}}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `role "ghost" is not in the postgres-init values' roles`)
}

func TestPostgresInitJobNameHash(t *testing.T) {
	chrt := pgiChart(t)
	name := func(vals map[string]any) string {
		return pgiJob(t, pgiMustRender(t, chrt, "billing", "sandbox", vals)).Name
	}
	base := name(nil)
	// Deterministic: passwords are random per render, but not hashed.
	assert.Equal(t, base, name(nil))
	assert.Equal(t, base, name(map[string]any{"job": map[string]any{"ttlSecondsAfterFinished": 86400}}), "an unchanged value keeps the Job")

	changes := map[string]map[string]any{
		"extension":  {"databases": []any{map[string]any{"name": "app", "owner": "app", "extensions": []any{"pgcrypto"}}}},
		"schema":     {"databases": []any{map[string]any{"name": "app", "owner": "app", "schemas": []any{"s1"}}}},
		"connlimit":  {"roles": []any{map[string]any{"name": "app", "connectionLimit": 5}}},
		"reclaim":    {"roles": []any{map[string]any{"name": "app", "reclaimPolicy": "delete"}}},
		"image tag":  {"image": map[string]any{"tag": "9.9.9"}},
		"digest":     {"image": map[string]any{"digest": "sha256:" + strings.Repeat("ab", 32)}},
		"revision":   {"job": map[string]any{"revision": "rotated"}},
		"provider":   {"provisioner": map[string]any{"secretName": "other"}},
		"prune flag": {"job": map[string]any{"prune": true}},
		"scope":      {"scope": map[string]any{"release": "other"}},
		// Everything else in the Job's (immutable) pod template, too.
		"pod annotation": {"job": map[string]any{"podAnnotations": map[string]any{"a": "b"}}},
		"pod label":      {"job": map[string]any{"podLabels": map[string]any{"a": "b"}}},
		"resources":      {"job": map[string]any{"resources": map[string]any{"limits": map[string]any{"memory": "1Gi"}}}},
		"node selector":  {"job": map[string]any{"nodeSelector": map[string]any{"pool": "db"}}},
		"backoff":        {"job": map[string]any{"backoffLimit": 7}},
	}
	seen := map[string]string{base: "defaults"}
	for label, vals := range changes {
		n := name(vals)
		assert.Regexp(t, `^billing-pg-init-[0-9a-f]{10}$`, n, label)
		if prev, dup := seen[n]; dup {
			t.Errorf("%s: Job name %s equals the one of %s: an upgrade would not run a new Job", label, n, prev)
		}
		seen[n] = label
	}

	// A new chart version changes the pod template's labels: a new Job too.
	bumped := pgiChart(t)
	bumped.Metadata.Version = "0.1.1"
	assert.NotEqual(t, base, pgiJob(t, pgiMustRender(t, bumped, "billing", "sandbox", nil)).Name, "chart version bump")

	// A long release name still gives a valid Job name (<= 63 bytes).
	long := strings.Repeat("r", 53)
	n := pgiJob(t, pgiMustRender(t, chrt, long, "sandbox", nil)).Name
	assert.LessOrEqual(t, len(n), 63, n)
	assert.Regexp(t, `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`, n)
}

func TestPostgresInitHookMode(t *testing.T) {
	m := pgiMustRender(t, pgiChart(t), "billing", "sandbox", map[string]any{"hook": true})
	weights := map[string]string{}
	for _, d := range m.Docs {
		if d.Kind == "NetworkPolicy" {
			assert.False(t, d.Hook)
			continue
		}
		require.True(t, d.Hook, "%s/%s must be a hook", d.Kind, d.Name)
		if d.Kind == "Pod" { // the helm test hook, whatever the mode (helm_test_hooks_test.go)
			continue
		}
		ann := d.Object["metadata"].(map[string]any)["annotations"].(map[string]any)
		assert.Equal(t, "pre-install,pre-upgrade", ann["helm.sh/hook"], d.Name)
		assert.Equal(t, "before-hook-creation", ann["helm.sh/hook-delete-policy"], d.Name)
		weights[d.Kind+"/"+d.Name] = fmt.Sprint(ann["helm.sh/hook-weight"])
	}
	assert.Equal(t, map[string]string{"ConfigMap/billing-pg-init-spec": "-5", "ConfigMap/billing-pg-secret-init": "-10", "Job/billing-pg-init": "0",
		"ServiceAccount/billing-pg-secret-init": "-10", "Role/billing-pg-secret-init": "-10", "RoleBinding/billing-pg-secret-init": "-10"}, weights,
		"secret-init's access and both specs exist before the Job runs")
	assert.Equal(t, "billing-pg-init", pgiJob(t, m).Name, "hooks are replaced by name (before-hook-creation)")
}

func TestPostgresInitExistingSecret(t *testing.T) {
	m := pgiMustRender(t, pgiChart(t), "billing", "sandbox", map[string]any{
		"roles": []any{map[string]any{"name": "app", "existingSecret": "mine", "existingSecretPasswordKey": "pw"}},
	})
	assert.Empty(t, m.ByKind("Secret"), "no Secret rendered")
	assert.Empty(t, m.ByKind("ServiceAccount"), "nothing for secret-init to write")
	job := pgiJob(t, m)
	pod := job.Spec.Template.Spec
	assert.Empty(t, pod.InitContainers)
	assert.Empty(t, pod.ServiceAccountName)
	var ref *corev1.SecretKeySelector
	for _, e := range pod.Containers[0].Env {
		if e.Name == "PG_INIT_PASSWORD_APP" {
			ref = e.ValueFrom.SecretKeyRef
		}
	}
	require.NotNil(t, ref)
	assert.Equal(t, "mine", ref.Name)
	assert.Equal(t, "pw", ref.Key)
}

func TestPostgresInitMultiRoleSpec(t *testing.T) {
	vals := map[string]any{}
	b, err := os.ReadFile(filepath.Join(pgiRepoRoot(t), "charts", "postgres-init", "ci", "multi-values.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &vals))
	m := pgiMustRender(t, pgiChart(t), "billing", "sandbox", vals)
	spec := pgiSpec(t, m)
	assert.Equal(t, pgprovision.Scope{Namespace: "sandbox-7", Release: "Billing.v2"}, spec.Scope)
	require.Len(t, spec.Roles, 3)
	limits := map[string]int{}
	for _, r := range spec.Roles {
		require.NotNil(t, r.ConnectionLimit)
		limits[r.Name] = *r.ConnectionLimit
	}
	assert.Equal(t, map[string]int{"app": 20, "reporting": 5, "migrator": 0}, limits, "0 is a limit, not a default")
	assert.Equal(t, "delete", spec.Roles[1].ReclaimPolicy)
	require.Len(t, spec.Databases, 2)
	assert.Equal(t, []string{"pgcrypto", "pg_trgm"}, spec.Databases[0].Extensions)
	assert.Equal(t, []string{"billing", "audit"}, spec.Databases[0].Schemas)
	assert.Equal(t, "reporting", spec.Databases[1].Owner)
	require.NoError(t, spec.Validate("rendered"))

	c := pgiJob(t, m).Spec.Template.Spec.Containers[0]
	assert.Contains(t, c.Args, "--adopt")
	assert.Contains(t, c.Args, "--prune")
	assert.Len(t, m.ByKind("NetworkPolicy"), 2, "pg-init's and the helm test pod's")
	vals["networkPolicy"] = map[string]any{"enabled": false}
	assert.Empty(t, pgiMustRender(t, pgiChart(t), "billing", "sandbox", vals).ByKind("NetworkPolicy"))

	// Hashed physical names agree with pg-init's Go function.
	data := pgiSecretInit(t, m, "sandbox", nil)["billing-pg-reporting"]
	want, err := pgnames.Physical("sandbox-7", "Billing.v2", "reporting")
	require.NoError(t, err)
	assert.Equal(t, want, data["username"])
	assert.Contains(t, want, "__", "this scope needs a hashed name")
	wantDB, _ := pgnames.Physical("sandbox-7", "Billing.v2", "analytics")
	assert.Equal(t, wantDB, data["dbname"])
}

// TestPostgresInitRejectsBadValues: values.schema.json and the template
// checks refuse wrong values with a message naming the value.
func TestPostgresInitRejectsBadValues(t *testing.T) {
	chrt := pgiChart(t)
	role := func(r map[string]any) map[string]any { return map[string]any{"roles": []any{r}} }
	cases := []struct {
		name string
		vals map[string]any
		want string
	}{
		{"unknown top-level key", map[string]any{"rolez": []any{}}, "rolez"},
		{"role name with capitals", role(map[string]any{"name": "App"}), "roles"},
		{"role name with dash", role(map[string]any{"name": "my-app"}), "roles"},
		{"role without name", role(map[string]any{"connectionLimit": 3}), "name"},
		{"connection limit below -1", role(map[string]any{"name": "app", "connectionLimit": -2}), "connectionLimit"},
		{"connection limit above MAX_BACKENDS", role(map[string]any{"name": "app", "connectionLimit": 262144}), "connectionLimit"},
		{"connection limit not a number", role(map[string]any{"name": "app", "connectionLimit": "ten"}), "connectionLimit"},
		{"unknown role field", role(map[string]any{"name": "app", "password": "x"}), "password"},
		{"reclaim policy", role(map[string]any{"name": "app", "reclaimPolicy": "purge"}), "reclaimPolicy"},
		{"database without owner", map[string]any{"databases": []any{map[string]any{"name": "app"}}}, "owner"},
		{"schema public", map[string]any{"databases": []any{map[string]any{"name": "app", "owner": "app", "schemas": []any{"public"}}}}, "schemas"},
		{"schema pg_", map[string]any{"databases": []any{map[string]any{"name": "app", "owner": "app", "schemas": []any{"pg_x"}}}}, "schemas"},
		{"duplicate extension", map[string]any{"databases": []any{map[string]any{"name": "app", "owner": "app", "extensions": []any{"a", "a"}}}}, "extensions"},
		{"hook not a boolean", map[string]any{"hook": "yes"}, "hook"},
		{"bad pull policy", map[string]any{"image": map[string]any{"pullPolicy": "Sometimes"}}, "pullPolicy"},
		{"bad digest", map[string]any{"image": map[string]any{"digest": "latest"}}, "digest"},
		{"bad deadline", map[string]any{"job": map[string]any{"deadline": "5 minutes"}}, "deadline"},
		{"negative backoff", map[string]any{"job": map[string]any{"backoffLimit": -1}}, "backoffLimit"},
		{"bad sslmode", map[string]any{"connection": map[string]any{"sslmode": "on"}}, "sslmode"},
		{"bad provisioner secret", map[string]any{"provisioner": map[string]any{"secretName": "Not_A_Name"}}, "secretName"},
		{"unknown job field", map[string]any{"job": map[string]any{"backofLimit": 1}}, "backofLimit"},
		// Checks the schema cannot express, done by the templates.
		{"duplicate role", map[string]any{"roles": []any{map[string]any{"name": "app"}, map[string]any{"name": "app"}}}, `roles[1].name: duplicate role "app"`},
		{"duplicate database", map[string]any{"databases": []any{map[string]any{"name": "app", "owner": "app"}, map[string]any{"name": "app", "owner": "app"}}}, `databases[1].name: duplicate database "app"`},
		{"owner not a role", map[string]any{"databases": []any{map[string]any{"name": "app", "owner": "ghost"}}}, `databases[0].owner: "ghost" is not a role`},
		{"role database unknown", role(map[string]any{"name": "app", "database": "nope"}), `roles[0].database: "nope" is not a database`},
		{"nothing to provision", map[string]any{"roles": []any{}, "databases": []any{}}, "nothing to provision"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pgiRender(t, chrt, "billing", "sandbox", tc.vals)
			require.Error(t, err, "values %v must be rejected", tc.vals)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestHelloModuleUsesLibrary renders the example module: its pod gets the
// wait-for-pg init container, the connection env and the credentials
// volume from postgres-init's named templates, for the same names as the Job.
func TestHelloModuleUsesLibrary(t *testing.T) {
	for _, tc := range []struct{ ns, release string }{
		{"imaging", "hello"},
		{"sandbox-7", "hello-v2"},                // hashed: '-' in namespace and release
		{"a" + strings.Repeat("b", 40), "hello"}, // hashed: too long
		{"team", "pg"},                           // plain
		{"x", strings.Repeat("y", 53)},           // hashed: longest release name
		{"kube-system", "Hello"},                 // upper case only via scope override below
	} {
		t.Run(tc.ns+"/"+tc.release, func(t *testing.T) {
			release := strings.ToLower(tc.release)
			vals := map[string]any{}
			scopeRelease := release
			if release != tc.release {
				scopeRelease = tc.release
				vals["postgresInit"] = map[string]any{"scope": map[string]any{"release": tc.release}}
			}
			m := pgiMustRender(t, pgiHelloChart(t), release, tc.ns, vals)
			wantRole, err := pgnames.Physical(tc.ns, scopeRelease, "hello")
			require.NoError(t, err)

			var dep struct {
				Spec struct {
					Template corev1.PodTemplateSpec `json:"template"`
				} `json:"spec"`
			}
			m.One(t, "Deployment").Into(t, &dep)
			pod := dep.Spec.Template.Spec
			require.Len(t, pod.InitContainers, 1)
			ic := pod.InitContainers[0]
			assert.Equal(t, "wait-for-pg", ic.Name)
			assert.Equal(t, []string{"/usr/local/bin/wait-for-pg"}, ic.Command)
			assert.Contains(t, ic.Args, "--level=database")
			assert.Equal(t, "ghcr.io/kommons/kommons-tools:0.1.0", ic.Image, "the subchart's appVersion, not the module's")
			secretName := release + "-pg-hello"
			if len(release)+3 > 56 {
				secretName = strings.TrimSuffix((release + "-pg")[:56], "-") + "-hello"
			}
			for _, c := range []corev1.Container{ic, pod.Containers[0]} {
				env := map[string]corev1.EnvVar{}
				for _, e := range c.Env {
					env[e.Name] = e
				}
				assert.Equal(t, wantRole, env["PGUSER"].Value, c.Name)
				assert.Equal(t, wantRole, env["PGDATABASE"].Value, c.Name)
				assert.Equal(t, secretName, env["PGPASSWORD"].ValueFrom.SecretKeyRef.Name, c.Name)
				assert.Equal(t, "password", env["PGPASSWORD"].ValueFrom.SecretKeyRef.Key, c.Name)
				assert.Equal(t, "kommons-commons", env["PGHOST"].ValueFrom.SecretKeyRef.Name, c.Name)
			}
			var vol *corev1.Volume
			for i := range pod.Volumes {
				if pod.Volumes[i].Name == "pg-hello" {
					vol = &pod.Volumes[i]
				}
			}
			require.NotNil(t, vol)
			assert.Equal(t, secretName, vol.Secret.SecretName)

			// The Job provisions exactly the names the module connects with.
			spec := pgiSpec(t, m)
			assert.Equal(t, pgprovision.Scope{Namespace: tc.ns, Release: scopeRelease}, spec.Scope)
			data := pgiSecretInit(t, m, tc.ns, pgiTenantSecret(tc.ns))[secretName]
			assert.Equal(t, wantRole, data["username"])
			assert.Equal(t, wantRole, data["dbname"])
		})
	}
}

// TestLibraryWithoutAlias: a module that depends on postgres-init without an
// alias, or under another alias passed as "alias", gets the same templates;
// a wrong alias fails with a message saying what to do.
func TestLibraryWithoutAlias(t *testing.T) {
	mk := func(alias, callArgs string) *chart.Chart {
		parent := &chart.Chart{
			Metadata: &chart.Metadata{APIVersion: "v2", Name: "mod", Version: "0.1.0", Type: "application",
				Dependencies: []*chart.Dependency{{Name: "postgres-init", Version: "0.1.0", Repository: "file://x", Alias: alias}}},
			Templates: []*chart.File{{Name: "templates/cm.yaml", Data: []byte(`apiVersion: v1
kind: ConfigMap
metadata: {name: names}
data:
  role: {{ include "postgres-init.roleName" (dict "root" $ "role" "app"` + callArgs + `) | quote }}
  secret: {{ include "postgres-init.credentialsSecretName" (dict "root" $ "role" "app"` + callArgs + `) | quote }}
`)}},
		}
		parent.SetDependencies(pgiChart(t))
		return parent
	}
	check := func(t *testing.T, c *chart.Chart) {
		m := pgiMustRender(t, c, "rel", "ns", nil)
		var cm corev1.ConfigMap
		m.Named(t, "ConfigMap", "names").Into(t, &cm)
		assert.Equal(t, "ns_rel_app", cm.Data["role"])
		assert.Equal(t, "rel-pg-app", cm.Data["secret"])
	}
	t.Run("no alias", func(t *testing.T) { check(t, mk("", "")) })
	t.Run("custom alias", func(t *testing.T) { check(t, mk("db", ` "alias" "db"`)) })
	t.Run("wrong alias", func(t *testing.T) {
		_, err := pgiRender(t, mk("db", ""), "rel", "ns", nil)
		require.Error(t, err)
		assert.Contains(t, err.Error(), `pass its alias as "alias"`)
	})
	t.Run("unknown role", func(t *testing.T) {
		c := mk("", "")
		c.Templates[0].Data = []byte(`{{ include "postgres-init.roleName" (dict "root" $ "role" "ghost") }}`)
		_, err := pgiRender(t, c, "rel", "ns", nil)
		require.Error(t, err)
		assert.Contains(t, err.Error(), `role "ghost" is not in the postgres-init values' roles (known: app)`)
	})
}

func TestHelloModuleRejectsBadValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		vals map[string]any
		want string
	}{
		{"unknown key", map[string]any{"replicas": 2}, "replicas"},
		{"bad port", map[string]any{"containerPort": 70000}, "containerPort"},
		{"subchart schema applies", map[string]any{"postgresInit": map[string]any{"hook": "sometimes"}}, "hook"},
		{"module's role must exist", map[string]any{"postgresInit": map[string]any{"roles": []any{map[string]any{"name": "other"}}, "databases": []any{map[string]any{"name": "other", "owner": "other"}}}}, `role "hello" is not in`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pgiRender(t, pgiHelloChart(t), "hello", "imaging", tc.vals)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestPostgresInitCAConvention: every container that connects (the pg-init
// Job, hello-module's wait-for-pg and web containers) takes PGSSLROOTCERT
// from the tenant Secret, optionally, and mounts only that Secret's ca.crt,
// optionally, where PGSSLROOTCERT points; the connection Secret's uri and
// jdbc-uri carry sslrootcert when it is known.
func TestPostgresInitCAConvention(t *testing.T) {
	m := pgiMustRender(t, pgiHelloChart(t), "hello", "imaging", nil)
	var dep struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	m.One(t, "Deployment").Into(t, &dep)
	job := pgiJob(t, m)
	pods := map[string]corev1.PodSpec{"Deployment": dep.Spec.Template.Spec, "Job": job.Spec.Template.Spec}
	for kind, pod := range pods {
		var vol *corev1.Volume
		for i := range pod.Volumes {
			if pod.Volumes[i].Name == "postgres-ca" {
				vol = &pod.Volumes[i]
			}
		}
		require.NotNil(t, vol, "%s has the CA volume", kind)
		require.NotNil(t, vol.Secret, kind)
		assert.Equal(t, "kommons-commons", vol.Secret.SecretName, kind)
		assert.Equal(t, []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}, vol.Secret.Items, "%s: only the CA, never the provisioner's credentials", kind)
		require.NotNil(t, vol.Secret.Optional, kind)
		assert.True(t, *vol.Secret.Optional, "%s: tenants without a CA keep working", kind)
		for _, c := range append(append([]corev1.Container{}, pod.InitContainers...), pod.Containers...) {
			if c.Name == "secret-init" {
				continue // writes Secrets; never connects to PostgreSQL
			}
			var env *corev1.EnvVar
			for i := range c.Env {
				if c.Env[i].Name == "PGSSLROOTCERT" {
					env = &c.Env[i]
				}
			}
			require.NotNil(t, env, "%s/%s sets PGSSLROOTCERT", kind, c.Name)
			ref := env.ValueFrom.SecretKeyRef
			assert.Equal(t, "kommons-commons", ref.Name)
			assert.Equal(t, "PGSSLROOTCERT", ref.Key)
			require.NotNil(t, ref.Optional)
			assert.True(t, *ref.Optional, "%s/%s", kind, c.Name)
			mounted := false
			for _, vm := range c.VolumeMounts {
				if vm.Name == "postgres-ca" {
					mounted = vm.MountPath == "/etc/kommons/postgres-ca" && vm.ReadOnly
				}
			}
			assert.True(t, mounted, "%s/%s mounts the CA read-only at /etc/kommons/postgres-ca", kind, c.Name)
		}
	}

	m = pgiMustRender(t, pgiChart(t), "shop", "tenant1", map[string]any{
		"connection": map[string]any{"host": "pg.commons.svc", "port": 5432, "sslmode": "verify-full", "sslrootcert": "/etc/kommons/postgres-ca/ca.crt"},
	})
	data := pgiSecretInit(t, m, "tenant1", nil)["shop-pg-app"]
	pw := data["password"]
	assert.Equal(t, "/etc/kommons/postgres-ca/ca.crt", data["sslrootcert"])
	assert.Equal(t, "postgresql://tenant1_shop_app:"+pw+"@pg.commons.svc:5432/tenant1_shop_app?sslmode=verify-full&sslrootcert=/etc/kommons/postgres-ca/ca.crt", data["uri"])
	assert.Equal(t, "jdbc:postgresql://pg.commons.svc:5432/tenant1_shop_app?password="+pw+"&user=tenant1_shop_app&sslmode=verify-full&sslrootcert=/etc/kommons/postgres-ca/ca.crt", data["jdbc-uri"])
	cfg, err := pgx.ParseConfig(strings.Replace(data["uri"], "/etc/kommons/postgres-ca/ca.crt", writeTestCA(t), 1))
	require.NoError(t, err, "the uri parses as libpq/pgx read it")
	assert.False(t, cfg.TLSConfig.InsecureSkipVerify)
	assert.Equal(t, "pg.commons.svc", cfg.TLSConfig.ServerName, "verify-full checks the host name")
}

func writeTestCA(t *testing.T) string {
	return testca.New(t, "render test CA").WriteCert(t, t.TempDir(), "ca.crt")
}
