"""Type conversion and unification, after go-cty's ``convert`` package.

``convert(value, want)`` is cty's "unsafe" conversion (the one HCL and
Terraform use everywhere): it may fail depending on the value, e.g.
``"abc"`` to number. Rules:

* null converts to a null of the wanted type, unknown to an unknown of it;
* string <-> number <-> bool: strings parse as numbers and ``"true"``/
  ``"false"``; numbers and bools print as strings; number <-> bool never;
* tuple/list/set -> list/set of T: every element converted to T (T dynamic:
  to the unification of the element types);
* object/map -> map of T, map/object -> object: by attribute, extra
  attributes dropped, missing ones an error unless optional;
* tuple/list -> tuple: same length, element-wise.

``unify(types)`` finds one type all the given types convert to (for the two
results of a conditional, the elements of a list, ...), or None.
"""

from __future__ import annotations

from .types import (BOOL, DYNAMIC, NUMBER, STRING, DynamicType, ListType, MapType, ObjectType, SetType,
                    TupleType, Type)
from .values import (UNKNOWN, NumberRangeError, Value, canonical_set, format_number, null, parse_number)


class ConversionError(Exception):
    """A value cannot be converted. ``path`` names the nested element, if any."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def convert(v: Value, want: Type) -> Value:
    """``v`` as a value of type ``want``; raises ConversionError."""
    have = v.type
    if have == want or isinstance(want, DynamicType):
        return v
    if not _type_can_convert(have, want):
        raise ConversionError(_mismatch(have, want))
    if v.raw is None:
        return Value(want, None, v.sensitive)
    if v.raw is UNKNOWN:
        return Value(result_type(have, want), UNKNOWN, v.sensitive)
    try:
        out = _convert_known(v, want)
    except _Deferred:
        # An element of unknown type decides the collection's type later.
        return Value(result_type(have, want), UNKNOWN, v.sensitive)
    return out.mark(v.sensitive)


class _Deferred(Exception):
    pass


def result_type(have: Type, want: Type) -> Type:
    """The type a value of ``have`` gets when converted to ``want`` (which may contain DYNAMIC)."""
    if not want.has_dynamic():
        return want
    if want == DYNAMIC:
        return have
    if have == DYNAMIC:
        return want
    if (want.is_list or want.is_set or want.is_map) and want.element == DYNAMIC:
        if have.is_collection:
            et = have.element
        elif have.is_tuple:
            et = unify(list(have.elements)) or DYNAMIC
        elif have.is_object:
            et = unify([t for _, t in have.attrs]) or DYNAMIC
        else:
            return want
        return type(want)(et)
    return want


def _mismatch(have: Type, want: Type) -> str:
    if (want.is_list or want.is_set) and want.element == DYNAMIC and have.is_tuple:
        return f"cannot convert tuple to {want.friendly_name().split(' of ')[0]} of any single type"
    if want.is_map and want.element == DYNAMIC and have.is_object:
        return "cannot convert object to map of any single type"
    if want.is_object and have.is_object:
        ha = have.attr_types
        for n, _ in want.attrs:
            if n not in ha and n not in want.optional:
                return f'attribute "{n}" is required'
    if want.is_tuple and have.is_tuple and len(want.elements) != len(have.elements):
        return f"tuple required with {len(want.elements)} elements"
    if want.is_primitive and not have.is_primitive:
        return f"{want.friendly_name()} required, but have {have.friendly_name()}"
    return f"{constraint_name(want)} required"


def constraint_name(t: Type) -> str:
    """A type as a constraint in messages: ``list(any)`` reads "list of any single type"."""
    if t == DYNAMIC:
        return "any single type"
    if t.is_list or t.is_set or t.is_map:
        return f"{t.friendly_name().split(' of ')[0]} of {constraint_name(t.element)}"
    return t.friendly_name()


def _convert_known(v: Value, want: Type) -> Value:
    have = v.type
    raw = v.raw
    if want.is_primitive:
        return _to_primitive(v, want)
    if want.is_list or want.is_set:
        elems = _convert_elements(list(raw), want, have)
        et = _elem_type(elems, want.element)
        if want.is_set:
            return Value(SetType(et), canonical_set(elems))
        return Value(ListType(et), tuple(elems))
    if want.is_map:
        keys = list(raw)
        elems = _convert_elements(list(raw.values()), want, have, keys)
        return Value(MapType(_elem_type(elems, want.element)), dict(zip(keys, elems)))
    if want.is_tuple:
        out = [_nested(e, t, f"[{i}]") for i, (e, t) in enumerate(zip(raw, want.elements))]
        return Value(TupleType(x.type for x in out), tuple(out))
    if want.is_object:
        attrs = {}
        for name, t in want.attrs:
            if name in raw:
                attrs[name] = _nested(raw[name], t, f".{name}")
            elif name in want.optional:
                attrs[name] = null(t)
            else:  # only a map can get here: an object's attributes were checked by type
                raise ConversionError(f'map has no element for required attribute "{name}"')
        return Value(ObjectType({k: x.type for k, x in attrs.items()}), attrs)
    raise ConversionError(_mismatch(have, want))


def _nested(e: Value, t: Type, path: str) -> Value:
    try:
        return convert(e, t)
    except ConversionError as err:
        raise ConversionError(err.message, path + err.path) from None


def _convert_elements(elems: list[Value], want: Type, have: Type, keys: list[str] | None = None) -> list[Value]:
    """Convert every element to the collection's element type.

    ``list(any)`` and friends want "one type for all": the unification of the
    element types. A literal ``null`` (null of unknown type) does not take part
    in the vote: ``[1, null]`` makes a list of number.
    """
    target = want.element
    if target == DYNAMIC and elems:
        typed = [e.type for e in elems if not (e.type == DYNAMIC and e.raw is None)]
        unified = unify(typed) if typed else DYNAMIC
        if unified is None:
            raise ConversionError(_mismatch(have, want))
        if unified == DYNAMIC and any(e.type != DYNAMIC for e in elems):
            raise _Deferred()
        target = unified
    out = []
    for i, e in enumerate(elems):
        path = f"[{i}]" if keys is None else f'["{keys[i]}"]'
        out.append(_nested(e, target, path))
    return out


def _elem_type(elems: list[Value], want: Type) -> Type:
    if not want.has_dynamic():
        return want
    return elems[0].type if elems else want


def _to_primitive(v: Value, want: Type) -> Value:
    have = v.type
    raw = v.raw
    if want == STRING:
        if have == NUMBER:
            return Value(STRING, format_number(raw))
        if have == BOOL:
            return Value(STRING, "true" if raw else "false")
    elif want == NUMBER:
        if have == STRING:
            try:
                return Value(NUMBER, parse_number(raw))
            except NumberRangeError as e:
                raise ConversionError(str(e)) from None
            except ValueError:
                raise ConversionError("a number is required") from None
    elif want == BOOL:
        if have == STRING:
            if raw == "true":
                return Value(BOOL, True)
            if raw == "false":
                return Value(BOOL, False)
            # cty also accepts "1"/"0", and hints at the lowercase spelling.
            if raw == "1":
                return Value(BOOL, True)
            if raw == "0":
                return Value(BOOL, False)
            if raw.lower() in ("true", "false"):
                raise ConversionError(f'a bool is required; to convert from string, use lowercase "{raw.lower()}"')
            raise ConversionError("a bool is required")
    raise ConversionError(_mismatch(have, want))


def _type_can_convert(have: Type, want: Type) -> bool:
    """Could some value of ``have`` convert to ``want``? (cty GetConversionUnsafe != nil)"""
    if have == want or want == DYNAMIC or have == DYNAMIC:
        return True
    if want.is_primitive:
        if not have.is_primitive:
            return False
        return not ({have, want} == {NUMBER, BOOL})
    if have.is_primitive:
        return False
    if want.is_list or want.is_set:
        if have.is_list or have.is_set:
            return _type_can_convert(have.element, want.element)
        if have.is_tuple:
            return all(_type_can_convert(t, want.element) for t in have.elements)
        return False
    if want.is_map:
        if have.is_map:
            return _type_can_convert(have.element, want.element)
        if have.is_object:
            return all(_type_can_convert(t, want.element) for _, t in have.attrs)
        return False
    if want.is_tuple:
        if have.is_tuple:
            return len(have.elements) == len(want.elements) and all(
                _type_can_convert(a, b) for a, b in zip(have.elements, want.elements))
        return have.is_list and all(_type_can_convert(have.element, b) for b in want.elements)
    if want.is_object:
        if have.is_object:
            ha = have.attr_types
            return all((n in ha and _type_can_convert(ha[n], t)) or n in want.optional for n, t in want.attrs)
        if have.is_map:
            return all(_type_can_convert(have.element, t) for _, t in want.attrs)
    return False


can_convert = _type_can_convert


# ---- unification -------------------------------------------------------------------

def unify(types: list[Type]) -> Type | None:
    """The type every one of ``types`` converts to, preferring the most specific (cty UnifyUnsafe)."""
    if not types:
        return DYNAMIC
    first = types[0]
    if all(t == first for t in types):
        return first
    dyn = sum(1 for t in types if t == DYNAMIC)
    n = len(types)
    count = {k: sum(1 for t in types if getattr(t, "is_" + k)) for k in ("map", "object", "list", "set", "tuple")}
    # Same structural kind: build a new type from the parts (before the general rule
    # below, which could pick a lossy conversion).
    if count["map"] and count["map"] + dyn == n:
        return _unify_collections(MapType, types, dyn)
    if count["map"] and count["map"] + count["object"] + dyn == n:
        return _unify_objects_to_map(types, dyn)
    if count["list"] and count["list"] + dyn == n:
        return _unify_collections(ListType, types, dyn)
    if count["set"] and count["set"] + dyn == n:
        return _unify_collections(SetType, types, dyn)
    if count["object"] and count["object"] + dyn == n:
        return _unify_objects(types, dyn)
    if count["tuple"] and count["tuple"] + dyn == n:
        return _unify_tuples(types, dyn)
    if count["object"] and count["tuple"]:
        return None
    if dyn:
        return DYNAMIC
    # General rule: the most general given type that all others convert to.
    for want in sorted(set(types), key=_generality):
        if all(_type_can_convert(t, want) for t in types):
            return want
    return None


def _generality(t: Type) -> int:
    # string is a supertype of number and bool; everything else is incomparable.
    return 0 if t == STRING else 1


def _unify_collections(ctor, types: list[Type], dyn: int) -> Type | None:
    if dyn:
        return DYNAMIC
    et = unify([t.element for t in types])
    return None if et is None else ctor(et)


def _unify_objects_to_map(types: list[Type], dyn: int) -> Type | None:
    if dyn:
        return DYNAMIC
    elems: list[Type] = []
    for t in types:
        if t.is_map:
            elems.append(t.element)
        else:
            elems.extend(at for _, at in t.attrs)
    et = unify(elems)
    return None if et is None else MapType(et)


def _unify_objects(types: list[Type], dyn: int) -> Type | None:
    if dyn:
        return DYNAMIC
    names = [tuple(n for n, _ in t.attrs) for t in types]
    if any(ns != names[0] for ns in names):
        return _unify_objects_to_map(types, 0)
    attrs = {}
    for i, name in enumerate(names[0]):
        at = unify([t.attrs[i][1] for t in types])
        if at is None:
            return _unify_objects_to_map(types, 0)
        attrs[name] = at
    return ObjectType(attrs)


def _unify_tuples(types: list[Type], dyn: int) -> Type | None:
    if dyn:
        return DYNAMIC
    lengths = {len(t.elements) for t in types}
    if len(lengths) != 1:
        et = unify([e for t in types for e in t.elements])
        return None if et is None else ListType(et)
    elems = []
    for i in range(lengths.pop()):
        et = unify([t.elements[i] for t in types])
        if et is None:
            return None
        elems.append(et)
    return TupleType(elems)


def unify_values(values: list[Value]) -> tuple[Type, list[Value]] | None:
    """Unify the types of ``values`` and convert each; None if impossible."""
    t = unify([v.type for v in values])
    if t is None:
        return None
    try:
        return t, [convert(v, t) for v in values]
    except ConversionError:
        return None


def describe_mismatch(a: Type, b: Type) -> str:
    """Why the two results of a conditional do not unify (HCL's describeConditionalTypeMismatch)."""
    if a.is_object and b.is_object:
        aa, ba = a.attr_types, b.attr_types
        for n in sorted(aa):
            if n not in ba:
                return f"The 'true' value includes object attribute \"{n}\", which is absent in the 'false' value"
            if aa[n] != ba[n]:
                return f"Type mismatch for object attribute \"{n}\": {describe_mismatch(aa[n], ba[n])}"
        for n in sorted(ba):
            if n not in aa:
                return f"The 'false' value includes object attribute \"{n}\", which is absent in the 'true' value"
    elif a.is_tuple and b.is_tuple:
        if len(a.elements) != len(b.elements):
            return f"The 'true' tuple has length {len(a.elements)}, but the 'false' tuple has length " \
                   f"{len(b.elements)}"
        for i, (x, y) in enumerate(zip(a.elements, b.elements)):
            if x != y:
                return f"Type mismatch for tuple element {i}: {describe_mismatch(x, y)}"
    elif a.is_collection and b.is_collection and type(a) is type(b):
        ea, eb = a.element, b.element
        if (ea.is_object and eb.is_object) or (ea.is_tuple and eb.is_tuple):
            noun = "list" if a.is_list else "set" if a.is_set else "map"
            return f"Mismatched {noun} element types: {describe_mismatch(ea, eb)}"
    if a.friendly_name() == b.friendly_name():
        return "At least one deeply-nested attribute or element is not compatible across both the 'true' and " \
               "the 'false' value"
    return f"The 'true' value is {a.friendly_name()}, but the 'false' value is {b.friendly_name()}"
