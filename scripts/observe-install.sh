#!/usr/bin/env bash
# Builds the observability backends that are Go programs — Jaeger v2 and an OpenTelemetry
# Collector of core components — from their sources through the Go module proxy, into a cache
# outside the repo keyed by the pinned version (and, for the Collector, by its manifest):
#   ${ORDER_SERVICE_CACHE:-~/.cache/order-service}/go/jaeger-<version>/bin/jaeger
#   ${ORDER_SERVICE_CACHE:-~/.cache/order-service}/go/otelcol-<version>-<manifest hash>/bin/otelcol
# A second run builds nothing. The pins live in tools/jaeger/go.mod (+ go.sum) and
# tools/otelcol/builder-config.yaml; src/order_service/devstack/observe_tools.py finds the
# binaries by the same rule. Prometheus, Alertmanager and postgres-exporter come from Debian
# (scripts/system-deps.sh).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache="${ORDER_SERVICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/order-service}/go"

if ! command -v go >/dev/null 2>&1; then
  echo "go not found: Go 1.26 builds Jaeger and the OpenTelemetry Collector (DESIGN.md §7)" >&2
  exit 1
fi
# Smaller binaries, no paths of this machine in them; GOFLAGS of the caller are kept.
export GOFLAGS="${GOFLAGS:-} -trimpath -buildvcs=false"

jaeger_version=$(awk '$1 == "github.com/jaegertracing/jaeger" {print $2}' "$repo/tools/jaeger/go.mod")
jaeger="$cache/jaeger-$jaeger_version/bin/jaeger"
if [ ! -x "$jaeger" ]; then
  echo "building Jaeger $jaeger_version into $(dirname "$jaeger") (several minutes, once)"
  mkdir -p "$(dirname "$jaeger")"
  (cd "$repo/tools/jaeger" && go build -ldflags='-s -w' -o "$jaeger.partial" \
    github.com/jaegertracing/jaeger/cmd/jaeger)
  mv "$jaeger.partial" "$jaeger"
fi

manifest="$repo/tools/otelcol/builder-config.yaml"
otelcol_version=v$(awk '$1 == "version:" {print $2; exit}' "$manifest")
otelcol_dir="$cache/otelcol-$otelcol_version-$(sha256sum "$manifest" | cut -c1-12)"
otelcol="$otelcol_dir/bin/otelcol"
if [ ! -x "$otelcol" ]; then
  echo "building the OpenTelemetry Collector $otelcol_version into $otelcol_dir (minutes, once)"
  mkdir -p "$otelcol_dir/bin"
  GOBIN="$otelcol_dir/bin" go install "go.opentelemetry.io/collector/cmd/builder@$otelcol_version"
  # output_path in the manifest is relative: the generated sources stay in the cache.
  (cd "$otelcol_dir" && ./bin/builder --config="$manifest" >builder.log 2>&1) ||
    { tail -n 30 "$otelcol_dir/builder.log" >&2; exit 1; }
  mv "$otelcol_dir/build/otelcol-order-service" "$otelcol"
fi
