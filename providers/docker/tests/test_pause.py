"""orch's pause program and image: a pod's infra container needs nothing from any app image."""

from __future__ import annotations

import io
import platform
import shutil
import signal
import subprocess
import tarfile
import time

import pytest
from orch_provider_docker import pause

from docker_fakes import FakeCluster
from docker_helpers import apply, write_config

ONE_BINARY = """
pod "one" {
  replicas = 2
  container "app" {
    image   = "example/one-binary:1"
    command = ["/app", "--serve"]
    pull    = "never"
  }
}
"""


def _runner(arch: str) -> list[str] | None:
    native = pause.architecture(platform.machine())
    if arch == native:
        return []
    emulator = shutil.which(f"qemu-{arch}")
    return [emulator] if emulator else None


@pytest.mark.parametrize("arch", sorted(pause.CODE))
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_pause_program_waits_and_exits_0_when_asked_to_stop(tmp_path, arch, signum):
    runner = _runner(arch)
    if runner is None:
        pytest.skip(f"cannot run {arch} programs here (no qemu-{arch})")
    exe = tmp_path / "pause"
    exe.write_bytes(pause.program(arch))
    exe.chmod(0o755)
    p = subprocess.Popen([*runner, str(exe)])
    try:
        time.sleep(0.3)
        assert p.poll() is None  # it waits
        started = time.monotonic()
        p.send_signal(signum)
        assert p.wait(5) == 0
        assert time.monotonic() - started < 1
    finally:
        if p.poll() is None:
            p.kill()


def test_the_pause_image_holds_the_program_and_nothing_else():
    for arch in pause.CODE:
        with tarfile.open(fileobj=io.BytesIO(pause.image_tar(arch))) as tar:
            members = tar.getmembers()
            assert [(m.name, m.mode, m.isfile()) for m in members] == [("pause", 0o755, True)]
            data = tar.extractfile(members[0]).read()  # type: ignore[union-attr]
        assert data == pause.program(arch) and data[:4] == b"\x7fELF" and len(data) < 512
        assert pause.image_ref(arch).startswith(f"orch/pause:{arch}-")
    assert pause.architecture("amd64") == "x86_64" and pause.architecture("arm64") == "aarch64"
    assert pause.architecture("s390x") is None


def test_pods_run_their_infra_container_from_the_pause_image_made_once_per_node(tmp_path):
    cluster = FakeCluster("n1")
    cluster["n1"].images.add("example/one-binary:1")  # an image holding one binary: no sleep, no shell
    write_config(tmp_path, replicas=0, nodes='node "n1" {\n  address = "198.18.0.11"\n}\n', extra=ONE_BINARY)
    _, outcome, lines = apply(tmp_path, cluster)
    assert outcome.ok, outcome.diagnostics
    eng = cluster["n1"]
    ref = pause.image_ref("x86_64")
    assert [c for c in eng.calls if c[0] == "import"] == [("import", ref, ('ENTRYPOINT ["/pause"]',))]
    assert eng.imported[ref] == pause.image_tar("x86_64")
    for i in range(2):
        infra = eng.by_name(f"one-{i}-infra")
        assert infra["Config"]["Image"] == ref
        assert infra["Config"]["Entrypoint"] == ["/pause"] and not infra["Config"].get("Cmd")
        assert infra["HostConfig"]["Init"] is False  # the program handles SIGTERM itself, as PID 1
        app = eng.by_name(f"one-{i}-app")
        assert app["Config"]["Image"] == "example/one-binary:1" and app["Config"]["Cmd"] == ["/app", "--serve"]
    assert any("pause image" in line for line in lines)
    # the next run finds the image there: nothing imported again
    eng.calls.clear()
    write_config(tmp_path, replicas=0, nodes='node "n1" {\n  address = "198.18.0.11"\n}\n',
                 extra=ONE_BINARY.replace("replicas = 2", "replicas = 3"))
    _, outcome, _ = apply(tmp_path, cluster)
    assert outcome.ok and eng.by_name("one-2-infra")["Config"]["Image"] == ref
    assert not [c for c in eng.calls if c[0] == "import"]


def test_without_a_pause_program_for_the_architecture_the_first_image_sleeps(tmp_path):
    cluster = FakeCluster("n1")
    cluster["n1"].architecture = "s390x"
    write_config(tmp_path, replicas=1, nodes='node "n1" {\n  address = "198.18.0.11"\n}\n')
    _, outcome, _ = apply(tmp_path, cluster)
    assert outcome.ok, outcome.diagnostics
    infra = cluster["n1"].by_name("web-0-infra")
    assert infra["Config"]["Image"] == "orch/busybox:test" and infra["Config"]["Entrypoint"] == ["sleep"]
    assert infra["HostConfig"]["Init"] is True
    assert not [c for c in cluster["n1"].calls if c[0] == "import"]
