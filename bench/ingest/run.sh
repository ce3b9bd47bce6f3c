#!/usr/bin/env bash
# Issue 4's ingest benchmark: builds the collector and runs bench/ingest with 1, 100 and 1000 concurrent
# mTLS streams on loopback against a fresh SQLite collector each, printing a Markdown table (flows/s,
# ack latency, collector CPU and peak RSS). Extra arguments go to the benchmark, e.g.
#
#   bench/ingest/run.sh                              # max throughput, 500-flow batches, 4 in flight
#   bench/ingest/run.sh -streams 1000 -rate 200000   # offered load of 200,000 flows/s
#   bench/ingest/run.sh -pprof 127.0.0.1:6060        # also saves collector CPU profiles
#   bench/ingest/run.sh -store "$(scripts/postgres.sh)"
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(mktemp -d "${TMPDIR:-/tmp}/flowfleet-ingest-bin.XXXXXX")
trap 'rm -rf "$bin"' EXIT
# The profiling build is the collector with net/http/pprof on $BENCH_PPROF; it is only used with -pprof.
go build -o "$bin/collector" ./cmd/collector
go build -o "$bin/profcollector" ./bench/ingest/profcollector
collector="$bin/collector"
for a in "$@"; do
  case "$a" in -pprof|-pprof=*) collector="$bin/profcollector" ;; esac
done
go run ./bench/ingest -collector "$collector" "$@"
