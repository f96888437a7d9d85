"""A fleet on the lab: 15 nodes, 150 pods applied, a no-change plan, destroy (acceptance 4 of the fleets issue).

The lab is grown to 15 nodes for this test and brought back to the 3 the other lab tests expect, whatever
happens (they run in the same session, before or after this one, one at a time: tests/conftest.py). Each
step is checked on the nodes themselves, through each node's own Docker socket: 150 pods running, spread over
all 15 nodes; after destroy, no container of the configuration on any node. About 1.5 minutes on the 2-core
machine (the numbers: docs/benchmarks.md, "Fleets"; benchmarks/fleet_bench.py times the same workload).
"""

from __future__ import annotations

import shutil
import time
from collections import Counter

import docker
import pytest

from orchdsl.cli import main

from .conftest import LAB_NODES, destroy_or_remove
from .workloads import FLEET

pytestmark = pytest.mark.lab

FLEET_NODES = 15
PODS = 150

WORKLOAD = FLEET % {"pods": PODS}


def _ours(fleet, lineage: str) -> dict[str, list]:
    """node -> this configuration's containers on it, as the node's own engine lists them."""
    out = {}
    for n in fleet.nodes:
        cli = docker.DockerClient(base_url=f"unix://{n.socket_path}")
        out[n.name] = cli.containers.list(all=True, filters={"label": f"orch.lineage={lineage}"})
    return out


def test_150_pods_on_15_nodes_applied_planned_and_destroyed(lab, tmp_path, monkeypatch, capsys):
    from orch_provider_docker.lab import lab as labmod

    from orchdsl.state.backends import open_backend

    monkeypatch.delenv("ORCH_PROVIDER_MODULES", raising=False)
    d = tmp_path / "fleet"
    d.mkdir()
    fleet = None
    destroyed = False
    took: dict[str, float] = {}
    try:
        t = time.monotonic()
        fleet = labmod.up(FLEET_NODES, lab.dir)
        took["lab up"] = time.monotonic() - t
        assert [n.name for n in fleet.nodes] == [f"n{i}" for i in range(1, FLEET_NODES + 1)]
        shutil.copy(fleet.nodes_file, d / "nodes.orch")
        (d / "main.orch").write_text(WORKLOAD)

        t = time.monotonic()
        assert main(["apply", "--auto-approve", "--no-color", str(d)]) == 0, capsys.readouterr().out[-3000:]
        took["apply"] = time.monotonic() - t
        lineage = open_backend(d).read().lineage
        found = _ours(fleet, lineage)
        pods_per_node = Counter()
        for node, containers in found.items():
            assert all(c.status == "running" for c in containers), (node, [(c.name, c.status) for c in containers])
            roles = Counter(c.labels.get("orch.role") for c in containers)
            assert roles["infra"] == roles["app"], (node, roles)  # each pod: its infra and its app container
            pods_per_node[node] = roles["infra"]
        assert sum(pods_per_node.values()) == PODS, pods_per_node
        assert len({c.labels["orch.address"] for cs in found.values() for c in cs}) == PODS
        # spread over every node (equal requests, equal nodes: 10 each, give or take one)
        assert set(pods_per_node) == {n.name for n in fleet.nodes} and min(pods_per_node.values()) >= 1
        assert max(pods_per_node.values()) - min(pods_per_node.values()) <= 1, pods_per_node

        capsys.readouterr()
        t = time.monotonic()
        rc = main(["plan", "--detailed-exitcode", "--no-color", str(d)])
        took["no-change plan"] = time.monotonic() - t
        out = capsys.readouterr().out
        assert rc == 0, out[-3000:]  # -detailed-exitcode: 0 = no changes
        assert "No changes." in out

        t = time.monotonic()
        assert main(["destroy", "--auto-approve", "--no-color", str(d)]) == 0, capsys.readouterr().out[-3000:]
        took["destroy"] = time.monotonic() - t
        destroyed = True
        left = {node: [c.name for c in cs] for node, cs in _ours(fleet, lineage).items() if cs}
        assert left == {}
        # nor of any configuration on the nodes this test added (the lab's nodes n4..n15 hold no one else's)
        for n in fleet.nodes[LAB_NODES:]:
            cli = docker.DockerClient(base_url=f"unix://{n.socket_path}")
            assert cli.containers.list(all=True, filters={"label": "orch.lineage"}) == [], n.name
    finally:
        try:
            if fleet is not None and not destroyed:
                destroy_or_remove(fleet, d)  # what a failed step left, so that no node keeps it
        finally:
            t = time.monotonic()
            back = labmod.up(LAB_NODES, lab.dir)  # what the other lab tests expect: n1..n3, nothing above
            took["lab back to 3"] = time.monotonic() - t
            with capsys.disabled():
                print("\nfleet lab: " + ", ".join(f"{k} {v:.1f} s" for k, v in took.items()))
    assert [n.name for n in back.nodes] == [f"n{i}" for i in range(1, LAB_NODES + 1)]
    assert labmod.status(lab.dir).healthy
