#!/usr/bin/env bash
# Benchmarks postrender against kustomize (as a Helm post-renderer) and yq
# doing the same placement, and a split-and-copy floor, on generated chart
# output of 100, 1,000 and 10,000 documents, all in the same run.
#
#   test/bench/postrender/run.sh              # all sizes
#   SIZES="100 1000" RUNS=5 test/bench/postrender/run.sh
#   BASELINE=/tmp/postrender-old test/bench/postrender/run.sh   # also an older build
#
# Prints a Markdown table: wall time (median of RUNS), MB/s, peak RSS
# (/usr/bin/time -v). kustomize is skipped at a size when the previous size
# extrapolates beyond KUSTOMIZE_LIMIT seconds (default 120), and killed at
# that limit. Tools are installed on first use with GOBIN under
# ~/.cache/kommons/bench-tools/<tool>-<version>.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
SIZES=${SIZES:-"100 1000 10000"}
RUNS=${RUNS:-3}
# kustomize v5.8.3 needs Go >= 1.27 and yq v4.54.2 a go.yaml.in/yaml/v4
# release candidate the module proxy no longer serves (403), so with Go 1.26
# the newest installable releases are used; override when they build.
KUSTOMIZE_VERSION=${KUSTOMIZE_VERSION:-v5.8.1}
YQ_VERSION=${YQ_VERSION:-v4.54.1}
KUSTOMIZE_LIMIT=${KUSTOMIZE_LIMIT:-120}
tools=${BENCH_TOOLS:-$HOME/.cache/kommons/bench-tools}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -x /usr/bin/time ]; then
	echo "installing GNU time (apt-get install time)" >&2
	apt-get install -y time >/dev/null
fi

install_tool() { # name version package
	local dir="$tools/$1-$2"
	if [ ! -x "$dir/$1" ]; then
		echo "installing $1 $2 into $dir" >&2
		mkdir -p "$dir"
		GOBIN="$dir" GOFLAGS=-mod=mod go install "$3@$2" >&2 || true
	fi
	if [ ! -x "$dir/$1" ]; then
		echo "cannot install $3@$2 (see above)" >&2
		return 1
	fi
}
install_tool kustomize "$KUSTOMIZE_VERSION" sigs.k8s.io/kustomize/kustomize/v5
install_tool yq "$YQ_VERSION" github.com/mikefarah/yq/v4
kustomize="$tools/kustomize-$KUSTOMIZE_VERSION/kustomize"
yq="$tools/yq-$YQ_VERSION/yq"

echo "building postrender, generator and floor" >&2
(cd "$root" && go build -o "$work/postrender" ./cmd/postrender &&
	go build -o "$work/gen" ./test/bench/postrender/gen &&
	go build -o "$work/floor" ./pkg/postrender/internal/cmd/floor)

# The kustomize post-renderer wrapper everybody writes.
cat >"$work/kustomize-postrender" <<SH
#!/bin/sh
set -e
d=\$(mktemp -d)
cat > "\$d/all.yaml"
cp "$here/kustomization.yaml" "\$d/kustomization.yaml"
"$kustomize" build "\$d"
rm -rf "\$d"
SH
chmod +x "$work/kustomize-postrender"

# measure NAME INPUT CMD... : runs CMD < INPUT RUNS times, prints
# "median_wall_s max_rss_kb median_cpu_s" (cpu = user + system)
measure() {
	local name=$1 input=$2
	shift 2
	local times=() cpus=() rss=0
	for _ in $(seq "$RUNS"); do
		local rc=0
		/usr/bin/time -f "%e %M %U %S" -o "$work/time" timeout "${LIMIT:-600}" "$@" <"$input" >"$work/out.$name" 2>"$work/err.$name" || rc=$?
		if [ "$rc" = 124 ]; then
			echo "TIMEOUT ${LIMIT:-600}"
			return
		elif [ "$rc" != 0 ]; then
			echo "FAILED"
			return
		fi
		read -r t m u s <"$work/time"
		times+=("$t")
		cpus+=("$(awk -v u="$u" -v s="$s" 'BEGIN {print u+s}')")
		[ "$m" -gt "$rss" ] && rss=$m
	done
	echo "$(median "${times[@]}") $rss $(median "${cpus[@]}")"
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
printf '| docs | input | tool | wall (median of %s) | MB/s (wall) | CPU user+sys | peak RSS | RSS / input | nodeSelector db/app |\n' "$RUNS"
printf '|---:|---:|---|---:|---:|---:|---:|---:|---|\n'
kustomize_last=""
for n in $SIZES; do
	input="$work/in-$n.yaml"
	"$work/gen" -n "$n" >"$input"
	bytes=$(stat -c %s "$input")
	mb=$(awk -v b="$bytes" 'BEGIN {printf "%.1f", b/1e6}')
	declare -A res=()
	res[floor]=$(measure floor "$input" "$work/floor")
	res[postrender]=$(measure postrender "$input" "$work/postrender" -f "$here/policy.yaml")
	if [ -n "${BASELINE:-}" ]; then
		res[baseline]=$(measure baseline "$input" "$BASELINE" -f "$here/policy.yaml")
		cmp -s "$work/out.postrender" "$work/out.baseline" || res[baseline]="DIFFERS"
	fi
	res[yq]=$(measure yq "$input" "$yq" eval "$(cat "$here/yq.expr")" -)
	if [ -n "$kustomize_last" ] && awk -v t="$kustomize_last" -v l="$KUSTOMIZE_LIMIT" 'BEGIN {exit !(t*10 > l)}'; then
		res[kustomize]="SKIPPED"
	else
		res[kustomize]=$(RUNS=1 LIMIT=$KUSTOMIZE_LIMIT measure kustomize "$input" "$work/kustomize-postrender")
		kustomize_last=$(echo "${res[kustomize]}" | awk '{print $1}')
	fi
	tools="floor postrender"
	[ -n "${BASELINE:-}" ] && tools="$tools baseline"
	for tool in $tools yq kustomize; do
		r=${res[$tool]}
		case $r in
		DIFFERS) printf '| %s | %s MB | %s | output differs from postrender | | | | | |\n' "$n" "$mb" "$tool" ;;
		SKIPPED) printf '| %s | %s MB | %s | skipped: %s s at the previous size extrapolates past %s s | | | | | |\n' "$n" "$mb" "$tool" "$kustomize_last" "$KUSTOMIZE_LIMIT" ;;
		TIMEOUT*) printf '| %s | %s MB | %s | killed after %s s (limit) | | | | | |\n' "$n" "$mb" "$tool" "${r#TIMEOUT }" ;;
		FAILED) printf '| %s | %s MB | %s | failed or exceeded the time limit (%s) | | | | | |\n' "$n" "$mb" "$tool" "$(head -c 200 "$work/err.$tool" | tr '\n' ' ')" ;;
		*)
			read -r t m c <<<"$r"
			placed="-"
			if [ "$tool" != floor ]; then
				placed="$(grep -c 'agentpool: db' "$work/out.$tool" || true)/$(grep -c 'agentpool: app' "$work/out.$tool" || true)"
			fi
			awk -v n="$n" -v mb="$mb" -v tool="$tool" -v t="$t" -v m="$m" -v c="$c" -v b="$bytes" -v p="$placed" 'BEGIN {
				mbs = (t > 0) ? sprintf("%.1f", b/1e6/t) : "inf"
				printf "| %s | %s MB | %s | %.3f s | %s | %.2f s | %.1f MB | %.1fx | %s |\n", n, mb, tool, t, mbs, c, m/1024, m*1024/b, p }'
			;;
		esac
	done
	unset res
done
echo
echo "machine: $(nproc) cores, load average before: $load_before" 
echo >&2
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
