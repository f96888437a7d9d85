"""Workspaces: several states of one configuration, as Terraform's (``orch workspace new|select|list|show|delete``).

The ``default`` workspace is the configuration's state as it always was (``DIR/orch.orchstate``); another
workspace ``NAME`` keeps its state in ``DIR/orch.orchstate.d/NAME/orch.orchstate`` and runs in a namespace of its
own on the nodes (the configuration's namespace with ``-NAME`` appended), so that two workspaces of one
configuration never touch each other's containers, rules or names. The selected workspace is the
``ORCH_WORKSPACE`` environment variable, else the one ``orch workspace select`` wrote to ``DIR/.orch-workspace``
(plain text), else ``default``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..diagnostics import Diagnostic, DiagnosticsError

DEFAULT = "default"
ENV = "ORCH_WORKSPACE"
STATE_DIR = "orch.orchstate.d"
SELECTION = Path(".orch-workspace")  # a file: a directory named ".orch" would be read as a configuration file
NAME_MAX = 20  # leaves room in a namespace (40) for the configuration's own name
_NAME = re.compile(rf"[a-z](?:[a-z0-9-]{{0,{NAME_MAX - 2}}}[a-z0-9])?")


def name_problem(name: str) -> str | None:
    if name == DEFAULT or _NAME.fullmatch(name):
        return None
    return (f'"{name[:60]}" is not a valid workspace name: lower-case letters, digits and "-", starting with a '
            f"letter, at most {NAME_MAX} characters (it becomes part of the namespace on the nodes)")


def current(config_dir: str | os.PathLike[str]) -> str:
    """The selected workspace of a configuration directory."""
    env = os.environ.get(ENV, "").strip()
    if env:
        return env
    try:
        chosen = (Path(config_dir) / SELECTION).read_text().strip()
    except OSError:
        return DEFAULT
    return chosen or DEFAULT


def checked_current(config_dir: str | os.PathLike[str]) -> str:
    """The selected workspace; a diagnostic when its name is not valid or (not default) it does not exist."""
    ws = current(config_dir)
    problem = name_problem(ws)
    if problem:
        raise DiagnosticsError([Diagnostic.error("Invalid workspace", problem,
                                                 hint=f"select another with orch workspace select, or unset {ENV}")])
    return ws


def state_dir(config_dir: str | os.PathLike[str], ws: str) -> Path:
    """Where a workspace's state lives (the configuration directory itself for ``default``)."""
    return Path(config_dir) if ws == DEFAULT else Path(config_dir) / STATE_DIR / ws


def listed(config_dir: str | os.PathLike[str], choice: Any = None, backend: Any = None) -> list[str]:
    """The workspaces: directories of the local backend, rows of the pg one (``choice``: the configuration's
    backends.BackendChoice, ``backend``: a PgBackend of the configuration, when the caller has them)."""
    from .backends import open_backend, read_choice
    from .pg import PgBackend

    choice = choice if choice is not None else read_choice(config_dir)
    if choice.kind == "pg":
        pg = backend if isinstance(backend, PgBackend) else open_backend(config_dir, choice=choice, workspace=DEFAULT)
        assert isinstance(pg, PgBackend)
        try:
            return [DEFAULT, *(n for n in pg.workspaces() if n != DEFAULT and not name_problem(n))]
        finally:
            if pg is not backend:
                pg.close()
    root = Path(config_dir) / STATE_DIR
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not name_problem(p.name)) \
        if root.is_dir() else []
    return [DEFAULT, *names]


def namespace_suffix(config_dir: str | os.PathLike[str]) -> str:
    """What a workspace adds to the configuration's namespace ("" for default)."""
    ws = current(config_dir)
    return "" if ws == DEFAULT or name_problem(ws) else f"-{ws}"


def new(config_dir: str | os.PathLike[str], name: str) -> None:
    from .backends import open_backend, read_choice
    from .pg import PgBackend

    _check_name(name)
    choice = read_choice(config_dir)
    if name == DEFAULT or name in listed(config_dir, choice):
        raise DiagnosticsError([Diagnostic.error("Workspace already exists", f'workspace "{name}" already exists.',
                                                 hint=f"orch workspace select {name}")])
    if choice.kind == "pg":
        backend = open_backend(config_dir, choice=choice, workspace=name)
        assert isinstance(backend, PgBackend)
        try:
            backend.add_workspace(name)
        finally:
            backend.close()
    else:
        state_dir(config_dir, name).mkdir(parents=True)
    _write_selection(config_dir, name)  # it exists now: no second look at the backend


def select(config_dir: str | os.PathLike[str], name: str) -> None:
    _check_name(name)
    if name not in listed(config_dir):
        raise DiagnosticsError([Diagnostic.error(
            "Workspace does not exist", f'workspace "{name}" does not exist.',
            hint=f"orch workspace new {name} creates it; orch workspace list shows those there are")])
    _write_selection(config_dir, name)


def _write_selection(config_dir: str | os.PathLike[str], name: str) -> None:
    (Path(config_dir) / SELECTION).write_text(name + "\n")


def delete(config_dir: str | os.PathLike[str], name: str, force: bool = False) -> None:
    """Remove a workspace's directory; refused for ``default``, the selected one, and one whose state still
    records objects (unless ``force``: they are then forgotten, not destroyed)."""
    from .backend import LocalBackend
    from .backends import open_backend
    from .pg import PgBackend

    _check_name(name)
    if name == DEFAULT:
        raise DiagnosticsError([Diagnostic.error("Cannot delete the default workspace",
                                                 "the default workspace always exists.")])
    if name not in listed(config_dir):
        raise DiagnosticsError([Diagnostic.error("Workspace does not exist", f'workspace "{name}" does not exist.')])
    if name == current(config_dir):
        raise DiagnosticsError([Diagnostic.error(
            "Cannot delete the selected workspace", f'workspace "{name}" is selected.',
            hint="orch workspace select default first")])
    backend = open_backend(config_dir, workspace=name)
    try:
        with backend.lock("workspace delete"):
            if backend.exists() and len(backend.read()) and not force:
                raise DiagnosticsError([Diagnostic.error(
                    "Workspace is not empty", f'workspace "{name}" still manages objects: deleting it would forget '
                    "them while they keep running.", hint=f"orch workspace select {name}, orch destroy, then "
                                                          "delete it; or --force to forget them")])
            if isinstance(backend, PgBackend):
                backend.delete_workspace()
        if isinstance(backend, LocalBackend):
            shutil.rmtree(state_dir(config_dir, name))
    finally:
        if isinstance(backend, PgBackend):
            backend.close()


def _check_name(name: str) -> None:
    problem = name_problem(name)
    if problem:
        raise DiagnosticsError([Diagnostic.error("Invalid workspace name", problem)])


__all__ = ["DEFAULT", "ENV", "checked_current", "current", "delete", "listed", "name_problem", "namespace_suffix",
           "new", "select", "state_dir"]


# ---- orch workspace ----------------------------------------------------------------------------------------

def add_parser(sub: Any) -> None:
    ws = sub.add_parser("workspace", help="several states of one configuration: new, select, list, show, delete",
                        description="Workspaces: each its own state and its own namespace on the nodes.")
    ws_sub = ws.add_subparsers(dest="workspace_command", metavar="SUBCOMMAND")
    for verb, text in (("new", "create a workspace and select it"), ("select", "select a workspace"),
                       ("delete", "delete an empty workspace (not the selected one)")):
        p = ws_sub.add_parser(verb, help=text)
        p.add_argument("name", metavar="NAME")
        p.add_argument("dir", nargs="?", default=".", help="configuration directory (default: .)")
        if verb == "delete":
            p.add_argument("--force", action="store_true", help="delete even if its state records objects "
                                                                "(they are forgotten, not destroyed)")
        p.set_defaults(func=_command(verb))
    for verb, text in (("list", "list the workspaces, * marking the selected one"),
                       ("show", "print the selected workspace")):
        p = ws_sub.add_parser(verb, help=text)
        p.add_argument("dir", nargs="?", default=".", help="configuration directory (default: .)")
        p.set_defaults(func=_command(verb))
    ws.set_defaults(func=lambda args: (ws.print_help(), 1)[1])


def _command(verb: str) -> Callable[[Any], int]:
    def run(args: Any) -> int:
        from ..cli import _print_diags
        from ..engine.arguments import check_directory

        bad = check_directory(args.dir)
        if bad:  # never a workspace (or its directories) made for a configuration that is not there
            _print_diags(bad, False)
            return 1
        try:
            if verb == "new":
                new(args.dir, args.name)
                print(f'Created and switched to workspace "{args.name}": its state is empty, its namespace its own.')
            elif verb == "select":
                select(args.dir, args.name)
                print(f'Switched to workspace "{args.name}".')
            elif verb == "delete":
                delete(args.dir, args.name, args.force)
                print(f'Deleted workspace "{args.name}".')
            elif verb == "list":
                selected = current(args.dir)
                for name in listed(args.dir):
                    print(f"{'*' if name == selected else ' '} {name}")
            else:
                print(current(args.dir))
        except DiagnosticsError as e:
            _print_diags(e.diagnostics, False)
            return 1
        except OSError as e:
            _print_diags([Diagnostic.error("Cannot change the workspaces", f"{args.dir}: {e.strerror or e}.",
                                           hint="check that the configuration directory is writable")], False)
            return 1
        return 0
    return run
