"""``orch trust NODE``: trust a node's SSH host key (entry point group ``orch.commands``).

orch never trusts a host implicitly: an unknown host key fails the plan with its fingerprint. This
command reads the key of a node of the configuration, shows its fingerprint, and after confirmation
(``--yes``, or ``--fingerprint`` matching, or typing yes) appends it to the node's ``known_hosts``
file (default ``~/.ssh/known_hosts``).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from orchdsl.sdk import Diagnostic

if TYPE_CHECKING:
    from .transport import NodeSettings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("trust", help="trust a node's SSH host key (adds it to known_hosts)",
                       description=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    p.add_argument("node", metavar="NODE", help="name of a node resource, e.g. n1")
    p.add_argument("dir", nargs="?", default=".", help="configuration directory (default: .)")
    p.add_argument("--fingerprint", metavar="SHA256:...", help="trust only a key with this fingerprint")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--var", action="append", metavar="NAME=VALUE", help="set an input variable")
    p.add_argument("--no-color", action="store_true", default=argparse.SUPPRESS, help="no colour in output")
    p.set_defaults(func=cmd_trust)


def _fail(diag: Diagnostic, args: argparse.Namespace) -> int:
    color = sys.stderr.isatty() and not getattr(args, "no_color", False) and "NO_COLOR" not in os.environ
    print(diag.render(color=color), file=sys.stderr)
    return 1


def find_node(directory: str, name: str, var_overrides: dict[str, str] | None = None
              ) -> tuple[NodeSettings | None, Diagnostic | None]:
    """The settings of node ``name`` in the configuration, or a diagnostic."""
    from orchdsl.sdk.commands import configured_instances

    from .transport import NodeSettings

    nodes, errors = configured_instances(directory, "node", var_overrides)
    if errors:
        return None, errors[0]
    seen = []
    for addr, values in nodes.items():
        n = values.get("name") or addr.name
        seen.append(n)
        if n == name or str(addr) == name:
            return NodeSettings.from_attributes(n, values), None
    return None, Diagnostic.error("No such node", f'The configuration in {directory} has no node "{name}".',
                                  hint=f"nodes: {', '.join(sorted(seen))}" if seen else "declare a node block")


def cmd_trust(args: argparse.Namespace) -> int:
    from .transport import NodeError, fingerprint, scan_host_key, trust_host

    overrides = dict(v.split("=", 1) for v in (args.var or []) if "=" in v)
    settings, diag = find_node(args.dir, args.node, overrides)
    if settings is None:
        assert diag is not None  # find_node returns one or the other
        return _fail(diag, args)
    try:
        key = scan_host_key(settings)
    except NodeError as e:
        return _fail(Diagnostic.error(e.summary, e.detail, hint=e.hint, address=f"node.{settings.name}"), args)
    fp = fingerprint(key)
    ep = settings.endpoint()
    print(f'Node "{settings.name}" ({ep.host}:{ep.port}) presents a {key.get_name()} host key:\n  {fp}')
    if args.fingerprint:
        if args.fingerprint.strip() != fp:
            return _fail(Diagnostic.error("Fingerprint mismatch",
                                          f"The host presented {fp}, not {args.fingerprint}.",
                                          hint="do not trust this host until you know why"), args)
    elif not args.yes:
        if not sys.stdin.isatty():
            return _fail(Diagnostic.error("Confirmation needed",
                                          "Not trusting the key without confirmation.",
                                          hint=f"compare the fingerprint, then run orch trust {args.node} "
                                               f"--fingerprint {fp}"), args)
        answer = input("Trust this key? Only 'yes' will be accepted: ").strip()
        if answer != "yes":
            print("Not trusted.")
            return 1
    path = trust_host(settings, key)
    print(f"Added to {path}.")
    return 0
