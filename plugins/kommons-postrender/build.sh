#!/bin/sh
# Builds the postrender binaries the Helm 4 plugin runs, into ./bin, for
# linux and darwin on amd64 and arm64 (static, no cgo). Run from anywhere.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mkdir -p "$here/bin"
for target in ${TARGETS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64}; do
	os=${target%/*}
	arch=${target#*/}
	echo "building bin/postrender-$os-$arch" >&2
	(cd "$root" && CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath -ldflags=-s -o "$here/bin/postrender-$os-$arch" ./cmd/postrender)
done
