#!/usr/bin/env bash
# The whole test suite: install what is needed, bring up the local lab, run every test.
# Usage: tests/run.sh [pytest args...]      (CI: CI=true tests/run.sh — lab tests must run there)
set -euo pipefail
cd "$(dirname "$0")/.."
case "$(printf %s "${CI:-}" | tr '[:upper:]' '[:lower:]')" in true|1|yes) ci=1 ;; *) ci= ;; esac
.ci/install
if [ "$(id -u)" = 0 ]; then
  if ! .venv/bin/orch lab up --nodes 3 -q; then
    echo "error: the lab did not come up (see above)" >&2
    [ -n "$ci" ] && exit 1
  fi
elif [ -n "$ci" ]; then
  echo "error: CI needs root to bring up the lab" >&2
  exit 1
fi
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
