"""orch's provider SDK: the one surface a provider imports (``from orchdsl.sdk import ...``).

* the protocol (:mod:`orchdsl.sdk.protocol`, ``SDK_VERSION``) and its data types;
* value helpers (:mod:`orchdsl.sdk.values`): ``UNKNOWN``, paths, "compare only what the user configured";
* addresses and diagnostics (``ResourceAddress``, ``Diagnostic``);
* the resource model's contract with providers (:mod:`orchdsl.sdk.model`: node names, the implicit node, which
  nodes get a pod network);
* a testing kit (:mod:`orchdsl.sdk.testing`): an in-process provider and a conformance suite.

Anything else in ``orchdsl`` is internal and may change without notice; a test keeps the Docker provider
honest about it.
"""

from ..addrs import ConfigAddress, ResourceAddress
from ..diagnostics import Diagnostic
from .model import IMPLICIT_NODE, has_shell, node_name
from .protocol import (SDK_VERSION, ApplyRequest, ApplyResult, ChangeView, Facts, MemberStatus, ObjectStatus,
                       PlannedObject, Progress, Provider, RefreshResult, ResourceTypeInfo, StateObject, Usage,
                       World)
from .values import (UNKNOWN, Path, configured_changes, contains_unknown, get_path, is_unknown,
                     merge_configured, prune_nulls, set_path, strip_unknown)

__all__ = [
    "IMPLICIT_NODE", "SDK_VERSION", "UNKNOWN", "ApplyRequest", "ApplyResult", "ChangeView", "ConfigAddress",
    "Diagnostic", "Facts", "MemberStatus", "ObjectStatus", "Path", "PlannedObject", "Progress", "Provider",
    "RefreshResult", "ResourceAddress", "ResourceTypeInfo", "StateObject", "Usage", "World", "configured_changes",
    "contains_unknown", "get_path", "has_shell", "is_unknown", "merge_configured", "node_name", "prune_nulls",
    "set_path", "strip_unknown",
]
