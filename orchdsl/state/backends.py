"""Which backend holds a configuration's state: the ``backend`` block of the root module's ``orch`` block.

    orch {
      namespace = "shop"
      backend "pg" {                     # or backend "local" {}, the default without a block
        conn_str    = "postgres://..."   # optional: ORCH_PG_CONN, else libpq's PG* environment
        schema_name = "orch"             # optional
      }
    }

Literal strings only, like Terraform's ``backend`` block: the backend is known before anything is evaluated. A pg
state is named by the configuration's ``namespace`` (required with pg: the directory's name, the default
namespace, may differ between the machines that share the state) and the selected workspace.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..diagnostics import Diagnostic, DiagnosticsError
from .backend import DEFAULT_STATE_FILE, LocalBackend
from .pg import DEFAULT_SCHEMA, PgBackend, PgSettings, schema_problem

if TYPE_CHECKING:
    from ..lang import ast as A

StateBackend = LocalBackend | PgBackend

KINDS = ("local", "pg")
ARGS = {"local": (), "pg": ("conn_str", "schema_name")}


@dataclass(frozen=True)
class BackendChoice:
    kind: str = "local"
    pg: PgSettings | None = None
    namespace: str = ""  # the orch block's namespace ("" when not set)


def decode_backend_block(block: A.Block, namespace: str, diags: list[Diagnostic]) -> BackendChoice | None:
    """The choice a ``backend "KIND" { ... }`` block makes; None (and diagnostics) when it is not valid."""
    from ..config.loader import _type_error
    from ..config.variables import constant_string, header_error
    from ..eval.ops import suggest

    if len(block.labels) != 1 or block.labels[0] not in KINDS:
        got = f'"{block.labels[0]}"' if block.labels else "no label"
        _type_error(diags, block, "Invalid backend", f"A backend block takes one label, the backend's kind: "
                    f"{' or '.join(repr(k) for k in KINDS)}; found {got}.",
                    hint=(suggest(block.labels[0], list(KINDS)) if block.labels else "") or 'write backend "pg" {}')
        return None
    kind = block.labels[0]
    before = len(diags)
    for attr in block.body.attributes.values():
        if attr.name not in ARGS[kind]:
            diags.append(Diagnostic.error(
                "Unsupported argument", f'An argument named "{attr.name}" is not expected in a "{kind}" backend '
                "block.", attr.src, attr.start, attr.name_end,
                hint=suggest(attr.name, list(ARGS[kind])) or
                (f"it takes {', '.join(ARGS[kind])}" if ARGS[kind] else "the local backend takes no arguments yet")))
    for b in block.body.blocks:
        _type_error(diags, b, "Unsupported block type", "A backend block holds arguments only.")
    if kind == "local":
        return BackendChoice("local", None, namespace) if len(diags) == before else None
    values = {name: constant_string(block.body.attributes.get(name), diags) for name in ARGS[kind]}
    schema = values["schema_name"] or DEFAULT_SCHEMA
    problem = schema_problem(schema)
    if problem:
        attr = block.body.attributes["schema_name"]
        diags.append(Diagnostic.error("Invalid schema_name", problem, attr.src, attr.expr.start, attr.expr.end,
                                      hint='write e.g. schema_name = "orch"'))
    if not namespace:
        diags.append(header_error(
            block, "The pg backend needs a namespace", "A state in PostgreSQL is named by the configuration's "
            "namespace, which must then be set in the orch block: the default (the directory's name) may differ "
            "on each machine that shares the state, and two names would make two states.",
            hint='add namespace = "shop" to the orch block'))
    if len(diags) != before:
        return None
    return BackendChoice("pg", PgSettings(values["conn_str"], schema), namespace)


def read_choice(directory: str | os.PathLike[str]) -> BackendChoice:
    """The backend a configuration directory's root module names, read without evaluating anything.
    Raises DiagnosticsError when the files cannot be parsed or the block is not valid (never guesses local
    when the block cannot be read)."""
    from ..config.files import load_directory
    from ..config.variables import constant_string

    files, diags = load_directory(Path(directory))
    if not Path(directory).is_dir():
        return BackendChoice()
    errors = [d for d in diags if d.is_error]
    if errors:
        raise DiagnosticsError(errors)
    blocks = files.blocks("orch")
    if not blocks:
        return BackendChoice()
    found: list[Diagnostic] = []
    namespace = constant_string(blocks[0].body.attributes.get("namespace"), found)
    backends = [b for b in blocks[0].body.blocks if b.type == "backend"]
    if not backends:
        return BackendChoice("local", None, namespace)
    choice = decode_backend_block(backends[0], namespace, found)
    errors = [d for d in found if d.is_error]
    if errors or choice is None:
        raise DiagnosticsError(errors)
    return choice


def open_backend(directory: str | os.PathLike[str], state_path: str | os.PathLike[str] | None = None,
                 choice: BackendChoice | None = None, workspace: str | None = None) -> StateBackend:
    """The state backend of a configuration directory's selected workspace (or ``workspace``); ``state_path``
    (``--state``) always means a local file."""
    from . import workspace as ws

    if state_path:
        return LocalBackend(state_path)
    choice = choice if choice is not None else read_choice(directory)
    name = workspace if workspace is not None else ws.current(directory)
    if ws.name_problem(name):
        name = ws.DEFAULT
    if choice.kind == "pg":
        assert choice.pg is not None
        return PgBackend(choice.pg, choice.namespace, name)
    return LocalBackend(ws.state_dir(directory, name) / DEFAULT_STATE_FILE)


def pg_choice(directory: str | os.PathLike[str]) -> BackendChoice:
    """For ``orch state migrate``: the pg backend the configuration names, else one from ``ORCH_PG_CONN`` (or
    libpq's environment) with the default schema, named by the orch block's namespace."""
    choice = read_choice(directory)
    if choice.kind == "pg":
        return choice
    if not choice.namespace:
        raise DiagnosticsError([Diagnostic.error(
            "The pg backend needs a namespace", "A state in PostgreSQL is named by the configuration's namespace, "
            "and the orch block does not set one.", hint='add namespace = "shop" to the orch block')])
    return BackendChoice("pg", PgSettings(), choice.namespace)


def describe(backend: StateBackend) -> str:
    return backend.describe() if isinstance(backend, PgBackend) else str(backend.path)


__all__ = ["KINDS", "BackendChoice", "StateBackend", "decode_backend_block", "describe", "open_backend", "pg_choice",
           "read_choice"]
