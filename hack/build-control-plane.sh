#!/usr/bin/env bash
# Builds the real kube-apiserver and etcd that the integration tests run (DESIGN §5).
#
# Sources come only from the Go module proxy, pinned by hack/controlplane/*/go.mod and
# go.sum. The binaries land in
#     ${XDG_CACHE_HOME:-~/.cache}/openelb/controlplane/<key>/{kube-apiserver,etcd,VERSIONS}
# where <key> is the first 16 hex digits of the sha256 of those four files and of this
# script (the build recipe), concatenated in the order etcd/go.mod etcd/go.sum
# kube-apiserver/go.mod kube-apiserver/go.sum build-control-plane.sh.
# openelb_testenv.controlplane.cache_key() computes the same key: change both together.
#
# Idempotent: a complete cache entry is reused and nothing is built. Atomic: the build
# goes to a temporary directory beside the entry and is renamed into place only once
# both binaries exist, so an interrupted build never leaves a half entry. Concurrent
# runs serialise on a lock file.
#
# Usage: hack/build-control-plane.sh [--print-dir]
#   --print-dir   print only the cache entry's directory on stdout (logs go to stderr)
#
# Environment:
#   OPENELB_BUILD_JOBS   parallel compile jobs (default: number of cores, at most 2;
#                        the kube-apiserver link peaks at about 1.9 GiB of memory)
#
# Needs: Go >= 1.26 (the go command; /usr/local/go/bin is tried when it is not on PATH),
# sha256sum and flock (coreutils, util-linux). A cold build downloads about 800 MiB of
# modules and fills about 2.5 GiB of Go build cache.
set -euo pipefail

print_dir=0
for arg in "$@"; do
    case "$arg" in
        --print-dir) print_dir=1 ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

log() { echo "build-control-plane: $*" >&2; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mods="$here/controlplane"
pinned=(
    "$mods/etcd/go.mod" "$mods/etcd/go.sum"
    "$mods/kube-apiserver/go.mod" "$mods/kube-apiserver/go.sum"
    "$here/build-control-plane.sh"
)
key="$(cat "${pinned[@]}" | sha256sum | cut -c1-16)"
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/openelb/controlplane"
dest="$cache_root/$key"

entry_complete() {
    [[ -x "$1/kube-apiserver" && -x "$1/etcd" && -f "$1/VERSIONS" ]]
}

done_msg() {
    if [[ $print_dir == 1 ]]; then echo "$dest"; else log "ready: $dest"; fi
}

if entry_complete "$dest"; then
    log "cache hit ($key)"
    done_msg
    exit 0
fi

command -v go >/dev/null || PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || { log "the Go toolchain (go) is not on PATH"; exit 1; }
mkdir -p "$cache_root"
exec 9>"$cache_root/.lock"
flock 9
# Another run may have finished the same entry while this one waited for the lock.
if entry_complete "$dest"; then
    log "cache hit after waiting for another build ($key)"
    done_msg
    exit 0
fi

tmp="$(mktemp -d "$cache_root/.build-$key-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

jobs="${OPENELB_BUILD_JOBS:-$(( $(nproc) < 2 ? $(nproc) : 2 ))}"
# The local toolchain only (no toolchain downloads); go.sum must already be complete.
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0
build_flags=(-p "$jobs" -trimpath)

# kube-apiserver reports its version from variables that Kubernetes' own release build
# sets with -X; without them /version says v0.0.0-master.
kube_version="$(cd "$mods/kube-apiserver" && go list -m -f '{{.Version}}' k8s.io/kubernetes)"
[[ $kube_version =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]] || {
    log "unexpected k8s.io/kubernetes version: $kube_version"; exit 1; }
version_vars=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    version_vars+=" -X $pkg.gitVersion=$kube_version"
    version_vars+=" -X $pkg.gitMajor=${BASH_REMATCH[1]} -X $pkg.gitMinor=${BASH_REMATCH[2]}"
    version_vars+=" -X $pkg.gitTreeState=clean"
done

log "building etcd and kube-apiserver ($key, $(go env GOVERSION), -p $jobs) into $tmp"
started=$SECONDS
(cd "$mods/etcd" && go build "${build_flags[@]}" -ldflags="-s -w" -o "$tmp/etcd" \
    go.etcd.io/etcd/server/v3)
log "etcd built in $((SECONDS - started))s"
(cd "$mods/kube-apiserver" && go build "${build_flags[@]}" -ldflags="-s -w$version_vars" \
    -o "$tmp/kube-apiserver" \
    k8s.io/kubernetes/cmd/kube-apiserver)
log "kube-apiserver built in $((SECONDS - started))s total"

{
    echo "key: $key"
    echo "go: $(go env GOVERSION)"
    echo "etcd: $("$tmp/etcd" --version | head -n1)"
    echo "kube-apiserver: $("$tmp/kube-apiserver" --version)"
} >"$tmp/VERSIONS"
cat "$tmp/VERSIONS" >&2

chmod 755 "$tmp"
rm -rf "$dest"  # an incomplete entry left by hand; complete ones returned above
mv -T "$tmp" "$dest"
trap - EXIT
done_msg
