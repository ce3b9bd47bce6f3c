#!/usr/bin/env bash
# Issue 8's fleet benchmark: 1,000 simulated sensors (200 flows/s each, a batch a second, 10 s windows)
# against one collector on SQLite, then against two collectors sharing a PostgreSQL started by
# scripts/postgres.sh with fsync on (stopped at the end). Prints a Markdown table row per run. Extra
# arguments go to every run, e.g. bench/fleet/run.sh -sensors 1000,2000 -rate 100.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(mktemp -d "${TMPDIR:-/tmp}/flowfleet-fleet-bin.XXXXXX")
export FLOWFLEET_PG_STATE="$bin/postgres.state" FLOWFLEET_PG_FSYNC=on
cleanup() { scripts/postgres.sh stop >/dev/null 2>&1 || true; rm -rf "$bin"; }
trap cleanup EXIT
go build -o "$bin/collector" ./cmd/collector
go build -o "$bin/fleet" ./bench/fleet
echo "## one collector, SQLite"
"$bin/fleet" -collector "$bin/collector" "$@"
dsn=$(scripts/postgres.sh)
echo "## two collectors, PostgreSQL"
"$bin/fleet" -collector "$bin/collector" -collectors 2 -store "$dsn" "$@"
