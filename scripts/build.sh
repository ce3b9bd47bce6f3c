#!/usr/bin/env bash
# Builds FlowFleet's three programs, stamped with one version from `git describe`:
#
#   scripts/build.sh [-o DIR]      collector, sensor and flowctl into DIR (default ./bin)
#   scripts/build.sh --version     print the version it would stamp
#
# The version is `git describe --tags --always --dirty` (for example v0.2.0-14-g1a2b3c4-dirty), or
# FLOWFLEET_VERSION when set (release builds, packages), or "dev" outside a git checkout. Extra go build
# flags can be passed in GOFLAGS (for example GOFLAGS=-race).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
out=bin
case "${1:-}" in
  -o) out=${2:?usage: scripts/build.sh [-o DIR]} ;;
  --version) ;;
  "") ;;
  -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
  *) echo "usage: scripts/build.sh [-o DIR] | --version" >&2; exit 2 ;;
esac
version=${FLOWFLEET_VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
if [ "${1:-}" = --version ]; then echo "$version"; exit 0; fi
mkdir -p "$out"
ldflags="-X github.com/flowfleet/flowfleet/internal/buildinfo.version=$version"
go build -ldflags "$ldflags" -o "$out/" ./cmd/collector ./cmd/sensor
go build -ldflags "$ldflags" -o "$out/flowctl" ./cmd/ctl
echo "built collector, sensor and flowctl $version in $out" >&2
