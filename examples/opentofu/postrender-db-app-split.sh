#!/bin/sh
# The post-renderer as the Helm provider runs it: `postrender { binary_path }` takes no
# arguments in older provider versions, so this wrapper names the policy (any version runs it).
# POSTRENDER: the postrender binary (default: postrender on PATH).
here=$(cd "$(dirname "$0")" && pwd)
exec "${POSTRENDER:-postrender}" --config "$here/../policies/db-app-split.yaml"
