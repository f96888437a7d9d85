"""The SDK's conformance suite on the SDK's own in-process provider (the Docker provider runs it too)."""

from __future__ import annotations

from orchdsl.sdk import ResourceAddress
from orchdsl.sdk.testing import MemoryProvider, Sample, check_provider

POD = {"name": "web-0", "node": "n1", "restart": "always",
       "container": [{"name": "httpd", "image": "orch/busybox:test", "resources": {"memory": 64 << 20}}]}


def test_the_memory_provider_conforms(tmp_path):
    resized = {**POD, "container": [{**POD["container"][0], "resources": {"memory": 128 << 20}}]}
    failures = check_provider(lambda: MemoryProvider(tmp_path / "world"), [
        Sample(ResourceAddress("node", "n1"), {"name": "n1", "address": "198.18.0.11"}),
        Sample(ResourceAddress("pod", "web", 0), POD, update=resized),
    ])
    assert not failures, "\n".join(failures)


def test_the_suite_catches_a_provider_that_forgets_what_it_made(tmp_path):
    class Forgetful(MemoryProvider):
        def refresh(self, prior):
            out = super().refresh(prior)
            for a in list(out.current):
                out.current[a] = None
            return out

    failures = check_provider(lambda: Forgetful(tmp_path / "world"), [Sample(ResourceAddress("pod", "web", 0), POD)])
    assert any("says the object just created is gone" in f for f in failures)
