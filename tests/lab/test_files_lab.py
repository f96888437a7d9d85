"""Config files, secrets and volumes on the lab, end to end through `orch`: pages rendered by templatefile() and by
jinjafile() (loops, filters, a conditional) served by httpd (a template variable changed: the pod is
replaced and the new pages served), a sensitive variable -> secret -> file in the container, readable there
with its mode, and absent from docker inspect of every container, from the plan in every format, from the
apply's output and from every file of the configuration directory (the state encrypted); a volume's data
surviving a replacement, its pod kept on its node, the volume gone with destroy."""

from __future__ import annotations

import json
import re
import secrets
import shutil
from pathlib import Path

import docker
import pytest

from orchdsl.cli import main
from orchdsl.state import LocalBackend

from .conftest import destroy_or_remove

pytestmark = pytest.mark.lab

SECRET = "s3cr3t-" + secrets.token_hex(8)

APP = """
variable "greeting" {
  default = "hello"
}
variable "db_password" {
  type      = string
  sensitive = true
}
secret "db" {
  data = { password = var.db_password }
}
pod "web" {
  labels = { app = "web" }
  container "httpd" {
    image   = "orch/busybox:test"
    pull    = "never"
    init    = true
    command = ["httpd", "-f", "-p", "8080", "-h", "/www"]
    file "/www/index.html" {
      content = templatefile("${path.module}/index.tftpl", { greeting = var.greeting, items = ["a", "b"] })
    }
    file "/www/list.html" {
      content = jinjafile("${path.module}/list.html.j2", {
        greeting  = var.greeting, port = 8080,
        upstreams = [{ host = "a", port = 81 }, { host = "b", port = 82 }],
      })
    }
    file "/run/secrets/db/password" {
      content = secret.db.data.password
    }
  }
}
"""

TEMPLATE = "<h1>${greeting}</h1>\n%{ for i in items ~}\n<li>${i}</li>\n%{ endfor ~}\n"
JINJA = ("<h2>{{ greeting | upper }}</h2>\n{% for u in upstreams %}server {{ u.host }}:{{ u.port }};\n{% endfor %}"
         "{% if port > 1024 %}high{% else %}low{% endif %} {{ missing | default('fallback') }}\n")


@pytest.fixture
def app_dir(lab, tmp_path, monkeypatch):
    monkeypatch.delenv("ORCH_PROVIDER_MODULES", raising=False)
    monkeypatch.setenv("ORCH_VAR_db_password", SECRET)
    monkeypatch.setenv("ORCH_STATE_PASSPHRASE", "lab passphrase " + secrets.token_hex(4))  # state at rest
    d = tmp_path / f"files-{secrets.token_hex(2)}"
    d.mkdir()
    shutil.copy(lab.nodes_file, d / "nodes.orch")
    (d / "main.orch").write_text(APP)
    (d / "index.tftpl").write_text(TEMPLATE)
    (d / "list.html.j2").write_text(JINJA)
    yield d
    destroy_or_remove(lab, d)


def _containers(lab, d: Path) -> list:
    lineage = LocalBackend.for_config_dir(d).read().lineage
    out = []
    for n in lab.nodes:
        cli = docker.DockerClient(base_url=f"unix://{n.socket_path}")
        out += cli.containers.list(all=True, filters={"label": f"orch.lineage={lineage}"})
    return out


def _app(lab, d: Path):
    return next(c for c in _containers(lab, d) if c.labels.get("orch.role") == "app")


def _page(lab, d: Path, path: str = "/") -> str:
    return _app(lab, d).exec_run(["sh", "-c", f"printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' | nc -w 2 127.0.0.1 8080"]
                                 )[1].decode(errors="replace")


def test_files_and_secrets(lab, app_dir, capsys):
    d = app_dir
    for fmt in ("text", "json", "markdown"):
        assert main(["plan", "--format", fmt, str(d)]) in (0, 2)
        out, err = capsys.readouterr()
        assert SECRET not in out + err, fmt
    assert main(["apply", "--auto-approve", str(d)]) == 0
    out, err = capsys.readouterr()
    assert SECRET not in out + err
    page = _page(lab, d)
    assert "<h1>hello</h1>" in page and "<li>a</li>" in page and "<li>b</li>" in page
    listing = _page(lab, d, "/list.html")
    assert "<h2>HELLO</h2>" in listing and "server a:81;" in listing and "server b:82;" in listing
    assert "high fallback" in listing
    # the secret: readable at its path with mode 0400, on a tmpfs, nowhere in any container's configuration
    app = _app(lab, d)
    code, got = app.exec_run(["cat", "/run/secrets/db/password"])
    assert code == 0 and got.decode() == SECRET
    assert app.exec_run(["stat", "-c", "%a", "/run/secrets/db/password"])[1].decode().strip() == "400"
    mounts = app.exec_run(["cat", "/proc/mounts"])[1].decode()
    assert re.search(r"^\S+ /run/secrets/db tmpfs ro,", mounts, re.M), mounts
    for c in _containers(lab, d):
        c.reload()
        assert SECRET not in json.dumps(c.attrs), c.name
    # nor in any file of the configuration directory: the state, its backup and journal are encrypted
    for f in d.rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f
    assert (d / "orch.orchstate").read_bytes().startswith(b'{"orch_encrypted"')
    # a template variable changes: the pod is replaced, the new page served
    assert main(["plan", "--detailed-exitcode", "--var", "greeting=bonjour", str(d)]) == 2
    out, _ = capsys.readouterr()
    assert "forces replacement" in out and "bonjour" in out and SECRET not in out
    assert main(["apply", "--auto-approve", "--var", "greeting=bonjour", str(d)]) == 0
    capsys.readouterr()
    assert "<h1>bonjour</h1>" in _page(lab, d) and "<h2>BONJOUR</h2>" in _page(lab, d, "/list.html")
    assert _app(lab, d).exec_run(["cat", "/run/secrets/db/password"])[1].decode() == SECRET
    assert main(["plan", "--detailed-exitcode", "--var", "greeting=bonjour", str(d)]) == 0
    capsys.readouterr()
    # destroy leaves no volume behind
    lineage = LocalBackend.for_config_dir(d).read().lineage
    assert main(["destroy", "--auto-approve", str(d)]) == 0
    for n in lab.nodes:
        cli = docker.DockerClient(base_url=f"unix://{n.socket_path}")
        assert cli.volumes.list(filters={"label": f"orch.lineage={lineage}"}) == []


VOLUME_APP = """
variable "release" {
  default = "v1"
}
volume "data" {}
pod "db" {
  container "c" {
    image   = "orch/busybox:test"
    pull    = "never"
    init    = true
    env     = { RELEASE = var.release }
    command = ["sleep", "1000000"]
    mounts  = [{ volume = volume.data.name, target = "/data" }]
  }
}
"""


def test_volume_data_survives_replacement_and_the_pod_stays_on_its_node(lab, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ORCH_PROVIDER_MODULES", raising=False)
    d = tmp_path / f"vol-{secrets.token_hex(2)}"
    d.mkdir()
    nodes = Path(lab.nodes_file).read_text()
    (d / "nodes.orch").write_text(nodes)
    (d / "main.orch").write_text(VOLUME_APP)
    try:
        assert main(["apply", "--auto-approve", str(d)]) == 0, capsys.readouterr()
        node = next(i.attributes["node"] for i in LocalBackend.for_config_dir(d).read() if i.type == "pod")
        db = _app(lab, d)
        db.exec_run(["sh", "-c", "echo precious > /data/file"])
        # replaced (a new release): the same node, the same data
        assert main(["apply", "--auto-approve", "--var", "release=v2", str(d)]) == 0, capsys.readouterr()
        capsys.readouterr()
        db2 = _app(lab, d)
        assert db2.id != db.id
        assert db2.exec_run(["cat", "/data/file"])[1].decode().strip() == "precious"
        assert next(i.attributes["node"] for i in LocalBackend.for_config_dir(d).read() if i.type == "pod") == node
        # its node cordoned: the plan refuses to move it, and says why
        (d / "nodes.orch").write_text(re.sub(rf'(node "{node}" {{)', r'\1\n  schedulable = false', nodes))
        assert main(["plan", "--var", "release=v2", str(d)]) == 1
        err = capsys.readouterr().err
        assert "pod.db cannot move" in err and f"whose data is on node.{node}" in err
        (d / "nodes.orch").write_text(nodes)
        # destroy takes the volume away
        lineage = LocalBackend.for_config_dir(d).read().lineage
        assert main(["destroy", "--auto-approve", "--var", "release=v2", str(d)]) == 0, capsys.readouterr()
        for n in lab.nodes:
            cli = docker.DockerClient(base_url=f"unix://{n.socket_path}")
            assert cli.volumes.list(filters={"label": f"orch.lineage={lineage}"}) == []
    finally:
        (d / "nodes.orch").write_text(nodes)
        destroy_or_remove(lab, d)
