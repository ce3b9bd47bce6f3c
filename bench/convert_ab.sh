#!/usr/bin/env bash
# Compares two flowctl builds on one capture, alternately A, B, A, B (ROUNDS rounds), each turn the best
# wall time of RUNS runs with that run's peak RSS: on a noisy machine, alternating spreads the noise over
# both sides instead of giving it to whichever ran second.
#
#   bench/convert_ab.sh CAPTURE FLOWCTL_A FLOWCTL_B
#   RUNS=3 ROUNDS=2 bench/convert_ab.sh work/bench/big.pcap work/bench/flowctl-before work/bench/flowctl
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 CAPTURE FLOWCTL_A FLOWCTL_B" >&2; exit 2; }
capture=$1
runs=${RUNS:-3}
rounds=${ROUNDS:-2}
timeout=$(mktemp)
trap 'rm -f "$timeout"' EXIT
cat "$capture" >/dev/null # warm the page cache
for round in $(seq "$rounds"); do
  for bin in "$2" "$3"; do
    best="" rss=""
    for _ in $(seq "$runs"); do
      out=$(mktemp -d)
      /usr/bin/time -o "$timeout" -f "%e %M" "$bin" convert --quiet --name-cache "" -o "$out" "$capture" >/dev/null 2>&1 || true
      rm -rf "$out"
      read -r t m <"$timeout"
      if [ -z "$best" ] || awk -v a="$t" -v b="$best" 'BEGIN{exit !(a < b)}'; then best=$t; rss=$m; fi
    done
    printf 'round %d  %-36s %6.2f s %6.0f MiB peak\n' "$round" "$bin" "$best" "$(awk -v r="$rss" 'BEGIN{print r/1024}')"
  done
done
