#!/usr/bin/env bash
# Measures `flowctl convert` on one large capture against the practical ceiling (a bare gopacket
# DecodingLayerParser loop over the same packets) and against the flow tools a user would pick instead
# (nfpcapd from nfdump, softflowd), all on the same file, in one run. Prints packets/s and peak memory.
#
#   bench/convert.sh [CAPTURE]        default: generates work/bench/big.pcap (1 GiB) with bench/gencap
#   RUNS=3 bench/convert.sh           best of 3 runs each
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
runs=${RUNS:-3}
work=work/bench
mkdir -p "$work"
file=${1:-$work/big.pcap}
for pkg in nfdump softflowd time; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || {
    echo "installing $pkg"; apt-get install -y -qq "$pkg" >/dev/null; }
done
go build -o "$work/" ./bench/gencap ./bench/decodeloop ./bench/corelat
go build -o "$work/flowctl" ./cmd/ctl
if [ ! -f "$file" ]; then
  "$work/gencap" -o "$file" -size 1GiB
fi
cat "$file" >/dev/null # warm the page cache: every tool reads from memory
packets=$("$work/decodeloop" "$file" | sed -E 's/^decodeloop: ([0-9]+) packets.*/\1/')
size=$(stat -c %s "$file")
echo "capture: $file, $size bytes, $packets packets"
"$work/corelat" # the pipeline's stages hand work across cores: slow when this is slow

# measure KEY LABEL CMD...: best wall time over $runs runs, with that run's peak RSS
measure() {
  local key=$1 label=$2; shift 2
  local best="" rss="" t m
  for _ in $(seq "$runs"); do
    /usr/bin/time -o "$work/time.out" -f "%e %M" "$@" >/dev/null 2>&1 || true
    read -r t m <"$work/time.out"
    if [ -z "$best" ] || awk -v a="$t" -v b="$best" 'BEGIN{exit !(a < b)}'; then best=$t; rss=$m; fi
  done
  local pps
  pps=$(awk -v p="$packets" -v t="$best" 'BEGIN{if (t < 0.001) t = 0.001; printf "%.0f", p / t}')
  printf '%-32s %7.2f s %11s packets/s %7.0f MiB peak\n' "$label" "$best" "$pps" "$(awk -v r="$rss" 'BEGIN{print r/1024}')"
  printf -v "pps_$key" '%s' "$pps"
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
measure ceiling "ceiling (DecodingLayerParser)" "$work/decodeloop" "$file"
measure ours "flowctl convert" "$work/flowctl" convert --quiet --name-cache "" -o "$tmp" "$file"
mkdir -p "$tmp/nf"
measure nfpcapd "nfpcapd (nfdump 1.7)" nfpcapd -r "$file" -w "$tmp/nf"
measure softflowd "softflowd" softflowd -r "$file" -n 127.0.0.1:9 -d
peer=$(( pps_nfpcapd > pps_softflowd ? pps_nfpcapd : pps_softflowd ))
awk -v o="$pps_ours" -v c="$pps_ceiling" -v p="$peer" \
  'BEGIN{printf "flowctl convert: %.0f%% of the ceiling, %.1fx the best peer\n", 100*o/c, o/p}'
