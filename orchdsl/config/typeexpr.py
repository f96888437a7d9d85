"""Type constraints: ``type = list(object({a = string, b = optional(number, 1)}))``.

A type constraint is read from the syntax tree, never evaluated (as HCL's
``typeexpr``): keywords ``string``, ``number``, ``bool``, ``any`` and the
constructors ``list(T)``, ``set(T)``, ``map(T)``, ``tuple([T, ...])``,
``object({name = T, ...})``, with ``optional(T)`` / ``optional(T, default)``
for object attributes. Defaults of optional attributes are applied after
conversion, where the value has null (Terraform's ``typeexpr.Defaults``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..diagnostics import Diagnostic
from ..eval import (DYNAMIC, NUMBER, STRING, BOOL, ConversionError, EvalContext, ListType, MapType, ObjectType,
                    SetType, TupleType, Type, Value, convert, evaluate)
from ..eval.ops import suggest
from ..eval.values import UNKNOWN, canonical_set
from ..lang import ast as A

_KEYWORDS: dict[str, Type] = {"string": STRING, "number": NUMBER, "bool": BOOL, "any": DYNAMIC}
_COLLECTIONS = {"list": ListType, "set": SetType, "map": MapType}
_SPEC_HELP = ("A type specification is either a primitive type keyword (bool, number, string), any, or a "
              "complex type constructor call, like list(string).")


@dataclass
class Defaults:
    """Default values of optional object attributes, nested like the type."""

    type: Type
    values: dict[str, Value] = field(default_factory=dict)  # attribute -> default (object types)
    children: dict[str | int | None, Defaults] = field(default_factory=dict)  # attr / tuple index / None: element

    def __bool__(self) -> bool:
        return bool(self.values or self.children)


@dataclass
class TypeConstraint:
    type: Type
    defaults: Defaults | None = None

    def convert(self, value: Value) -> Value:
        """``value`` converted to the type, optional attribute defaults filled; raises ConversionError."""
        out = convert(value, self.type)
        return apply_defaults(out, self.defaults) if self.defaults else out

    def __str__(self) -> str:
        return self.type.type_expr()


ANY = TypeConstraint(DYNAMIC)


def parse_type(expr: A.Node) -> tuple[TypeConstraint, list[Diagnostic]]:
    diags: list[Diagnostic] = []
    t, d = _parse(expr, diags, allow_optional=False)
    if diags:
        return ANY, diags
    return TypeConstraint(t, d if d else None), []


def _err(diags: list[Diagnostic], node: A.Node, summary: str, detail: str, hint: str = "") -> tuple[Type, None]:
    diags.append(Diagnostic.error(summary, detail, node.src, node.start, node.end, hint=hint))
    return DYNAMIC, None


def _parse(expr: A.Node, diags: list[Diagnostic], allow_optional: bool) -> tuple[Type, Defaults | None]:
    while type(expr) is A.Parens:
        expr = expr.expr
    kind = type(expr)
    if kind is A.ScopeTraversal and not expr.steps:
        t = _KEYWORDS.get(expr.name)
        if t is not None:
            return t, None
        if expr.name in _COLLECTIONS:
            return _err(diags, expr, "Invalid type specification",
                        f'The {expr.name} type constructor requires one argument specifying the element type.',
                        hint=f"write {expr.name}(string), or {expr.name}(any) for any single element type")
        if expr.name in ("object", "tuple"):
            return _err(diags, expr, "Invalid type specification",
                        f"The {expr.name} type constructor requires one argument specifying the "
                        f"{'attribute types as an object' if expr.name == 'object' else 'element types as a list'}.")
        return _err(diags, expr, "Invalid type specification",
                    f'The keyword "{expr.name}" is not a valid type specification.',
                    hint=suggest(expr.name, list(_KEYWORDS) + list(_COLLECTIONS) + ["object", "tuple"]))
    if kind is A.Literal and isinstance(expr.value, str):
        return _err(diags, expr, "Invalid quoted type constraints",
                    "Type constraints are keywords and constructor calls, not strings.",
                    hint=f"remove the quotes: type = {expr.value}")
    if kind is not A.FunctionCall:
        return _err(diags, expr, "Invalid type specification", _SPEC_HELP)
    name, args = expr.name, expr.args
    if name == "optional":
        if not allow_optional:
            return _err(diags, expr, "Invalid type specification",
                        "Keyword \"optional\" is valid only as a modifier for object type attributes.")
        return _err(diags, expr, "Invalid type specification", "optional(...) is handled by object().")
    if name in _COLLECTIONS:
        if len(args) != 1:
            return _err(diags, expr, "Invalid type specification",
                        f"The {name} type constructor requires one argument specifying the element type.")
        et, ed = _parse(args[0], diags, False)
        d = Defaults(_COLLECTIONS[name](et), children={None: ed}) if ed else None
        return _COLLECTIONS[name](et), d
    if name == "tuple":
        if len(args) != 1 or type(args[0]) is not A.Tuple:
            return _err(diags, expr, "Invalid type specification",
                        "The tuple type constructor requires one argument specifying the element types as a "
                        "list.", hint="write tuple([string, number])")
        elems, children = [], {}
        for i, e in enumerate(args[0].exprs):
            et, ed = _parse(e, diags, False)
            elems.append(et)
            if ed:
                children[i] = ed
        t = TupleType(elems)
        return t, (Defaults(t, children=children) if children else None)
    if name == "object":
        if len(args) != 1 or type(args[0]) is not A.Object:
            return _err(diags, expr, "Invalid type specification",
                        "The object type constructor requires one argument specifying the attribute types as "
                        "an object.", hint="write object({name = string, port = number})")
        attrs: dict[str, Type] = {}
        optional: set[str] = set()
        defaults: dict[str, Value] = {}
        children: dict = {}
        for key, value_expr in args[0].items:
            attr_name = _object_key(key)
            if attr_name is None:
                _err(diags, key, "Invalid type specification",
                     "Object constructor map keys must be attribute names.")
                continue
            if type(value_expr) is A.FunctionCall and value_expr.name == "optional":
                optional.add(attr_name)
                oargs = value_expr.args
                if not 1 <= len(oargs) <= 2:
                    _err(diags, value_expr, "Invalid type specification",
                         "Optional attribute modifier expects one or two arguments: the type and an optional "
                         "default value.")
                    continue
                at, ad = _parse(oargs[0], diags, False)
                if len(oargs) == 2:
                    dv, d = evaluate(oargs[1], EvalContext({}, {}))
                    if d:
                        diags.extend(d)
                    else:
                        try:
                            dv = convert(dv, at)
                            if ad:
                                dv = apply_defaults(dv, ad)
                            defaults[attr_name] = dv
                        except ConversionError as e:
                            _err(diags, oargs[1], "Invalid default value for optional attribute",
                                 f'Cannot use this value as the default of attribute "{attr_name}": {e}.')
            else:
                at, ad = _parse(value_expr, diags, False)
            attrs[attr_name] = at
            if ad:
                children[attr_name] = ad
        t = ObjectType(attrs, optional)
        return t, (Defaults(t, defaults, children) if defaults or children else None)
    return _err(diags, expr, "Invalid type specification", f'Keyword "{name}" is not a valid type constructor.',
                hint=suggest(name, list(_COLLECTIONS) + ["object", "tuple", "optional"]))


def _object_key(key: A.Node) -> str | None:
    inner = key.wrapped if type(key) is A.ObjectKey else key
    if type(inner) is A.ScopeTraversal and not inner.steps:
        return inner.name
    if type(inner) is A.Literal and isinstance(inner.value, str):
        return inner.value
    return None


def apply_defaults(v: Value, d: Defaults | None) -> Value:
    """Fill null optional attributes with their defaults, recursively."""
    if d is None or v.raw is None or v.raw is UNKNOWN:
        return v
    t = v.type
    if t.is_object:
        attrs = dict(v.raw)
        types = t.attr_types
        for name, dv in d.values.items():
            if name in attrs and attrs[name].raw is None:
                attrs[name] = convert(dv, types[name])
        for name, child in d.children.items():
            if name in attrs:
                attrs[name] = apply_defaults(attrs[name], child)
        return Value(t, attrs, v.sensitive)
    child = d.children.get(None)
    if t.is_tuple:
        return Value(t, tuple(apply_defaults(e, d.children.get(i)) for i, e in enumerate(v.raw)), v.sensitive)
    if child is None:
        return v
    if t.is_map:
        return Value(t, {k: apply_defaults(e, child) for k, e in v.raw.items()}, v.sensitive)
    if t.is_set:
        return Value(t, canonical_set(apply_defaults(e, child) for e in v.raw), v.sensitive)
    if t.is_list:
        return Value(t, tuple(apply_defaults(e, child) for e in v.raw), v.sensitive)
    return v
