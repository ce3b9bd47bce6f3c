#!/usr/bin/env bash
# Sensor capture benchmark (issue 5), end to end, as root:
#
#   bench/sensor/run.sh
#
# Builds the sensor, collector, flowctl and the bench tools; makes a 200 MiB realistic capture (bench/gencap)
# and a capture of 1,000,000 distinct flows (bench/sensor/manyflows); creates three network namespaces:
#
#   ffbs-send ──veth ffbs-data── ffbs-sensor ──veth ffbs-ctl── ffbs-ctl
#   sender (AF_PACKET,            sensor captures   10.93.0.2 │ 10.93.0.1  collector, bench driver
#   sendmmsg, paced)              on ffbs-data                           (scrapes the sensor's metrics)
#
# issues certificates (flowctl certs), and runs bench/sensor (sensorbench) in ffbs-ctl: for each capture
# method a rate sweep (START, START+STEP, … up to MAX packets/s, STEP_DURATION each) and a many-flows phase.
# Every process, namespace and veth is removed on exit. Nothing leaves the namespaces.
#
# Knobs (environment): METHODS=pcap,afpacket START=50000 STEP=50000 MAX=1000000 STEP_DURATION=10s
# SIZE=200MiB FLOWS=1000000 FLOWS_RATE=100000 TIMEOUT=40m, and SENSORBENCH_ARGS for more sensorbench flags.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PATH:/usr/local/go/bin"
if [ "$(id -u)" != 0 ]; then
  echo "bench/sensor/run.sh: needs root (network namespaces, packet sockets)" >&2
  exit 1
fi
for cmd in ip go; do
  command -v "$cmd" >/dev/null || { echo "bench/sensor/run.sh: $cmd is not installed" >&2; exit 1; }
done
work=work/bench/sensor
mkdir -p "$work/logs"
size=${SIZE:-200MiB}
flows=${FLOWS:-1000000}

echo "== building"
go build -o "$work/sensor" ./cmd/sensor
go build -o "$work/collector" ./cmd/collector
go build -o "$work/flowctl" ./cmd/ctl
go build -o "$work/sensorbench" ./bench/sensor
go build -o "$work/" ./bench/sensor/sender ./bench/sensor/manyflows ./bench/gencap

echo "== captures"
if [ ! -f "$work/big-$size.pcap" ]; then "$work/gencap" -o "$work/big-$size.pcap" -size "$size"; fi
if [ ! -f "$work/flows-$flows.pcap" ]; then "$work/manyflows" -o "$work/flows-$flows.pcap" -flows "$flows"; fi

echo "== certificates"
rm -rf "$work/pki"
"$work/flowctl" certs init --dir "$work/pki" >/dev/null
"$work/flowctl" certs issue --dir "$work/pki" --role collector --name bench --ip 10.93.0.1 >/dev/null
"$work/flowctl" certs issue --dir "$work/pki" --role sensor --name bench-sensor >/dev/null

namespaces="ffbs-send ffbs-sensor ffbs-ctl"
driver=""
cleanup() {
  trap - EXIT INT TERM
  if [ -n "$driver" ]; then kill -TERM "$driver" 2>/dev/null || true; wait "$driver" 2>/dev/null || true; fi
  for ns in $namespaces; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== namespaces"
for ns in $namespaces; do
  ip netns del "$ns" 2>/dev/null || true
  ip netns add "$ns"
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n "$ns" link set lo up
done
# The measured link: no addresses, the replayed frames are for other hosts and the stack ignores them.
ip link add ffbs-data netns ffbs-send type veth peer name ffbs-data netns ffbs-sensor
ip -n ffbs-send link set ffbs-data up
ip -n ffbs-sensor link set ffbs-data up
# The control link: the sensor's stream to the collector and the driver's metrics scrapes.
ip link add ffbs-ctl netns ffbs-ctl type veth peer name ffbs-ctl netns ffbs-sensor
ip -n ffbs-ctl addr add 10.93.0.1/24 dev ffbs-ctl
ip -n ffbs-sensor addr add 10.93.0.2/24 dev ffbs-ctl
ip -n ffbs-ctl link set ffbs-ctl up
ip -n ffbs-sensor link set ffbs-ctl up

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), kernel $(uname -r)"
# shellcheck disable=SC2086
ip netns exec ffbs-ctl "$work/sensorbench" -work "$work" \
  -capture "$work/big-$size.pcap" -flows-capture "$work/flows-$flows.pcap" -flows "$flows" \
  -methods "${METHODS:-pcap,afpacket}" -start "${START:-50000}" -step "${STEP:-50000}" -max "${MAX:-1000000}" \
  -step-duration "${STEP_DURATION:-10s}" -flows-rate "${FLOWS_RATE:-100000}" -timeout "${TIMEOUT:-40m}" \
  ${SENSORBENCH_ARGS:-} &
driver=$!
status=0
wait "$driver" || status=$?
driver=""
exit "$status"
