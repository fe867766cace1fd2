#!/usr/bin/env bash
# Build the test tool that applies Kargo's own rules for the `http` promotion step (its template engine, its
# step config schema, its response criteria) from the Go module proxy, cached by Kargo version and source.
# Usage: eval "$(.ci/kargo-http-step.sh)"   → exports POLICY_SERVER_TEST_KARGO_HTTP_STEP
set -euo pipefail
log() { echo "[kargo-http-step] $*" >&2; }
here="$(cd "$(dirname "$0")/kargo-http-step" && pwd)"
version=$(awk '$1 == "github.com/akuity/kargo" && $2 ~ /^v/ {print $2; exit}' "$here/go.mod")
digest=$(cat "$here/main.go" "$here/go.mod" "$here/go.sum" | cksum | cut -d' ' -f1)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/policy-server"
binary="$cache/kargo-http-step-$version-$digest"
if [ ! -x "$binary" ]; then
  log "building against Kargo $version (once per version)"
  mkdir -p "$cache"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cp "$here/main.go" "$here/go.mod" "$here/go.sum" "$work/"
  module_dir=$(cd "$work" && go mod download -json "github.com/akuity/kargo@$version" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  # The http step's config schema from the same Kargo release, embedded into the tool.
  cp "$module_dir/pkg/promotion/runner/builtin/schemas/http-config.json" "$work/"
  (cd "$work" && go build -o "$binary.tmp" .) >&2
  mv "$binary.tmp" "$binary"
fi
echo "export POLICY_SERVER_TEST_KARGO_HTTP_STEP=$binary"
