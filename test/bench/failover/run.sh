#!/usr/bin/env bash
# run.sh - failover of commons' CloudNativePG Cluster under Orthanc ingestion, per
# replication mode, on the harness's real node: TestCloudNativePG (test/e2e/cnpg) with
# its orthanc-failover step repeated RUNS times per mode (asynchronous, then synchronous
# with dataDurability required; both with smartShutdownTimeout 5 s, after one run with the
# operator's default 180 s). Each failover deletes the primary pod while a client stores
# DICOM instances through Orthanc's Service one after another; the step logs the
# write-unavailability window (longest time without an acknowledged upload) and the
# acknowledged uploads Orthanc no longer has, and writes the per-mode summary
# (min / median / max, lost) to OUT. Nothing is timed-asserted.
#
#   test/bench/failover/run.sh                 # RUNS=5, summary in failover-summary.md
#   RUNS=3 OUT=/tmp/f.md test/bench/failover/run.sh
#
# Needs root and what `make e2e` needs (containerd, runc, CNI plugins, debootstrap), the
# harness tools (`make tools`: Kubernetes, Helm, the CloudNativePG operator). About 5
# minutes plus 1 to 2 minutes per failover on the 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/../../.."
RUNS=${RUNS:-5}
OUT=${OUT:-$PWD/failover-summary.md}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
KOMMONS_E2E=1 KOMMONS_FAILOVER_RUNS="$RUNS" KOMMONS_FAILOVER_OUT="$OUT" \
  go test -count=1 -p 1 -timeout 120m -run '^TestCloudNativePG$' ./test/e2e/cnpg/ -v >"$log" 2>&1 || status=$?
grep -E 'FAILOVER-ORTHANC|upload through the Service|"Message"|helm upgrade commons|primary: synchronous_standby_names' "$log" | sed 's/^ *//' || true
if [[ $status -ne 0 ]]; then
  tail -n 80 "$log"
  echo "TestCloudNativePG failed (exit $status)" >&2
  exit "$status"
fi
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
cat "$OUT"
