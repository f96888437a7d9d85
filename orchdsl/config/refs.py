"""References in expressions: which named values an expression uses.

``references(expr)`` yields every ``ScopeTraversal`` that refers to a named
value (``var.x``, ``pod.web[0].ip``, ``module.app.url``), skipping names
bound by ``for`` expressions, together with the traversal steps that follow
it even where the syntax tree splits them (``pod.web[count.index].ip`` is an
``Index`` inside a ``RelativeTraversal``). ``classify`` names what a
reference points at.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..addrs import ConfigAddress, ModulePath
from ..lang import ast as A

DYNAMIC_KEY: Any = object()  # an index whose key is an expression: pod.web[count.index]


@dataclass(frozen=True)
class Step:
    kind: str  # "attr", "index" or "splat"
    value: Any  # attribute name, literal key (or DYNAMIC_KEY), None for a splat
    node: A.Node


def _steps(steps: list) -> list[Step]:
    return [Step("attr", s.name, s) if type(s) is A.GetAttr else Step("index", s.key, s) for s in steps]


def references(node: A.Node | None, bound: frozenset[str] = frozenset()) -> Iterator[tuple[A.Node, list[Step]]]:
    """(traversal, all its steps) for each reference in ``node``."""
    if node is None:
        return
    t = type(node)
    if t is A.ScopeTraversal:
        if node.name not in bound:
            yield node, _steps(node.steps)
        return
    if t is A.RelativeTraversal and type(node.source) is A.Index \
            and type(node.source.collection) is A.ScopeTraversal:
        idx = node.source
        trav = idx.collection
        if trav.name not in bound:
            yield trav, _steps(trav.steps) + [Step("index", DYNAMIC_KEY, idx.key)] + _steps(node.steps)
        yield from references(idx.key, bound)
        return
    if t is A.Index and type(node.collection) is A.ScopeTraversal:
        trav = node.collection
        if trav.name not in bound:
            yield trav, _steps(trav.steps) + [Step("index", DYNAMIC_KEY, node.key)]
        yield from references(node.key, bound)
        return
    if t is A.Splat and type(node.source) is A.ScopeTraversal:
        trav = node.source
        if trav.name not in bound:
            extra = [Step("splat", None, node)]
            each = node.each
            if type(each) is A.RelativeTraversal and type(each.source) is A.AnonSymbol:
                extra += _steps(each.steps)
            yield trav, _steps(trav.steps) + extra
        yield from references(node.each, bound)
        return
    if t is A.ObjectKey:
        inner = node.wrapped
        if not node.force_non_literal and type(inner) is A.ScopeTraversal and not inner.steps:
            return  # a bare name as an object key is a literal string: { app = "web" }
        yield from references(inner, bound)
        return
    if t is A.For:
        yield from references(node.coll, bound)
        inner = bound | {n for n in (node.key_var, node.val_var) if n is not None}
        for e in (node.key_expr, node.val_expr, node.cond):
            yield from references(e, inner)
        return
    for c in node.children():
        yield from references(c, bound)


@dataclass(frozen=True)
class Ref:
    """What a reference points at."""

    kind: str  # var, local, module, resource, count, each, path, self, unknown
    name: str  # the variable/local/module name, or the attribute of count/each/path
    node: A.Node  # the traversal
    steps: tuple[Step, ...]  # steps after the part that names the object
    end: int  # end offset of the part that names the object (for diagnostics)
    address: ConfigAddress | None = None  # resources

    @property
    def first_attr(self) -> str | None:
        """The attribute read right after the object (``module.app.<this>``), if any."""
        if self.steps and self.steps[0].kind == "attr":
            return self.steps[0].value
        return None


def classify(trav: A.Node, steps: list[Step], module: ModulePath, resource_types: set[str]) -> Ref | None:
    """The object a traversal names; None when the root name is not a reference at all (error)."""
    name = trav.name
    first = steps[0] if steps else None
    if name in ("var", "local", "module", "count", "each", "path"):
        if first is None or first.kind != "attr":
            return Ref(name, "", trav, tuple(steps), trav.end if first is None else first.node.start)
        return Ref(name, first.value, trav, tuple(steps[1:]), first.node.end)
    if name == "self":
        return Ref("self", "", trav, tuple(steps), trav.start + 4)
    if name in resource_types:
        if first is None or first.kind != "attr":
            return Ref("resource", "", trav, tuple(steps), trav.end if first is None else first.node.start)
        return Ref("resource", first.value, trav, tuple(steps[1:]), first.node.end,
                   ConfigAddress(name, first.value, module))
    return Ref("unknown", name, trav, tuple(steps), trav.start + len(name))
