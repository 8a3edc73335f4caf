#!/usr/bin/env bash
# Installs everything openelb's tests and demo need on a fresh Debian machine, idempotently:
#   1. Debian packages (when run as root with apt-get available),
#   2. the Python environment in .venv (Python 3.11, the project with its dev extras),
#   3. the real kube-apiserver + etcd, built once from the Go module proxy and cached
#      under ~/.cache/openelb (hack/build-control-plane.sh; a cache hit takes a second).
# Usage: hack/install.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
log() { echo "install: $*" >&2; }

# iproute2: network namespaces for the e2e lab; openssl: control-plane certificates;
# util-linux: flock for the build cache lock; procps: process checks in tests;
# bird2, frr, gobgpd: the lab's real BGP routers; socat: apiserver relay into lab
# namespaces; netcat-openbsd: the speaker's pipe to ExaBGP's API; tcpdump, curl,
# arping, ping, ndisc6: what lab clients use to check; keepalived: the speaker's VRRP
# daemon in VIP mode; ipvsadm: the VIP tests check keepalived leaves IPVS alone;
# prometheus: promtool checks and unit-tests the alert rules in deploy/monitoring.
debian_packages=(
    iproute2 openssl util-linux procps ca-certificates
    bird2 frr gobgpd socat netcat-openbsd tcpdump curl iputils-arping iputils-ping ndisc6
    keepalived ipvsadm prometheus
)
# podman, runc, mmdebstrap: hack/build-image.sh builds the image and the lab runs the
# daemons from it (tests/e2e/image). Installed with their recommended packages, the
# way they were proven here.
image_packages=(podman runc mmdebstrap)
missing_of() {
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || echo "$pkg"
    done
}
mapfile -t missing < <(missing_of "${debian_packages[@]}")
mapfile -t missing_image < <(missing_of "${image_packages[@]}")
if ((${#missing[@]} + ${#missing_image[@]})); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        log "installing Debian packages: ${missing[*]} ${missing_image[*]}"
        apt-get update -qq
        export DEBIAN_FRONTEND=noninteractive
        if ((${#missing[@]})); then
            apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        fi
        if ((${#missing_image[@]})); then
            apt-get install -y -qq "${missing_image[@]}" >/dev/null
        fi
    else
        log "missing Debian packages (run as root to install): ${missing[*]} ${missing_image[*]}"
        exit 1
    fi
fi

python=""
for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null &&
        "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
        python="$candidate"
        break
    fi
done
[[ -n $python ]] || { log "Python 3.11 is required (python3.11 not found)"; exit 1; }
if [[ ! -x .venv/bin/python ]]; then
    log "creating .venv with $($python --version)"
    "$python" -m venv .venv
fi
log "installing the Python package and its pinned dependencies"
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]' -e ./testenv

log "building (or reusing) the kube-apiserver and etcd"
bash hack/build-control-plane.sh
log "building (or reusing) helm, for the chart's tests"
bash hack/build-helm.sh
log "done"
