#!/usr/bin/env bash
# Regenerates gen/ from proto/ with pinned tools.
#
#   scripts/gen.sh           install the tools if needed, lint, format-check and regenerate gen/
#   scripts/gen.sh --check   the same, but generate into a temporary directory and fail if gen/ differs
#                            (or the .proto files are not buf-formatted); the work tree is not touched
#
# The tools are installed with `go install` (through the Go module proxy; no other download) into
# $FLOWFLEET_TOOLS_BIN, default ./bin (git-ignored), and put first on PATH so buf.gen.yaml's local
# plugins resolve to the pinned versions. Needs only go and diff.
set -euo pipefail

BUF_VERSION=v1.75.0
PROTOC_GEN_GO_VERSION=v1.36.12      # keep equal to google.golang.org/protobuf in go.mod
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2

check=0
case "${1:-}" in
  "") ;;
  --check) check=1 ;;
  -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=${FLOWFLEET_TOOLS_BIN:-$root/bin}
mkdir -p "$bin"

# install NAME PACKAGE VERSION: go install PACKAGE@VERSION unless NAME --version already reports VERSION.
install() {
  local name=$1 pkg=$2 version=$3 have=""
  if [[ -x "$bin/$name" ]]; then
    have=$("$bin/$name" --version 2>/dev/null || true)
  fi
  if [[ "$have" != *"${version#v}"* ]]; then
    echo "gen.sh: installing $pkg@$version into $bin" >&2
    GOBIN="$bin" GOFLAGS= go install "$pkg@$version"
  fi
}
install buf github.com/bufbuild/buf/cmd/buf "$BUF_VERSION"
install protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION"
install protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"
export PATH="$bin:$PATH"

buf lint
if ! buf format --diff --exit-code --path proto/flowfleet; then
  echo "gen.sh: .proto files are not buf-formatted; run: $bin/buf format -w --path proto/flowfleet" >&2
  exit 1
fi

if [[ $check == 0 ]]; then
  buf generate
  echo "gen.sh: gen/ regenerated" >&2
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
buf generate --output "$tmp"
if ! diff -r gen "$tmp/gen"; then
  echo "gen.sh: gen/ is out of date with proto/; run scripts/gen.sh and commit the result" >&2
  exit 1
fi
echo "gen.sh: gen/ is up to date" >&2
