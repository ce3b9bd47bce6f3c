#!/usr/bin/env bash
# Fetches the web console's third-party assets (htmx, uPlot) from npm at pinned versions, copies the
# built files into internal/ui/assets and rewrites internal/ui/assets/SHA256SUMS, which
# internal/ui's TestAssetsMatchScript checks the embedded files against.
set -euo pipefail
HTMX_VERSION=2.0.4
UPLOT_VERSION=1.6.31
root=$(cd "$(dirname "$0")/.." && pwd)
dst=$root/internal/ui/assets
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm pack --silent "htmx.org@$HTMX_VERSION" "uplot@$UPLOT_VERSION" >/dev/null
tar -xzf "htmx.org-$HTMX_VERSION.tgz" && mv package htmx
tar -xzf "uplot-$UPLOT_VERSION.tgz" && mv package uplot
cp htmx/dist/htmx.min.js "$dst/htmx.min.js"
cp uplot/dist/uPlot.iife.min.js "$dst/uPlot.iife.min.js"
cp uplot/dist/uPlot.min.css "$dst/uPlot.min.css"
cd "$dst"
sha256sum htmx.min.js uPlot.iife.min.js uPlot.min.css > SHA256SUMS
cat SHA256SUMS
