"""The architecture's rules, checked on the source: who may import what, and what the engine may know."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROVIDER = REPO / "providers" / "docker" / "orch_provider_docker"
ENGINE = REPO / "orchdsl" / "engine"


def _imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module, node.lineno))
    return out


def test_the_docker_provider_imports_only_the_sdk_from_orch():
    bad = [f"{p.relative_to(REPO)}:{line}: {mod}" for p in sorted(PROVIDER.rglob("*.py"))
           for mod, line in _imports(p)
           if (mod == "orchdsl" or mod.startswith("orchdsl.")) and not (mod == "orchdsl.sdk"
                                                                      or mod.startswith("orchdsl.sdk."))]
    assert not bad, "the provider reaches into orch's internals:\n" + "\n".join(bad)


def test_the_core_never_imports_a_provider():
    bad = [f"{p.relative_to(REPO)}:{line}: {mod}" for p in sorted((REPO / "orchdsl").rglob("*.py"))
           for mod, line in _imports(p) if mod.startswith("orch_provider")]
    assert not bad, "\n".join(bad)


# Resource types of orch's model: the engine (refresh, planner, executor, workflow) is generic and names none of
# them; what depends on a type lives in the cluster layer (derivations) and the schemas.
TYPES = ("node", "pod", "service", "network_policy", "volume", "secret")


def _string_literals(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), str(path))
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [(n.value, n.lineno) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]


def test_the_engine_names_no_resource_type():
    bad = []
    for p in sorted(ENGINE.rglob("*.py")):
        for text, line in _string_literals(p):
            if text in TYPES or re.search(r"\b(" + "|".join(TYPES) + r")\.[a-z_]", text):
                bad.append(f"{p.relative_to(REPO)}:{line}: {text!r}")
        for mod, line in _imports(p):
            if "placement" in mod or mod.endswith(("schema.pod", "schema.node")):
                bad.append(f"{p.relative_to(REPO)}:{line}: imports {mod}")
    assert not bad, "the engine knows resource types by name:\n" + "\n".join(bad)


def test_unknown_values_belong_to_evaluation_not_the_plan():
    for pkg in ("config", "schema", "eval", "sdk", "cluster"):
        for p in sorted((REPO / "orchdsl" / pkg).rglob("*.py")):
            for mod, line in _imports(p):
                assert not mod.startswith("orchdsl.plan"), f"{p.relative_to(REPO)}:{line} imports {mod}"
            text = p.read_text()
            assert "from ..plan" not in text and "from ...plan" not in text, p.relative_to(REPO)
