"""Cluster-wide settings: the configuration's namespace, the pod and service address ranges.

Set in the root module's ``orch`` block (literals only)::

    orch {
      namespace    = "shop"             # default: derived from the configuration's directory name
      pod_cidr     = "198.19.128.0/17"  # every node gets a /24 of it for its pods
      service_cidr = "198.18.128.0/17"  # services' virtual IPs
    }

The defaults lie in 198.18.0.0/15, the range RFC 2544 reserves for benchmarking: it collides with no private
network a host is likely to use (10/8, 172.16/12, 192.168/16), and it is the only range the lab may use. Set
your own on hosts where 198.18.0.0/15 is in use. See docs/networking.md.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

SETTINGS_ARGS = ("namespace", "pod_cidr", "service_cidr")
DEFAULT_POD_CIDR = "198.19.128.0/17"
DEFAULT_SERVICE_CIDR = "198.18.128.0/17"
NODE_PREFIX = 24  # each node's pod subnet: a /24 (253 pods)
NAMESPACE_MAX = 40
_NAMESPACE_RE = re.compile(rf"[a-z](?:[a-z0-9-]{{0,{NAMESPACE_MAX - 2}}}[a-z0-9])?")


def namespace_problem(value: str) -> str | None:
    if _NAMESPACE_RE.fullmatch(value):
        return None
    return (f'namespace "{value[:80]}" is not a valid name: lower-case letters, digits and "-", starting with a '
            f"letter, at most {NAMESPACE_MAX} characters")


def namespace_from_directory(directory: str | Path) -> str:
    """The default namespace: the configuration directory's name, reduced to a valid namespace
    ("My App_2" -> "my-app-2"; "2048" -> "ns-2048")."""
    name = Path(directory).resolve().name.lower()
    name = re.sub(r"[^a-z0-9]+", "-", name).strip("-")
    if not name:
        return "default"
    if not name[0].isalpha():
        name = "ns-" + name
    return name[:NAMESPACE_MAX].rstrip("-")


def check_setting(name: str, value: str) -> tuple[str | None, str]:
    """(problem, hint) for one orch-block setting; problem None when it is valid."""
    if name == "namespace":
        return namespace_problem(value), 'write e.g. namespace = "shop"'
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as e:
        return f"{name} {value[:80]!r}: {e}", 'write a network in CIDR form, e.g. "198.19.128.0/17"'
    if net.version != 4:
        return f"{name} {value}: only IPv4 ranges are supported yet", "use an IPv4 network"
    if name == "pod_cidr" and net.prefixlen > NODE_PREFIX - 1:
        return (f"pod_cidr {value} is too small: every node takes a /{NODE_PREFIX} of it",
                f"use a /{NODE_PREFIX - 1} or larger (a /17 holds 128 nodes)")
    if name == "service_cidr" and net.prefixlen > 30:
        return f"service_cidr {value} is too small", "use a /30 or larger"
    return None, ""


def resolve(settings: dict[str, str], directory: str | Path) -> dict[str, Any]:
    """The effective settings: what the orch block says, defaults for the rest."""
    from ..state.workspace import namespace_suffix

    suffix = namespace_suffix(directory)  # a workspace runs in a namespace of its own
    base = settings.get("namespace") or namespace_from_directory(directory)
    return {"namespace": base[:NAMESPACE_MAX - len(suffix)].rstrip("-") + suffix,
            "pod_cidr": settings.get("pod_cidr") or DEFAULT_POD_CIDR,
            "service_cidr": settings.get("service_cidr") or DEFAULT_SERVICE_CIDR}
