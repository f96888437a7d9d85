#!/usr/bin/env bash
# The whole test suite: install what is needed, then run every test.
# Usage: tests/run.sh [pytest args...]      (CI: CI=true tests/run.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
.ci/install
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
