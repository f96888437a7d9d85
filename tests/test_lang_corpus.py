"""Differential test: orch's parser accepts exactly what Go HCL accepts."""

from __future__ import annotations

import pytest

from orchdsl.lang import parse_file

pytestmark = pytest.mark.corpus


def test_verdicts_match_go_hcl(corpus):
    root, oracle = corpus
    assert len(oracle) >= 2595
    mismatches = []
    for rel, expected in sorted(oracle.items()):
        body, diags = parse_file(root / rel)
        verdict = "reject" if any(d.is_error for d in diags) else "accept"
        if verdict != expected["verdict"]:
            first = diags[0] if diags else None
            mismatches.append(f"{rel}: go={expected['verdict']} orch={verdict} "
                              f"{(first.summary, str(first.subject)) if first else ''}")
    assert not mismatches, f"{len(mismatches)} files disagree:\n" + "\n".join(mismatches[:20])


def test_rejected_files_get_located_diagnostics(corpus):
    root, oracle = corpus
    for rel, expected in oracle.items():
        if expected["verdict"] != "reject":
            continue
        _, diags = parse_file(root / rel)
        errors = [d for d in diags if d.is_error]
        assert errors, rel
        for d in errors:
            assert d.subject is not None and d.subject.start.line >= 1, (rel, d)
            # Go HCL names the first error's line; orch reports that line too.
        go_lines = {int(part.split(",")[0].split(":")[-1]) for part in expected["message"].split("tmp.hcl:")[1:]}
        ours = {d.subject.start.line for d in errors}
        assert go_lines & ours, (rel, go_lines, ours)
