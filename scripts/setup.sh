#!/usr/bin/env bash
# Installs what FlowFleet needs to build and test on a fresh Debian/Ubuntu machine (run as root or with
# sudo): the C headers gopacket's live capture links against, the network tools the capture tests use, and
# PostgreSQL for the store tests, systemd (systemd-analyze) and rpm for the package tests (deploy/packagetest),
# podman and runc for the image test (deploy/imagetest; about a minute to install, half a minute to build),
# and the independent readers the dataset tests read exports back with (internal/dataset): Python's csv
# module, and hyparquet (a JavaScript Parquet reader, from the npm registry, into
# /usr/local/lib/flowfleet or $FLOWFLEET_NODE_PREFIX) run by Node.js — Debian packages no Python Parquet
# engine (python3-pyarrow, python3-fastparquet). Go itself must already be installed. Safe to run again.
set -euo pipefail
need=()
for pkg in libpcap-dev iproute2 iputils-ping tcpdump postgresql python3 ca-certificates python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc systemd rpm podman runc nodejs redis-server nats-server; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
go version >/dev/null
if ! command -v npm >/dev/null; then # some nodejs builds carry npm, Debian's does not
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null
fi
node_prefix="${FLOWFLEET_NODE_PREFIX:-/usr/local/lib/flowfleet}"
if [ ! -f "$node_prefix/node_modules/hyparquet/package.json" ]; then
  echo "setup: installing hyparquet into $node_prefix"
  npm install --prefix "$node_prefix" --no-audit --no-fund --silent hyparquet@1.31.5 >/dev/null
fi
