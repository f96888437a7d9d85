"""Two `orch reconcile --watch` against one state in PostgreSQL, on the lab: exactly one acts (the other says it
stands by and does nothing); killed (SIGKILL), the other takes over within 3 cycles and acts; never both."""

from __future__ import annotations

import re
import shutil
import time

import docker
import pytest

from orchdsl.cli import main

from .conftest import app_container, destroy_or_remove
from .test_reconcile_lab import Watch

pytestmark = [pytest.mark.lab, pytest.mark.pg]

CONFIG = """
orch {
  namespace = "leader"
  backend "pg" {
    schema_name = "%s"
  }
}

pod "web" {
  replicas = 2
  container "httpd" {
    image   = "orch/busybox:test"
    pull    = "never"
    init    = true
    command = ["sleep", "1000000"]
  }
}
"""
INTERVAL = 1.0
ACTION = re.compile(r" (recreate|replace|restart|remove|reschedule|scale) ")


def _remove_app(lab, directory, address: str) -> None:
    c = app_container(lab.nodes, directory, address)
    c.remove(force=True)


def _actions(w: Watch, since: float = 0.0) -> list[str]:
    return [line for t, line in w.lines if t >= since and ACTION.search(line)]


def test_one_active_reconciler_and_a_takeover(lab, tmp_path, monkeypatch, capsys, pg_schema):
    monkeypatch.delenv("ORCH_PROVIDER_MODULES", raising=False)
    d = tmp_path / "leader"
    d.mkdir()
    shutil.copy(lab.nodes_file, d / "nodes.orch")
    (d / "main.orch").write_text(CONFIG % pg_schema)
    watches: list[Watch] = []
    try:
        assert main(["apply", "--auto-approve", str(d)]) == 0, capsys.readouterr()
        a = Watch(d, "--interval", f"{INTERVAL}s")
        watches.append(a)
        a.wait_for(r" leading ", 30)
        b = Watch(d, "--interval", f"{INTERVAL}s")
        watches.append(b)
        b.wait_for(r" standby .*is the active reconciler", 30)

        # the leader acts; the other does nothing
        t = time.monotonic()
        _remove_app(lab, d, "pod.web[0]")
        a.wait_for(r" recreate pod\.web\[0\]", 60, since=t)
        time.sleep(2 * INTERVAL)
        assert _actions(b) == [] and not any(" leading " in line for _, line in b.lines), b.lines

        # the leader dies: the other takes over within 3 cycles, and acts
        a.kill()
        killed = time.monotonic()
        took = b.wait_for(r" leading ", 30, since=killed)
        print(f"takeover after {took - killed:.2f} s")
        assert took - killed <= 3 * INTERVAL + 2.0, f"took over after {took - killed:.1f}s"
        t = time.monotonic()
        _remove_app(lab, d, "pod.web[1]")
        b.wait_for(r" recreate pod\.web\[1\]", 60, since=t)
        assert b.stop() == 0
        # every container there once each: no two reconcilers made a replica twice
        lineage_apps = []
        for n in lab.nodes:
            cli = docker.DockerClient(base_url=f"unix://{n.socket_path}")
            lineage_apps += [c.attrs["Labels"]["orch.address"] for c in
                             cli.containers.list(sparse=True, filters={"label": ["orch.role=app",
                                                                                 "orch.namespace=leader"]})]
        assert sorted(lineage_apps) == ["pod.web[0]", "pod.web[1]"]
    finally:
        for w in watches:
            w.kill()
        destroy_or_remove(lab, d)
