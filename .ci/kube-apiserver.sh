#!/usr/bin/env bash
# Build the real kube-apiserver (k8s.io/kubernetes, from the Go module proxy) for the tests, cached by version;
# make sure etcd and kubectl (Debian packages) are there. Prints the variable the tests read.
# Usage: eval "$(.ci/kube-apiserver.sh)"   → exports POLICY_SERVER_TEST_KUBE_APISERVER
set -euo pipefail
log() { echo "[kube] $*" >&2; }
here="$(cd "$(dirname "$0")" && pwd)"
version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' "$here/kube-apiserver/go.mod")
cache="${XDG_CACHE_HOME:-$HOME/.cache}/policy-server"
binary="$cache/kube-apiserver-$version"
if [ ! -x "$binary" ]; then
  log "building kube-apiserver $version (a few minutes, once per version)"
  mkdir -p "$cache"
  (cd "$here/kube-apiserver" && GOFLAGS=-mod=mod go build -ldflags "-X k8s.io/component-base/version.gitVersion=$version" -o "$binary.tmp" .) >&2
  mv "$binary.tmp" "$binary"
fi
missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v kubectl >/dev/null 2>&1 || missing+=(kubectl)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${missing[@]}" >&2
fi
echo "export POLICY_SERVER_TEST_KUBE_APISERVER=$binary"
