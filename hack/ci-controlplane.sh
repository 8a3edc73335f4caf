#!/usr/bin/env bash
# CI fragment for the integration tests' control plane (DESIGN §5): checks the tools the
# build and the fixtures need, then builds kube-apiserver + etcd or reuses the cached
# build (hack/build-control-plane.sh), and prints the pinned versions.
# Called from .ci/run (directly or through hack/install.sh); safe to run repeatedly.
# Debian packages it relies on: openssl (test certificates), util-linux (flock),
# coreutils (sha256sum); Go >= 1.26 comes with the machine.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

missing=()
for tool in openssl flock sha256sum; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
    echo "ci-controlplane: missing tools: ${missing[*]} (Debian: openssl util-linux coreutils)" >&2
    exit 1
fi

started=$SECONDS
dir="$(bash "$root/hack/build-control-plane.sh" --print-dir)"
echo "ci-controlplane: control plane binaries in $dir ($((SECONDS - started))s)"
sed 's/^/ci-controlplane:   /' "$dir/VERSIONS"
