#!/usr/bin/env bash
# Runs every check a change must pass: lint, strict types, the layer contract, and the
# test suite (unit, integration against the real control plane). Run hack/install.sh first.
# Extra arguments go to pytest (e.g. hack/test.sh tests/unit -x).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
echo "== ruff"
.venv/bin/ruff check src testenv/src tests bench
echo "== mypy --strict src testenv/src"
.venv/bin/mypy src testenv/src
echo "== import contracts (DESIGN §3 layers)"
.venv/bin/lint-imports
echo "== pytest"
exec .venv/bin/pytest "${@:-tests}"
