#!/usr/bin/env bash
# Builds the openelb image with podman, without any container registry:
#   1. a Debian bookworm base made by mmdebstrap (Python 3.11 and the Debian packages
#      the daemons run: keepalived, netcat-openbsd, iproute2), imported into podman and
#      cached as a tarball under ${XDG_CACHE_HOME:-~/.cache}/openelb/image, keyed by its
#      package list;
#   2. wheels of openelb and its pinned dependencies (`pip wheel`, outside the build:
#      a build step here cannot reach a package index);
#   3. `podman build` of ./Dockerfile with BASE set to that base.
# podman runs with runc and explicit ulimits: crun refuses this machine's cgroup layout,
# and podman's default nofile limit (1048576) is above this shell's hard limit, which
# runc may not raise ("error setting rlimit type 7"), and an nproc limit above
# kernel.pid_max is refused too ("rlimit type 6"): the build's steps get this shell's
# nofile hard limit and 4096 processes.
# Usage: hack/build-image.sh [TAG]      (default TAG: localhost/openelb/openelb:dev)
# Prints the tag on stdout when done.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
log() { echo "build-image: $*" >&2; }
tag="${1:-localhost/openelb/openelb:dev}"
for tool in podman mmdebstrap runc; do
    command -v "$tool" >/dev/null || { log "$tool not found (hack/install.sh installs it)"; exit 1; }
done
podman=(podman --runtime runc)
nofile="$(ulimit -Hn)"
limits=(--ulimit "nofile=$nofile:$nofile" --ulimit nproc=4096:4096)

suite=bookworm
packages=(python3 python3-venv ca-certificates iproute2 netcat-openbsd keepalived)
# The cache key covers everything that shapes the base: this script's base recipe.
key="$(sed -n '/^suite=/,/^fi$/p' "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/openelb/image"
base="localhost/openelb-base:$key"
if ! "${podman[@]}" image exists "$base"; then
    tarball="$cache/base-$key.tar"
    if [[ ! -f $tarball ]]; then
        log "making the $suite base with mmdebstrap: ${packages[*]}"
        mkdir -p "$cache"
        # No documentation, manual pages or translations: a daemon's image reads none.
        mmdebstrap --quiet --format=tar --variant=minbase \
            --include="$(IFS=,; echo "${packages[*]}")" \
            --dpkgopt='path-exclude=/usr/share/doc/*' \
            --dpkgopt='path-include=/usr/share/doc/*/copyright' \
            --dpkgopt='path-exclude=/usr/share/man/*' \
            --dpkgopt='path-exclude=/usr/share/info/*' \
            --dpkgopt='path-exclude=/usr/share/locale/*' \
            "$suite" "$tarball.tmp" >&2
        mv "$tarball.tmp" "$tarball"
    fi
    log "importing $tarball as $base"
    "${podman[@]}" import --quiet "$tarball" "$base" >/dev/null
fi

log "building wheels into build/wheels"
rm -rf build/wheels
python="${PYTHON:-$root/.venv/bin/python}"
"$python" -m pip wheel --quiet --disable-pip-version-check --wheel-dir build/wheels . >&2

log "building $tag on $base"
"${podman[@]}" build --quiet "${limits[@]}" --build-arg "BASE=$base" --tag "$tag" . >/dev/null
# The build stage and the previous image under this tag are left dangling, and bases
# of older recipes are no longer used.
"${podman[@]}" image prune --force >/dev/null
for old in $("${podman[@]}" images --noheading --format '{{.Repository}}:{{.Tag}}' \
        localhost/openelb-base); do
    [[ $old == "$base" ]] || "${podman[@]}" rmi --force "$old" >/dev/null
done
for old in "$cache"/base-*.tar; do
    [[ ! -e $old || $old == "$cache/base-$key.tar" ]] || rm -f "$old"
done
echo "$tag"
