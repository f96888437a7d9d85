"""``orch trust NODE``: show the fingerprint, add the key only when confirmed, then connections work."""

from __future__ import annotations

import argparse

import pytest
from orch_provider_docker.commands import register
from orch_provider_docker.transport import NodeSettings, connect, fingerprint

from docker_sshd import FakeDockerHost


@pytest.fixture
def host(tmp_path):
    h = FakeDockerHost(tmp_path)
    yield h
    h.close()


def _run(*argv: str) -> int:
    p = argparse.ArgumentParser()
    register(p.add_subparsers())
    args = p.parse_args(list(argv))
    return args.func(args)


def _config(tmp_path, host) -> str:
    d = tmp_path / "cfg"
    d.mkdir()
    (d / "main.orch").write_text(
        f'node "n1" {{\n  address = "127.0.0.1"\n  port = {host.port}\n  identity_file = "{host.identity_file}"\n'
        f'  known_hosts = "{tmp_path / "kh"}"\n}}\n')
    return str(d)


def test_trust_with_matching_fingerprint_then_connect(host, tmp_path, capsys):
    d = _config(tmp_path, host)
    fp = fingerprint(host.host_key)
    assert _run("trust", "n1", d, "--fingerprint", "SHA256:wrong") == 1
    assert "Fingerprint mismatch" in capsys.readouterr().err
    assert not (tmp_path / "kh").exists()
    assert _run("trust", "n1", d, "--fingerprint", fp) == 0
    assert fp in capsys.readouterr().out
    assert (tmp_path / "kh").read_text() == host.known_hosts_line()
    eng = connect(NodeSettings("n1", address="127.0.0.1", port=host.port, identity_file=host.identity_file,
                               known_hosts=str(tmp_path / "kh")))
    eng.close()


def test_trust_needs_confirmation_and_a_known_node(host, tmp_path, capsys, monkeypatch):
    d = _config(tmp_path, host)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert _run("trust", "n1", d) == 1
    err = capsys.readouterr().err
    assert "Confirmation needed" in err and "--fingerprint SHA256:" in err
    assert _run("trust", "n2", d, "--yes") == 1
    assert 'has no node "n2"' in capsys.readouterr().err
    assert _run("trust", "n1", d, "--yes") == 0
    assert (tmp_path / "kh").read_text() == host.known_hosts_line()
