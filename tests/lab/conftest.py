"""The ``lab`` fixture: the local multi-node Docker lab (``orch lab up``), brought up once per session.

Where the lab cannot come up (not root, packages missing, the provider not installed), tests using the
fixture are skipped, except in CI (``CI=true``), where that is a failure with the reason.
"""

from __future__ import annotations

import json

import pytest

from ..conftest import in_ci, lab_exclusive

LAB_NODES = 3


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab: needs the local multi-node Docker lab (orch lab up)")


def lab_unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"the lab is required in CI but could not be brought up:\n{reason}", pytrace=False)
    pytest.skip(f"lab unavailable: {reason.splitlines()[0]}")


@pytest.fixture(scope="session")
def lab():
    """LabInfo of a running lab with at least 3 nodes (a bigger lab already up is kept as it is)."""
    try:
        from orch_provider_docker.lab import lab as labmod
    except ImportError as e:
        lab_unavailable(f"orch-provider-docker is not installed (pip install -e providers/docker): {e}")
    root = labmod.default_dir()
    with lab_exclusive():  # not while a lab test of the other worker changes the lab (grows it to 4 nodes...)
        n = LAB_NODES
        try:
            n = max(n, int(json.loads((root / "lab.json").read_text()).get("nodes", 0)))
        except (OSError, ValueError, AttributeError):
            pass
        try:
            return labmod.up(n, root)
        except labmod.LabError as e:
            error = e
    lab_unavailable(error.diagnostic.render())


def destroy_or_remove(lab, directory) -> None:
    """Tear a test's configuration down: `orch destroy`, and if that fails, force-remove the containers of its
    state, so that what a failed test left is never in the way of the next one."""
    import docker

    from orchdsl.cli import main
    from orchdsl.state.backends import open_backend

    backend = open_backend(directory)
    if not backend.exists() or main(["destroy", "--auto-approve", str(directory)]) == 0:
        return
    lineage = backend.read().lineage
    for n in lab.nodes:
        cli = docker.DockerClient(base_url=f"unix://{n.socket_path}")
        for c in cli.containers.list(all=True, filters={"label": f"orch.lineage={lineage}"}):
            c.remove(force=True)


def app_container(nodes, directory, address: str):
    """The app container of pod replica ``address`` of the configuration in ``directory``, on whichever of the
    lab's ``nodes`` (anything with a ``socket_path``) runs it."""
    import docker

    from orchdsl.state.backends import open_backend

    lineage = open_backend(directory).read().lineage
    labels = [f"orch.lineage={lineage}", f"orch.address={address}", "orch.role=app"]
    for n in nodes:
        cli = docker.DockerClient(base_url=f"unix://{n.socket_path}")
        for _ in range(5):  # a container listed can be gone before it is inspected (a rollout, the reconciler)
            try:
                found = cli.containers.list(filters={"label": labels})
                break
            except docker.errors.NotFound:
                continue
        else:
            found = []
        if found:
            return found[0]
    raise LookupError(address)
