"""``orch state list|show|rm|mv|encrypt|decrypt``, ``orch force-unlock`` and ``orch output``.

``register(subparsers)`` adds them to the ``orch`` argument parser; each sets
``func`` to a function taking the parsed arguments and returning the exit
status. Every user error is a Diagnostic on stderr with status 1.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from ..addrs import AddressError
from ..diagnostics import WARNING, Diagnostic, DiagnosticsError
from .backend import DEFAULT_STATE_FILE, LocalBackend
from .backends import StateBackend, describe, open_backend
from .duration import parse_duration
from .encryption import PASSPHRASE_ENV
from .lock import force_unlock
from .model import State
from .render import render_instance, render_output, type_name, type_of
from .targets import Target, parse_target

Command = Callable[[argparse.Namespace], int]


def register(subparsers: Any) -> None:
    """Add ``state``, ``force-unlock`` and ``output`` to an argparse subparsers object."""
    st = subparsers.add_parser("state", help="inspect and edit the state",
                               description="Inspect and edit the state (what orch manages, by address).")
    st_sub = st.add_subparsers(dest="state_command", metavar="SUBCOMMAND")
    st.set_defaults(func=_help(st))

    p = st_sub.add_parser("list", help="list the resource instances in the state",
                          description="List resource instances, in address order. ADDR may be an instance "
                                      "(pod.web[0]), a resource (pod.web: all its instances) or a module "
                                      "(module.app: everything inside it).")
    p.add_argument("addresses", nargs="*", metavar="ADDR", help="only instances matching one of these")
    p.add_argument("--id", help="only instances whose id attribute is this")
    _state_flag(p)
    p.set_defaults(func=cmd_state_list)

    p = st_sub.add_parser("show", help="show the attributes of one resource instance")
    p.add_argument("address", metavar="ADDR", help="resource instance address, e.g. 'pod.web[0]'")
    _state_flag(p)
    p.set_defaults(func=cmd_state_show)

    p = st_sub.add_parser("rm", help="forget resource instances (the containers keep running)",
                          description="Remove instances from the state. The real objects are not touched: "
                                      "orch just stops managing them.")
    p.add_argument("addresses", nargs="+", metavar="ADDR", help="instance, resource or module addresses")
    p.add_argument("--dry-run", action="store_true", help="show what would be removed, change nothing")
    _state_flag(p)
    _lock_flag(p)
    p.set_defaults(func=cmd_state_rm)

    p = st_sub.add_parser("mv", help="track an object under another address",
                          description="Move instances to new addresses, e.g. after renaming a resource "
                                      "block, so that orch does not replace them.")
    p.add_argument("source", metavar="SRC")
    p.add_argument("destination", metavar="DST")
    p.add_argument("--dry-run", action="store_true", help="show what would be moved, change nothing")
    _state_flag(p)
    _lock_flag(p)
    p.set_defaults(func=cmd_state_mv)

    for name, fn, what in (("encrypt", cmd_state_encrypt, f"encrypt the state at rest with {PASSPHRASE_ENV}"),
                           ("decrypt", cmd_state_decrypt, "store an encrypted state in plain text again")):
        p = st_sub.add_parser(name, help=what,
                              description=f"{what[:1].upper()}{what[1:]}: the state file and its backup are "
                                          "rewritten and a leftover journal folded in (same lineage and "
                                          "serial).")
        p.add_argument("dir", nargs="?", default=".", metavar="DIR",
                       help="configuration directory whose DIR/orch.orchstate to rewrite (default: .)")
        p.add_argument("--state", metavar="PATH", help="state file (default: DIR/orch.orchstate)")
        _lock_flag(p)
        p.set_defaults(func=fn)

    from .transfer import register as register_transfer

    register_transfer(st_sub, _command, _lock_flag)

    p = subparsers.add_parser("force-unlock", help="remove a stale state lock",
                              description="Remove the state lock left by a command that was killed. Only "
                                          "the lock with the given ID is removed.")
    p.add_argument("lock_id", metavar="ID", help="the lock ID from the 'Error acquiring the state lock' message")
    p.add_argument("--force", action="store_true", help="do not ask for confirmation")
    _state_flag(p)
    p.set_defaults(func=cmd_force_unlock)

    p = subparsers.add_parser("output", help="show output values from the state")
    p.add_argument("name", nargs="?", metavar="NAME", help="only this output (its value alone)")
    p.add_argument("--json", action="store_true", help="machine-readable (terraform output -json shape)")
    p.add_argument("--raw", action="store_true", help="print a string, number or bool value as is")
    _state_flag(p)
    p.set_defaults(func=cmd_output)


def _state_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state", metavar="PATH", default=None,
                   help="a local state file (default: the state of the working directory's configuration: its "
                        f"backend and selected workspace; {DEFAULT_STATE_FILE} for the local default)")


def _lock_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lock-timeout", metavar="DURATION", default="0s",
                   help="how long to retry taking the state lock, e.g. 30s or 2m (default: 0s)")


def _help(parser: argparse.ArgumentParser) -> Command:
    def show(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 1
    return show


# ---- shared plumbing ---------------------------------------------------------------------

def _command(fn: Command) -> Command:
    """Render DiagnosticsError as diagnostics on stderr, exit status 1."""
    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except DiagnosticsError as e:
            _print_diags(e.diagnostics, args)
            return 1
    return run


def _color(args: argparse.Namespace, stream: TextIO) -> bool:
    return stream.isatty() and not getattr(args, "no_color", False) and "NO_COLOR" not in os.environ


def _print_diags(diags: list[Diagnostic], args: argparse.Namespace) -> None:
    for d in diags:
        print(d.render(color=_color(args, sys.stderr)), file=sys.stderr)
        print(file=sys.stderr)


def _error(summary: str, detail: str = "", hint: str = "") -> DiagnosticsError:
    return DiagnosticsError([Diagnostic.error(summary, detail, hint=hint)])


def _backend(args: argparse.Namespace) -> StateBackend:
    """``--state PATH`` (a local file), else the state of the configuration in the working directory (``-chdir``):
    its backend (the orch block's; local by default) and selected workspace."""
    if args.state is not None:
        return LocalBackend(state_path(args))
    return open_backend(getattr(args, "chdir", None) or ".")


def state_path(args: argparse.Namespace) -> Path:
    """``--state``, relative to ``--chdir`` when the main parser has one and it is set. An empty ``--state`` or
    one naming a directory is an error (never the current directory)."""
    from ..engine.arguments import check_file_argument

    bad = check_file_argument(args.state, "--state", "state")
    if bad:
        raise DiagnosticsError(bad)
    path = Path(args.state)
    chdir = getattr(args, "chdir", None)
    if chdir and not path.is_absolute():
        path = Path(chdir) / path
    return path


def _lock_timeout(args: argparse.Namespace) -> float:
    try:
        return parse_duration(args.lock_timeout)
    except ValueError as e:
        raise _error("Invalid --lock-timeout", str(e)) from None


def _targets(texts: list[str]) -> list[Target]:
    from ..engine.arguments import UNSET_HINT

    out = []
    for t in texts:
        try:
            out.append(parse_target(t))
        except AddressError as e:
            raise _error("Invalid address", str(e),
                         hint=UNSET_HINT if not t.strip() else
                         "quote addresses with keys in the shell: 'pod.web[\"a\"]'") from None
    return out


def _existing_state(backend: StateBackend) -> State:
    if not backend.exists():
        raise _error("No state file was found!",
                     f"State management commands require a state; there is none at {describe(backend)}.",
                     hint="run this command where orch has applied a configuration, or pass --state PATH")
    return backend.read()


# ---- state list / show ------------------------------------------------------------------

@_command
def cmd_state_list(args: argparse.Namespace) -> int:
    targets = _targets(args.addresses)
    if args.id is not None and not args.id.strip():
        from ..engine.arguments import UNSET_HINT

        raise _error("Invalid --id", "--id is empty: no object has an empty id.", hint=UNSET_HINT)
    state = _existing_state(_backend(args))
    for inst in state.list(*targets):
        if args.id is None or inst.attributes.get("id") == args.id:
            print(inst.addr)
    from ..engine.arguments import state_hint

    # a filter that matches nothing lists nothing (as Terraform), but a typo should not look like "none"
    _print_diags([Diagnostic(WARNING, "No matching instances", f"{t} matches nothing in the state.",
                             hint=state_hint(str(t), state)) for t in targets if not state.list(t)], args)
    return 0


@_command
def cmd_state_show(args: argparse.Namespace) -> int:
    (target,) = _targets([args.address])
    if target.is_module:
        raise _error("Invalid address", f"{target} is a module; state show needs one resource instance.",
                     hint=f'"orch state list {target}" lists what it contains')
    state = _existing_state(_backend(args))
    inst = state.get(target.address())
    if inst is None:
        matched = state.list(target)
        if len(matched) > 1:
            raise _error("Multiple instances found for the given pattern!",
                         f"{target} matches {len(matched)} instances; this command shows exactly one.",
                         hint=f'name one instance, such as {matched[0].addr}; "orch state list {target}" '
                              "lists them")
        if not matched:
            from ..engine.arguments import state_hint

            raise _error("No instance found for the given address!",
                         f"There is no {target} in the state.", hint=state_hint(str(target), state))
        inst = matched[0]
    print(render_instance(inst))
    return 0


# ---- state rm / mv ----------------------------------------------------------------------

@_command
def cmd_state_rm(args: argparse.Namespace) -> int:
    targets = _targets(args.addresses)
    timeout = _lock_timeout(args)
    backend = _backend(args)
    with backend.lock("state rm", timeout):
        state = _existing_state(backend)
        for t in targets:
            if not state.list(t):  # like Terraform: one bad address and nothing is removed
                from ..engine.arguments import state_hint

                raise DiagnosticsError([Diagnostic.error(
                    "Invalid target address", f"No matching objects found for {t}.", address=str(t),
                    hint=state_hint(str(t), state))])
        removed = state.list(*targets)  # once each, in address order, however the addresses overlap
        for inst in removed:
            state.remove(inst.addr)
        if not args.dry_run:
            backend.write(state)
    verb = "Would remove" if args.dry_run else "Removed"
    for inst in removed:
        print(f"{verb} {inst.addr}")
    n = len(removed)
    print(f"{'Would have removed' if args.dry_run else 'Successfully removed'} {n} resource instance(s).")
    return 0


@_command
def cmd_state_mv(args: argparse.Namespace) -> int:
    src, dst = _targets([args.source, args.destination])
    timeout = _lock_timeout(args)
    backend = _backend(args)
    with backend.lock("state mv", timeout):
        state = _existing_state(backend)
        pairs = state.move(src, dst)
        if not args.dry_run:
            backend.write(state)
    verb = "Would move" if args.dry_run else "Move"
    for old, new in pairs:
        print(f'{verb} "{old}" to "{new}"')
    print(f"{'Would have moved' if args.dry_run else 'Successfully moved'} {len(pairs)} object(s).")
    return 0


# ---- state encrypt / decrypt ------------------------------------------------------------

def _dir_state_path(args: argparse.Namespace) -> Path:
    from ..engine.arguments import check_directory

    if args.state is None:
        bad = check_directory(args.dir)
        if bad:
            raise DiagnosticsError(bad)
        args.state = os.path.join(args.dir, DEFAULT_STATE_FILE)
    return state_path(args)


def _names_pg(directory: str) -> bool:
    from ..engine.arguments import check_directory
    from .backends import read_choice

    bad = check_directory(directory)
    if bad:
        raise DiagnosticsError(bad)
    return read_choice(directory).kind == "pg"


def _reencode(args: argparse.Namespace, encrypt: bool) -> int:
    timeout = _lock_timeout(args)
    backend: StateBackend = LocalBackend(_dir_state_path(args)) if args.state is not None or \
        not _names_pg(args.dir) else open_backend(args.dir)
    if encrypt and backend.passphrase is None:
        raise _error("No passphrase to encrypt with",
                     f"orch state encrypt derives the key from {PASSPHRASE_ENV}, which is not set (or empty).",
                     hint=f"export {PASSPHRASE_ENV}=<a long passphrase> and run it again; every orch command on "
                          "this state then needs it")
    backend.encrypt_writes = encrypt
    verb = "state encrypt" if encrypt else "state decrypt"
    with backend.lock(verb, timeout):
        state = _existing_state(backend)  # decrypt: an encrypted state needs the passphrase to be read
        backend.rewrite(state)
    what = "its backup" if isinstance(backend, LocalBackend) else \
        "written as a new version (the versions before it in the history keep their encoding)"
    if encrypt:
        print(f"Encrypted {describe(backend)} (serial {state.serial}), {what}; every orch command on this "
              f"state now needs {PASSPHRASE_ENV}.")
    else:
        print(f"Decrypted {describe(backend)} (serial {state.serial}), {what}.")
        if backend.passphrase is not None:
            print(f"Unset {PASSPHRASE_ENV}, or the next command that writes the state encrypts it again.")
    return 0


@_command
def cmd_state_encrypt(args: argparse.Namespace) -> int:
    return _reencode(args, encrypt=True)


@_command
def cmd_state_decrypt(args: argparse.Namespace) -> int:
    return _reencode(args, encrypt=False)


# ---- force-unlock -----------------------------------------------------------------------

@_command
def cmd_force_unlock(args: argparse.Namespace) -> int:
    chosen = _backend(args)
    path, backend = (chosen.path, None) if isinstance(chosen, LocalBackend) else (Path(), chosen)
    if not args.lock_id.strip():
        from ..engine.arguments import UNSET_HINT

        raise _error("Invalid lock ID", "The lock ID is empty.",
                     hint=UNSET_HINT + '; the ID is in the "Error acquiring the state lock" message')
    if not args.force:
        print("Do you really want to force-unlock?\n"
              "  orch will remove the lock on the state. This will allow local orch commands to\n"
              "  modify this state, even though it may still be in use. Only 'yes' will be accepted\n"
              "  to confirm.\n")
        print("  Enter a value: ", end="", flush=True)
        answer = sys.stdin.readline().strip()
        if answer != "yes":
            print()
            raise _error("force-unlock cancelled", "The lock was not removed.",
                         hint="answer yes, or pass --force")
    if backend is None:
        force_unlock(path, args.lock_id)
    else:
        backend.force_unlock(args.lock_id)
    print("orch state has been successfully unlocked!\n\n"
          "The state has been unlocked, and orch commands should now be able to obtain a new lock.")
    return 0


# ---- output -----------------------------------------------------------------------------

@_command
def cmd_output(args: argparse.Namespace) -> int:
    if args.json and args.raw:
        raise _error("Invalid output format", "The --raw and --json options are mutually exclusive.")
    if args.raw and not args.name:
        raise _error("Output name required",
                     "You must give the name of a single output value when using the --raw option.")
    if args.name is not None and not args.name.strip():
        from ..engine.arguments import UNSET_HINT

        raise _error("Invalid output name", "The output name is empty.",
                     hint=UNSET_HINT + "; without NAME, orch output lists every output")
    backend = _backend(args)
    outputs = backend.read().outputs  # no file: no outputs (not an error, as in Terraform)

    if args.name is not None:
        out = outputs.get(args.name)
        if out is None:
            raise _error(f'Output "{args.name}" not found',
                         "The output value requested could not be found in the state file.",
                         hint="outputs are stored by orch apply; if you recently added it to the "
                              "configuration, apply it first")
        if args.json:
            print(json.dumps(out.value, indent=2))
        elif args.raw:
            sys.stdout.write(_raw(args.name, out.value))  # no newline: made for $(orch output --raw x)
            sys.stdout.flush()
        else:
            # A human rendering never shows a secret; --raw and --json are for programs, and print it.
            print(render_output(out, hide_sensitive=True))
            if out.sensitive:
                _print_diags([Diagnostic(WARNING, "Sensitive output value not shown",
                                         f'Output "{args.name}" is sensitive.',
                                         hint=f"orch output --raw {args.name} (strings, numbers, bools) or "
                                              f"--json {args.name} prints it")], args)
        return 0

    if args.json:
        doc = {name: {"sensitive": o.sensitive, "type": o.type if o.type is not None else type_of(o.value),
                      "value": o.value} for name, o in sorted(outputs.items())}
        print(json.dumps(doc, indent=2))
        return 0
    if not outputs:
        _print_diags([Diagnostic(WARNING, "No outputs found",
                                 "The state has no output values. Declare them with output blocks in the "
                                 "configuration and run orch apply.")], args)
        return 0
    for name, o in sorted(outputs.items()):
        print(f"{name} = {render_output(o, hide_sensitive=True)}")
    return 0


def _raw(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return value if isinstance(value, str) else json.dumps(value)
    if value is None:
        raise _error("Unsupported value for raw output",
                     f'The value of output "{name}" is null, so --raw mode cannot print it.')
    raise _error("Unsupported value for raw output",
                 f'The --raw option only supports strings, numbers and bools, but output "{name}" is '
                 f"{type_name(value)}.", hint="use --json for values of complex types")


__all__ = [
    "cmd_force_unlock",
    "cmd_output",
    "cmd_state_decrypt",
    "cmd_state_encrypt",
    "cmd_state_list",
    "cmd_state_mv",
    "cmd_state_rm",
    "cmd_state_show",
    "register",
    "state_path",
]
