package realnode

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/testutil/nodeimages"
	"github.com/kommons/kommons/internal/testutil/testcluster"
)

// TestChartTestingInstallUpgrade runs chart-testing as users run it in CI,
// against the real node: `ct install --upgrade` of charts/commons, then of
// charts/orthanc (with postgres-init as its dependency) in a namespace that
// a commons release onboarded as a tenant. ct installs the previous revision
// of each chart from git (a throwaway repository whose target branch
// origin/main holds the charts of this repository's main branch, and whose
// HEAD holds the work tree's), runs `helm test`, upgrades it to HEAD's chart
// and runs `helm test` again, then installs HEAD's chart, upgrades it to
// itself and installs it fresh, running `helm test` after each: ct must exit
// 0 and the test hooks' Pods must have run, with the charts' NetworkPolicies
// enforced.
//
// Each chart's ci/ directory is replaced, in both revisions, by one
// realnode-values.yaml (the images the node has, sizes that fit, the tenant
// namespace): the repository's ci/ files describe clusters this node is not
// (managed PostgreSQL, external S3, RWX volumes, Ingress controllers).
// ct's --namespace runs every release in one existing namespace: commons'
// tenant is another namespace the test creates (tenants must exist, and
// commons refuses its own namespace), and Orthanc's namespace is a tenant of
// a commons release installed by the test.
func TestChartTestingInstallUpgrade(t *testing.T) {
	// NetworkPolicies enforced (kube-router): the charts' policies must let the test Pods through.
	c := testcluster.StartNode(t, testcluster.WithNetworkPolicy())
	img := c.Images
	c.LabelNodeForPools(t)

	image := func(prefix string, i nodeimages.Image) string {
		return fmt.Sprintf("%s:\n  registry: %s\n  repository: %s\n  tag: %q\n", prefix, nodeimages.Registry, i.Repository, i.Tag)
	}
	indent := func(s string) string {
		return "  " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n  ") + "\n"
	}
	commonsValues := func(tenant string) string {
		return "tenants:\n  - namespace: " + tenant + "\n    buckets: [dicom]\npostgresql:\n  persistence:\n    size: 2Gi\n" +
			indent(image("image", img.Postgres)) + "objectStorage:\n  minio:\n" + indent(indent(image("image", img.MinIO))) +
			"tools:\n" + indent(image("image", img.Tools))
	}

	ctNS := c.Namespace(t, "ct-commons")
	tenant := c.Namespace(t, "ct-tenant") // commons refuses its own namespace as a tenant
	imaging := c.Namespace(t, "ct-imaging")
	orthancValues := "replicaCount: 1\nstorage:\n  type: filesystem\n  filesystem:\n    size: 1Gi\n" +
		"orthanc:\n  command: " + nodeimages.OrthancCommand + "\n  plugins:\n    directory: " + nodeimages.OrthancPluginDir + "\n" +
		image("image", img.Orthanc) +
		"postgresInit:\n" + indent(image("image", img.Tools)) +
		"  provisioner:\n    secretName: kommons-commons\n    keys: {host: PGHOST, port: PGPORT, sslmode: PGSSLMODE, username: PGUSER, password: PGPASSWORD}\n"
	repo := ctRepo(t, c.Tools.RepoRoot, map[string]string{
		"commons": commonsValues(tenant),
		"orthanc": orthancValues,
	})

	// Orthanc's namespace is a tenant of a commons release of its own.
	commons := c.Namespace(t, "ct-shared")
	valuesFile := filepath.Join(t.TempDir(), "commons.yaml")
	require.NoError(t, os.WriteFile(valuesFile, []byte(commonsValues(imaging)), 0o644))
	c.Helm3(t, "dependency", "build", filepath.Join(repo, "charts", "commons"))
	c.Helm3(t, "install", "commons", filepath.Join(repo, "charts", "commons"), "-n", commons, "-f", valuesFile,
		"--wait", "--wait-for-jobs", "--timeout", "10m")

	for _, run := range []struct{ chart, ns string }{{"commons", ctNS}, {"orthanc", imaging}} {
		t.Run(run.chart, func(t *testing.T) {
			start := time.Now()
			out := ct(t, c, repo, "install", "--charts", "charts/"+run.chart, "--upgrade", "--namespace", run.ns,
				"--target-branch", "main", "--remote", "origin", "--helm-extra-args", "--timeout 10m")
			t.Logf("ct install --upgrade %s: %.0fs", run.chart, time.Since(start).Seconds())
			// ct prints helm test's output: every hook Pod ran and passed.
			for _, want := range ctTestPods(run.chart) {
				require.Regexp(t, `TEST SUITE:\s+`+want, out, "helm test ran %s", want)
			}
			// ct only prints it when the previous revision fails to install or test.
			require.NotContains(t, out, "skipped because of previous revision")
			require.Regexp(t, `Testing upgrades of chart .* relative to previous revision .*ct-previous-revision`, out)
			require.GreaterOrEqual(t, strings.Count(out, "has been upgraded"), 2, "previous revision -> HEAD, HEAD -> HEAD")
			require.NotContains(t, out, "Phase:          Failed")
			require.Contains(t, out, "Phase:          Succeeded")
			require.Contains(t, out, "All charts installed successfully")
		})
	}
}

// ctTestPods are the name patterns of the helm test Pods of a chart's
// releases (ct names releases <chart>-<random>).
func ctTestPods(chart string) []string {
	if chart == "commons" {
		return []string{`commons-[a-z0-9]+-test-ct-tenant-[a-z0-9]+`}
	}
	return []string{`orthanc-[a-z0-9]+-test`, `orthanc-[a-z0-9]+-pg-test`}
}

// ctRepo builds the git repository ct reads: a first commit on main (also
// refs/remotes/origin/main) with charts/ of this repository's main branch,
// then a commit with the work tree's charts/; each chart's ci/ replaced by
// realnode-values.yaml with values[chart] (charts without an entry keep none).
func ctRepo(t *testing.T, root string, values map[string]string) string {
	t.Helper()
	repo := t.TempDir()
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-c", "user.name=ct", "-c", "user.email=ct@kommons.test"}, args...)...)
		cmd.Dir = repo
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "git %s:\n%s", strings.Join(args, " "), out)
		return string(out)
	}
	ci := func() {
		dirs, err := filepath.Glob(filepath.Join(repo, "charts", "*", "Chart.yaml"))
		require.NoError(t, err)
		for _, f := range dirs {
			dir := filepath.Dir(f)
			require.NoError(t, os.RemoveAll(filepath.Join(dir, "ci")))
			if v, ok := values[filepath.Base(dir)]; ok {
				require.NoError(t, os.MkdirAll(filepath.Join(dir, "ci"), 0o755))
				require.NoError(t, os.WriteFile(filepath.Join(dir, "ci", "realnode-values.yaml"), []byte(v), 0o644))
			}
		}
	}
	git("init", "-q", "-b", "main")
	archive := exec.Command("sh", "-c", "git -C \"$1\" archive main charts | tar -x -C \"$2\"", "sh", root, repo)
	out, err := archive.CombinedOutput()
	require.NoError(t, err, "git archive main charts:\n%s", out)
	ci()
	git("add", "-A")
	git("commit", "-q", "-m", "main")
	git("update-ref", "refs/remotes/origin/main", "HEAD")
	git("checkout", "-q", "-b", "change")
	require.NoError(t, os.RemoveAll(filepath.Join(repo, "charts")))
	cp := exec.Command("cp", "-r", filepath.Join(root, "charts"), filepath.Join(repo, "charts"))
	out, err = cp.CombinedOutput()
	require.NoError(t, err, "cp charts:\n%s", out)
	ci()
	// Dependencies are built by ct (helm dependency build), as in CI.
	for _, pattern := range []string{"charts/*/charts", "charts/*/tmpcharts"} {
		m, _ := filepath.Glob(filepath.Join(repo, pattern))
		for _, d := range m {
			require.NoError(t, os.RemoveAll(d))
		}
	}
	git("add", "-A")
	git("commit", "-q", "--allow-empty", "-m", "change")
	return repo
}

// ct runs chart-testing in repo with helm (Helm 3) and kubectl on PATH, and
// fails the test on a non-zero exit with its output.
func ct(t *testing.T, c *testcluster.Cluster, repo string, args ...string) string {
	t.Helper()
	bin := t.TempDir()
	require.NoError(t, os.Symlink(c.Tools.Helm3, filepath.Join(bin, "helm")))
	require.NoError(t, os.Symlink(filepath.Join(c.Tools.KubeBin, "kubectl"), filepath.Join(bin, "kubectl")))
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Tools.CT, args...)
	cmd.Dir = repo
	cmd.Env = append(c.Env(), "PATH="+bin+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "ct %s:\n%s", strings.Join(args, " "), out)
	t.Logf("ct %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}
