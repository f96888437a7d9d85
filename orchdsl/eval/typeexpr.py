"""Type constraints written as expressions: ``list(string)``, ``object({a = optional(number, 1)})``.

This is Terraform's type constraint language (hashicorp/hcl ext/typeexpr),
used by ``variable`` blocks. ``parse_type_constraint`` returns the Type and
the defaults of optional attributes; ``apply_defaults`` fills those into a
value before it is converted to the type.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..diagnostics import Diagnostic
from ..lang import ast as A
from .types import BOOL, DYNAMIC, NUMBER, STRING, ListType, MapType, ObjectType, SetType, TupleType, Type
from .values import UNKNOWN, Value, list_val, map_val, object_val, set_val, tuple_val

_KEYWORDS = {"string": STRING, "number": NUMBER, "bool": BOOL, "any": DYNAMIC}
_COLLECTIONS = {"list": ListType, "set": SetType, "map": MapType}


@dataclass
class Defaults:
    """Default values of optional attributes, for an object type and the types nested in it.

    ``children`` is keyed by attribute name for objects, ``""`` for the
    element of a collection and ``str(i)`` for tuple elements.
    """

    type: Type
    values: dict[str, Value] = field(default_factory=dict)
    children: dict[str, Defaults] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.values or self.children)


class _Invalid(Exception):
    def __init__(self, node: A.Node, detail: str) -> None:
        super().__init__(detail)
        self.node = node
        self.detail = detail


def parse_type_constraint(expr: A.Node) -> tuple[Type, Defaults | None, list[Diagnostic]]:
    """The type (and optional-attribute defaults) an expression denotes, or DYNAMIC with a diagnostic."""
    try:
        t, d = _parse(expr, in_object=False)
    except _Invalid as e:
        n = e.node
        return DYNAMIC, None, [Diagnostic.error("Invalid type specification", e.detail, n.src, n.start, n.end,
                                                hint="e.g. string, list(number), map(string) or "
                                                     "object({ name = string })")]
    return t, (d if d else None), []


def _parse(expr: A.Node, in_object: bool) -> tuple[Type, Defaults]:
    if type(expr) is A.Parens:
        return _parse(expr.expr, in_object)
    if type(expr) is A.ScopeTraversal and not expr.steps:
        if expr.name in _KEYWORDS:
            t = _KEYWORDS[expr.name]
            return t, Defaults(t)
        if expr.name in _COLLECTIONS or expr.name in ("tuple", "object"):
            raise _Invalid(expr, f'The {expr.name} type constructor requires one argument specifying the '
                                 f'element type{"s" if expr.name in ("tuple", "object") else ""}.')
        raise _Invalid(expr, f'The keyword "{expr.name}" is not a valid type specification.')
    if type(expr) is A.Literal and expr.value is None:
        raise _Invalid(expr, "A null value is not a valid type specification.")
    if type(expr) is not A.FunctionCall:
        raise _Invalid(expr, "A type specification is either a primitive type keyword (bool, number, string) or "
                             "a complex type constructor call, like list(string).")
    name, args = expr.name, expr.args
    if name == "optional":
        raise _Invalid(expr, "Keyword \"optional\" is valid only as a modifier for object type attributes.")
    if name not in _COLLECTIONS and name not in ("tuple", "object"):
        raise _Invalid(expr, f'Keyword "{name}" is not a valid type constructor.')
    if len(args) != 1 or expr.expand_final:
        raise _Invalid(expr, f"The {name} type constructor requires exactly one argument.")
    arg = args[0]
    if name in _COLLECTIONS:
        et, ed = _parse(arg, False)
        t = _COLLECTIONS[name](et)
        return t, Defaults(t, children={"": ed} if ed else {})
    if name == "tuple":
        if type(arg) is not A.Tuple:
            raise _Invalid(arg, "The tuple type constructor requires a list of element types.")
        parsed = [_parse(e, False) for e in arg.exprs]
        t = TupleType(p[0] for p in parsed)
        return t, Defaults(t, children={str(i): p[1] for i, p in enumerate(parsed) if p[1]})
    return _parse_object(arg)


def _parse_object(arg: A.Node) -> tuple[Type, Defaults]:
    if type(arg) is not A.Object:
        raise _Invalid(arg, "The object type constructor requires an object of attribute types, like "
                            "{ name = string }.")
    attrs: dict[str, Type] = {}
    optional: set[str] = set()
    defaults: dict[str, Value] = {}
    children: dict[str, Defaults] = {}
    for key, value in arg.items:
        w = key.wrapped
        if type(w) is A.ScopeTraversal and not w.steps and not key.force_non_literal:
            name = w.name
        elif type(w) is A.Literal and isinstance(w.value, str):
            name = w.value
        else:
            raise _Invalid(key, "Object constructor map keys must be attribute names.")
        if type(value) is A.FunctionCall and value.name == "optional":
            if not 1 <= len(value.args) <= 2:
                raise _Invalid(value, "Optional attribute modifier expects one or two arguments: the attribute "
                                      "type and an optional default value.")
            t, d = _parse(value.args[0], True)
            optional.add(name)
            if len(value.args) == 2:
                defaults[name] = _default_value(value.args[1], t)
        else:
            t, d = _parse(value, True)
        attrs[name] = t
        if d:
            children[name] = d
    ot = ObjectType(attrs, optional)
    return ot, Defaults(ot, defaults, children)


def _default_value(expr: A.Node, t: Type) -> Value:
    from .convert import ConversionError, convert
    from .evaluator import evaluate
    from .scope import EvalContext

    v, diags = evaluate(expr, EvalContext())
    if any(d.is_error for d in diags) or not v.is_wholly_known:
        raise _Invalid(expr, "The default value of an optional attribute must be a constant.")
    try:
        return convert(v, t)
    except ConversionError as e:
        raise _Invalid(expr, f"Invalid default value for optional attribute: {e}.") from None


def apply_defaults(v: Value, d: Defaults | None) -> Value:
    """Fill null or absent optional attributes with their defaults (before conversion to ``d.type``)."""
    if d is None or v.raw is None or v.raw is UNKNOWN:
        return v
    t = d.type
    if t.is_object and isinstance(v.raw, dict):
        attrs = dict(v.raw)
        for name, default in d.values.items():
            if attrs.get(name) is None or attrs[name].raw is None:
                attrs[name] = default
        for name, child in d.children.items():
            if name in attrs:
                attrs[name] = apply_defaults(attrs[name], child)
        out = object_val(attrs) if v.type.is_object else map_val(attrs) if _same_types(attrs) else object_val(attrs)
        return out.mark(v.sensitive)
    child = d.children.get("")
    if child is not None and isinstance(v.raw, (tuple, dict)):
        if isinstance(v.raw, dict):
            items = {k: apply_defaults(x, child) for k, x in v.raw.items()}
            return (map_val(items) if v.type.is_map and _same_types(items) else object_val(items)).mark(v.sensitive)
        elems = [apply_defaults(x, child) for x in v.raw]
        if v.type.is_list and _same_types(elems):
            return list_val(elems).mark(v.sensitive)
        if v.type.is_set and _same_types(elems):
            return set_val(elems).mark(v.sensitive)
        return tuple_val(elems).mark(v.sensitive)
    if t.is_tuple and isinstance(v.raw, tuple) and d.children:
        elems = [apply_defaults(x, d.children.get(str(i))) for i, x in enumerate(v.raw)]
        return tuple_val(elems).mark(v.sensitive)
    return v


def _same_types(items) -> bool:
    values = list(items.values()) if isinstance(items, dict) else list(items)
    return all(x.type == values[0].type for x in values)
