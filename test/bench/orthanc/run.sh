#!/usr/bin/env bash
# run.sh - BenchmarkIngest (REST) and BenchmarkDicomIngest (DICOM C-STORE with
# DCMTK's storescu) with 1 and 2 replicas, alternating round by round (ROUNDS
# rounds each, N instances per round), so that a load change on the machine
# hits every variant alike; prints every round and the medians.
#
#   test/bench/orthanc/run.sh                        # ROUNDS=5 N=400, REST and DICOM
#   ROUNDS=3 N=200 BENCHES=Ingest test/bench/orthanc/run.sh
#
# Needs root (private network namespace), orthanc + orthanc-postgresql, PostgreSQL, dcmtk.
set -euo pipefail
cd "$(dirname "$0")/../../.."
ROUNDS=${ROUNDS:-5}
N=${N:-400}
BENCHES=${BENCHES:-Ingest DicomIngest}
bin=$(mktemp -d)/orthanc-bench.test
trap 'rm -rf "$(dirname "$bin")"' EXIT
go test -c -o "$bin" ./test/bench/orthanc
declare -A results
for round in $(seq "$ROUNDS"); do
  for bench in $BENCHES; do
    for replicas in 1 2; do
      line=$("$bin" -test.run '^$' -test.bench "^Benchmark${bench}/replicas=${replicas}\$" \
        -test.benchtime "${N}x" -test.timeout 20m | grep "^Benchmark${bench}/")
      echo "round $round: $line"
      results[$bench/$replicas]+="$(awk '{for (i=1;i<=NF;i++) if ($i=="inst/s") print $(i-1)}' <<<"$line") "
    done
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for bench in $BENCHES; do
  m1=$(median <<<"${results[$bench/1]}")
  m2=$(median <<<"${results[$bench/2]}")
  echo "$bench median inst/s: 1 replica $m1, 2 replicas $m2, ratio 2/1 $(awk -v a="$m1" -v b="$m2" 'BEGIN {printf "%.2f", b/a}')"
done
