"""``orch explain``: may one pod reach another, and why -- asked of the configuration, no host needed.

    orch explain [DIR] --from pod.api --to pod.db --port 5432/tcp

answers from the network policies and pod labels of the configuration (every replica of the two pods; the
addresses of the pods, which ``cidr`` peers match, from the state when there is one), with
the rules that decide, and exits 0 when the connection is allowed, 1 when it is denied (for every replica
pair, or for some: "partial"), 2 when the question or the configuration is wrong — usable in CI as a policy
test. ``--from``/``--to`` name a pod resource (``pod.web``), one replica (``pod.web[1]``), or an address
outside the cluster (``198.18.0.1``).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
from typing import Any

from .addrs import ResourceAddress
from .diagnostics import Diagnostic

_PORT = re.compile(r"^(\d{1,5})(?:/(tcp|udp))?$")


def add_parser(sub: Any) -> None:
    ex = sub.add_parser("explain", help="may one pod reach another (network policies), and why")
    ex.add_argument("dir", nargs="?", default=".", help="configuration directory (default: .)")
    ex.add_argument("--from", dest="src", metavar="POD|IP", help="pod.NAME, pod.NAME[i] or an IP (required)")
    ex.add_argument("--to", dest="dst", metavar="POD|IP", help="pod.NAME, pod.NAME[i] or an IP (required)")
    ex.add_argument("--port", metavar="PORT[/PROTO]", help="destination port, e.g. 5432/tcp (required)")
    ex.add_argument("--json", action="store_true", help="machine-readable answer")
    ex.add_argument("--var", action="append", metavar="NAME=VALUE", help="set an input variable")
    ex.add_argument("--var-file", action="append", metavar="FILE", help="load variable values from a file")
    ex.set_defaults(func=cmd_explain)


def _endpoints(text: str, pods: list[Any]) -> tuple[list[Any], str | None]:
    """The replicas (or the address) a --from/--to names; an error text when it names nothing."""
    try:
        ipaddress.IPv4Address(text)
        return [text], None
    except ValueError:
        pass
    try:
        addr = ResourceAddress.parse(text)
    except ValueError as e:
        return [], f'"{text}" is neither a pod address nor an IPv4 address ({e})'
    if addr.type != "pod":
        return [], f'"{text}" is not a pod (write pod.NAME or pod.NAME[i])'
    exact = [p for p in pods if p.address == text]
    if exact:
        return exact, None
    group = [p for p in pods if p.group == text]
    if group:
        return group, None
    known = sorted({p.group for p in pods})
    return [], f'no pod "{text}" in the configuration' + (f" (pods: {', '.join(known)})" if known else "")


def cmd_explain(args: argparse.Namespace) -> int:
    from .cli import _print_diags, _var_overrides
    from .cluster import policy as P
    from .config import load_config
    from .config.evaluate import static_instances

    overrides, diags = _var_overrides(args)
    missing = [flag for flag, v in (("--from", args.src), ("--to", args.dst), ("--port", args.port)) if not v]
    if missing:
        _print_diags([Diagnostic.error("Missing arguments", f"orch explain needs {', '.join(missing)}.",
                                       hint="orch explain --from pod.api --to pod.db --port 5432/tcp DIR")], False)
        return 2
    m = _PORT.match(args.port.strip())
    if m is None or not 1 <= int(m.group(1)) <= 65535:
        diags.append(Diagnostic.error("Invalid port", f'"{args.port}" is not a port.',
                                      hint="write PORT or PORT/PROTO, e.g. 5432/tcp or 53/udp"))
    config = None
    if not any(d.is_error for d in diags):
        config, cdiags = load_config(args.dir, overrides, args.var_file or [], unset_required_unknown=True)
        diags.extend(cdiags)
    if config is None or any(d.is_error for d in diags) or m is None:
        _print_diags(diags, False)
        return 2
    values, vdiags = static_instances(config, frozenset({"pod", "network_policy"}))
    if any(d.is_error for d in vdiags):
        _print_diags(vdiags, False)
        return 2
    pod_values = {a: dict(v) for a, v in values.items() if a.type == "pod"}
    for a, ip in _recorded_ips(args.dir).items():  # what cidr peers match: the addresses pods have now
        if a in pod_values:
            pod_values[a]["ip"] = ip
    pods = P.pods_from_values(pod_values)
    from .engine.planner import cluster_settings

    policies = P.policies_from_values({a: v for a, v in values.items() if a.type == "network_policy"},
                                      cluster_settings(config)["namespace"])
    srcs, err_src = _endpoints(args.src, pods)
    dsts, err_dst = _endpoints(args.dst, pods)
    errors = [Diagnostic.error("Nothing to explain", e, hint="name a pod of the configuration or an address")
              for e in (err_src, err_dst) if e]
    if errors:
        _print_diags(errors, False)
        return 2
    port, proto = int(m.group(1)), m.group(2) or "tcp"
    answers = []
    for s in srcs:
        for d in dsts:
            if s is d:
                continue  # a pod to itself is loopback: never filtered
            answers.append((s, d, P.decide(s, d, proto, port, policies, pods)))
    allowed = [a for a in answers if a[2].allowed]
    verdict = "allowed" if answers and len(allowed) == len(answers) else \
        "denied" if not allowed else "partial"
    if args.json:
        print(json.dumps({"from": args.src, "to": args.dst, "port": port, "protocol": proto, "verdict": verdict,
                          "pairs": [{"from": _name(s), "to": _name(d), "allowed": dec.allowed,
                                     "reasons": list(dec.reasons)} for s, d, dec in answers]}, indent=2))
    else:
        print(f"{args.src} -> {args.dst} on {port}/{proto}: {verdict.upper()}")
        shown: set[tuple[str, ...]] = set()
        for s, d, dec in answers:
            key = (str(dec.allowed),) + tuple(dec.reasons)
            if key in shown:
                continue  # replicas decided alike: once
            shown.add(key)
            print(f"  {_name(s)} -> {_name(d)}: {'allowed' if dec.allowed else 'denied'}")
            for r in dec.reasons:
                print(f"    - {r}")
    return 0 if verdict == "allowed" else 1


def _recorded_ips(directory: str) -> dict[ResourceAddress, str]:
    """The pods' addresses the state records, if there is a state (read only, no lock: a question, not a
    change); an unreadable state is as none."""
    from .state.backends import open_backend

    try:
        backend = open_backend(directory)
        if not backend.exists():
            return {}
        state = backend.read()
    except Exception:  # noqa: BLE001 - explain answers from the configuration alone then
        return {}
    return {i.addr: i.attributes["ip"] for i in state if i.type == "pod" and isinstance(i.attributes.get("ip"), str)}


def _name(x: Any) -> str:
    return x if isinstance(x, str) else str(x.address)
