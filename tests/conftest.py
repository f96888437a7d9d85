"""Shared fixtures. The HCL corpus lives outside the repository (../shared)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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
        if os.environ.get("CI") == "true":
            pytest.fail("HCL corpus not found: set ORCH_HCL_CORPUS or provide ../shared/hcl-corpus")
        pytest.skip("HCL corpus not found (set ORCH_HCL_CORPUS)")
    return root, json.loads((root / "oracle.json").read_text())
