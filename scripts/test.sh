#!/usr/bin/env bash
# Runs every check and test FlowFleet has: generated code is current, gofmt, go vet, buf lint, and the whole
# Go test suite (unit, conformance against ../shared/conformance, integration, end to end).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$(go env GOPATH 2>/dev/null || echo /root/go)/bin"
scripts/setup.sh
scripts/gen.sh --check
# The API must not break compatibility with the previous commit's (buf's FILE rules).
if git rev-parse -q --verify HEAD~1 >/dev/null && git cat-file -e HEAD~1:proto/flowfleet 2>/dev/null; then
  bin/buf breaking --against '.git#ref=HEAD~1'
fi
bad=$(gofmt -l $(git ls-files '*.go' | grep -v '^gen/') 2>/dev/null || true)
if [ -n "$bad" ]; then
  echo "gofmt would change:"; echo "$bad"; exit 1
fi
go vet ./...
# A throwaway PostgreSQL for the store and multi-collector tests (the SQLite backend needs nothing),
# recorded in a state file of its own, so that a cluster a developer runs is neither reused nor stopped.
FLOWFLEET_PG_STATE=$(mktemp -u "${TMPDIR:-/tmp}/flowfleet-test-pg.XXXXXX.state")
export FLOWFLEET_PG_STATE
FLOWFLEET_TEST_POSTGRES=$(scripts/postgres.sh)
export FLOWFLEET_TEST_POSTGRES
trap 'scripts/postgres.sh stop >/dev/null 2>&1 || true' EXIT
# Every package runs under the race detector. Measured 2026-12-07 (h4) on a 2-core machine shared by five
# builds and fuzzers (load average 17-19): 2,003 s wall for the whole suite under -race, builds included;
# the packages' own times add up to 1,360 s. The largest: internal/e2e 446 s (it runs real binaries,
# built without -race, through real windows and grace periods: mostly waiting, so -race costs it little),
# internal/collector 249 s, internal/store 162 s, pkg/formats/pcapfile 123 s (84 s without -race),
# pkg/flow 84 s (8 s without -race; it stays under -race because its Pipeline is two goroutines); every
# other package under 60 s. No package is left out of -race: leaving out pkg/flow, the only one -race
# slows tenfold, would save about 40 s of wall time on two cores. If CI's runner is as loaded as this
# machine was, the whole suite, not one package, is what exceeds 30 minutes.
# The collector, sensor and relay tests also fail on leaked goroutines (go.uber.org/goleak).
go test -race -count=1 -timeout 30m ./... 2>&1 | tee /tmp/flowfleet-test.log
