"""Function definitions: parameters, argument checking, the registry.

A function is declared with its signature as a string, which serves both as
its documentation and as its parameter spec::

    @register("string", "upper(str: string) -> string", "Converts letters to uppercase.")
    def upper(s: Value) -> Value: ...

Signature mini-language: ``name(p: type, ...rest: type) -> type`` with
types ``string number bool any list(T) set(T) map(T)``. Flags after a
parameter's type: ``[null]`` accepts null arguments, ``[unknown]`` passes
unknown (or partly unknown) arguments to the implementation instead of
short-circuiting to an unknown result, ``[marked]`` passes sensitive marks.

``Function.call`` applies cty's calling convention: arity check, conversion
of each argument to its parameter type, null check, unknown short-circuit,
and sensitive marks carried from arguments to the result. Implementations
receive converted, known (unless ``[unknown]``), unmarked Values, and raise
``FunctionError`` (the call failed) or ``ArgError`` (a given argument is bad).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..convert import ConversionError, convert
from ..types import BOOL, DYNAMIC, NUMBER, STRING, ListType, MapType, SetType, Type
from ..values import UNKNOWN, Value


class FunctionError(Exception):
    """The call failed as a whole ("Error in function call")."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ArgError(FunctionError):
    """Argument ``index`` (position in the call) is invalid ("Invalid function argument")."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


class ArityError(FunctionError):
    """Too many or too few arguments; ``missing`` names the first missing parameter."""

    def __init__(self, message: str, summary: str, missing: str | None = None) -> None:
        super().__init__(message)
        self.summary = summary
        self.missing = missing


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: Type = DYNAMIC
    allow_null: bool = False
    allow_unknown: bool = False
    allow_marked: bool = False


@dataclass(slots=True)
class Function:
    name: str
    params: tuple[Param, ...]
    variadic: Param | None
    impl: Callable[..., Value]
    returns: Type
    signature: str
    doc: str
    category: str
    # try() and can() receive their arguments unevaluated; the evaluator runs them.
    lazy: bool = False
    extra: dict = field(default_factory=dict)

    def param_for(self, index: int) -> Param:
        if index < len(self.params):
            return self.params[index]
        assert self.variadic is not None
        return self.variadic

    def call(self, args: list[Value]) -> Value:
        """Run the function on evaluated arguments; raises FunctionError and subclasses."""
        n, np = len(args), len(self.params)
        if n < np:
            missing = self.params[n].name
            raise ArityError(f'Function "{self.name}" expects {np} argument(s). Missing value for "{missing}".',
                             "Not enough function arguments", missing)
        if n > np and self.variadic is None:
            raise ArityError(f'Function "{self.name}" expects only {np} argument(s).',
                             "Too many function arguments")
        sensitive = False
        unknown_result = False
        ready: list[Value] = []
        for i, a in enumerate(args):
            p = self.param_for(i)
            if not p.allow_marked and a.is_deeply_sensitive:
                sensitive = True
                a = a.unmark_deep()
            if a.raw is None and not p.allow_null:
                raise ArgError(i, "argument must not be null")
            try:
                a = convert(a, p.type)
            except ConversionError as e:
                raise ArgError(i, str(e)) from None
            if not p.allow_unknown and not a.is_wholly_known:
                unknown_result = True
            ready.append(a)
        if unknown_result:
            return Value(self.returns, UNKNOWN, sensitive)
        result = self.impl(*ready)
        return result.mark(sensitive)


# ---- the registry ------------------------------------------------------------------

REGISTRY: dict[str, Function] = {}

_SIG = re.compile(r"^(?P<name>[\w:]+)\((?P<params>.*)\)\s*->\s*(?P<ret>.+)$")
_PARAM = re.compile(r"^(?P<dots>\.\.\.)?(?P<name>\w+)\s*:\s*(?P<type>[\w()]+)\s*(?P<flags>(?:\[\w+\]\s*)*)$")


def parse_type(text: str) -> Type:
    """The tiny type language of signatures."""
    text = text.strip()
    simple = {"string": STRING, "number": NUMBER, "bool": BOOL, "any": DYNAMIC}
    if text in simple:
        return simple[text]
    for prefix, ctor in (("list(", ListType), ("set(", SetType), ("map(", MapType)):
        if text.startswith(prefix) and text.endswith(")"):
            return ctor(parse_type(text[len(prefix):-1]))
    # Anything else documents a structure the implementation checks itself.
    return DYNAMIC


def _split_params(text: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for c in text:
        if c == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += (c == "(") - (c == ")")
        cur += c
    if cur.strip():
        out.append(cur)
    return [p.strip() for p in out]


def make_function(category: str, signature: str, doc: str, impl: Callable[..., Value],
                  lazy: bool = False) -> Function:
    m = _SIG.match(signature)
    if not m:
        raise ValueError(f"bad signature {signature!r}")
    params: list[Param] = []
    variadic = None
    for ptext in _split_params(m["params"]):
        pm = _PARAM.match(ptext)
        if not pm:
            raise ValueError(f"bad parameter {ptext!r} in {signature!r}")
        flags = set(re.findall(r"\[(\w+)\]", pm["flags"]))
        p = Param(pm["name"], parse_type(pm["type"]), "null" in flags, "unknown" in flags, "marked" in flags)
        if pm["dots"]:
            variadic = p
        else:
            params.append(p)
    return Function(m["name"], tuple(params), variadic, impl, parse_type(m["ret"]), signature, doc, category,
                    lazy)


def register(category: str, signature: str, doc: str, lazy: bool = False):
    """Decorator adding a pure function to the standard library."""

    def deco(impl: Callable[..., Value]) -> Callable[..., Value]:
        f = make_function(category, signature, doc, impl, lazy)
        REGISTRY[f.name] = f
        return impl

    return deco
