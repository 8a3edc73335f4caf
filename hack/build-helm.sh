#!/usr/bin/env bash
# Builds helm from its Go module (the chart's tests run it) into
#     ${XDG_CACHE_HOME:-~/.cache}/openelb/helm/<version>/helm
# Idempotent: a built binary is reused. The version is pinned here.
# Usage: hack/build-helm.sh [--print-path]   (--print-path: only the binary's path on stdout)
set -euo pipefail
version="v4.3.2"
command -v go >/dev/null || PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || { echo "build-helm: the Go toolchain (go) is not on PATH" >&2; exit 1; }
# The local toolchain only (no toolchain downloads); a static binary.
export GOTOOLCHAIN=local CGO_ENABLED=0
dir="${XDG_CACHE_HOME:-$HOME/.cache}/openelb/helm/$version"
if [[ ! -x $dir/helm ]]; then
    echo "build-helm: building helm $version into $dir" >&2
    mkdir -p "$dir"
    GOBIN="$dir" GOFLAGS=-mod=mod go install "helm.sh/helm/v4/cmd/helm@$version" >&2
fi
if [[ ${1:-} == --print-path ]]; then
    echo "$dir/helm"
else
    echo "build-helm: ready: $dir/helm" >&2
fi
