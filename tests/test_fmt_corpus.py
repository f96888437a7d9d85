"""The formatter over the shared HCL corpus: idempotent, meaning-preserving, and
a no-op on files that ``terraform fmt`` already formatted."""

from __future__ import annotations

import pytest

from orchdsl.lang import parse
from orchdsl.lang.ast import shape
from orchdsl.lang.formatter import format_source
from orchdsl.lang.source import SourceFile

pytestmark = pytest.mark.corpus

# terraform-aws-modules run `terraform fmt` in their pre-commit hooks: their files are
# terraform fmt's fixed points, so they must be ours too.
FMT_CLEAN_PREFIX = "terraform-aws-modules/"


def test_fmt_is_idempotent_and_preserves_meaning(corpus):
    root, oracle = corpus
    accepted = sorted(rel for rel, v in oracle.items() if v["verdict"] == "accept")
    assert len(accepted) >= 2580
    failures: list[str] = []
    for rel in accepted:
        text = SourceFile.from_bytes(rel, (root / rel).read_bytes()).text
        body, _ = parse(text, rel)
        try:
            once = format_source(text, rel)
        except Exception as e:  # noqa: BLE001 - reported with the file name
            failures.append(f"{rel}: fmt raised {e!r:.200}")
            continue
        body2, diags2 = parse(once, rel)
        errors = [d for d in diags2 if d.is_error]
        if errors:
            failures.append(f"{rel}: formatted output does not parse: {errors[0].summary} at {errors[0].subject}")
            continue
        if shape(body2) != shape(body):
            failures.append(f"{rel}: formatting changed the meaning (syntax tree shape differs)")
            continue
        if format_source(once, rel) != once:
            failures.append(f"{rel}: not idempotent: fmt(fmt(x)) != fmt(x)")
            continue
        if rel.startswith(FMT_CLEAN_PREFIX) and once != text:
            failures.append(f"{rel}: changes a file that terraform fmt leaves as is")
    assert not failures, f"{len(failures)} of {len(accepted)} files fail:\n" + "\n".join(failures[:20])
