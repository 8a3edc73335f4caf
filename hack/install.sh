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
missing=()
for pkg in "${debian_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        log "installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    else
        log "missing Debian packages (run as root to install): ${missing[*]}"
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
