"""Shared fixtures. The HCL corpus lives outside the repository (../shared)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def in_ci() -> bool:
    """Whether this run is CI (``CI=true``; also ``1``/``yes``, any case): there nothing may skip."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """In CI a lab or pg test must run: a skip of a ``lab``- or ``pg``-marked test, whatever raised it, is a
    failure."""
    outcome = yield
    report = outcome.get_result()
    needs = next((m for m in ("lab", "pg") if item.get_closest_marker(m) is not None), None)
    if report.skipped and in_ci() and needs is not None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        what = "the lab" if needs == "lab" else "a PostgreSQL server"
        report.longrepr = f"{needs} test skipped in CI (CI=true requires {what}): {reason}"


LAB_TESTS_LOCK = "/tmp/orch-lab-tests.lock"


@contextlib.contextmanager
def lab_exclusive() -> Iterator[None]:
    """Hold the lab for one test: pytest runs two workers (pyproject's addopts), and lab tests share the lab's
    nodes (and some change the lab itself), so they run one at a time, whichever worker has them. (pytest-xdist's
    ``--dist loadgroup`` would do it, but does not group with this pytest.)"""
    with open(LAB_TESTS_LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture(autouse=True)
def _no_state_passphrase_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """A passphrase exported in a developer's shell would encrypt every test's state: tests set it themselves."""
    monkeypatch.delenv("ORCH_STATE_PASSPHRASE", raising=False)


@pytest.fixture(autouse=True)
def _one_lab_test_at_a_time(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("lab") is None:
        yield
        return
    with lab_exclusive():
        yield


def corpus_root() -> Path | None:
    env = os.environ.get("ORCH_HCL_CORPUS")
    candidates = [Path(env)] if env else []
    # ../shared/hcl-corpus next to the checkout, or next to any directory above it
    candidates.extend(p / "shared" / "hcl-corpus" for p in REPO.parents)
    for c in candidates:
        if (c / "oracle.json").is_file():
            return c
    return None


@pytest.fixture(scope="session")
def corpus() -> tuple[Path, dict]:
    """(root, oracle) of the differential corpus; a hard failure in CI when absent."""
    root = corpus_root()
    if root is None:
        if in_ci():
            pytest.fail("HCL corpus not found: set ORCH_HCL_CORPUS or provide ../shared/hcl-corpus")
        pytest.skip("HCL corpus not found (set ORCH_HCL_CORPUS)")
    return root, json.loads((root / "oracle.json").read_text())


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The conninfo of the test PostgreSQL server (tests/pgserver.py), started if needed."""
    from tests import pgserver

    try:
        return pgserver.ensure()
    except pgserver.NoServer as e:
        if in_ci():
            pytest.fail(f"no PostgreSQL server for the pg tests in CI: {e}")
        pytest.skip(f"no PostgreSQL server: {e}")


@pytest.fixture
def pg_schema(pg_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A schema of its own for one test (dropped after it), with ORCH_PG_CONN pointing at the test server."""
    import uuid

    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("ORCH_PG_CONN", pg_server)
    yield schema
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
