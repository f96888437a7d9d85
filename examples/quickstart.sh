#!/usr/bin/env bash
# The main job: install orch, then check and evaluate the example configuration.
# Usage (fresh Debian machine, as root): examples/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
.ci/install
orch=.venv/bin/orch
dir=examples/hello

echo "== orch validate --syntax-only $dir"
$orch validate --syntax-only "$dir"
echo "== orch fmt --check $dir"
$orch fmt --check "$dir"
echo "== orch console $dir"
printf '%s\n' 'local.env' 'local.motd' 'local.listeners' 'cidrsubnet(var.pod_cidr, 8, 2)' \
  '[for i in range(var.replicas) : "web-${i}"]' | tee /dev/stderr | $orch console "$dir"
echo
echo "Done. Look at $dir/main.orch, then try: .venv/bin/orch console $dir"
