#!/usr/bin/env bash
# Builds FlowFleet's .deb and .rpm packages with nfpm: flowfleet-collector, flowfleet-sensor and flowctl,
# one package per program, so that a sensor host gets only the sensor (and its libpcap dependency) and an
# operator's workstation only flowctl. The collector and sensor packages share the flowfleet user and
# /etc/flowfleet (deploy/packaging/*.sh create and fix them idempotently).
#
#   scripts/package.sh [-o DIR] [--formats "deb rpm"]    packages into DIR (default ./dist)
#
# The binaries are built by scripts/build.sh, stamped with its version (git describe, or
# FLOWFLEET_VERSION). The package version is derived from it: v1.2.3 → 1.2.3, v1.2.3-4-gabc1234-dirty →
# 1.2.3+4.gabc1234.dirty (sorts after 1.2.3), and an untagged tree's abc1234 → 0.0.0+git.abc1234.
# nfpm is installed with `go install` (Go module proxy) at the pinned version into $FLOWFLEET_TOOLS_BIN
# (default ./bin), like scripts/gen.sh's tools.
set -euo pipefail
NFPM_VERSION=v2.48.0

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
out=dist
formats="deb rpm"
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out=${2:?usage: scripts/package.sh [-o DIR] [--formats "deb rpm"]}; shift 2 ;;
    --formats) formats=${2:?--formats needs a list}; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "usage: scripts/package.sh [-o DIR] [--formats \"deb rpm\"]" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
out=$(cd "$out" && pwd)

bin=${FLOWFLEET_TOOLS_BIN:-$root/bin}
mkdir -p "$bin"
if [[ "$("$bin/nfpm" --version 2>/dev/null || true)" != *"${NFPM_VERSION#v}"* ]]; then
  echo "package.sh: installing nfpm $NFPM_VERSION into $bin" >&2
  GOBIN="$bin" GOFLAGS= go install "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION"
fi

version=$(scripts/build.sh --version)
export FLOWFLEET_VERSION=$version
if [[ "$version" =~ ^v?[0-9]+\.[0-9]+ ]]; then
  pkgversion=${version#v}
  base=${pkgversion%%-*}
  rest=${pkgversion#"$base"}
  pkgversion=$base${rest:+"+${rest#-}"}
  pkgversion=${pkgversion//-/.}
else
  pkgversion=0.0.0+git.${version//-/.}
fi
if ! [[ "$pkgversion" =~ ^[0-9][0-9A-Za-z.+~]*$ ]]; then
  echo "package.sh: cannot derive a package version from $version" >&2
  exit 1
fi

stage=$(mktemp -d "${TMPDIR:-/tmp}/flowfleet-package.XXXXXX")
trap 'rm -rf "$stage"' EXIT
scripts/build.sh -o "$stage/bin"
mkdir -p "$stage/bin/help"
"$stage/bin/collector" --help >"$stage/bin/help/collector.txt"
"$stage/bin/sensor" --help >"$stage/bin/help/sensor.txt"
"$stage/bin/flowctl" --help >"$stage/bin/help/flowctl.txt"

for pkg in collector sensor flowctl; do
  sed -e "s|@VERSION@|$pkgversion|g; s|@BIN@|$stage/bin|g; s|@ROOT@|$root|g" \
    "deploy/packaging/$pkg.nfpm.yaml" >"$stage/$pkg.nfpm.yaml"
  for f in $formats; do
    "$bin/nfpm" package --config "$stage/$pkg.nfpm.yaml" --packager "$f" --target "$out/" >&2
  done
done
echo "package.sh: $version as $pkgversion into $out" >&2
ls -1 "$out"/*.deb "$out"/*.rpm 2>/dev/null | grep -F "$pkgversion" || true
