#!/usr/bin/env bash
# Builds FlowFleet's container images offline with podman: flowfleet/collector, flowfleet/sensor and
# flowfleet/flowctl, each FROM scratch with one static binary (CGO_ENABLED=0; the sensor captures with
# AF_PACKET only, since libpcap needs cgo), tagged with the version scripts/build.sh stamps.
#
#   scripts/image.sh [--prefix NAME/] [--save DIR]
#
# --prefix is put before collector, sensor and flowctl (default flowfleet/, so localhost/flowfleet/sensor);
# --save DIR also writes each image as DIR/<program>-<tag>.tar (docker-archive, for `podman load` or a
# registry push elsewhere). A tag cannot hold "+", so a version's "+" becomes "_". Nothing is pulled. Each
# image is one layer (--layers=false: no intermediate images are left behind).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
prefix=flowfleet/
save=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=${2?--prefix needs a value}; shift 2 ;;
    --save) save=${2:?--save needs a directory}; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "usage: scripts/image.sh [--prefix NAME/] [--save DIR]" >&2; exit 2 ;;
  esac
done
command -v podman >/dev/null || { echo "image.sh: podman is missing (apt-get install podman)" >&2; exit 1; }

version=$(scripts/build.sh --version)
tag=${version//+/_}
ctx=$(mktemp -d "${TMPDIR:-/tmp}/flowfleet-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
CGO_ENABLED=0 FLOWFLEET_VERSION=$version scripts/build.sh -o "$ctx/bin"
cp LICENSE deploy/image/Containerfile "$ctx/"
for prog in collector sensor flowctl; do
  cp "$ctx/bin/$prog" "$ctx/program"
  podman build --quiet --layers=false --network=none --pull=never --file "$ctx/Containerfile" \
    --build-arg "PROGRAM=$prog" --build-arg "VERSION=$version" --tag "$prefix$prog:$tag" "$ctx" >/dev/null
  echo "$prefix$prog:$tag"
  if [ -n "$save" ]; then
    mkdir -p "$save"
    podman save --quiet --format docker-archive -o "$save/$prog-$tag.tar" "$prefix$prog:$tag"
  fi
done
