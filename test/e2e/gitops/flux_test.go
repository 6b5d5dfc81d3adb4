package gitops

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/kommons/kommons/internal/testutil/testcluster"
	"github.com/kommons/kommons/internal/testutil/toolcache"
)

// fluxCRDs are the CustomResourceDefinitions the Flux examples use.
var fluxCRDs = []string{"gitrepositories.source.toolkit.fluxcd.io", "helmreleases.helm.toolkit.fluxcd.io",
	"kustomizations.kustomize.toolkit.fluxcd.io"}

// TestFluxObjects checks the Flux examples against Flux's own API: the CRDs
// of the controllers of Flux FLUX_VERSION (test/cluster/build.sh flux-crds
// takes them from the controllers' modules) are installed into the cluster,
// and examples/flux/*.yaml are server-side applied with strict field
// validation, so the apiserver checks them against the CRDs' schemas
// (field names, types, enums, CEL rules) as it would on a cluster with Flux;
// a misspelt field and a bad enum value are refused the same way. No Flux
// controller runs here: nothing is reconciled. Each HelmRelease's chart is
// then rendered with its values by Helm 3 (the chart's values schema checks
// them), without the post-renderer, as helm-controller would install it.
func TestFluxObjects(t *testing.T) {
	c := testcluster.Start(t)
	crds := toolcache.Require(t, "flux-crds", "FLUX_VERSION", "", "")
	root := repoCopy(t, c.Tools.RepoRoot)

	c.Kubectl(t, "apply", "--server-side", "-f", crds)
	c.Kubectl(t, append([]string{"wait", "--for=condition=Established", "--timeout=2m"}, prefixAll("crd/", fluxCRDs)...)...)
	createNamespace(t, c, "flux-system")
	flux := filepath.Join(root, "examples", "flux")
	for _, f := range []string{"source.yaml", "helmreleases.yaml", "rendered.yaml"} {
		c.Kubectl(t, "apply", "--server-side", "--validate=strict", "-f", filepath.Join(flux, f))
	}
	got := c.Kubectl(t, "get", "-n", "flux-system", "gitrepositories,helmreleases,kustomizations", "-o", "name")
	for _, want := range []string{"gitrepository.source.toolkit.fluxcd.io/kommons", "helmrelease.helm.toolkit.fluxcd.io/commons",
		"helmrelease.helm.toolkit.fluxcd.io/orthanc", "kustomization.kustomize.toolkit.fluxcd.io/kommons-rendered"} {
		require.Contains(t, got, want)
	}

	b, err := os.ReadFile(filepath.Join(flux, "helmreleases.yaml"))
	require.NoError(t, err)
	t.Run("the CRDs refuse mistakes", func(t *testing.T) {
		for name, edit := range map[string][3]string{
			"misspelt field": {"reconcileStrategy: Revision", "reconcileStrategi: Revision", ".spec.chart.spec.reconcileStrategi: field not declared in schema"},
			"bad enum value": {"reconcileStrategy: Revision", "reconcileStrategy: Sometimes", `spec.chart.spec.reconcileStrategy: Unsupported value: "Sometimes"`},
		} {
			bad := filepath.Join(t.TempDir(), "bad.yaml")
			require.NoError(t, os.WriteFile(bad, []byte(strings.Replace(string(b), edit[0], edit[1], 1)), 0o600))
			out, err := c.Exec(filepath.Join(c.Tools.KubeBin, "kubectl"), "apply", "--server-side", "--validate=strict", "--dry-run=server", "-f", bad)
			require.Error(t, err, "%s accepted:\n%s", name, out)
			require.Contains(t, out, edit[2], name)
			t.Logf("%s refused: %s", name, strings.TrimSpace(out))
		}
	})

	env := append(c.Env(), "HOME="+t.TempDir())
	for _, doc := range splitYAML(t, strings.NewReader(string(b))) {
		var hr struct {
			Spec struct {
				ReleaseName     string `json:"releaseName"`
				TargetNamespace string `json:"targetNamespace"`
				Chart           struct {
					Spec struct {
						Chart string `json:"chart"`
					} `json:"spec"`
				} `json:"chart"`
				Values map[string]any `json:"values"`
			} `json:"spec"`
		}
		require.NoError(t, yaml.Unmarshal(doc, &hr))
		chart := filepath.Join(root, hr.Spec.Chart.Spec.Chart)
		values, err := yaml.Marshal(hr.Spec.Values)
		require.NoError(t, err)
		vf := filepath.Join(t.TempDir(), "values.yaml")
		require.NoError(t, os.WriteFile(vf, values, 0o600))
		c.Helm3(t, "dependency", "build", chart)
		out := stdout(t, root, env, c.Tools.Helm3, "template", hr.Spec.ReleaseName, chart, "-n", hr.Spec.TargetNamespace, "-f", vf)
		require.Regexp(t, `(?m)^kind: (StatefulSet|Deployment)$`, out, "%s renders its workloads", hr.Spec.ReleaseName)
		require.NotContains(t, out, "kommons.io/pool", "%s: no placement on this path", hr.Spec.ReleaseName)
	}
}

func prefixAll(p string, s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = p + v
	}
	return out
}
