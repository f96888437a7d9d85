"""The SDK's in-process test provider, under the name the tests have always used."""

from orchdsl.sdk.testing.memory import MemoryProvider, edit_world, world_objects

__all__ = ["MemoryProvider", "edit_world", "memory_config_dir", "orch", "world_objects"]


def memory_config_dir(tmp_path, monkeypatch):
    """A configuration directory whose orch commands (run in this process) use the in-process provider, with
    its world in ``tmp_path``."""
    d = tmp_path / "cfg"
    d.mkdir()
    monkeypatch.setenv("ORCH_PROVIDER_MODULES", "orchdsl.sdk.testing.memory:MemoryProvider")
    monkeypatch.setenv("ORCH_MEMORY_WORLD", str(tmp_path / "world"))
    monkeypatch.delenv("ORCH_MEMORY_FAIL", raising=False)
    return d


def orch(capsys, *argv: str) -> tuple[int, str, str]:
    """One orch command in this process: (exit code, stdout, stderr)."""
    from orchdsl.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err
