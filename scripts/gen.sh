#!/usr/bin/env bash
# Regenerates gen/ from proto/ with pinned tools.
#
#   scripts/gen.sh           install the tools if needed, lint, format-check and regenerate gen/
#   scripts/gen.sh --check   the same, but generate into a temporary directory and fail if gen/ differs
#                            (or the .proto files are not buf-formatted); the work tree is not touched
#
# The tools are installed with `go install` (through the Go module proxy; no other download) into
# $FLOWFLEET_TOOLS_BIN, default ./bin (git-ignored), and put first on PATH so buf.gen.yaml's local
# plugins resolve to the pinned versions; goimports is installed there too, for scripts/test.sh's import
# check. Needs only go and diff.
#
# It also regenerates, and in --check mode diffs, two more outputs of proto/:
#   docs/api.md                              buf.gen.docs.yaml: protoc-gen-doc (go install, pinned below)
#                                            with the template docs/api.md.tmpl
#   examples/python/flowfleet_client/gen/    buf.gen.python.yaml: protoc's built-in python/pyi generators and
#                                            grpc_python_plugin, both from Debian (apt packages
#                                            protobuf-compiler protobuf-compiler-grpc, installed by
#                                            scripts/setup.sh), at the versions pinned below, which match the
#                                            python3-protobuf and python3-grpcio runtime the example uses
set -euo pipefail

BUF_VERSION=v1.75.0
PROTOC_GEN_GO_VERSION=v1.36.12      # keep equal to google.golang.org/protobuf in go.mod
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
PROTOC_GEN_DOC_VERSION=v1.5.1
GOIMPORTS_VERSION=v0.53.0           # golang.org/x/tools; scripts/test.sh checks import grouping with it
PROTOC_VERSION=3.21.12              # Debian's protobuf-compiler; equal to python3-protobuf's protobuf release
GRPC_PYTHON_PLUGIN_VERSION=1.51.1   # Debian's protobuf-compiler-grpc; equal to python3-grpcio

check=0
case "${1:-}" in
  "") ;;
  --check) check=1 ;;
  -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=${FLOWFLEET_TOOLS_BIN:-$root/bin}
mkdir -p "$bin"

# install NAME PACKAGE VERSION: go install PACKAGE@VERSION unless NAME --version (or, for a tool without
# that flag, the module version go recorded in the binary) already reports VERSION.
install() {
  local name=$1 pkg=$2 version=$3 have=""
  if [[ -x "$bin/$name" ]]; then
    have=$("$bin/$name" --version 2>/dev/null || go version -m "$bin/$name" 2>/dev/null || true)
  fi
  if [[ "$have" != *"${version#v}"* ]]; then
    echo "gen.sh: installing $pkg@$version into $bin" >&2
    GOBIN="$bin" GOFLAGS= go install "$pkg@$version"
  fi
}
install buf github.com/bufbuild/buf/cmd/buf "$BUF_VERSION"
install protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION"
install protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"
install protoc-gen-doc github.com/pseudomuto/protoc-gen-doc/cmd/protoc-gen-doc "$PROTOC_GEN_DOC_VERSION"
install goimports golang.org/x/tools/cmd/goimports "$GOIMPORTS_VERSION"
export PATH="$bin:$PATH"

# The Python generators come from apt, not go install: check they are there and are the pinned versions
# (protoc 26 and newer generate code that Debian's python3-protobuf 3.21 refuses to import).
have=$(protoc --version 2>/dev/null || true)
if [[ "$have" != "libprotoc $PROTOC_VERSION" ]]; then
  echo "gen.sh: need protoc $PROTOC_VERSION from the Debian package protobuf-compiler (run scripts/setup.sh); found: ${have:-no protoc on PATH}" >&2
  exit 1
fi
if ! command -v grpc_python_plugin >/dev/null; then
  echo "gen.sh: need grpc_python_plugin from the Debian package protobuf-compiler-grpc (run scripts/setup.sh)" >&2
  exit 1
fi
if command -v dpkg-query >/dev/null; then
  have=$(dpkg-query -W -f='${Version}' protobuf-compiler-grpc 2>/dev/null || true)
  if [[ "$have" != "$GRPC_PYTHON_PLUGIN_VERSION"* ]]; then
    echo "gen.sh: need protobuf-compiler-grpc $GRPC_PYTHON_PLUGIN_VERSION (grpc_python_plugin); found: ${have:-not installed}" >&2
    exit 1
  fi
fi

buf lint
if ! buf format --diff --exit-code --path proto/flowfleet; then
  echo "gen.sh: .proto files are not buf-formatted; run: $bin/buf format -w --path proto/flowfleet" >&2
  exit 1
fi

if [[ $check == 0 ]]; then
  buf generate
  buf generate --template buf.gen.docs.yaml
  buf generate --template buf.gen.python.yaml
  echo "gen.sh: gen/, docs/api.md and examples/python/flowfleet_client/gen/ regenerated" >&2
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

# docs/api.md and the Python modules (regenerated into the same temporary directory).
stale=0
buf generate --template buf.gen.docs.yaml --output "$tmp"
if ! diff docs/api.md "$tmp/docs/api.md"; then
  echo "gen.sh: docs/api.md is out of date with proto/ or docs/api.md.tmpl; run scripts/gen.sh and commit the result" >&2
  stale=1
fi
pygen=examples/python/flowfleet_client/gen
buf generate --template buf.gen.python.yaml --output "$tmp"
if ! diff -r -x __pycache__ "$pygen" "$tmp/$pygen"; then
  echo "gen.sh: $pygen is out of date with proto/; run scripts/gen.sh and commit the result" >&2
  stale=1
fi
if [[ $stale == 1 ]]; then
  exit 1
fi
echo "gen.sh: docs/api.md and $pygen are up to date" >&2
