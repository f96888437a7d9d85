"""``orch lab up|status|down``: the local multi-node lab (entry point group ``orch.commands``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # .lab is imported by the commands that use it: the CLI starts fast
    from .lab import LabError, Log

_DESCRIPTION = """\
A local multi-node lab: N Docker hosts on this machine, each a network namespace with its own dockerd and
sshd, on the bridge orchlab0 (198.18.0.0/24; node nI at 198.18.0.(10+I)), pod networks in 198.19.0.0/16.
`up` writes DIR/nodes.orch (the nodes as orch configuration) and DIR/known_hosts. Needs root."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("lab", help="a local multi-node Docker lab (network namespaces on this machine)",
                       description=_DESCRIPTION)
    lsub = p.add_subparsers(dest="lab_command", metavar="COMMAND")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--dir", metavar="DIR",
                       help="the lab's state directory (default: $ORCH_LAB_DIR or /tmp/orch-lab)")
        q.add_argument("--no-color", action="store_true", default=argparse.SUPPRESS,
                       help="no colour in output")

    u = lsub.add_parser("up", help="build or repair the lab (idempotent)",
                        description="Build or repair nodes n1..nN; nodes above N are torn down.")
    u.add_argument("--nodes", "-n", type=int, default=3, metavar="N",
                   help="number of nodes, 1..15 (default 3)")
    u.add_argument("--install", action="store_true",
                   help="apt-get install missing packages (also: ORCH_LAB_INSTALL=1)")
    u.add_argument("--quiet", "-q", action="store_true", help="print only the result")
    common(u)
    u.set_defaults(func=cmd_up)

    s = lsub.add_parser("status", help="show the lab's nodes; exit 1 if it is not healthy")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    common(s)
    s.set_defaults(func=cmd_status)

    d = lsub.add_parser("down", help="stop the lab's processes and remove its network")
    d.add_argument("--purge", action="store_true", help="also delete the lab directory (keys, images)")
    common(d)
    d.set_defaults(func=cmd_down)

    def no_command(_args: argparse.Namespace) -> int:
        p.print_help()
        return 1

    p.set_defaults(func=no_command)


def _color(args: argparse.Namespace) -> bool:
    return sys.stderr.isatty() and not getattr(args, "no_color", False) and "NO_COLOR" not in os.environ


def _fail(e: LabError, args: argparse.Namespace) -> int:
    print(e.diagnostic.render(color=_color(args)), file=sys.stderr)
    return 1


def _log(quiet: bool) -> Log | None:
    if quiet:
        return None
    return lambda msg: print(f"[lab] {msg}", file=sys.stderr, flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    from .lab import LabError, up

    try:
        info = up(args.nodes, args.dir, install=args.install, log=_log(args.quiet))
    except LabError as e:
        return _fail(e, args)
    state = f"{len(info.changes)} change(s)" if info.changes else "already up, nothing changed"
    print(f"Lab up: {len(info.nodes)} node(s) in {info.seconds:.1f} s ({state}).")
    for n in info.nodes:
        print(f"  {n.name}  {n.address}  (engine on this machine: {n.docker_host})")
    print(f"Nodes file:    {info.nodes_file}")
    print(f"known_hosts:   {info.known_hosts}")
    print(f"Identity file: {info.identity_file}")
    print(f"Try: ssh -i {info.identity_file} -o UserKnownHostsFile={info.known_hosts} "
          f"root@{info.nodes[0].address} docker ps")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .lab import BRIDGE, LabError, status

    try:
        st = status(args.dir)
    except LabError as e:
        return _fail(e, args)
    if args.json:
        print(json.dumps(st.to_json(), indent=2))
        return 0 if st.healthy else 1
    print(f"Lab {st.dir}: {st.node_count or 'no'} node(s) recorded; bridge {BRIDGE} "
          f"{'present' if st.bridge else 'missing'}")
    if st.nodes:
        def proc(pid: int | None, alive: bool) -> str:
            return "down" if pid is None else f"{pid} {'ok' if alive else 'not answering'}"

        rows = [("node", "address", "netns", "dockerd", "sshd", "containers", "image", "")]
        for s in st.nodes:
            rows.append((s.name, s.address, "yes" if s.netns else "no", proc(s.dockerd_pid, s.dockerd_alive),
                         proc(s.sshd_pid, s.sshd_alive), "-" if s.containers is None else str(s.containers),
                         "yes" if s.image else "no",
                         ("ok" if s.healthy else "UNHEALTHY") if s.expected else "extra (above N)"))
        widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    if st.healthy:
        print("Healthy.")
        return 0
    print("Not healthy: run `orch lab up` to build or repair it.", file=sys.stderr)
    return 1


def cmd_down(args: argparse.Namespace) -> int:
    from .lab import LabError, down

    try:
        changes = down(args.dir, purge=args.purge, log=_log(False))
    except LabError as e:
        return _fail(e, args)
    print("Lab down." if changes else "Lab down (nothing was running).")
    return 0
