package gitops

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kommons/kommons/internal/testutil/testcluster"
)

// TestRenderInCI is the "render in CI, commit the manifests" path of Argo CD
// (examples/argocd/application-rendered.yaml) and Flux
// (examples/flux/rendered.yaml): examples/render.sh renders commons and
// orthanc with the values of examples/argocd/ through the post-renderer into
// the directory both objects apply, which is then server-side applied
// recursively (as a recursive directory Application or a Kustomization
// without kustomization.yaml applies it) and checked on the live objects.
func TestRenderInCI(t *testing.T) {
	c := testcluster.Start(t)
	pools(t, c)
	root := repoCopy(t, c.Tools.RepoRoot)
	bin := postrenderBin(t, c.Tools.RepoRoot)

	var flux struct {
		Spec struct {
			Path string `json:"path"`
		} `json:"spec"`
	}
	b, err := os.ReadFile(filepath.Join(root, "examples", "flux", "rendered.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &flux))
	var argo struct {
		Spec struct {
			Source struct {
				Path      string `json:"path"`
				Directory struct {
					Recurse bool `json:"recurse"`
				} `json:"directory"`
			} `json:"source"`
		} `json:"spec"`
	}
	b, err = os.ReadFile(filepath.Join(root, "examples", "argocd", "application-rendered.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &argo))
	require.Equal(t, filepath.Clean(flux.Spec.Path), filepath.Clean(argo.Spec.Source.Path), "Flux and Argo CD apply the same directory")
	require.True(t, argo.Spec.Source.Directory.Recurse, "render.sh writes one subdirectory per namespace")
	out := filepath.Join(root, filepath.Clean(flux.Spec.Path))

	v, err := c.Client().Discovery().ServerVersion()
	require.NoError(t, err)
	env := append(os.Environ(), "PATH="+toolPath(c, bin), "HELM="+c.Tools.Helm3, "KUBE_VERSION="+v.GitVersion,
		"HOME="+t.TempDir())
	script := filepath.Join(root, "examples", "render.sh")
	run(t, root, env, script, out, policyFile, "commons", "commons", "charts/commons", "examples/argocd/commons-values.yaml")
	run(t, root, env, script, out, policyFile, "orthanc", "imaging", "charts/orthanc", "examples/argocd/orthanc-values.yaml")
	for _, f := range []string{"commons/commons.yaml", "imaging/orthanc.yaml"} {
		st, err := os.Stat(filepath.Join(out, f))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o644), st.Mode().Perm(), "%s is committed: readable by all", f)
	}

	// orthanc generates its credentials in the cluster (secret-init): its
	// rendering holds no secret and is the same, byte for byte, on every
	// render (docs/gitops.md, "Credentials").
	first, err := os.ReadFile(filepath.Join(out, "imaging", "orthanc.yaml"))
	require.NoError(t, err)
	require.NotContains(t, string(first), "\nkind: Secret\n")
	run(t, root, env, script, out, policyFile, "orthanc", "imaging", "charts/orthanc", "examples/argocd/orthanc-values.yaml")
	again, err := os.ReadFile(filepath.Join(out, "imaging", "orthanc.yaml"))
	require.NoError(t, err)
	require.Equal(t, string(first), string(again), "orthanc rendered twice")

	for _, ns := range []string{"commons", "imaging"} {
		createNamespace(t, c, ns)
	}
	c.Kubectl(t, "apply", "--server-side", "--field-manager=kustomize-controller", "--recursive", "-f", out)
	assertCommonsPlaced(t, c, "commons", "commons")
	dep, err := c.Client().AppsV1().Deployments("imaging").Get(context.Background(), "orthanc", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "app", dep.Spec.Template.Spec.NodeSelector["kommons.io/pool"], "orthanc placed by the post-renderer")
	waitPodsOnPools(t, c, "imaging", 2)

	t.Run("usage and bad input", func(t *testing.T) {
		o, err := runErr(root, env, script)
		require.Error(t, err)
		require.Contains(t, o, "Usage: examples/render.sh OUT_DIR POLICY RELEASE NAMESPACE CHART")
		o, err = runErr(root, env, script, out, policyFile, "x", "x", "charts/missing")
		require.Error(t, err)
		require.Contains(t, o, "charts/missing: no Chart.yaml")
		// A failing render replaces nothing.
		before, err := os.ReadFile(filepath.Join(out, "commons", "commons.yaml"))
		require.NoError(t, err)
		o, err = runErr(root, env, script, out, policyFile, "commons", "commons", "charts/commons", "examples/argocd/missing-values.yaml")
		require.Error(t, err, "%s", o)
		after, err := os.ReadFile(filepath.Join(out, "commons", "commons.yaml"))
		require.NoError(t, err)
		require.Equal(t, string(before), string(after))
		left, err := filepath.Glob(filepath.Join(out, "commons", ".commons.*"))
		require.NoError(t, err)
		require.Empty(t, left, "temporary files left behind")
	})
}
