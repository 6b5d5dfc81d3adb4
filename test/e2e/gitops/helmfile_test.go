package gitops

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/internal/testutil/testcluster"
	"github.com/kommons/kommons/internal/testutil/toolcache"
)

// helmRelease is the part of `helm list -o json` this test reads.
type helmRelease struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Revision  string `json:"revision"`
	Status    string `json:"status"`
}

// TestHelmfile runs examples/helmfile.yaml with helmfile itself (built by
// test/cluster/build.sh helmfile), from the root of a repository copy as the
// file says, with Helm 3, the helm-diff plugin that `helmfile apply` diffs
// with, and the post-renderer on PATH: apply installs commons then orthanc
// through the post-renderer, a second apply finds nothing to change (exit 0
// under --detailed-exitcode, which is 2 when something changed) and upgrades
// nothing, and destroy removes both releases.
func TestHelmfile(t *testing.T) {
	c := testcluster.Start(t)
	pools(t, c)
	helmfile := toolcache.Require(t, "helmfile", "HELMFILE_VERSION", "helmfile", "")
	diffPlugin := toolcache.Require(t, "helm-diff", "HELM_DIFF_VERSION", "diff", "")
	root := repoCopy(t, c.Tools.RepoRoot)
	bin := postrenderBin(t, c.Tools.RepoRoot)

	// The plugin directory as `helm plugin install` would leave it (its
	// install hook downloads a release archive, so it is laid out by build.sh).
	plugins := t.TempDir()
	require.NoError(t, os.Symlink(diffPlugin, filepath.Join(plugins, "diff")))
	env := append(c.Env(), "PATH="+toolPath(c, bin), "HELM_PLUGINS="+plugins)
	require.Contains(t, run(t, root, env, c.Tools.Helm3, "plugin", "list"), "diff")
	// helmfile creates both namespaces (createNamespace, and the presync
	// hook's kubectl for the tenant namespace).
	for _, ns := range []string{"commons", "imaging"} {
		waitNamespaceGone(t, c, ns)
		deleteNamespaceAtEnd(t, c, ns)
	}

	hf := func(args ...string) string {
		t.Helper()
		return run(t, root, env, helmfile, append([]string{"--file", "examples/helmfile.yaml"}, args...)...)
	}
	out := hf("apply", "--skip-diff-on-install", "--suppress-secrets")
	t.Logf("helmfile apply:\n%s", out)
	releases := helmList(t, c, root, env)
	require.Len(t, releases, 2, "helmfile apply installs commons and orthanc")
	for _, r := range releases {
		require.Equal(t, "deployed", r.Status, "release %s/%s", r.Namespace, r.Name)
		require.Equal(t, "1", r.Revision, "release %s/%s", r.Namespace, r.Name)
	}
	assertCommonsPlaced(t, c, "commons", "commons")
	dep, err := c.Client().AppsV1().Deployments("imaging").Get(context.Background(), "orthanc", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "app", dep.Spec.Template.Spec.NodeSelector["kommons.io/pool"], "orthanc placed by the post-renderer")
	waitPodsOnPools(t, c, "imaging", 2)

	// Second apply: helm-diff compares what the post-renderer produces now
	// with what is installed (reading the cluster, diffArgs --dry-run=server):
	// nothing may differ, and nothing is upgraded.
	revisions := map[string]string{}
	for _, r := range helmList(t, c, root, env) {
		revisions[r.Name] = r.Revision
	}
	args := []string{"--file", "examples/helmfile.yaml", "apply", "--skip-diff-on-install", "--suppress-secrets", "--detailed-exitcode"}
	out, err = runErr(root, env, helmfile, args...)
	t.Logf("helmfile apply #2: %v\n%s", err, out)
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 2 {
		t.Fatalf("apply #2 found changes: apply is not idempotent: %q\n%s", changeRe.FindAllString(out, -1), out)
	}
	require.NoError(t, err, "apply #2 failed:\n%s", out)
	for _, r := range helmList(t, c, root, env) {
		require.Equal(t, revisions[r.Name], r.Revision, "apply #2 found nothing to change yet upgraded %s", r.Name)
	}

	out = hf("destroy")
	t.Logf("helmfile destroy:\n%s", out)
	require.Empty(t, helmList(t, c, root, env), "releases left after helmfile destroy")
	_, err = c.Client().AppsV1().StatefulSets("commons").Get(context.Background(), "commons-postgresql", metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "commons' PostgreSQL StatefulSet after destroy: %v", err)
	_, err = c.Client().AppsV1().Deployments("imaging").Get(context.Background(), "orthanc", metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "orthanc's Deployment after destroy: %v", err)
}

// changeRe matches helm-diff's line for each changed object.
var changeRe = regexp.MustCompile(`(?m)[a-z0-9-]+, [a-z0-9.-]+, [A-Za-z]+ \([a-z0-9.]+\) has (been added|been removed|changed)`)

// helmList returns every release of the commons and imaging namespaces.
func helmList(t *testing.T, c *testcluster.Cluster, dir string, env []string) []helmRelease {
	t.Helper()
	var all []helmRelease
	for _, ns := range []string{"commons", "imaging"} {
		out := stdout(t, dir, env, c.Tools.Helm3, "list", "-n", ns, "-a", "-o", "json")
		var rs []helmRelease
		require.NoError(t, json.Unmarshal([]byte(out), &rs), "helm list -n %s: %s", ns, out)
		all = append(all, rs...)
	}
	return all
}
