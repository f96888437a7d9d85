"""Workspaces: several states of one configuration, each with its own namespace on the nodes."""

from __future__ import annotations

import json

import pytest

from orchdsl.cluster.settings import resolve
from orchdsl.state import LocalBackend
from tests.support.memory_provider import memory_config_dir, orch

CONFIG = 'pod "web" {\n  replicas = 2\n  container "c" {\n    image = "orch/busybox:test"\n  }\n}\n'


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    d = memory_config_dir(tmp_path, monkeypatch)
    monkeypatch.delenv("ORCH_WORKSPACE", raising=False)
    (d / "main.orch").write_text(CONFIG)
    return d


def test_new_select_list_show_delete(cfg, capsys):
    assert orch(capsys, "workspace", "list", str(cfg))[1] == "* default\n"
    code, out, _ = orch(capsys, "workspace", "new", "staging", str(cfg))
    assert code == 0 and 'switched to workspace "staging"' in out
    assert orch(capsys, "workspace", "list", str(cfg))[1] == "  default\n* staging\n"
    assert orch(capsys, "workspace", "show", str(cfg))[1] == "staging\n"
    code, _, err = orch(capsys, "workspace", "new", "staging", str(cfg))
    assert code == 1 and "Workspace already exists" in err
    code, _, err = orch(capsys, "workspace", "new", "Bad_Name", str(cfg))
    assert code == 1 and "not a valid workspace name" in err
    code, _, err = orch(capsys, "workspace", "delete", "staging", str(cfg))
    assert code == 1 and "Cannot delete the selected workspace" in err
    assert orch(capsys, "workspace", "select", "default", str(cfg))[0] == 0
    code, _, err = orch(capsys, "workspace", "select", "prod", str(cfg))
    assert code == 1 and "orch workspace new prod" in err
    assert orch(capsys, "workspace", "delete", "staging", str(cfg))[0] == 0
    code, _, err = orch(capsys, "workspace", "delete", "default", str(cfg))
    assert code == 1 and "default workspace" in err


def test_each_workspace_has_its_state_objects_and_namespace(cfg, capsys):
    assert orch(capsys, "apply", "-auto-approve", str(cfg))[0] == 0
    assert resolve({}, cfg)["namespace"] == "cfg"
    assert orch(capsys, "workspace", "new", "staging", str(cfg))[0] == 0
    assert resolve({}, cfg)["namespace"] == "cfg-staging"
    assert resolve({"namespace": "shop"}, cfg)["namespace"] == "shop-staging"
    code, out, _ = orch(capsys, "plan", "-json", str(cfg))
    assert [c["change"]["actions"] for c in json.loads(out)["resource_changes"]] == [["create"], ["create"]]
    assert orch(capsys, "apply", "-auto-approve", str(cfg))[0] == 0
    staging = LocalBackend.for_config_dir(cfg)
    assert staging.path == cfg / "orch.orchstate.d" / "staging" / "orch.orchstate" and len(staging.read()) == 2
    assert len(LocalBackend(cfg / "orch.orchstate").read()) == 2  # the default workspace's, untouched
    assert len(list((cfg.parent / "world").glob("*.json"))) == 4  # two pods each, under two lineages
    # a workspace still managing objects is not deleted by accident
    assert orch(capsys, "workspace", "select", "default", str(cfg))[0] == 0
    code, _, err = orch(capsys, "workspace", "delete", "staging", str(cfg))
    assert code == 1 and "Workspace is not empty" in err
    assert orch(capsys, "workspace", "delete", "--force", "staging", str(cfg))[0] == 0


def test_the_environment_selects_and_a_missing_workspace_is_an_error(cfg, capsys, monkeypatch):
    assert orch(capsys, "workspace", "new", "staging", str(cfg))[0] == 0
    assert orch(capsys, "workspace", "select", "default", str(cfg))[0] == 0
    monkeypatch.setenv("ORCH_WORKSPACE", "staging")
    assert orch(capsys, "workspace", "show", str(cfg))[1] == "staging\n"
    monkeypatch.setenv("ORCH_WORKSPACE", "stagign")
    code, _, err = orch(capsys, "plan", str(cfg))
    assert code == 1 and 'the selected workspace "stagign" does not exist' in err
    assert not (cfg / "orch.orchstate.d" / "stagign").exists()


def test_no_workspace_for_a_directory_that_is_not_there(tmp_path, capsys):
    missing = tmp_path / "nope"
    for argv in (["new", "x"], ["select", "default"], ["list"]):
        code, _, err = orch(capsys, "workspace", *argv, str(missing))
        assert code == 1 and "No configuration directory" in err and "Traceback" not in err
    assert not missing.exists()
