"""Names and labels of the containers orch makes.

Containers are *found* by their labels, never by their names: refresh lists a
node's containers filtered by ``orch.lineage`` and reads ``orch.address`` and
``orch.role`` from each. Names are for people reading ``docker ps`` and for
Docker's own uniqueness check (two applies racing for one pod collide on the
name instead of making two pods).

Every value here goes to the Docker Engine API as JSON, never through a shell,
so a label or name holding ``$(...)``, quotes or newlines is harmless; names are
still reduced to Docker's alphabet ``[a-zA-Z0-9][a-zA-Z0-9_.-]*``.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from orchdsl.sdk import ResourceAddress

LINEAGE = "orch.lineage"  # the state's lineage: which state made the container
ADDRESS = "orch.address"  # the resource instance, e.g. pod.web[0]
ROLE = "orch.role"  # "infra" (holds the pod's namespaces) or "app" (one per container block)
CONTAINER = "orch.container"  # the container block's name, on app containers
CONFIG_HASH = "orch.config-hash"  # hash of the attributes that cannot change in place
NODE = "orch.node"  # the node resource the pod was placed on
SPEC = "orch.spec"  # on the infra container: the pod's attributes as created (JSON), for adoption
NAMESPACE = "orch.namespace"  # the configuration's namespace (two configurations can share nodes)

ROLE_INFRA = "infra"
ROLE_APP = "app"

RESERVED_PREFIX = "orch."

_BAD = re.compile(r"[^a-zA-Z0-9_.-]+")
_MAX = 200  # Docker accepts longer names; keep room for the suffixes


def _short_hash(text: str, n: int = 6) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def clean(part: str) -> str:
    """``part`` in Docker's name alphabet (unsafe runs become ``_``)."""
    out = _BAD.sub("_", part).strip("_.-")
    return out or "x"


def base_name(address: ResourceAddress, instance_name: str | None = None) -> str:
    """The stem of a pod instance's container names: ``web-0`` for ``pod.web[0]``.

    Instances inside modules, or whose names needed cleaning (``for_each`` keys
    with spaces...), get a short hash of the full address so that two
    addresses never share a stem.
    """
    raw = instance_name or _instance_name(address)
    stem = clean(raw)
    module = [clean(step.name) + (f"_{clean(str(step.key))}" if step.key is not None else "")
              for step in address.module] if getattr(address, "module", None) else []
    if module or stem != raw:
        stem = ".".join(module + [stem]) + "-" + _short_hash(str(address))
    if not stem[0].isalnum():
        stem = "o" + stem
    return stem[:_MAX]


def _instance_name(address: ResourceAddress) -> str:
    return address.name if address.key is None else f"{address.name}-{address.key}"


def in_namespace(base: str, namespace: str) -> str:
    """``shop_web-0``: the stem of a pod's container names within its configuration's namespace, so that two
    configurations with a pod.web each can run on one node."""
    return f"{namespace}_{base}"[:_MAX] if namespace else base


def volume_name(name: str, namespace: str) -> str:
    """The Docker volume of a ``volume`` block (by its name) within the configuration's namespace."""
    return in_namespace(f"vol-{clean(name)}", namespace)


VOLUME = "orch.volume"  # on Docker volumes of volume blocks: the block instance's name


def infra_name(base: str) -> str:
    return f"{base}-infra"


def app_name(base: str, container: str) -> str:
    return f"{base}-{clean(container)}"


def temporary(name: str, token: str) -> str:
    """A name for the new containers of a create-before-destroy replacement."""
    return f"{name}-next-{token}"


def lineage_filter(lineage: str) -> str:
    """The value of a ``label`` filter matching every container of one state."""
    return f"{LINEAGE}={lineage}"


def reserved_labels(labels: dict[str, Any]) -> list[str]:
    return sorted(k for k in labels if str(k).startswith(RESERVED_PREFIX))
