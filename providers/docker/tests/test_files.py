"""A container's file blocks on fake engines: plain files extracted into the created container before it
starts; sensitive ones on a tmpfs volume written through the infra container, never in a label, the
container configuration or the environment; the volumes go with the pod."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from orch_provider_docker import files

from orchdsl.addrs import ResourceAddress

from docker_fakes import FakeCluster
from docker_helpers import NODES, apply, state_of

POD = NODES + """
variable "password" {
  type      = string
  sensitive = true
  default   = "hunter2-very-secret"
}
secret "db" {
  data = { password = var.password }
}
pod "web" {
  container "httpd" {
    image = "orch/busybox:test"
    file "/www/index.html" {
      content = templatefile("${path.module}/index.tftpl", { name = "orch" })
    }
    file "/etc/app/app.conf" {
      content = "port = 8080\\n"
      mode    = "0600"
    }
    file "/run/secrets/db/password" {
      content = secret.db.data.password
    }
  }
}
"""


def _members(data: bytes) -> dict[str, tuple[bytes, int]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: ((tar.extractfile(m).read() if m.isfile() else b""), m.mode) for m in tar.getmembers()}


def _setup(tmp_path: Path) -> tuple[FakeCluster, list[str]]:
    (tmp_path / "main.orch").write_text(POD)
    (tmp_path / "index.tftpl").write_text("<h1>hello ${name}</h1>\n")
    cluster = FakeCluster("n1", "n2", "n3")
    _, outcome, lines = apply(tmp_path, cluster)
    assert outcome.ok, outcome.diagnostics
    return cluster, lines


def test_plain_files_go_into_the_created_container_before_it_starts(tmp_path):
    cluster, _ = _setup(tmp_path)
    eng = cluster["n1"]
    ops = [c[:2] for c in eng.calls if c[0] in ("create", "start", "put_archive")]
    i = ops.index(("put_archive", "web-httpd"))
    assert ops[i - 1] == ("create", "web-httpd") and ops[i + 1] == ("start", "web-httpd")
    [(name, path, data)] = [a for a in eng.archives if a[0] == "web-httpd"]
    assert path == "/"
    got = _members(data)
    assert got["www/index.html"] == (b"<h1>hello orch</h1>\n", 0o644)
    assert got["etc/app/app.conf"] == (b"port = 8080\n", 0o600)
    assert "run/secrets/db/password" not in got  # the secret is not in the container's filesystem


def test_a_sensitive_file_lives_on_a_tmpfs_volume_written_through_the_infra_container(tmp_path):
    cluster, lines = _setup(tmp_path)
    eng = cluster["n1"]
    [(vol, made)] = list(eng.volumes_made.items())
    assert made["opts"]["type"] == "tmpfs" and vol.endswith("-secrets-0")
    infra, app = eng.by_name("web-infra"), eng.by_name("web-httpd")
    assert {"Type": "volume", "Source": vol, "Target": f"{files.SECRETS_ROOT}/0", "ReadOnly": False} in \
        infra["HostConfig"]["Mounts"]
    assert {"Type": "volume", "Source": vol, "Target": "/run/secrets/db", "ReadOnly": True} in \
        app["HostConfig"]["Mounts"]
    [(_, path, data)] = [a for a in eng.archives if a[0] == "web-infra"]
    assert path == f"{files.SECRETS_ROOT}/0" and _members(data)["password"] == (b"hunter2-very-secret", 0o400)
    # nowhere else: labels, configuration, environment, progress lines
    for c in (infra, app):
        assert "hunter2" not in json.dumps(c, default=str)
    assert not any("hunter2" in line for line in lines)
    private = state_of(tmp_path).get(ResourceAddress.parse("pod.web")).private
    assert private["volumes"] == [vol]


def test_the_pod_takes_its_secret_volumes_with_it(tmp_path):
    cluster, _ = _setup(tmp_path)
    (tmp_path / "main.orch").write_text(NODES)
    _, outcome, _ = apply(tmp_path, cluster)
    assert outcome.ok, outcome.diagnostics
    assert cluster["n1"].volumes_made == {}


def test_a_changed_file_replaces_the_pod(tmp_path):
    cluster, _ = _setup(tmp_path)
    (tmp_path / "index.tftpl").write_text("<h1>bonjour ${name}</h1>\n")
    from docker_helpers import plan

    p, diags = plan(tmp_path, cluster)
    [c] = [c for c in p.changes if str(c.address) == "pod.web"]
    assert c.action.value in ("replace", "delete-create", "create-delete") or c.action.name == "REPLACE"


def test_files_helpers():
    specs = files.files_of({"container": [{"name": "a", "file": [
        {"path": "/x/y", "content": "1"}, {"path": "/s/k", "content": "2", "mode": "0440"}]}]},
        sensitive=[("container", 0, "file", 1, "content")])
    assert [(f.path, f.mode, f.sensitive) for f in specs["a"]] == [("/x/y", 0o644, False), ("/s/k", 0o440, True)]
    [g] = files.secret_groups(specs)
    assert (g.container, g.directory) == ("a", "/s")
    label = files.without_contents({"container": [{"name": "a", "file": [{"path": "/s/k", "content": "2"}]}]})
    assert "content" in label["container"][0]["file"][0] and label["container"][0]["file"][0]["content"] != "2"


VOLUME_POD = NODES + """
volume "data" {
  driver_opts = { type = "tmpfs", device = "tmpfs" }
  labels      = { team = "db" }
}
pod "db" {
  container "c" {
    image  = "orch/busybox:test"
    env    = { V = "%s" }
    mounts = [{ volume = volume.data.name, target = "/data" }]
  }
}
"""


def test_a_volume_is_made_on_the_pods_node_kept_across_replacements_and_removed_with_its_block(tmp_path):
    (tmp_path / "main.orch").write_text(VOLUME_POD % "1")
    cluster = FakeCluster("n1", "n2", "n3")
    _, outcome, _ = apply(tmp_path, cluster)
    assert outcome.ok, outcome.diagnostics
    eng = cluster["n1"]
    [(name, made)] = list(eng.volumes_made.items())
    assert name == "vol-data" and made["opts"] == {"type": "tmpfs", "device": "tmpfs"}
    assert made["labels"]["orch.volume"] == "data" and made["labels"]["team"] == "db"
    app = eng.by_name("db-c")
    assert {"Type": "volume", "Source": "vol-data", "Target": "/data", "ReadOnly": False} in \
        app["HostConfig"]["Mounts"]
    # the pod replaced (env changed): the same volume, not a new one, and it is not removed
    (tmp_path / "main.orch").write_text(VOLUME_POD % "2")
    eng.calls.clear()
    _, outcome, _ = apply(tmp_path, cluster)
    assert outcome.ok, outcome.diagnostics
    assert ("remove_volume", "vol-data") not in eng.calls and list(eng.volumes_made) == ["vol-data"]
    # the volume block goes (with its pod): the Docker volume goes, after the pod
    (tmp_path / "main.orch").write_text(NODES)
    eng.calls.clear()
    _, outcome, _ = apply(tmp_path, cluster)
    assert outcome.ok, outcome.diagnostics
    assert eng.volumes_made == {}
    ops = [c[:2] for c in eng.calls if c[0] in ("remove", "remove_volume")]
    assert ops[-1] == ("remove_volume", "vol-data") and ("remove", "db-c") in ops
