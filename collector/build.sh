#!/usr/bin/env bash
# Builds bin/otelcol-aispend from collector/builder-config.yaml with the OpenTelemetry Collector
# Builder, at the release pinned there. `make collector` runs this only when the binary is older
# than the manifest (or this script); the Go module and build caches make a rebuild fast.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILDER_VERSION=0.161.0          # keep at the release every component in the manifest is pinned to
start=$(date +%s)
GO=$(collector/go.sh)
export PATH="$(dirname "$GO"):$PATH" GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:--buildvcs=false}"
builder=bin/ocb-$BUILDER_VERSION
if [ ! -x "$builder" ]; then
  echo "collector: installing the collector builder v$BUILDER_VERSION" >&2
  mkdir -p build/ocb
  GOBIN="$PWD/build/ocb" "$GO" install "go.opentelemetry.io/collector/cmd/builder@v$BUILDER_VERSION"
  mkdir -p bin && mv build/ocb/builder "$builder"
fi
mkdir -p build bin
"$builder" --config collector/builder-config.yaml >build/collector-build.log 2>&1 \
  || { cat build/collector-build.log >&2; echo "collector: build failed (log above)" >&2; exit 1; }
cp build/collector/otelcol-aispend bin/otelcol-aispend.tmp && mv bin/otelcol-aispend.tmp bin/otelcol-aispend
echo "collector: built bin/otelcol-aispend ($(bin/otelcol-aispend --version)) with $("$GO" version | cut -d' ' -f3) in $(( $(date +%s) - start ))s"
