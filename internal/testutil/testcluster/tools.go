// Package testcluster runs a real Kubernetes control plane for tests, without
// containers: etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler built from source, kwok faking the nodes (pods go Running,
// run-to-completion pods Succeed, an annotation makes a pod fail), and a tiny
// PV provisioner so claims bind. Everything binds 127.0.0.1 on free ports and
// every process is stopped by PID when the cluster is stopped.
//
// The binaries come from test/cluster/build.sh, cached outside the repo under
// $KOMMONS_CACHE (default ~/.cache/kommons) and keyed by the versions in
// test/cluster/versions.env. Tools returns their paths.
package testcluster

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/kommons/kommons/internal/testutil/toolcache"
)

// Tools are the paths of the harness binaries.
type Tools struct {
	Versions    map[string]string // from test/cluster/versions.env
	KubeBin     string            // directory with etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy
	Kwok        string
	KwokStages  string // directory with kwok's upstream stage files
	Helm3       string
	Helm4       string
	CT          string
	CTConfigDir string // chart-testing's lintconf.yaml and chart_schema.yaml
	Kubeconform string
	KubeScore   string
	Cache       string // $KOMMONS_CACHE
	RepoRoot    string
}

// CacheDir is where built binaries and generated schemas are cached.
func CacheDir() string { return toolcache.Dir() }

// RepoRoot walks up from the working directory to the directory holding go.mod.
func RepoRoot() (string, error) { return toolcache.RepoRoot() }

// FindTools locates the cached harness binaries; a missing one is an error
// that says how to build it.
func FindTools() (*Tools, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	v, err := toolcache.Versions()
	if err != nil {
		return nil, err
	}
	c := CacheDir()
	t := &Tools{
		Versions:    v,
		Cache:       c,
		RepoRoot:    root,
		KubeBin:     filepath.Join(c, "kube-"+v["KUBE_VERSION"]),
		Kwok:        filepath.Join(c, "kwok-"+v["KWOK_VERSION"], "kwok"),
		KwokStages:  filepath.Join(c, "kwok-"+v["KWOK_VERSION"], "stages"),
		Helm3:       filepath.Join(c, "helm3-"+v["HELM3_VERSION"], "helm"),
		Helm4:       filepath.Join(c, "helm4-"+v["HELM4_VERSION"], "helm"),
		CT:          filepath.Join(c, "ct-"+v["CT_VERSION"], "ct"),
		CTConfigDir: filepath.Join(c, "ct-"+v["CT_VERSION"], "etc"),
		Kubeconform: filepath.Join(c, "kubeconform-"+v["KUBECONFORM_VERSION"], "kubeconform"),
		KubeScore:   filepath.Join(c, "kube-score-"+v["KUBE_SCORE_VERSION"], "kube-score"),
	}
	for _, p := range []string{filepath.Join(t.KubeBin, "kube-apiserver"), filepath.Join(t.KubeBin, "etcd"), t.Kwok,
		t.Helm3, t.Helm4, t.CT, t.Kubeconform, t.KubeScore} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("testcluster: %s is missing: build the harness tools first with `make tools` (test/cluster/build.sh; ~15 min cold, cached after)", p)
		}
	}
	return t, nil
}
