"""docs/resources.md describes every resource type, argument and block of the schemas."""

from __future__ import annotations

from pathlib import Path

from orchdsl.schema import RESOURCE_TYPES, describe

DOC = (Path(__file__).resolve().parents[1] / "docs" / "resources.md").read_text()


def _names(model, seen=None):
    seen = seen if seen is not None else set()
    spec = describe(model)
    yield from spec.attributes
    for name, block in spec.blocks.items():
        yield name
        if block.model not in seen:
            seen.add(block.model)
            yield from _names(block.model, seen)


def test_every_type_and_attribute_is_documented():
    missing = []
    for rtype, model in RESOURCE_TYPES.items():
        if f"### `{rtype}`" not in DOC:
            missing.append(rtype)
        for name in _names(model):
            if f"`{name}" not in DOC:
                missing.append(f"{rtype}: {name}")
        if model.count_attribute and f"`{model.count_attribute}`" not in DOC:
            missing.append(f"{rtype}: {model.count_attribute}")
    assert not missing
