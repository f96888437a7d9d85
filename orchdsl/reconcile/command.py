"""``orch reconcile DIR`` on the command line: flags in, the loop (:mod:`.loop`) run, lines out."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import Any

from ..diagnostics import Diagnostic
from .loop import Event, Reconciler, Settings


def add_parser(sub: Any) -> None:
    r = sub.add_parser("reconcile", help="keep what was applied running: heal, reschedule, autoscale")
    r.add_argument("dir", nargs="?", default=".", help="configuration directory (default: .)")
    mode = r.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="one cycle, then exit (the default)")
    mode.add_argument("--watch", action="store_true", help="cycle until SIGTERM or SIGINT")
    r.add_argument("--interval", default="5s", metavar="DURATION", help="time between cycles (default 5s)")
    r.add_argument("--lost-after", default="5m", metavar="DURATION",
                   help="a node unreachable this long is lost: its replicas move (default 5m)")
    r.add_argument("--parallelism", type=int, default=10, metavar="N", help="changes at once (default 10)")
    r.add_argument("--json", action="store_true", help="one JSON object per line")
    r.add_argument("--var", action="append", metavar="NAME=VALUE", help="set an input variable")
    r.add_argument("--var-file", action="append", metavar="FILE", help="load variable values from a file")
    r.add_argument("--state", metavar="PATH", help="state file (default: DIR/orch.orchstate)")
    r.set_defaults(func=cmd_reconcile)


def _durations(args: argparse.Namespace) -> tuple[dict[str, float], list[Diagnostic]]:
    from ..state.duration import parse_duration

    out: dict[str, float] = {}
    diags = []
    for flag, value in (("--interval", args.interval), ("--lost-after", args.lost_after)):
        try:
            out[flag] = parse_duration(value)
        except ValueError as e:
            diags.append(Diagnostic.error(f"Invalid {flag}", str(e), hint="e.g. 5s, 2m or 1m30s"))
    if not diags and out["--interval"] <= 0:
        diags.append(Diagnostic.error("Invalid --interval", "the interval must be more than 0s",
                                      hint="e.g. --interval 5s"))
    return out, diags


def cmd_reconcile(args: argparse.Namespace) -> int:
    from ..cli import _print_diags, _var_overrides
    from ..engine.arguments import check_parallelism
    from ..redact import current

    durations, diags = _durations(args)
    overrides, vdiags = _var_overrides(args)
    diags += vdiags + check_parallelism(args.parallelism)
    if diags:
        _print_diags(diags, False)
        return 1
    lock = threading.Lock()

    def emit(ev: Event) -> None:
        line = ev.to_json() if args.json else ev.text()
        with lock:
            sys.stdout.write(current().redact(line) + "\n")
            sys.stdout.flush()

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # finish the step in flight (a change being made is finished and recorded), then exit 0
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)} \
        if threading.current_thread() is threading.main_thread() else {}
    try:
        rec = Reconciler(args.dir, Settings(durations["--interval"], durations["--lost-after"], args.parallelism),
                         emit, stop, overrides, args.var_file or [], args.state)
        code = rec.run(once=not args.watch)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if stop.is_set():
        emit(Event("stopped", "reconcile", "on request"))
        return 0
    return code


__all__ = ["add_parser", "cmd_reconcile"]
