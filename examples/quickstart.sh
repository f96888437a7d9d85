#!/usr/bin/env bash
# The main job: install orch, bring up the local 3-node lab, apply examples/web to it.
# Usage (fresh Debian machine, as root): examples/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
.ci/install
orch=$PWD/.venv/bin/orch
lab=${ORCH_LAB_DIR:-/tmp/orch-lab}
work=${ORCH_QUICKSTART_DIR:-/tmp/orch-quickstart}

echo "== orch lab up --nodes 3"
$orch lab up --nodes 3 --dir "$lab"

echo "== preparing $work (examples/web + the lab's nodes.orch)"
mkdir -p "$work"
cp examples/web/main.orch "$lab/nodes.orch" "$work/"

echo "== orch validate / plan / apply"
$orch validate "$work"
$orch apply --auto-approve "$work"

echo "== orch plan again: nothing to do"
$orch plan --detailed-exitcode "$work" >/dev/null && echo "No changes. Your infrastructure matches the configuration."

cat <<MSG

Done. Three pods run on the lab's nodes n1..n3 (198.18.0.11-13), each an infra container plus an httpd.
Look at (orch is $orch):
  orch state list --state $work/orch.orchstate     # what orch manages
  orch output --state $work/orch.orchstate         # the pods' IPs
  docker -H unix://$lab/n1/docker.sock ps          # the containers, seen on node n1 itself
  orch plan $work --var replicas=5                 # what scaling would do
  orch destroy --auto-approve $work                # remove them; orch lab down stops the lab
MSG
