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

echo "== service.web through each node's port 30080 (load-balanced over the replicas, whichever node answers)"
for ip in 198.18.0.11 198.18.0.12 198.18.0.13; do
  python3 - "$ip" <<'PY'
import socket, sys
for _ in range(3):
    with socket.create_connection((sys.argv[1], 30080), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        body = s.makefile("rb").read().decode().split("\r\n\r\n", 1)[-1].strip()
    print(f"  {sys.argv[1]}:30080 -> {body}")
PY
done

echo "== orch plan again: nothing to do"
$orch plan --detailed-exitcode "$work" >/dev/null && echo "No changes. Your infrastructure matches the configuration."

cat <<MSG

Done. Three pods run on the lab's nodes n1..n3 (198.18.0.11-13), each an infra container plus an httpd, on
orch's pod network (198.19.128.0/17); service.web balances over them on a virtual IP and on port 30080 of
every node.
Look at (orch is $orch):
  orch state list --state $work/orch.orchstate     # what orch manages
  orch output --state $work/orch.orchstate         # the pods' IPs
  docker -H unix://$lab/n1/docker.sock ps          # the containers, seen on node n1 itself
  orch plan $work --var replicas=5                 # what scaling would do
  orch status $work                                # pods, health, CPU and memory, endpoints
  orch reconcile --watch $work                     # keep them running: heal, reschedule (Ctrl+C stops)
  orch destroy --auto-approve $work                # remove them; orch lab down stops the lab
MSG
