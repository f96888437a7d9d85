"""Invalid configurations: each fixture directory states the diagnostics it must produce.

``tests/fixtures/config/invalid/<case>/main.orch`` starts with lines::

    # expect: SUMMARY @ FILE:LINE:COL ~ HINT TEXT

and loading the directory must give exactly those errors (in any order),
each at that place with a hint containing the text.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchdsl.config import load_config

CASES = Path(__file__).parent / "fixtures" / "config" / "invalid"
_EXPECT = re.compile(r"^# expect: (?P<summary>.+?) @ (?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+) ~ (?P<hint>.+)$")


def _expectations(case: Path) -> list[dict]:
    out = []
    for line in (case / "main.orch").read_text().splitlines():
        m = _EXPECT.match(line)
        if m:
            out.append(m.groupdict())
    assert out, f"{case.name}: no '# expect:' line"
    return out


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_invalid_configuration(case):
    directory = CASES / case
    _, diags = load_config(directory, env={})
    errors = [d for d in diags if d.is_error]
    got = [(d.summary, Path(d.subject.filename).name if d.subject else None,
            d.subject.start.line if d.subject else None, d.subject.start.column if d.subject else None, d.hint)
           for d in errors]
    expected = _expectations(directory)
    assert len(errors) == len(expected), "\n\n".join(d.render() for d in errors)
    for e in expected:
        match = [g for g in got if g[0] == e["summary"] and g[1] == e["file"] and g[2] == int(e["line"])
                 and g[3] == int(e["col"])]
        assert match, f"expected {e} in:\n" + "\n\n".join(d.render() for d in errors)
        assert e["hint"] in match[0][4], f"hint {match[0][4]!r} lacks {e['hint']!r}"
