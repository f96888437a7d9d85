"""The local multi-node lab (``orch lab``): its API, its diagnostics, and the lab itself.

Tests marked ``lab`` use the session fixture ``lab`` (tests/lab/conftest.py), which brings up 3 nodes;
the others need nothing but this package.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tarfile
import time
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from orchdsl.cli import main
from orchdsl.config import load_config

import orch_provider_docker.lab.lab as labmod  # installed with the provider: never a reason to skip
import orch_provider_docker.lab.rootfs as rootfs

from .conftest import lab_unavailable

LabError = labmod.LabError


def _errors(diags):
    return [d for d in diags if d.is_error]


# ---- without the lab ------------------------------------------------------------------------------

def test_entry_points_are_declared():
    assert "lab" in {e.name for e in entry_points(group="orch.commands")}
    assert "docker" in {e.name for e in entry_points(group="orch.providers")}


def test_orch_lab_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["lab", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("up", "status", "down"):
        assert cmd in out


def test_not_root_is_a_diagnostic(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    calls = (lambda: labmod.up(3, tmp_path), lambda: labmod.down(tmp_path), lambda: labmod.status(tmp_path))
    for call in calls:
        with pytest.raises(LabError) as e:
            call()
        assert e.value.diagnostic.summary == \
            "orch lab needs root: it creates network namespaces and starts dockerd"
        assert "sudo" in e.value.diagnostic.hint
    assert main(["lab", "status", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Error: orch lab needs root" in err and "Traceback" not in err


def test_missing_packages_are_named(monkeypatch):
    real = labmod._which
    monkeypatch.setattr(labmod, "_which", lambda b: None if b in ("dockerd", "/usr/sbin/sshd") else real(b))
    monkeypatch.delenv("ORCH_LAB_INSTALL", raising=False)
    assert labmod.missing_packages()[:2] == ["docker.io", "openssh-server"]
    with pytest.raises(LabError) as e:
        labmod.ensure_packages()
    d = e.value.diagnostic
    assert "docker.io" in d.detail and "openssh-server" in d.detail
    assert "apt-get install -y docker.io openssh-server busybox-static iptables iproute2 nftables" in d.hint
    assert "--install" in d.hint


def test_install_runs_apt_get_for_the_missing_packages(monkeypatch):
    real = labmod._which
    missing = {"dockerd"}
    monkeypatch.setattr(labmod, "_which", lambda b: None if b in missing else real(b))
    calls = []

    def fake_install(pkgs, log):
        calls.append(list(pkgs))
        missing.clear()

    monkeypatch.setattr(labmod, "_install_packages", fake_install)
    monkeypatch.setenv("ORCH_LAB_INSTALL", "1")
    labmod.ensure_packages()
    assert calls == [["docker.io"]]


def test_a_failing_step_names_node_command_and_stderr(tmp_path):
    lab = labmod._Lab(tmp_path, None)
    with pytest.raises(LabError) as e:
        lab.run(["sh", "-c", "echo boom >&2; exit 3"], node="n2")
    d = e.value.diagnostic
    assert "node n2" in d.summary
    assert "sh -c 'echo boom >&2; exit 3'" in d.detail and "Exit status: 3" in d.detail and "boom" in d.detail
    assert "orch lab up" in d.hint
    with pytest.raises(LabError) as e:
        lab.run(["no-such-binary-for-the-lab"], node="n1")
    assert "not found" in e.value.diagnostic.summary and "apt-get" in e.value.diagnostic.hint


def test_address_plan():
    labmod.check_address_plan(labmod.MAX_NODES)
    for bad in (0, labmod.MAX_NODES + 1):
        with pytest.raises(LabError):
            labmod.check_address_plan(bad)
    assert [labmod.node_address(i) for i in (1, 2, 15)] == ["198.18.0.11", "198.18.0.12", "198.18.0.25"]
    assert labmod.node_bip(3) == "198.19.3.1/24" and labmod.node_pool(3) == "198.19.24.0/22"
    assert labmod.node_pool(1) == "198.19.16.0/22" and labmod.node_pool(15) == "198.19.72.0/22"
    # orch's default pod range stays free for orch's own pod networks
    import ipaddress
    orch = ipaddress.ip_network("198.19.128.0/17")
    for i in range(1, labmod.MAX_NODES + 1):
        assert not ipaddress.ip_network(labmod.node_pool(i)).overlaps(orch)
        assert not ipaddress.ip_network(labmod.node_bridge_net(i)).overlaps(orch)


@pytest.fixture
def short_tmp():
    """A directory with a short path: dockerd's socket paths below it must fit the 107 bytes of a unix socket
    path (pytest-xdist's tmp_path is longer)."""
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="orch-lab-t"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_dockerd_started_with_other_options_is_restarted(monkeypatch, short_tmp):
    """An older lab's dockerd (another address pool) is restarted with the current flags; a current one is kept."""
    tmp_path = short_tmp
    lab = labmod._Lab(tmp_path, None)
    lab.ensure_dirs(3)
    own = lab.dockerd_argv(3)
    own = own[own.index("dockerd"):]
    old = list(own)
    old[old.index("--default-address-pool") + 1] = "base=198.19.48.0/20,size=24"
    running = {"argv": old}
    stopped, started = [], []

    class FakePopen:
        def __init__(self, argv, **kw):
            started.append(argv)

    monkeypatch.setattr(lab, "dockerd_pid", lambda i: 4242)
    monkeypatch.setattr(lab, "foreign_dockerd", lambda i: [])
    monkeypatch.setattr(labmod, "_in_netns", lambda pid, i: True)
    monkeypatch.setattr(labmod, "_argv", lambda pid: running["argv"])
    monkeypatch.setattr(labmod, "_terminate", lambda pid, marker, timeout: stopped.append(pid) or False)
    monkeypatch.setattr(labmod.subprocess, "Popen", FakePopen)
    monkeypatch.setattr(labmod, "_DAEMONS", [])
    assert lab.start_dockerd(3) is not None
    assert stopped == [4242] and started == [lab.dockerd_argv(3)]
    assert lab.changes == ["n3: stopped dockerd 4242 (its options changed)", "n3: started dockerd"]
    running["argv"] = own
    assert lab.start_dockerd(3) is None and stopped == [4242] and len(started) == 1


def test_nodes_file_text_is_valid_config(tmp_path):
    odd = tmp_path / 'lab "x" ${y} %{z}'
    lab = labmod._Lab(odd, None)
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "nodes.orch").write_text(lab.nodes_file_text(3))
    config, diags = load_config(conf)
    assert not _errors(diags), [d.render() for d in diags]
    assert sorted(str(a) for a in config.resources) == ["node.n1", "node.n2", "node.n3"]
    assert main(["fmt", "--check", str(conf)]) == 0


def test_static_busybox_check(tmp_path):
    assert not rootfs.is_static_elf(Path(os.path.realpath(sys.executable)))
    (tmp_path / "script").write_text("#!/bin/sh\n")
    assert not rootfs.is_static_elf(tmp_path / "script")


def test_rootfs_has_busybox_and_applets(tmp_path):
    bb = rootfs.find_busybox()
    if bb is None or not rootfs.is_static_elf(bb):
        lab_unavailable("busybox-static is not installed (apt-get install busybox-static)")
    root = rootfs.build_rootfs(tmp_path / "rootfs", bb)
    for a in rootfs.REQUIRED_APPLETS:
        assert os.readlink(root / "bin" / a) == "busybox", a
    with tarfile.open(fileobj=io.BytesIO(rootfs.rootfs_tar(root))) as tar:
        names = set(tar.getnames())
    assert {"./bin/busybox", "./bin/sh", "./bin/httpd", "./etc/passwd"} <= names


# ---- with the lab -----------------------------------------------------------------------------------

@pytest.mark.lab
def test_up_again_changes_nothing_and_is_fast(lab):
    files = [Path(lab.nodes_file), Path(lab.known_hosts), Path(lab.identity_file)]
    before = [f.stat().st_mtime_ns for f in files]
    t0 = time.monotonic()
    again = labmod.up(len(lab.nodes), lab.dir)
    elapsed = time.monotonic() - t0
    assert again.changes == []
    assert elapsed < 10, elapsed
    assert [f.stat().st_mtime_ns for f in files] == before
    assert again.nodes == lab.nodes


@pytest.mark.lab
def test_status_is_healthy(lab, capsys):
    st = labmod.status(lab.dir)
    assert st.healthy, st
    for node, s in zip(lab.nodes, st.nodes):
        assert (s.name, s.address) == (node.name, node.address)
        assert s.netns and s.dockerd_alive and s.sshd_alive and s.image and s.containers is not None
    assert main(["lab", "status", "--dir", lab.dir]) == 0
    out = capsys.readouterr().out
    assert "Healthy." in out and "n1" in out


@pytest.mark.lab
def test_nodes_file_is_valid_configuration(lab, tmp_path):
    config, diags = load_config(Path(lab.nodes_file).parent)
    assert not _errors(diags), [d.render() for d in diags]
    shutil.copy(lab.nodes_file, tmp_path / "nodes.orch")
    config, diags = load_config(tmp_path)
    assert not _errors(diags), [d.render() for d in diags]
    assert sorted(str(a) for a in config.resources) == sorted(f"node.{n.name}" for n in lab.nodes)
    text = Path(lab.nodes_file).read_text()
    for n in lab.nodes:
        assert f'address       = "{n.address}"' in text
    assert f'identity_file = "{lab.identity_file}"' in text and f'known_hosts   = "{lab.known_hosts}"' in text


def _ssh(lab, address):
    import paramiko

    c = paramiko.SSHClient()
    c.load_host_keys(lab.known_hosts)
    c.set_missing_host_key_policy(paramiko.RejectPolicy())
    c.connect(address, username="root", key_filename=lab.identity_file, look_for_keys=False,
              allow_agent=False, timeout=10)
    return c


@pytest.mark.lab
def test_ssh_with_known_hosts_and_key_reaches_each_nodes_engine(lab):
    for i, node in enumerate(lab.nodes[:3], start=1):
        c = _ssh(lab, node.address)
        try:
            cmd = ('echo "$DOCKER_HOST"; '
                   'docker network inspect bridge --format "{{(index .IPAM.Config 0).Subnet}}"')
            _, out, _ = c.exec_command(cmd, timeout=30)
            lines = out.read().decode().split()
            assert out.channel.recv_exit_status() == 0
            assert lines == [node.docker_host, f"198.19.{i}.0/24"]
            # the transport orch uses: the engine API through `docker system dial-stdio`
            chan = c.get_transport().open_session()
            chan.settimeout(15)
            chan.exec_command("docker system dial-stdio")
            chan.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            resp = b""
            while not resp.endswith(b"OK"):
                chunk = chan.recv(4096)
                if not chunk:
                    break
                resp += chunk
            chan.close()
            assert resp.startswith(b"HTTP/1.0 200") and resp.endswith(b"OK"), resp
        finally:
            c.close()


@pytest.mark.lab
def test_host_keys_are_verified_not_trusted_blindly(lab, tmp_path):
    import paramiko

    (tmp_path / "empty").write_text("")
    c = paramiko.SSHClient()
    c.load_host_keys(str(tmp_path / "empty"))
    c.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.SSHException):
        c.connect(lab.nodes[0].address, username="root", key_filename=lab.identity_file, look_for_keys=False,
                  allow_agent=False, timeout=10)
    c.close()


@pytest.mark.lab
def test_image_on_every_node(lab):
    import docker

    for node in lab.nodes:
        cli = docker.DockerClient(base_url=node.docker_host, timeout=30)
        try:
            img = cli.images.get(rootfs.IMAGE)
            assert img.attrs["Config"]["Cmd"] == ["/bin/sh"]
        finally:
            cli.close()


def _nx(i: int, *argv: str) -> str:
    import subprocess

    return subprocess.run(["ip", "netns", "exec", f"n{i}", *argv], check=True, capture_output=True,
                          text=True).stdout


@pytest.mark.lab
def test_the_lab_leaves_the_pod_network_to_orch(lab):
    """No routes between the nodes' container networks, no pod-to-pod rules: orch makes its pod network
    itself (routes with proto 211, its own chains), as on users' hosts. The kernel settings it needs are set."""
    import json

    for i, node in enumerate(lab.nodes[:3], start=1):
        routes = json.loads(_nx(i, "ip", "-j", "route", "show") or "[]")
        lab_routes = [r for r in routes if r.get("dst", "").startswith("198.19.")
                      and r.get("gateway") and r.get("protocol") != "211"]
        assert lab_routes == [], (node.name, lab_routes)
        assert "-s 198.19.0.0/16 -d 198.19.0.0/16" not in _nx(i, "iptables", "-w", "-S", "DOCKER-USER")
        assert "-s 198.19.0.0/16 -d 198.19.0.0/16" not in _nx(i, "iptables", "-w", "-t", "nat", "-S", "POSTROUTING")
        assert _nx(i, "cat", "/proc/sys/net/bridge/bridge-nf-call-iptables").strip() == "1"
        assert _nx(i, "cat", "/proc/sys/net/ipv4/ip_forward").strip() == "1"
        assert _nx(i, "nft", "--version").startswith("nftables")


@pytest.mark.lab
def test_up_removes_what_older_labs_added(lab):
    """An older lab routed the nodes' docker0 networks and let 198.19.0.0/16 through by hand: `up` removes that."""
    i = 3
    _nx(i, "ip", "route", "replace", "198.19.1.0/24", "via", "198.18.0.11")
    _nx(i, "iptables", "-w", "-I", "DOCKER-USER", "1", "-s", "198.19.0.0/16", "-d", "198.19.0.0/16", "-j", "ACCEPT")
    _nx(i, "iptables", "-w", "-t", "nat", "-I", "POSTROUTING", "1", "-s", "198.19.0.0/16", "-d", "198.19.0.0/16",
        "-j", "RETURN")
    again = labmod.up(len(lab.nodes), lab.dir)
    assert sorted(c for c in again.changes if "old lab" in c) == [
        "n3: removed old lab route 198.19.1.0/24 via 198.18.0.11 (orch routes pod subnets now)",
        "n3: removed old lab rule iptables -t filter DOCKER-USER -s 198.19.0.0/16 -d 198.19.0.0/16 -j ACCEPT",
        "n3: removed old lab rule iptables -t nat POSTROUTING -s 198.19.0.0/16 -d 198.19.0.0/16 -j RETURN"]
    assert "198.19.1.0/24" not in _nx(i, "ip", "route", "show")
    assert labmod.up(len(lab.nodes), lab.dir).changes == []


@pytest.mark.lab
def test_nodes_above_n_are_torn_down(lab):
    n = len(lab.nodes)
    if n != 3:
        lab_unavailable(f"the lab has {n} nodes; this test grows a 3-node lab to 4 and back")
    try:
        bigger = labmod.up(4, lab.dir)
        assert [x.name for x in bigger.nodes] == ["n1", "n2", "n3", "n4"]
        assert 'node "n4"' in Path(lab.nodes_file).read_text()
    finally:
        back = labmod.up(3, lab.dir)
    assert not os.path.exists("/var/run/netns/n4")
    assert 'node "n4"' not in Path(lab.nodes_file).read_text()
    assert "198.18.0.14" not in Path(lab.known_hosts).read_text()
    assert any("n4" in c for c in back.changes)
    assert labmod.status(lab.dir).healthy
