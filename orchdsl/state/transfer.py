"""``orch state history``, ``orch state pull [--serial N]`` and ``orch state migrate``: a state's versions, and
moving a state between backends.

- history: the pg backend keeps every version it wrote; the local backend the current file and its backup (the
  state before the last command that changed it).
- pull: the state document (JSON, as a local state file holds it, decrypted), the current one or version N.
- migrate: copies the selected workspace's state from one backend to the other exactly (lineage, serial,
  content), under both locks. The target must hold no state, or ``--force`` (its previous version stays in its
  history or backup). The source is left as it was: remove it yourself once the target is in use (the
  configuration's ``backend`` block says which one orch uses).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from ..diagnostics import Diagnostic, DiagnosticsError
from .backend import LocalBackend
from .backends import StateBackend, describe, open_backend, pg_choice, read_choice
from .duration import parse_duration
from .model import State
from .pg import PgBackend

Command = Callable[[argparse.Namespace], int]
KINDS = ("local", "pg")


def register(st_sub: Any, command: Callable[[Command], Command], lock_flag: Callable[[Any], None]) -> None:
    p = st_sub.add_parser("history", help="list the versions of the state",
                          description="The versions of the state: every one the pg backend wrote; the file and "
                                      "its backup for the local backend.")
    p.add_argument("dir", nargs="?", default=".", metavar="DIR", help="configuration directory (default: .)")
    p.set_defaults(func=command(cmd_state_history))

    p = st_sub.add_parser("pull", help="print the state (or one of its versions) as JSON",
                          description="Print the state document, as a local state file holds it (decrypted).")
    p.add_argument("dir", nargs="?", default=".", metavar="DIR", help="configuration directory (default: .)")
    p.add_argument("--serial", type=int, metavar="N", help="the version of this serial (orch state history)")
    p.set_defaults(func=command(cmd_state_pull))

    p = st_sub.add_parser("migrate", help="copy the state to another backend (local <-> pg)",
                          description="Copy the selected workspace's state from one backend to the other, exactly "
                                      "(lineage, serial, content). pg: the orch block's backend \"pg\", else "
                                      "ORCH_PG_CONN (or libpq's PG* variables) with schema orch; local: "
                                      "DIR/orch.orchstate (or the workspace's).")
    p.add_argument("dir", nargs="?", default=".", metavar="DIR", help="configuration directory (default: .)")
    p.add_argument("--from", dest="source", choices=KINDS, help="the backend holding the state (default: the one "
                                                                "--to is not)")
    p.add_argument("--to", dest="target", choices=KINDS,
                   help="the backend to copy it to (default: the one the configuration's orch block names)")
    p.add_argument("--force", action="store_true",
                   help="replace a state the target already holds (its previous version stays in its history)")
    lock_flag(p)
    p.set_defaults(func=command(cmd_state_migrate))


def _checked_dir(directory: str) -> None:
    from ..engine.arguments import check_directory

    bad = check_directory(directory)
    if bad:
        raise DiagnosticsError(bad)


def _open(directory: str, kind: str) -> StateBackend:
    if kind == "pg":
        return open_backend(directory, choice=pg_choice(directory))
    choice = read_choice(directory)
    local = choice if choice.kind == "local" else type(choice)("local", None, choice.namespace)
    return open_backend(directory, choice=local)


def _close(*backends: StateBackend) -> None:
    for b in backends:
        if isinstance(b, PgBackend):
            b.close()


def cmd_state_history(args: argparse.Namespace) -> int:
    _checked_dir(args.dir)
    backend = open_backend(args.dir)
    try:
        if isinstance(backend, PgBackend):
            versions = backend.history()
            if not versions:
                raise _no_state(backend)
            print(f"{'SERIAL':>7}  {'WRITTEN (UTC)':<20}  {'SIZE':>9}  BY")
            for i, v in enumerate(versions):
                mark = "  (current)" if i == len(versions) - 1 else ""
                print(f"{v.serial:>7}  {v.written_at:<20}  {v.size:>9}  {v.written_by}{mark}")
            return 0
        if not backend.exists():
            raise _no_state(backend)
        rows = []
        backup = _local_backup(backend)
        if backup is not None:
            rows.append((backup.serial, f"{backend.backup_path}"))
        rows.append((backend.read().serial, f"{backend.path}  (current)"))
        print(f"{'SERIAL':>7}  FILE")
        for serial, where in rows:
            print(f"{serial:>7}  {where}")
        print("(the local backend keeps the current state and the one before the last change; the pg backend "
              "keeps every version)")
        return 0
    finally:
        _close(backend)


def cmd_state_pull(args: argparse.Namespace) -> int:
    _checked_dir(args.dir)
    backend = open_backend(args.dir)
    try:
        if args.serial is None:
            if not backend.exists():
                raise _no_state(backend)
            state = backend.read()
        elif isinstance(backend, PgBackend):
            found = backend.read_serial(args.serial)
            if found is None:
                raise DiagnosticsError([Diagnostic.error(
                    "No such state version", f"The {backend.describe()} has no version {args.serial}.",
                    hint="orch state history lists the versions there are")])
            state = found
        else:
            state = _local_serial(backend, args.serial)
        sys.stdout.write(state.to_json())
        return 0
    finally:
        _close(backend)


def _local_backup(backend: LocalBackend) -> State | None:
    if not backend.backup_path.exists():
        return None
    return LocalBackend(backend.backup_path).read()


def _local_serial(backend: LocalBackend, serial: int) -> State:
    current = backend.read() if backend.exists() else None
    if current is not None and current.serial == serial:
        return current
    backup = _local_backup(backend)
    if backup is not None and backup.serial == serial:
        return backup
    raise DiagnosticsError([Diagnostic.error(
        "No such state version", f"{backend.path} is not at serial {serial}, nor is its backup.",
        hint="the local backend keeps two versions (orch state history); the pg backend keeps every one")])


def cmd_state_migrate(args: argparse.Namespace) -> int:
    _checked_dir(args.dir)
    other = {"local": "pg", "pg": "local"}
    if args.target is None:
        args.target = other[args.source] if args.source else read_choice(args.dir).kind
    if args.source is None:
        args.source = other[args.target]
    if args.source == args.target:
        raise DiagnosticsError([Diagnostic.error(
            "Nothing to migrate", f"--from and --to are both {args.source}.", hint="name two different backends")])
    try:
        timeout = parse_duration(args.lock_timeout)
    except ValueError as e:
        raise DiagnosticsError([Diagnostic.error("Invalid --lock-timeout", str(e))]) from None
    source = _open(args.dir, args.source)
    target = _open(args.dir, args.target)
    try:
        with source.lock("state migrate", timeout), target.lock("state migrate", timeout):
            if not source.exists():
                raise _no_state(source)
            state = source.read()
            if target.exists():
                held = target.read()
                if (len(held) or held.outputs) and not args.force:
                    raise DiagnosticsError([Diagnostic.error(
                        "The target already holds a state",
                        f"{describe(target)} holds a state (lineage {held.lineage}, serial {held.serial}, "
                        f"{len(held)} objects); copying over it would make orch forget them.",
                        hint="--force replaces it (its version stays in the history or the backup)")])
            target.store_copy(state)
    finally:
        _close(source, target)
    print(f"Copied the state (lineage {state.lineage}, serial {state.serial}, {len(state)} objects) from "
          f"{describe(source)} to {describe(target)}.")
    using = read_choice(args.dir).kind
    if using != args.target:
        print(f"The configuration still uses the {using} backend: "
              + ('add backend "pg" { ... } to its orch block' if args.target == "pg" else
                 "remove the backend block from its orch block") + " to use the copy.")
    print(f"The source is unchanged; remove it once the {args.target} state is in use.")
    return 0


def _no_state(backend: StateBackend) -> DiagnosticsError:
    return DiagnosticsError([Diagnostic.error(
        "No state", f"There is no state at {describe(backend)}.",
        hint="check the configuration directory, its backend block and the selected workspace")])
