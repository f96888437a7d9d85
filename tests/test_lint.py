"""ruff over the code and tests, mypy (strict) over the type-checked core: part of the fast suite."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ruff_and_mypy_are_clean():
    p = subprocess.run([str(REPO / ".ci" / "lint")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-3000:]
