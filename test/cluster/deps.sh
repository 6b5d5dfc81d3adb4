#!/usr/bin/env bash
# deps.sh - install the Debian packages the tests and the demo need, when missing (idempotent;
# `make deps`, run by `make test` and `.ci/run`). Needs root or sudo the first time.
#   PostgreSQL server (throwaway test clusters) with contrib (pg_trgm); Orthanc and its
#   PostgreSQL plugins (real Orthanc tests and the demo); dcmtk (echoscu, storescu, findscu: DICOM
#   over the wire and over TLS); yamllint (ct lint); the real node's
#   runtime: containerd, runc, the CNI plugins, iptables (kube-proxy, CNI masquerading), ipset
#   (kube-router's NetworkPolicy firewall) and debootstrap (the Debian root filesystem of the
#   node's PostgreSQL and Orthanc images); gnupg (a throwaway PGP key signing the Helm 4 plugin
#   archive in internal/release's TestPluginArchive; priority optional, not in every Debian);
#   npm (test/cluster/install-postgres.sh fetches the PostgreSQL 16-18 servers with it; only when
#   no npm is on PATH, e.g. NodeSource's nodejs ships its own); and the basics the scripts call.
set -euo pipefail
pkgs=(postgresql postgresql-contrib orthanc orthanc-postgresql dcmtk yamllint
  containerd runc containernetworking-plugins iptables ipset debootstrap
  git make curl ca-certificates openssl gnupg python3 procps iproute2 util-linux)
command -v npm >/dev/null || pkgs+=(npm)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
((${#missing[@]})) || exit 0
echo "deps: apt-get install ${missing[*]}" >&2
SUDO=; [[ $EUID -ne 0 ]] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's postgresql and containerd packages start system services where systemd runs; the
# tests never use them (they run their own servers and their own containerd).
