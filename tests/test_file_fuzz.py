"""Every file orch reads, damaged: the state file, its journal, the lock file, a saved plan, a nodes file (an
`.orch` file) and `.orchvars` variable files — truncated, bit-flipped, replaced by foreign JSON or another
format version — through the `orch` command.

Whatever the damage: the command exits 0 (the damage left a valid file) or 1 with a message (never a Python
traceback), runs nothing the file holds, and when it fails, it has changed none of the files (the state's bytes
are the same). Mutations are seeded (`random.Random(seed)`): a failure is reproducible by its test id.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import socket
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchdsl.cli import main

CONFIG = """
variable "replicas" {
  type    = number
  default = 2
}

pod "web" {
  replicas = var.replicas
  labels   = { app = "web" }
  container "httpd" {
    image = "orch/busybox:test"
    env   = { N = tostring(var.replicas) }
  }
}

output "ips" {
  value = pod.web[*].ip
}
"""

NODES = """# The lab's nodes, written by `orch lab up` (/var/lib/orch-lab).
node "n1" {
  address       = "198.18.0.11"
  user          = "root"
  identity_file = "/var/lib/orch-lab/id_ed25519"
  known_hosts   = "/var/lib/orch-lab/known_hosts"
  docker_host   = "unix:///run/orch-lab/n1/docker.sock"
  labels        = { zone = "a" }
}
"""

VARS = 'replicas = 3\n# a comment\n'


class _Payload:
    """A pickle that proves it ran by creating a directory."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def orch(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))  # an exception here is a traceback for the user: the test fails on it
    out, err = capsys.readouterr()
    return code, out, err


def mutations(data: bytes, seed: int, n: int = 12) -> Iterator[tuple[str, bytes]]:
    """Truncations, bit flips, random bytes, a cut-out range: ``n`` of each kind at seeded positions."""
    rnd = random.Random(seed)
    size = len(data)
    cuts = sorted({0, 1, size // 2, size - 1} | {rnd.randrange(size) for _ in range(n)})
    for c in cuts:
        yield f"truncated at {c}", data[:c]
    for _ in range(n):
        i, bit = rnd.randrange(size), rnd.randrange(8)
        yield f"bit {bit} of byte {i} flipped", data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1:]
    for _ in range(n // 2):
        i = rnd.randrange(size)
        yield f"byte {i} replaced", data[:i] + bytes([rnd.randrange(256)]) + data[i + 1:]
    for _ in range(n // 2):
        i = rnd.randrange(size)
        j = min(size, i + rnd.randrange(1, 40))
        yield f"bytes {i}-{j} removed", data[:i] + data[j:]

FOREIGN: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("whitespace", b"  \n"),
    ("null", b"null"),
    ("a number", b"42"),
    ("a string", b'"orch"'),
    ("a list", b"[1, 2, 3]"),
    ("an empty object", b"{}"),
    ("deep nesting", b"[" * 50000 + b"]" * 50000),
    ("deep nesting in an object", b'{"a": ' + b"[" * 50000 + b"]" * 50000 + b"}"),
    ("NaN", b'{"version": NaN}'),
    ("a huge number", b'{"version": 1' + b"0" * 5000 + b"}"),
    ("invalid UTF-8", b'{"version": 1, "x": "\xff\xfe"}'),
    ("binary", bytes(range(256))),
    ("a Terraform state", json.dumps({"version": 4, "terraform_version": "1.7.0", "serial": 1, "lineage": "x",
                                      "outputs": {}, "resources": []}).encode()),
    ("a rendered plan", json.dumps({"format_version": "1.2", "resource_changes": []}).encode()),
]


def foreign(marker: Path) -> list[tuple[str, bytes]]:
    return [*FOREIGN, ("a pickle", pickle.dumps(_Payload(marker))),
            ("an old orch plan", b"ORCHPLAN1\n" + pickle.dumps(_Payload(marker)))]


@pytest.fixture
def project(tmp_path, monkeypatch, capsys) -> Path:
    """A configuration applied once: a state with resources and outputs."""
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "main.orch").write_text(CONFIG)
    monkeypatch.setenv("ORCH_PROVIDER_MODULES", "orchdsl.sdk.testing.memory:MemoryProvider")
    monkeypatch.setenv("ORCH_MEMORY_WORLD", str(tmp_path / "world"))
    monkeypatch.delenv("ORCH_MEMORY_FAIL", raising=False)
    code, _, err = orch(capsys, "apply", "--auto-approve", str(cfg))
    assert code == 0, err
    return cfg


def snapshot(*paths: Path) -> dict[Path, bytes | None]:
    return {p: (p.read_bytes() if p.exists() else None) for p in paths}


def check(capsys, argv: list[str], guarded: list[Path], what: str, marker: Path | None = None,
          codes: tuple[int, ...] = (0, 1, 2)) -> tuple[int, str]:
    """Run ``orch argv``: no traceback; exit 0 or a diagnostic with exit 1; on failure ``guarded`` unchanged."""
    before = snapshot(*guarded)
    try:
        code, out, err = orch(capsys, *argv)
    except SystemExit as e:  # argparse only: never for file contents
        raise AssertionError(f"{what}: orch {' '.join(argv)} exited through argparse ({e.code})") from None
    assert code in codes, f"{what}: exit {code}\n{err}"
    assert "Traceback" not in err, f"{what}: {err}"
    if code == 1:
        assert "Error: " in err, f"{what}: exit 1 without a message\n{out}{err}"
        assert snapshot(*guarded) == before, f"{what}: a failing orch {argv[0]} changed a file"
    if marker is not None:
        assert not marker.exists(), f"{what}: orch ran code from the file"
    return code, err


# ---- the state file ---------------------------------------------------------------------------------------

def _state_variants(state: Path, marker: Path) -> Iterator[tuple[str, bytes]]:
    good = state.read_bytes()
    yield from mutations(good, seed=1)
    yield from foreign(marker)
    for label, change in [
        ("version 2", lambda d: d.update(version=2)),
        ("version 0", lambda d: d.update(version=0)),
        ("version as text", lambda d: d.update(version="1")),
        ("no lineage", lambda d: d.pop("lineage")),
        ("a negative serial", lambda d: d.update(serial=-1)),
        ("resources as an object", lambda d: d.update(resources={})),
        ("a resource without an address", lambda d: d["resources"][0].pop("address")),
        ("a wrong address", lambda d: d["resources"][0].update(address="pod.web[9]")),
        ("a bad index", lambda d: d["resources"][0].update(index=[1])),
        ("a resource twice", lambda d: d["resources"].append(d["resources"][0])),
        ("an unknown field", lambda d: d.update(extra=True)),
        ("outputs as a list", lambda d: d.update(outputs=[])),
    ]:
        d = json.loads(good)
        change(d)
        yield label, json.dumps(d).encode()
    d = json.loads(good)
    d["resources"][0]["attributes"] = {"deep": "DEEP"}
    yield "attributes nested 3000 deep", json.dumps(d).encode().replace(b'"DEEP"', b"[" * 3000 + b"]" * 3000)


def test_damaged_state_files(project, capsys, tmp_path):
    state = project / "orch.orchstate"
    marker = tmp_path / "pwned"
    for label, data in _state_variants(state, marker):
        good = state.read_bytes()
        state.write_bytes(data)
        check(capsys, ["state", "list", "--state", str(state)], [state], label, marker)
        code, _ = check(capsys, ["plan", "--refresh=false", str(project)], [state], label, marker)
        state.write_bytes(good)


def test_an_apply_on_a_damaged_state_fails_and_overwrites_nothing(project, capsys, tmp_path):
    state = project / "orch.orchstate"
    good = state.read_bytes()
    rnd = random.Random(2)
    variants = [(label, data) for label, data in _state_variants(state, tmp_path / "pwned")]
    for label, data in rnd.sample(variants, 12) + [v for v in variants if v[0] in ("version 2", "empty")]:
        state.write_bytes(data)
        code, err = check(capsys, ["apply", "--auto-approve", str(project)], [state, project / "orch.orchstate.backup"],
                          label)
        state.write_bytes(good)


# ---- the journal ------------------------------------------------------------------------------------------

def _line(record: dict) -> bytes:
    payload = json.dumps(record, separators=(",", ":")).encode()
    return b"%08x %b\n" % (zlib.crc32(payload), payload)


def _raw_line(payload: bytes) -> bytes:
    return b"%08x %b\n" % (zlib.crc32(payload), payload)


def test_damaged_journals(project, capsys, tmp_path):
    state = project / "orch.orchstate"
    journal = project / "orch.orchstate.journal"
    doc = json.loads(state.read_text())
    lineage, serial = doc["lineage"], doc["serial"]
    inst = dict(doc["resources"][0])
    inst["attributes"] = {**inst["attributes"], "labels": {"app": "journaled"}}
    good = (_line({"lineage": lineage, "serial": serial, "op": "set", "instance": inst})
            + _line({"lineage": lineage, "serial": serial, "op": "remove", "address": "pod.web[1]"}))
    marker = tmp_path / "pwned"
    records = [
        ("another lineage", _line({"lineage": "other", "serial": serial, "op": "set", "instance": inst})),
        ("another serial", _line({"lineage": lineage, "serial": serial + 5, "op": "remove", "address": "pod.x"})),
        ("an unknown op", _line({"lineage": lineage, "serial": serial, "op": "exec", "cmd": "id"})),
        ("a bad address", _line({"lineage": lineage, "serial": serial, "op": "remove", "address": "pod["})),
        ("a bad instance", _line({"lineage": lineage, "serial": serial, "op": "set", "instance": {"x": 1}})),
        ("an instance that is a list", _line({"lineage": lineage, "serial": serial, "op": "set", "instance": []})),
        ("a serial as text", _line({"lineage": lineage, "serial": str(serial), "op": "remove", "address": "pod.x"})),
        ("a record that is a list", _raw_line(b"[1,2]")),
        ("deep nesting with a good checksum", _raw_line(b"[" * 50000 + b"]" * 50000)),
        ("invalid UTF-8 with a good checksum", _raw_line(b'{"lineage": "\xff"}')),
        ("compacted into text", _line({"lineage": lineage, "serial": serial, "op": "compacted", "into": "x"})),
        ("a pickle", _raw_line(pickle.dumps(_Payload(marker)))),
    ]
    variants = list(mutations(good, seed=3)) + [(label, good + r) for label, r in records] + \
        [(label + " first", r + good) for label, r in records] + foreign(marker)
    for label, data in variants:
        journal.write_bytes(data)
        check(capsys, ["state", "list", "--state", str(state)], [state, journal], label, marker)
        check(capsys, ["plan", "--refresh=false", str(project)], [state, journal], label, marker)
    journal.unlink()


# ---- the lock file ----------------------------------------------------------------------------------------

def test_damaged_lock_files(project, capsys, tmp_path, monkeypatch):
    from orchdsl.state import lock as lock_module

    # an unreadable lock is read again a few times (its holder may be writing it): no need to wait here
    monkeypatch.setattr(lock_module.time, "sleep", lambda seconds: None)
    state = project / "orch.orchstate"
    lock = project / "orch.orchstate.lock"
    marker = tmp_path / "pwned"
    here = socket.gethostname()
    good = json.dumps({"ID": "1d1e5b0c-aaaa", "Operation": "apply", "Who": "me@h", "Host": here, "PID": 1,
                       "Created": "2024-01-01T00:00:00Z", "Path": str(state), "Version": "0.1.0", "Info": ""},
                      indent=2).encode()
    odd = [
        ("a PID as text", {"ID": "x", "Host": here, "PID": "abc"}),
        ("a huge PID", {"ID": "x", "Host": here, "PID": 10**30}),
        ("a negative PID", {"ID": "x", "Host": here, "PID": -5}),
        ("a PID as a float", {"ID": "x", "Host": here, "PID": 1.5}),
        ("a PID that is a boolean", {"ID": "x", "Host": here, "PID": True}),
        ("fields of other types", {"ID": "x", "Host": 5, "Who": ["a"], "Created": {}, "Operation": None}),
        ("an ID that is a number", {"ID": 7}),
        ("a host as a list", {"ID": "x", "Host": [here], "PID": 1}),
    ]
    variants = list(mutations(good, seed=4, n=6)) + foreign(marker) + \
        [(label, json.dumps(d).encode()) for label, d in odd]
    for label, data in variants:
        lock.write_bytes(data)
        code, err = check(capsys, ["plan", "--refresh=false", str(project)], [state, lock], label, marker,
                          codes=(1,))
        assert "state lock" in err, f"{label}: {err}"
        check(capsys, ["force-unlock", "--force", "x", "--state", str(state)], [state], label, marker, codes=(0, 1))
        lock.unlink(missing_ok=True)


# ---- the plan file ----------------------------------------------------------------------------------------

def test_damaged_plan_files(project, capsys, tmp_path):
    state = project / "orch.orchstate"
    (project / "main.orch").write_text(CONFIG.replace("default = 2", "default = 3"))
    plan = tmp_path / "p.orchplan"
    code, _, err = orch(capsys, "plan", "--out", str(plan), str(project))
    assert code == 0, err
    good = plan.read_bytes()
    marker = tmp_path / "pwned"
    doc = json.loads(good)
    versions = []
    for v in (0, 2, "1", None, True, 1.0):
        d = dict(doc, format_version=v)
        versions.append((f"format_version {v!r}", json.dumps(d).encode()))
    variants = list(mutations(good, seed=5, n=10)) + foreign(marker) + versions + \
        [("another format", json.dumps(dict(doc, format="orch-state")).encode()),
         ("another checksum", json.dumps(dict(doc, checksum="sha256:" + "0" * 64)).encode()),
         ("content removed", json.dumps({k: v for k, v in doc.items() if k != "content"}).encode())]
    for label, data in variants:
        if data.rstrip(b"\n") == good.rstrip(b"\n"):
            continue  # only the final newline cut: the same document
        plan.write_bytes(data)
        code, err = check(capsys, ["show", str(plan)], [state, plan], label, marker, codes=(1,))
        assert "plan file" in err.lower(), f"{label}: {err}"
        check(capsys, ["apply", str(plan)], [state, plan], label, marker, codes=(1,))
    plan.write_bytes(good)  # the file orch wrote is applied
    code, _, err = orch(capsys, "apply", str(plan))
    assert code == 0, err


# ---- configuration and variable files ---------------------------------------------------------------------

def test_damaged_nodes_files(project, capsys, tmp_path):
    state = project / "orch.orchstate"
    nodes = project / "nodes.orch"
    marker = tmp_path / "pwned"
    deep = NODES.replace('{ zone = "a" }', "[" * 3000 + "]" * 3000).encode()
    long = NODES.replace('{ zone = "a" }', "-" * 3000 + "1").encode()
    variants = list(mutations(NODES.encode(), seed=6, n=10)) + foreign(marker) + \
        [("labels nested 3000 deep", deep), ("3000 minus signs", long)]
    for label, data in variants:
        nodes.write_bytes(data)
        code, err = check(capsys, ["validate", str(project)], [state, nodes], label, marker)
        if data in (deep, long):
            assert code == 1 and "Input nested too deeply" in err, err
        check(capsys, ["plan", "--refresh=false", str(project)], [state, nodes], label, marker)
    nodes.unlink()


@pytest.mark.parametrize("how", ["in the directory", "--var-file", "JSON in the directory", "JSON --var-file"])
def test_damaged_variable_files(project, capsys, tmp_path, how):
    state = project / "orch.orchstate"
    marker = tmp_path / "pwned"
    name = "prod.orchvars.json" if how.startswith("JSON") else "prod.orchvars"
    path = project / name if how.endswith("in the directory") else tmp_path / name
    extra = [] if how.endswith("in the directory") else ["--var-file", str(path)]
    if how.startswith("JSON"):
        good = json.dumps({"replicas": 3, "x": {"a": [1, 2.5, None, True]}}).encode()
        specific = [("a wrong type", b'{"replicas": "many"}'), ("a key twice", b'{"replicas": 1, "replicas": 2}'),
                    ("deep nesting", b'{"replicas": ' + b"[" * 3000 + b"]" * 3000 + b"}")]
    else:
        good = VARS.encode()
        specific = [("a block", b'variable "x" {}\n'), ("a reference", b"replicas = var.replicas\n"),
                    ("a wrong type", b'replicas = "many"\n'),
                    ("a call that fails", b'replicas = file("/nonexistent")\n'),
                    ("deep nesting", b"replicas = " + b"[" * 3000 + b"]" * 3000 + b"\n")]
    for label, data in list(mutations(good, seed=7, n=8)) + foreign(marker) + specific:
        path.write_bytes(data)
        check(capsys, ["plan", "--refresh=false", *extra, str(project)], [state, path], label, marker)
        if label in ("a wrong type", "deep nesting", "binary"):
            code, _ = check(capsys, ["apply", "--auto-approve", "--refresh=false", *extra, str(project)],
                            [state, path], label, marker)
            assert code == 1, label
    path.unlink()


def test_a_missing_or_unreadable_file_is_a_diagnostic(project, capsys, tmp_path):
    state = project / "orch.orchstate"
    for argv in (["show", str(tmp_path / "nope.orchplan")], ["apply", str(tmp_path / "nope.orchplan")],
                 ["plan", "--var-file", str(tmp_path / "nope.orchvars"), str(project)],
                 ["state", "list", "--state", str(tmp_path)], ["plan", str(tmp_path / "nope")]):
        check(capsys, argv, [state], " ".join(argv), codes=(1,))


def test_variable_values_that_are_not_utf8_are_refused_before_anything_is_written(project, capsys, monkeypatch):
    """`--var` and `ORCH_VAR_*` values come from bytes the shell passes: not UTF-8, they used to end the apply
    in a traceback while writing the state (after the objects were made)."""
    state = project / "orch.orchstate"
    (project / "greeting.orch").write_text('variable "greeting" {\n  default = "hi"\n}\n\n'
                                           'output "greeting" {\n  value = var.greeting\n}\n')
    bad = b"\xff".decode("utf-8", "surrogateescape")  # what Python makes of such an argument
    for argv, env in ((["--var", f"greeting={bad}"], {}), ([], {"ORCH_VAR_greeting": f"hi{bad}"})):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        for command in (["plan"], ["apply", "--auto-approve"]):
            code, err = check(capsys, [*command, *argv, str(project)], [state], f"{command} {argv} {env}", codes=(1,))
            assert "not UTF-8" in err
        for key in env:
            monkeypatch.delenv(key)


def test_a_damaged_grammar_cache_is_rebuilt_never_run(tmp_path, monkeypatch):
    """The parser's tables are cached in ~/.cache/orch (they used to be a pickle, loaded by every command)."""
    import hashlib

    from orchdsl.lang import parse, parser

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    digest = hashlib.sha256(parser.GRAMMAR_PATH.read_bytes()).hexdigest()[:16]
    cache = tmp_path / "orch" / f"grammar-{parser._TABLES_VERSION}-{digest}.json"
    cache.parent.mkdir()
    marker = tmp_path / "pwned"
    try:
        for label, data in [*foreign(marker), ("tables of another shape", b'{"actions": {"0": {"X": [false, 99]}}, '
                                               b'"start_state": 0, "end_state": 1, "rules": []}')]:
            cache.write_bytes(data)
            parser.tables.cache_clear()
            body, diags = parse('a = [1, 2]\nb "x" {\n  c = a\n}\n', "t.orch")
            assert not diags and body.attributes["a"] and body.blocks[0].labels == ["x"], label
            assert not marker.exists(), label
            parser._tables_from_json(cache.read_text())  # rebuilt: valid tables again
    finally:
        parser.tables.cache_clear()
