#!/usr/bin/env bash
# FlowFleet's first run: builds everything, makes a throwaway CA, starts a collector on the embedded
# SQLite store and two sensors on two test hosts (network namespaces joined by a bridge), makes real
# DNS, HTTP, TLS and ping traffic from them, waits for the window to close and shows the samples.
#
#   sudo scripts/demo.sh          set up and run (again: it tears the previous run down first)
#   sudo scripts/demo.sh down     stop everything and remove the test hosts (keeps work/demo)
#
# Everything lives in work/demo: bin/, pki/, data/ (samples and the store), logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=${FLOWFLEET_DEMO_DIR:-$root/work/demo}
window=${FLOWFLEET_DEMO_WINDOW:-20}
export PATH="$PATH:/usr/local/go/bin"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
hosts=(host-a host-b)

down() {
  for pidfile in "$work"/run/*.pid; do
    [ -e "$pidfile" ] || continue
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  done
  sleep 0.5
  for ns in ff-host-a ff-host-b ff-services; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
  done
  for i in 1 2 3; do ip link del "veth-$i" 2>/dev/null || true; done
  for ns in ff-host-a ff-host-b ff-services; do ip netns del "$ns" 2>/dev/null || true; done
  ip link del ffbr0 2>/dev/null || true
  # Namespace teardown is asynchronous in the kernel: wait until the names are free again.
  for _ in $(seq 50); do
    ip link show veth-1 >/dev/null 2>&1 || ip link show ffbr0 >/dev/null 2>&1 || break
    sleep 0.1
  done
}

if [ "${1:-}" = "down" ]; then
  down
  echo "demo stopped; its files are still in $work"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "demo.sh creates network namespaces and captures packets: run it as root (sudo scripts/demo.sh)" >&2
  exit 1
fi

step "Installing what is missing (apt) and building collector, sensor, flowctl"
scripts/setup.sh
mkdir -p "$work"/{bin,pki,data,logs,run,spool}
scripts/build.sh -o "$work/bin"
go build -o "$work/bin/" ./deploy/demo/demonet
flowctl="$work/bin/flowctl"

step "Stopping an earlier demo run, if any"
down

step "Making a throwaway CA and certificates in $work/pki"
if [ ! -f "$work/pki/ca.pem" ]; then
  "$flowctl" certs init --dir "$work/pki"
fi
"$flowctl" certs issue --dir "$work/pki" --role collector --name demo-collector --ip 10.99.0.1 --dns localhost --force >/dev/null
for h in "${hosts[@]}"; do
  "$flowctl" certs issue --dir "$work/pki" --role sensor --name "$h" --force >/dev/null
done
"$flowctl" certs issue --dir "$work/pki" --role reader --name demo-reader --force >/dev/null
# The reader's client config: with it, flowctl queries need no connection flags. The demo writes the
# user's default client config too, unless one exists that is not the demo's own.
"$flowctl" config init --file "$work/flowctl.yaml" --force --collector 10.99.0.1:7443 \
  --cert "$work/pki/reader-demo-reader.pem" --key "$work/pki/reader-demo-reader-key.pem" --ca "$work/pki/ca.pem" >/dev/null
user_config="${XDG_CONFIG_HOME:-$HOME/.config}/flowfleet/flowctl.yaml"
query="$flowctl --config $work/flowctl.yaml samples list"
if [ ! -e "$user_config" ] || grep -q "reader-demo-reader.pem" "$user_config"; then
  mkdir -p "$(dirname "$user_config")"
  cp "$work/flowctl.yaml" "$user_config.tmp" && chmod 600 "$user_config.tmp" && mv "$user_config.tmp" "$user_config"
  query="$flowctl samples list"
fi

step "Creating the test hosts: ff-host-a (10.99.0.11), ff-host-b (10.99.0.12) and ff-services (DNS 10.99.0.2, web 100.64.0.1-2)"
ip link add ffbr0 type bridge
ip addr add 10.99.0.1/24 dev ffbr0
ip link set ffbr0 up
i=0
for ns in ff-host-a ff-host-b ff-services; do
  i=$((i+1))
  ip netns add "$ns"
  ip link add "veth-$i" type veth peer name eth0 netns "$ns"
  ip link set "veth-$i" master ffbr0 up
  # IPv4 only: keeps the demo's samples free of IPv6 neighbour-discovery chatter.
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n "$ns" link set lo up
  ip -n "$ns" link set eth0 up
done
ip -n ff-host-a addr add 10.99.0.11/24 dev eth0
ip -n ff-host-b addr add 10.99.0.12/24 dev eth0
ip -n ff-services addr add 10.99.0.2/24 dev eth0
ip -n ff-services addr add 100.64.0.1/24 dev eth0
ip -n ff-services addr add 100.64.0.2/24 dev eth0
for ns in ff-host-a ff-host-b; do
  ip -n "$ns" route add 100.64.0.0/24 via 10.99.0.2
done

step "Starting the collector (window ${window}s, SQLite store in $work/data)"
"$work/bin/collector" --listen 10.99.0.1:7443 --metrics-listen 127.0.0.1:9464 --data-dir "$work/data" \
  --window "${window}s" --grace 5s --cert "$work/pki/collector-demo-collector.pem" \
  --key "$work/pki/collector-demo-collector-key.pem" --ca "$work/pki/ca.pem" \
  >"$work/logs/collector.log" 2>&1 &
echo $! >"$work/run/collector.pid"

step "Starting the services host (DNS, HTTP, TLS)"
ip netns exec ff-services "$work/bin/demonet" serve -dns 10.99.0.2:53 -web 100.64.0.1,100.64.0.2 \
  -names web.demo.test=100.64.0.1,api.demo.test=100.64.0.2 >"$work/logs/services.log" 2>&1 &
echo $! >"$work/run/services.pid"

step "Starting a sensor on each test host"
for h in "${hosts[@]}"; do
  ip netns exec "ff-$h" "$work/bin/sensor" --collector 10.99.0.1:7443 --interface eth0 \
    --cert "$work/pki/sensor-$h.pem" --key "$work/pki/sensor-$h-key.pem" --ca "$work/pki/ca.pem" \
    --spool-dir "$work/spool/$h" --window "${window}s" --metrics-listen "" >"$work/logs/sensor-$h.log" 2>&1 &
  echo $! >"$work/run/sensor-$h.pid"
done
sleep 2

# The traffic takes a few seconds: start it early in a window, so that all of it lands in one sample.
left=$(( window - $(date +%s) % window ))
if [ "$left" -lt 8 ]; then sleep "$left"; fi
began=$(date +%s)
traffic_window=$(( began - began % window ))
since=$(date -u -d "@$traffic_window" +%Y-%m-%dT%H:%M:%SZ) # the window the traffic starts in
step "Making traffic from the test hosts: DNS lookups, HTTP, TLS with SNI, ping"
for h in "${hosts[@]}"; do
  ip netns exec "ff-$h" "$work/bin/demonet" traffic -dns 10.99.0.2:53 -names web.demo.test,api.demo.test -rounds 3 || true
  ip netns exec "ff-$h" ping -c 3 -i 0.2 100.64.0.1 >/dev/null 2>&1 || true
done

conn=(--config "$work/flowctl.yaml")
step "Waiting for the window to close (up to $((window * 2 + 15)) s)"
deadline=$(( $(date +%s) + window * 2 + 15 ))
while :; do
  n=$("$flowctl" samples list "${conn[@]}" --since "$since" -o json 2>/dev/null \
      | python3 -c 'import json,sys; print(len({s["host"] for s in json.load(sys.stdin)}))' 2>/dev/null || echo 0)
  [ "$n" -ge 2 ] && break
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "no sample from both hosts yet; see the logs in $work/logs" >&2
    break
  fi
  sleep 2
done

step "flowctl samples list"
"$flowctl" samples list "${conn[@]}"
first=$("$flowctl" samples list "${conn[@]}" --host host-a --since "$since" -o json \
  | python3 -c 'import json,sys; s=json.load(sys.stdin); print(max(s, key=lambda x: int(x.get("flowCount", 0)))["id"] if s else "")')
if [ -n "$first" ]; then
  step "flowctl samples flows $first"
  "$flowctl" samples flows "$first" "${conn[@]}"
fi

cat <<EOT

The fleet is running:
  logs          $work/logs/
  samples (.bf) $work/data/samples/
  certificates  $work/pki/
  metrics       http://127.0.0.1:9464/metrics
Query it:  $query   (client config: $work/flowctl.yaml)
Stop it:   sudo scripts/demo.sh down
EOT
