"""In CI (CI=true) a lab test never skips: whatever skips it, the run fails (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

pytest_plugins = ["pytester"]

SKIPPING = """
import pytest

@pytest.mark.lab
def test_needs_the_lab():
    pytest.skip("no lab here")

def test_not_a_lab_test():
    pytest.skip("may skip")
"""


def test_a_skipped_lab_test_fails_in_ci_and_only_there(pytester, monkeypatch):
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makepyfile(SKIPPING)
    for value in ("true", "True", "1"):
        monkeypatch.setenv("CI", value)
        result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
        result.assert_outcomes(failed=1, skipped=1)
        result.stdout.fnmatch_lines(["*lab test skipped in CI*no lab here*"])
    monkeypatch.delenv("CI")
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(skipped=2)
