#!/usr/bin/env bash
# run.sh - `make demo`: kommons end to end on this machine (see README.md and test/demo/main.go).
#   test/demo/run.sh            run the demo; KEEP=1 leaves everything running
#   test/demo/run.sh down       stop what KEEP=1 left running (by PID) and remove its state
# Extra arguments go to the demo program (test/demo/run.sh --help lists its flags).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export PATH=/usr/local/go/bin:$PATH GOTOOLCHAIN=${GOTOOLCHAIN:-local} GOFLAGS=${GOFLAGS:--buildvcs=false}
mkdir -p bin
go build -o bin/demo ./test/demo
exec bin/demo "$@"
