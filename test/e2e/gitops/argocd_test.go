package gitops

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/kommons/kommons/internal/testutil/testcluster"
)

// command is an Argo CD plugin command: the executable and its arguments.
type command struct {
	Command []string `json:"command"`
	Args    []string `json:"args"`
}

// argv is what Argo CD executes: command followed by args.
func (c command) argv() []string { return append(append([]string{}, c.Command...), c.Args...) }

// cmpPlugin is Argo CD's ConfigManagementPlugin (sidecar plugin.yaml),
// decoded strictly: a misspelt field fails the test as Argo CD would ignore it.
type cmpPlugin struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version  string   `json:"version"`
		Init     *command `json:"init"`
		Generate command  `json:"generate"`
		Discover struct {
			FileName string `json:"fileName"`
		} `json:"discover"`
	} `json:"spec"`
}

// argoApp is the part of an Argo CD Application the plugin path reads.
type argoApp struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Source struct {
			Path   string `json:"path"`
			Plugin struct {
				Name string `json:"name"`
				Env  []struct {
					Name  string `json:"name"`
					Value string `json:"value"`
				} `json:"env"`
			} `json:"plugin"`
		} `json:"source"`
		Destination struct {
			Namespace string `json:"namespace"`
		} `json:"destination"`
	} `json:"spec"`
}

// TestArgoCDPlugin runs examples/argocd/plugin.yaml as Argo CD's
// repo-server sidecar does, for each Application of
// examples/argocd/application.yaml (commons, then orthanc): its exact init
// and generate commands, in the Application's path of a repository copy,
// with the sidecar's environment (helm, postrender, the policy directory)
// plus Argo CD's build environment (ARGOCD_APP_*, KUBE_VERSION and
// KUBE_API_VERSIONS of this cluster, the Application's plugin env as
// ARGOCD_ENV_*). The generated manifests are server-side applied into the
// namespaces as Argo CD's controller does, and the placement and
// storage classes are checked on the live objects.
func TestArgoCDPlugin(t *testing.T) {
	c := testcluster.Start(t)
	pools(t, c)
	root := repoCopy(t, c.Tools.RepoRoot)
	bin := postrenderBin(t, c.Tools.RepoRoot)

	var plugin cmpPlugin
	b, err := os.ReadFile(filepath.Join(root, "examples", "argocd", "plugin.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.UnmarshalStrict(b, &plugin), "examples/argocd/plugin.yaml")
	require.Equal(t, "argoproj.io/v1alpha1", plugin.APIVersion)
	require.Equal(t, "ConfigManagementPlugin", plugin.Kind)
	require.NotEmpty(t, plugin.Spec.Generate.argv(), "generate command")

	// The sidecar: its policy directory holds the policies the Applications name.
	policies := t.TempDir()
	pb, err := os.ReadFile(filepath.Join(root, policyFile))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(policies, "db-app-split.yaml"), pb, 0o644))
	home := t.TempDir()
	sidecarEnv := []string{"PATH=" + toolPath(c, bin), "HOME=" + home, "KOMMONS_POLICY_DIR=" + policies,
		"HELM_CACHE_HOME=" + filepath.Join(home, "cache"), "HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data")}
	kubeVersion, apiVersions := argoKubeEnv(t, c)

	apps := argoApps(t, filepath.Join(root, "examples", "argocd", "application.yaml"))
	require.Len(t, apps, 2)
	for _, ns := range []string{"commons", "imaging"} {
		createNamespace(t, c, ns)
	}
	var commons string
	for i, app := range apps {
		require.Equal(t, plugin.Metadata.Name+"-"+plugin.Spec.Version, app.Spec.Source.Plugin.Name, "Application %s names the plugin", app.Metadata.Name)
		appDir := filepath.Join(root, app.Spec.Source.Path)
		_, err := os.Stat(filepath.Join(appDir, plugin.Spec.Discover.FileName))
		require.NoError(t, err, "Application %s: the plugin's discover.fileName matches its path", app.Metadata.Name)
		env := append(append([]string{}, sidecarEnv...),
			"ARGOCD_APP_NAME="+app.Metadata.Name, "ARGOCD_APP_NAMESPACE="+app.Spec.Destination.Namespace,
			"ARGOCD_APP_PROJECT_NAME=default", "ARGOCD_APP_SOURCE_PATH="+app.Spec.Source.Path,
			"ARGOCD_APP_SOURCE_REPO_URL=https://git.example.com/platform/kommons.git",
			"ARGOCD_APP_SOURCE_TARGET_REVISION=main", "ARGOCD_APP_REVISION=0123456789abcdef0123456789abcdef01234567",
			"KUBE_VERSION="+kubeVersion, "KUBE_API_VERSIONS="+apiVersions)
		for _, e := range app.Spec.Source.Plugin.Env {
			env = append(env, "ARGOCD_ENV_"+e.Name+"="+e.Value)
		}
		if plugin.Spec.Init != nil {
			a := plugin.Spec.Init.argv()
			run(t, appDir, env, a[0], a[1:]...)
		}
		a := plugin.Spec.Generate.argv()
		manifests := stdout(t, appDir, env, a[0], a[1:]...)
		require.Contains(t, manifests, "kommons.io/pool", "Application %s: placed by the post-renderer", app.Metadata.Name)
		out := filepath.Join(t.TempDir(), app.Metadata.Name+".yaml")
		require.NoError(t, os.WriteFile(out, []byte(manifests), 0o600))
		// Argo CD applies each object to its own namespace (the destination
		// namespace only for objects without one; these charts set it).
		c.Kubectl(t, "apply", "--server-side", "--field-manager=argocd-controller", "-f", out)
		if i == 0 {
			commons = manifests
			assertCommonsPlaced(t, c, app.Spec.Destination.Namespace, app.Metadata.Name)
		} else {
			require.NotContains(t, manifests, "\nkind: Secret\n", "orthanc renders no Secret: secret-init generates its credentials in the cluster")
			dep, err := c.Client().AppsV1().Deployments(app.Spec.Destination.Namespace).Get(context.Background(), app.Metadata.Name, metav1.GetOptions{})
			require.NoError(t, err)
			require.Equal(t, "app", dep.Spec.Template.Spec.NodeSelector["kommons.io/pool"], "Deployment %s", app.Metadata.Name)
			waitPodsOnPools(t, c, app.Spec.Destination.Namespace, 2)
		}
	}

	// Credentials are generated in the cluster (secret-init), never by the
	// template: Argo CD re-renders on every refresh, and two renders without
	// cluster access are identical and hold no Secret of commons.
	t.Run("rerender is identical", func(t *testing.T) {
		app := apps[0]
		env := append(append([]string{}, sidecarEnv...), "ARGOCD_APP_NAME="+app.Metadata.Name,
			"ARGOCD_APP_NAMESPACE="+app.Spec.Destination.Namespace, "ARGOCD_APP_SOURCE_PATH="+app.Spec.Source.Path)
		for _, e := range app.Spec.Source.Plugin.Env {
			env = append(env, "ARGOCD_ENV_"+e.Name+"="+e.Value)
		}
		a := plugin.Spec.Generate.argv()
		again := stdout(t, filepath.Join(root, app.Spec.Source.Path), env, a[0], a[1:]...)
		require.Equal(t, commons, again, "two renders of commons differ")
		require.NotContains(t, commons, "\nkind: Secret\n", "commons renders no Secret")
	})

	t.Run("bad POLICY is refused", func(t *testing.T) {
		app := apps[0]
		env := append(append([]string{}, sidecarEnv...), "ARGOCD_APP_NAME=x", "ARGOCD_APP_NAMESPACE=x",
			"ARGOCD_APP_SOURCE_PATH="+app.Spec.Source.Path, "ARGOCD_ENV_POLICY=../../etc/passwd")
		a := plugin.Spec.Generate.argv()
		out, err := runErr(filepath.Join(root, app.Spec.Source.Path), env, a[0], a[1:]...)
		require.Error(t, err)
		require.Contains(t, out, "POLICY=../../etc/passwd: give the name of a policy file")
		env = append(env[:len(env)-1], "ARGOCD_ENV_POLICY=db-app-split", "ARGOCD_ENV_VALUES=../../../../../../../../../etc/os-release")
		out, err = runErr(filepath.Join(root, app.Spec.Source.Path), env, a[0], a[1:]...)
		require.Error(t, err)
		require.Contains(t, out, "is outside the repository")
	})
}

// argoKubeEnv returns KUBE_VERSION and KUBE_API_VERSIONS as Argo CD's
// repo-server computes them for this cluster: the server's version with "+"
// removed, and every group/version plus every group/version/Kind it serves.
func argoKubeEnv(t *testing.T, c *testcluster.Cluster) (string, string) {
	t.Helper()
	v, err := c.Client().Discovery().ServerVersion()
	require.NoError(t, err)
	_, lists, err := c.Client().Discovery().ServerGroupsAndResources()
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, l := range lists {
		seen[l.GroupVersion] = true
		for _, r := range l.APIResources {
			if !strings.Contains(r.Name, "/") {
				seen[l.GroupVersion+"/"+r.Kind] = true
			}
		}
	}
	var apis []string
	for k := range seen {
		apis = append(apis, k)
	}
	sort.Strings(apis)
	return strings.ReplaceAll(v.GitVersion, "+", ""), strings.Join(apis, ",")
}

// argoApps decodes every Application of a multi-document file.
func argoApps(t *testing.T, path string) []argoApp {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var apps []argoApp
	for _, doc := range splitYAML(t, f) {
		var a argoApp
		require.NoError(t, yaml.Unmarshal(doc, &a), path)
		apps = append(apps, a)
	}
	return apps
}

// splitYAML returns the non-empty documents of a YAML stream.
func splitYAML(t *testing.T, r io.Reader) [][]byte {
	t.Helper()
	rd := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var docs [][]byte
	for {
		doc, err := rd.Read()
		if errors.Is(err, io.EOF) {
			return docs
		}
		require.NoError(t, err)
		if len(bytes.TrimSpace(stripComments(doc))) > 0 {
			docs = append(docs, doc)
		}
	}
}

// stripComments drops the comment lines of a YAML document.
func stripComments(doc []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(append(out, l...), '\n')
		}
	}
	return out
}
