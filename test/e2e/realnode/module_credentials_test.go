package realnode

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/internal/testutil/testcluster"
)

// chartsFromEnv names another checkout whose charts TestModuleCredentials
// installs instead of this one's (e.g. main's, to prove the sequence fails
// there: a render without a cluster generated a new password every time).
const chartsFromEnv = "KOMMONS_MODULE_CREDS_CHARTS_FROM"

// TestModuleCredentials (issue 18 item 1): a module's database credentials are
// generated in the cluster, once, by the pg-init Job's secret-init init
// container, and survive every way a platform team deploys: `helm template |
// postrender | kubectl apply` twice with a values upgrade in between (what
// Argo CD and render-in-CI do: no cluster at render time), `helm install`
// then `helm upgrade`, and uninstall then reinstall. After each step the
// module's pods are restarted and must connect again, the password must be
// the one of the first step, and the rows written before must still be there.
func TestModuleCredentials(t *testing.T) {
	s := startScenario(t)
	c := s.c
	if root := os.Getenv(chartsFromEnv); root != "" {
		saved := c.Tools.RepoRoot
		c.Tools.RepoRoot = root
		s.charts = c.StageCharts(t)
		c.Tools.RepoRoot = saved
		t.Logf("charts from %s (%s)", root, chartsFromEnv)
	}
	cr := &credsRun{scenario: s, seen: map[string]map[string]string{}}
	for _, step := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"commons", s.installCommons},
		{"template-apply-twice", cr.templateApplyTwice},
		{"install-upgrade", cr.installUpgrade},
		{"uninstall-reinstall", cr.uninstallReinstall},
	} {
		if !t.Run(step.name, step.fn) {
			t.Fatalf("step %s failed; later steps depend on it", step.name)
		}
	}
}

// credsRun holds what the steps check against: the credentials each
// namespace's module got first, and the rows written so far.
type credsRun struct {
	*scenario
	seen map[string]map[string]string // namespace -> first credentials
	rows map[string][]string          // namespace -> rows written
}

func (r *credsRun) helloValues(extra ...string) []string {
	v := testcluster.ImageValues("image", r.img.Hello)
	v = append(v, r.provisionerValues("postgresInit")...)
	return append(v, extra...)
}

// templateApply renders hello-module without a cluster, post-renders it and
// applies it, then waits for its Jobs and its Deployment.
func (r *credsRun) templateApply(t *testing.T, ns string, extra ...string) {
	t.Helper()
	args := append([]string{"template", "hello", filepath.Join(r.charts, "examples", "charts", "hello-module"), "-n", ns, "--skip-tests"}, r.helloValues(extra...)...)
	rendered := r.c.Helm3(t, args...)
	post := exec.Command(r.post[1], r.post[3])
	post.Stdin = strings.NewReader(rendered)
	var out, errb bytes.Buffer
	post.Stdout, post.Stderr = &out, &errb
	require.NoError(t, post.Run(), "postrender: %s", errb.String())
	file := filepath.Join(t.TempDir(), "hello.yaml")
	require.NoError(t, os.WriteFile(file, out.Bytes(), 0o600))
	start := time.Now()
	r.c.Kubectl(t, "apply", "-n", ns, "-f", file)
	r.c.Kubectl(t, "wait", "-n", ns, "--for=condition=complete", "job", "--all", "--timeout=5m")
	t.Logf("helm template | postrender | kubectl apply in %s, Jobs complete: %.1fs", ns, time.Since(start).Seconds())
}

func (r *credsRun) templateApplyTwice(t *testing.T) {
	ns := r.modules[0]
	r.templateApply(t, ns)
	r.checkModule(t, ns, "rendered once")
	// A values upgrade rendered again without a cluster: the render has no
	// password, so the one generated in the cluster stays.
	r.templateApply(t, ns, "--set", "replicaCount=2")
	r.checkModule(t, ns, "rendered twice, replicaCount=2")
}

func (r *credsRun) installUpgrade(t *testing.T) {
	ns := r.modules[1]
	chart := filepath.Join(r.charts, "examples", "charts", "hello-module")
	r.helm(t, append([]string{"install", "hello", chart, "-n", ns, "--wait", "--wait-for-jobs", "--timeout", "5m"}, r.helloValues()...)...)
	r.checkModule(t, ns, "installed")
	// A new revision runs the Job again (secret-init and pg-init) on the
	// existing Secret and role.
	r.helm(t, append([]string{"upgrade", "hello", chart, "-n", ns, "--wait", "--wait-for-jobs", "--timeout", "5m"},
		r.helloValues("--set", "replicaCount=2", "--set-string", "postgresInit.job.revision=r2")...)...)
	r.checkModule(t, ns, "upgraded, replicaCount=2, a new Job")
}

func (r *credsRun) uninstallReinstall(t *testing.T) {
	ns := r.modules[1]
	chart := filepath.Join(r.charts, "examples", "charts", "hello-module")
	r.c.Helm3(t, "uninstall", "hello", "-n", ns, "--wait", "--timeout", "5m")
	sec, err := r.c.Client().CoreV1().Secrets(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=postgres-init,app.kubernetes.io/component=credentials"})
	require.NoError(t, err)
	require.Len(t, sec.Items, 1, "the role's connection Secret outlives the release")
	r.helm(t, append([]string{"install", "hello", chart, "-n", ns, "--wait", "--wait-for-jobs", "--timeout", "5m"}, r.helloValues()...)...)
	r.checkModule(t, ns, "reinstalled")
}

// checkModule: the module's credentials are those of its first step, its
// pods restarted connect with them, the rows written before are there; then
// one more row is written for the next step.
func (r *credsRun) checkModule(t *testing.T, ns, step string) {
	t.Helper()
	creds := r.roleCredentials(t, ns)
	if first, ok := r.seen[ns]; ok {
		require.Equal(t, first["PGUSER"], creds["PGUSER"], "%s: role", step)
		require.True(t, first["PGPASSWORD"] == creds["PGPASSWORD"], "%s: the role's password changed (a render generated a new one)", step)
	} else {
		r.seen[ns] = creds
	}
	r.requirePgInitSummary(t, ns)
	r.c.Kubectl(t, "rollout", "status", "-n", ns, "deployment/hello-hello", "--timeout=5m")

	// Restart the module: new pods read the Secret again and must connect.
	r.c.Kubectl(t, "rollout", "restart", "-n", ns, "deployment/hello-hello")
	r.c.Kubectl(t, "rollout", "status", "-n", ns, "deployment/hello-hello", "--timeout=5m")
	// The Service's endpoints follow the new pods shortly after the rollout.
	url := "http://" + r.c.ServiceAddr(t, ns, "hello-hello", "http") + "/"
	testcluster.Eventually(t, step+": the restarted module answers through its Service", 2*time.Minute, func() error {
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "hello from database "+creds["PGDATABASE"]) {
			return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, body)
		}
		return nil
	})

	// The data written before is still there, read with the Secret's password.
	conn := r.connect(t, creds["PGUSER"], creds["PGPASSWORD"], creds["PGDATABASE"])
	ctx := context.Background()
	_, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS kept (step text PRIMARY KEY)")
	require.NoError(t, err)
	rows, err := conn.Query(ctx, "SELECT step FROM kept ORDER BY step")
	require.NoError(t, err)
	var got []string
	for rows.Next() {
		var v string
		require.NoError(t, rows.Scan(&v))
		got = append(got, v)
	}
	require.NoError(t, rows.Err())
	if r.rows == nil {
		r.rows = map[string][]string{}
	}
	assert.ElementsMatch(t, r.rows[ns], got, "%s: rows written before", step)
	_, err = conn.Exec(ctx, "INSERT INTO kept (step) VALUES ($1)", step)
	require.NoError(t, err)
	r.rows[ns] = append(r.rows[ns], step)
	t.Logf("%s (%s): role %s connects after a restart, %d rows kept", ns, step, creds["PGUSER"], len(got))
}
