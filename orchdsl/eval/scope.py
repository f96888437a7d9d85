"""Evaluation contexts: the variables and functions an expression can see.

Contexts nest: a ``for`` expression or a splat evaluates its body in a child
context that adds the iteration variables and shares everything else.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from .values import Value

if TYPE_CHECKING:
    from .functions.base import Function

# Name under which a splat binds its current element (not a valid identifier,
# so it cannot collide with user variables).
ANON = "<splat-item>"


class EvalContext:
    """Variables (name -> Value) and functions (name -> Function), with a parent chain."""

    __slots__ = ("variables", "_functions", "parent")

    def __init__(self, variables: Mapping[str, Value] | None = None,
                 functions: Mapping[str, Function] | None = None,
                 parent: EvalContext | None = None) -> None:
        self.variables: dict[str, Value] = dict(variables or {})
        self._functions = dict(functions) if functions is not None else None
        self.parent = parent

    def child(self, variables: Mapping[str, Value] | None = None) -> EvalContext:
        """A nested scope that sees everything here plus ``variables``."""
        return EvalContext(variables, None, self)

    def lookup(self, name: str) -> Value | None:
        ctx: EvalContext | None = self
        while ctx is not None:
            v = ctx.variables.get(name)
            if v is not None:
                return v
            ctx = ctx.parent
        return None

    def variable_names(self) -> Iterator[str]:
        seen: set[str] = set()
        ctx: EvalContext | None = self
        while ctx is not None:
            for n in ctx.variables:
                if n not in seen and n != ANON:
                    seen.add(n)
                    yield n
            ctx = ctx.parent

    @property
    def functions(self) -> dict[str, Function]:
        ctx: EvalContext | None = self
        while ctx is not None:
            if ctx._functions is not None:
                return ctx._functions
            ctx = ctx.parent
        return {}

    @property
    def allows_functions(self) -> bool:
        """False where no context in the chain has a function table (e.g. variable files)."""
        ctx: EvalContext | None = self
        while ctx is not None:
            if ctx._functions is not None:
                return True
            ctx = ctx.parent
        return False

    def function(self, name: str) -> Function | None:
        return self.functions.get(name)
