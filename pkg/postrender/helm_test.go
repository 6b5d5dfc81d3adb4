package postrender_test

import (
	"bytes"
	"io"
	"reflect"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	kubefake "helm.sh/helm/v3/pkg/kube/fake"
	helmpostrender "helm.sh/helm/v3/pkg/postrender"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"

	"github.com/kommons/kommons/pkg/postrender"
)

var _ helmpostrender.PostRenderer = (*postrender.Engine)(nil)

// TestHelmSDKInstall renders testdata/chart with the real Helm 3 SDK
// (action.Install, client-only dry run) with the engine as PostRenderer.
func TestHelmSDKInstall(t *testing.T) {
	eng := testEngine(t, postrender.Options{})
	rel := helmInstall(t, eng)
	plain := helmInstall(t, nil)
	objs, plainObjs := parseManifest(t, rel.Manifest), parseManifest(t, plain.Manifest)
	if len(objs) != len(plainObjs) {
		t.Fatalf("%d objects with the post-renderer, %d without", len(objs), len(plainObjs))
	}
	for k, o := range plainObjs {
		if !reflect.DeepEqual(strip(o), strip(objs[k])) {
			t.Errorf("%s differs beyond placement fields:\n%v\n%v", k, o, objs[k])
		}
	}
	podSpec := func(key string) map[string]any {
		o, ok := objs[key]
		if !ok {
			t.Fatalf("%s not rendered; have %v", key, keys(objs))
		}
		return dig(o, "spec", "template", "spec").(map[string]any)
	}
	app := podSpec("Deployment/demo-app")
	if got := dig(app, "nodeSelector", "kommons.io/pool"); got != "app" {
		t.Errorf("app nodeSelector = %v", got)
	}
	if got := dig(app, "containers").([]any)[0].(map[string]any)["env"].([]any)[0].(map[string]any)["value"]; got != "on" {
		t.Errorf("env value %#v: YAML 1.1 string not kept", got)
	}
	db := podSpec("StatefulSet/demo-postgresql")
	if got := dig(db, "nodeSelector", "kommons.io/pool"); got != "db" {
		t.Errorf("db nodeSelector = %v", got)
	}
	if tol := dig(db, "tolerations").([]any); len(tol) != 1 || tol[0].(map[string]any)["value"] != "db" {
		t.Errorf("db tolerations = %v", tol)
	}
	vct := dig(objs["StatefulSet/demo-postgresql"], "spec", "volumeClaimTemplates").([]any)[0].(map[string]any)
	if got := dig(vct, "spec", "storageClassName"); got != "fast-ssd" {
		t.Errorf("volumeClaimTemplate class = %v", got)
	}
	if got := dig(objs["PersistentVolumeClaim/demo-uploads"], "spec", "storageClassName"); got != "standard" {
		t.Errorf("PVC class = %v", got)
	}
	if got := dig(objs["ConfigMap/demo-config"], "data", "embedded.yaml"); !strings.HasPrefix(got.(string), "kind: Deployment\n---\nkind: Pod") {
		t.Errorf("block scalar with --- changed: %q", got)
	}
	// Helm 3 does not post-render hooks.
	if len(rel.Hooks) != 1 {
		t.Fatalf("hooks = %d, want 1", len(rel.Hooks))
	}
	if rel.Hooks[0].Manifest != plain.Hooks[0].Manifest {
		t.Errorf("hook %s was post-rendered; Helm 3 is documented not to", rel.Hooks[0].Name)
	}
	// The release manifest runs through the engine unchanged a second time.
	res, err := eng.Process([]byte(rel.Manifest))
	if err != nil || len(res.Changes) != 0 || !bytes.Equal(res.Bytes(), []byte(rel.Manifest)) {
		t.Errorf("release manifest not stable under a second run: %v, %d changes", err, len(res.Changes))
	}
}

func helmInstall(t *testing.T, pr helmpostrender.PostRenderer) *release.Release {
	t.Helper()
	cfg := &action.Configuration{
		Releases:     storage.Init(driver.NewMemory()),
		KubeClient:   &kubefake.PrintingKubeClient{Out: io.Discard},
		Capabilities: chartutil.DefaultCapabilities,
		Log:          func(string, ...interface{}) {},
	}
	inst := action.NewInstall(cfg)
	inst.ReleaseName, inst.Namespace = "demo", "team-a"
	inst.DryRun, inst.ClientOnly, inst.Replace = true, true, true
	inst.PostRenderer = pr
	chrt, err := loader.Load("testdata/chart")
	if err != nil {
		t.Fatal(err)
	}
	rel, err := inst.Run(chrt, map[string]any{})
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	return rel
}

func parseManifest(t *testing.T, manifest string) map[string]map[string]any {
	t.Helper()
	objs := map[string]map[string]any{}
	for _, m := range releaseutil.SplitManifests(manifest) {
		var o map[string]any
		if err := yaml.Unmarshal([]byte(m), &o); err != nil {
			t.Fatalf("manifest does not decode: %v\n%s", err, m)
		}
		if o == nil {
			continue
		}
		objs[o["kind"].(string)+"/"+dig(o, "metadata", "name").(string)] = o
	}
	return objs
}

func dig(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func keys(m map[string]map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
