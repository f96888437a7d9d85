"""An in-process provider whose messages quote the values it was given, as real providers' errors often do
(``docker: invalid env "PASSWORD=..."``): the core must scrub the sensitive ones before showing them."""

from __future__ import annotations

import json
import os

from orchdsl.diagnostics import Diagnostic
from orchdsl.sdk.protocol import ApplyRequest, ApplyResult
from orchdsl.sdk.testing.memory import MemoryProvider


class LeakyProvider(MemoryProvider):
    def create(self, request: ApplyRequest) -> ApplyResult:
        env = {k: v for c in (request.planned or {}).get("container", []) for k, v in (c.get("env") or {}).items()}
        if request.progress is not None:
            request.progress(f"starting with env {json.dumps(env)}")
        if os.environ.get("ORCH_LEAKY_FAIL"):
            return ApplyResult(None, [Diagnostic.error(
                "Container refused", f"the engine rejected env {env!r}: PASSWORD={env.get('PASSWORD')}",
                address=str(request.address))])
        return super().create(request)
