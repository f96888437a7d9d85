"""The Docker provider passes the SDK's conformance suite (here on fake engines; on the lab in tests/lab)."""

from __future__ import annotations

from orch_provider_docker.provider import DockerProvider

from orchdsl.sdk import ResourceAddress
from orchdsl.sdk.testing import Sample, check_provider

from docker_fakes import FakeCluster

NODE = ResourceAddress("node", "n1")
POD = {"name": "web-0", "node": "n1", "restart": "always",
       "container": [{"name": "httpd", "image": "orch/busybox:test", "pull": "never", "init": True,
                      "command": ["httpd", "-f", "-p", "8080", "-h", "/"],
                      "resources": {"memory": 64 << 20}}]}


def samples(address: str) -> list[Sample]:
    node = {"name": "n1", "address": address}
    resized = {**POD, "container": [{**POD["container"][0], "resources": {"memory": 128 << 20}}]}
    return [Sample(NODE, node, world={NODE: node}, external=True),  # orch does not own the host
            Sample(ResourceAddress("pod", "web", 0), POD, update=resized, world={NODE: node})]


def test_the_docker_provider_conforms_on_fake_engines():
    cluster = FakeCluster("n1")
    failures = check_provider(lambda: DockerProvider(connect=cluster.connect), samples("198.18.0.11"))
    assert not failures, "\n".join(failures)
