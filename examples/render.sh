#!/bin/sh
# render.sh - "render in CI, commit the manifests": render one release of a chart with Helm 3
# through the kommons post-renderer into a directory that Argo CD (a directory Application)
# or Flux (a Kustomization) then applies as plain manifests.
#
# Usage: examples/render.sh OUT_DIR POLICY RELEASE NAMESPACE CHART [VALUES_FILE...]
#   writes OUT_DIR/NAMESPACE/RELEASE.yaml (replacing it), e.g. from the repository root:
#     examples/render.sh deploy/rendered examples/policies/db-app-split.yaml \
#       commons commons charts/commons examples/argocd/commons-values.yaml
#     examples/render.sh deploy/rendered examples/policies/db-app-split.yaml \
#       orthanc imaging charts/orthanc examples/argocd/orthanc-values.yaml
# Environment:
#   HELM          Helm 3 binary (default: helm)
#   POSTRENDER    post-renderer binary (default: postrender)
#   KUBE_VERSION  the target cluster's Kubernetes version (e.g. 1.33.4): CI has no cluster,
#                 so without it Helm assumes its own default for .Capabilities.KubeVersion
# Runs `helm dependency build CHART` first (writes CHART/charts/, as `helm install` would need).
# Exit codes: 0 written; 2 usage; otherwise the failing tool's (nothing is replaced then).
# Credentials: charts that generate passwords with `lookup` generate new ones on every
# render without a cluster; see docs/gitops.md ("Credentials") before committing the output.
set -eu
if [ $# -lt 5 ]; then
  sed -n '2,20s/^# \{0,1\}//p' "$0" >&2
  exit 2
fi
out=$1 policy=$2 release=$3 namespace=$4 chart=$5
shift 5
helm=${HELM:-helm}
postrender=${POSTRENDER:-postrender}
[ -f "$chart/Chart.yaml" ] || { echo "render.sh: $chart: no Chart.yaml (CHART must be a chart directory)" >&2; exit 2; }
[ -r "$policy" ] || { echo "render.sh: policy $policy is not readable" >&2; exit 2; }
set -- template "$release" "$chart" --namespace "$namespace" "$@"
# Every remaining argument is a values file: turn "a.yaml b.yaml" into "--values a.yaml --values b.yaml".
n=$#
i=0
for a in "$@"; do
  i=$((i + 1))
  if [ "$i" -le 5 ]; then set -- "$@" "$a"; else set -- "$@" --values "$a"; fi
done
shift "$n"
if [ -n "${KUBE_VERSION:-}" ]; then set -- "$@" --kube-version "$KUBE_VERSION"; fi

mkdir -p "$out/$namespace"
tmp=$(mktemp "$out/$namespace/.$release.XXXXXX")
trap 'rm -f "$tmp" "$tmp.helm"' EXIT
"$helm" dependency build "$chart" >&2
"$helm" "$@" > "$tmp.helm"
"$postrender" --config "$policy" --namespace "$namespace" --input "$tmp.helm" > "$tmp"
chmod 0644 "$tmp"
mv "$tmp" "$out/$namespace/$release.yaml"
echo "render.sh: wrote $out/$namespace/$release.yaml" >&2
