"""Collection functions (Terraform names and semantics).

Parameters typed ``any`` accept lists, tuples, sets, maps and objects as
they are, so a function can keep the argument's kind (a tuple stays a
tuple); ``list(any)`` parameters first unify the elements to one type.
"""

from __future__ import annotations

from ..convert import ConversionError, convert, unify, unify_values
from ..ops import arithmetic, equals
from ..types import BOOL, DYNAMIC, NUMBER, STRING, ListType, TupleType, Type
from ..values import (FALSE, MAX_COLLECTION_LENGTH, TRUE, UNKNOWN, Value, bool_val, canonical_set, list_val,
                      map_val, null, number_val, object_val, set_val, string_val, tuple_val, unknown)
from .base import ArgError, FunctionError, register
from .text import graphemes

CAT = "collection"


def _is_seq(t: Type) -> bool:
    return t.is_list or t.is_tuple or t.is_set


def _require_seq(v: Value, i: int, what: str = "a list, set, or tuple value is required") -> None:
    if not _is_seq(v.type):
        raise ArgError(i, what)


def _whole(v: Value, i: int, what: str = "value") -> int:
    if not isinstance(v.raw, int):
        raise ArgError(i, f"{what} must be a whole number")
    return v.raw


def _same_kind(src: Value, elems: list[Value]) -> Value:
    """A result of the same kind as ``src``: list stays list, tuple stays tuple."""
    if src.type.is_list:
        return list_val(elems, src.type.element)
    if src.type.is_set:
        return set_val(elems, src.type.element)
    return tuple_val(elems)


@register(CAT, "length(value: any [unknown]) -> number",
          "The number of elements of a collection or structure, or of characters in a string.")
def length(v: Value) -> Value:
    t = v.type
    if v.raw is UNKNOWN:
        if t.is_tuple:
            return number_val(len(t.elements))
        if t.is_object:
            return number_val(len(t.attrs))
        return unknown(NUMBER)
    if t == STRING:
        return number_val(len(graphemes(v.raw)))
    if t.is_set and not v.is_wholly_known:
        return unknown(NUMBER)  # unknown elements may turn out equal to others
    if _is_seq(t) or t.is_map or t.is_object:
        return number_val(len(v.raw))
    raise ArgError(0, "argument must be a string, a collection type, or a structural type")


@register(CAT, "concat(...seqs: any [unknown]) -> any", "Joins lists or tuples into one sequence.")
def concat(*seqs: Value) -> Value:
    if not seqs:
        raise FunctionError("at least one argument is required")
    for i, s in enumerate(seqs):
        if not (s.type.is_list or s.type.is_tuple):
            raise ArgError(i, f"all arguments must be lists or tuples; got {s.type.friendly_name()}")
    if all(s.type.is_list for s in seqs) and seqs:
        et = unify([s.type.element for s in seqs])
        if et is not None:
            if any(s.raw is UNKNOWN for s in seqs):
                return unknown(ListType(et))
            elems = [convert(e, et) for s in seqs for e in s.raw]
            return list_val(elems, et)
    if any(s.raw is UNKNOWN for s in seqs):
        return unknown(DYNAMIC)
    return tuple_val(e for s in seqs for e in s.raw)


@register(CAT, "contains(list: any [unknown], value: any [null] [unknown]) -> bool",
          "Whether a list, tuple or set contains the given value.")
def contains(lst: Value, value: Value) -> Value:
    _require_seq(lst, 0, "argument must be list, tuple, or set")
    if lst.raw is UNKNOWN:
        return unknown(BOOL)
    if not lst.raw:
        return FALSE
    if value.raw is UNKNOWN:
        return unknown(BOOL)
    undecided = False
    for e in lst.raw:
        r = equals(value, e)
        if r.raw is UNKNOWN:
            undecided = True
        elif r.raw:
            return TRUE
    return unknown(BOOL) if undecided else FALSE


@register(CAT, "distinct(list: list(any)) -> list(any)",
          "Removes duplicate elements, keeping the first occurrence of each.")
def distinct(lst: Value) -> Value:
    seen: set[Value] = set()
    out = []
    for e in lst.raw:
        if e not in seen:
            seen.add(e)
            out.append(e)
    return list_val(out, lst.type.element)


@register(CAT, "element(list: any [unknown], index: number) -> any",
          "The element at an index, wrapping around past the end of the list.")
def element(lst: Value, index: Value) -> Value:
    if not (lst.type.is_list or lst.type.is_tuple):
        raise ArgError(0, "cannot read elements from " + lst.type.friendly_name())
    i = _whole(index, 1, "the index")
    if i < 0:
        raise ArgError(1, "cannot use element function with a negative index")
    if lst.raw is UNKNOWN:
        return unknown(lst.type.element if lst.type.is_list else DYNAMIC)
    if not lst.raw:
        raise ArgError(0, "cannot use element function with an empty list")
    return lst.raw[i % len(lst.raw)]


def _flatten(v: Value, out: list[Value]) -> None:
    for e in v.raw:
        if _is_seq(e.type) and e.raw is not None:
            _flatten(e, out)
        else:
            out.append(e)


@register(CAT, "flatten(list: any) -> any", "Replaces nested lists, tuples and sets with their elements.")
def flatten(lst: Value) -> Value:
    _require_seq(lst, 0, "can only flatten lists, sets and tuples")
    out: list[Value] = []
    _flatten(lst, out)
    return tuple_val(out)


@register(CAT, "keys(map: any [unknown]) -> any",
          "The keys of a map or attribute names of an object, sorted.")
def keys(m: Value) -> Value:
    t = m.type
    if t.is_object:
        return tuple_val(string_val(k) for k, _ in t.attrs)
    if not t.is_map:
        raise ArgError(0, "must have map or object type")
    if m.raw is UNKNOWN:
        return unknown(ListType(STRING))
    return list_val((string_val(k) for k in m.raw), STRING)


@register(CAT, "values(map: any [unknown]) -> any", "The values of a map or object, in key order.")
def values(m: Value) -> Value:
    t = m.type
    if not (t.is_map or t.is_object):
        raise ArgError(0, "must have map or object type")
    if m.raw is UNKNOWN:
        return unknown(ListType(t.element) if t.is_map else TupleType(at for _, at in t.attrs))
    if t.is_map:
        return list_val(m.raw.values(), t.element)
    return tuple_val(m.raw.values())


@register(CAT, "lookup(map: any [unknown], key: string, ...default: any [null] [unknown]) -> any",
          "The element of a map for a key, or the default if there is none.")
def lookup(m: Value, key: Value, *default: Value) -> Value:
    if len(default) > 1:
        raise FunctionError("lookup() takes at most three arguments")
    t = m.type
    if not (t.is_map or t.is_object):
        raise ArgError(0, "the first argument must be a map or an object")
    if m.raw is UNKNOWN or key.raw is UNKNOWN:
        return unknown(t.element if t.is_map else DYNAMIC)
    if key.raw in m.raw:
        return m.raw[key.raw]
    if not default:
        raise FunctionError(f'lookup failed to find key "{key.raw}"')
    d = default[0]
    if t.is_map and t.element != DYNAMIC:
        try:
            return convert(d, t.element)
        except ConversionError:
            pass
    return d


@register(CAT, "merge(...maps: any [null]) -> any",
          "Merges maps or objects; later arguments override earlier keys.")
def merge(*maps: Value) -> Value:
    for i, m in enumerate(maps):
        if not (m.type.is_map or m.type.is_object):
            raise ArgError(i, f"arguments must be maps or objects, got {m.type.friendly_name()}")
    merged: dict[str, Value] = {}
    for m in maps:
        if m.raw is not None:
            merged.update(m.raw)
    # As cty: the result keeps the arguments' type only when they all share it; otherwise an object.
    if maps and all(m.type == maps[0].type for m in maps) and maps[0].type.is_map:
        return map_val(merged, maps[0].type.element)
    return object_val(merged)


@register(CAT, "range(...params: number) -> list(number)",
          "A list of numbers: range(limit), range(start, limit) or range(start, limit, step).")
def range_(*params: Value) -> Value:
    if not 1 <= len(params) <= 3:
        raise FunctionError("must have one, two, or three arguments")
    nums = [p.raw for p in params]
    if len(nums) == 1:
        start, limit, step = 0, nums[0], 1
    else:
        start, limit = nums[0], nums[1]
        step = nums[2] if len(nums) == 3 else (1 if start <= limit else -1)
    if step == 0:
        raise ArgError(len(params) - 1, "step must not be zero")
    if start < limit and step < 0:
        raise ArgError(2, "step must be positive when start is less than limit")
    if start > limit and step > 0:
        raise ArgError(2, "step must be negative when start is greater than limit")
    out = []
    x = start
    while (x < limit) if step > 0 else (x > limit):
        if len(out) >= 1024:
            raise FunctionError("more than 1024 values were generated; either decrease the difference between "
                                "start and end or use a smaller step")
        out.append(number_val(x))
        x = arithmetic("+", x, step)
    return list_val(out, NUMBER)


@register(CAT, "reverse(list: any [unknown]) -> any", "The elements of a sequence in reverse order.")
def reverse(lst: Value) -> Value:
    if not (lst.type.is_list or lst.type.is_tuple):
        raise ArgError(0, "can only reverse list or tuple values, not " + lst.type.friendly_name())
    if lst.raw is UNKNOWN:
        return unknown(lst.type if lst.type.is_list else DYNAMIC)
    return _same_kind(lst, list(reversed(lst.raw)))


@register(CAT, "slice(list: any [unknown], start_index: number, end_index: number) -> any",
          "The elements from start_index (inclusive) to end_index (exclusive).")
def slice_(lst: Value, start: Value, end: Value) -> Value:
    if not (lst.type.is_list or lst.type.is_tuple):
        raise ArgError(0, "must be a list or tuple value")
    s, e = _whole(start, 1, "start index"), _whole(end, 2, "end index")
    if s < 0:
        raise ArgError(1, "start index must not be less than zero")
    if s > e:
        raise ArgError(1, "start index must not be greater than end index")
    if lst.raw is UNKNOWN:
        return unknown(lst.type if lst.type.is_list else DYNAMIC)
    if e > len(lst.raw):
        raise ArgError(2, "end index must not be greater than the length of the list")
    return _same_kind(lst, list(lst.raw[s:e]))


@register(CAT, "sort(list: list(string)) -> list(string)", "Sorts strings lexically.")
def sort(lst: Value) -> Value:
    for i, e in enumerate(lst.raw):
        if e.raw is None:
            raise ArgError(0, f"given list element {i} is null; a null string cannot be sorted")
    return list_val(sorted(lst.raw, key=lambda v: v.raw), STRING)


@register(CAT, "zipmap(keys: list(string), values: any) -> any",
          "A map (or object) from a list of keys and a list (or tuple) of values.")
def zipmap(ks: Value, vs: Value) -> Value:
    if not (vs.type.is_list or vs.type.is_tuple):
        raise ArgError(1, "values must be a list or tuple value")
    if len(ks.raw) != len(vs.raw):
        raise ArgError(1, f"number of keys ({len(ks.raw)}) does not match number of values ({len(vs.raw)})")
    for i, k in enumerate(ks.raw):
        if k.raw is None:
            raise ArgError(0, f"keys list has null value at index {i}")
    pairs = {k.raw: v for k, v in zip(ks.raw, vs.raw)}
    if vs.type.is_list:
        return map_val(pairs, vs.type.element)
    return object_val(pairs)


@register(CAT, "coalesce(...vals: any [null] [unknown]) -> any",
          "The first argument that is not null or an empty string.")
def coalesce(*vals: Value) -> Value:
    if not vals:
        raise FunctionError("no non-null, non-empty-string arguments")
    typed = [v.type for v in vals if not (v.type == DYNAMIC and v.raw is None)]
    t = unify(typed) if typed else DYNAMIC
    if t is None:
        raise FunctionError("all arguments must have the same type")
    for v in vals:
        if v.raw is UNKNOWN:
            return unknown(t)
        if v.raw is None or (v.type == STRING and v.raw == ""):
            continue
        try:
            return convert(v, t)
        except ConversionError as e:
            raise FunctionError(f"all arguments must have the same type: {e}") from None
    raise FunctionError("no non-null, non-empty-string arguments")


@register(CAT, "coalescelist(...vals: any [null] [unknown]) -> any",
          "The first list or tuple argument that is not empty.")
def coalescelist(*vals: Value) -> Value:
    if not vals:
        raise FunctionError("at least one argument is required")
    for i, v in enumerate(vals):
        if not (v.type.is_list or v.type.is_tuple or v.type == DYNAMIC):
            raise ArgError(i, "coalescelist arguments must be lists or tuples, got " + v.type.friendly_name())
        if v.raw is UNKNOWN:
            return unknown(DYNAMIC)
        if v.raw:
            return v
    raise FunctionError("no non-null arguments")


@register(CAT, "compact(list: list(string) [null]) -> list(string)",
          "Removes null and empty-string elements.")
def compact(lst: Value) -> Value:
    if lst.raw is None:
        raise ArgError(0, "argument must not be null")
    return list_val((e for e in lst.raw if e.raw not in (None, "")), STRING)


@register(CAT, "index(list: any, value: any) -> number", "The index of the first element equal to value.")
def index(lst: Value, value: Value) -> Value:
    if not (lst.type.is_list or lst.type.is_tuple):
        raise ArgError(0, "argument must be a list or tuple")
    for i, e in enumerate(lst.raw):
        if equals(e, value).raw is True:
            return number_val(i)
    raise FunctionError("item not found")


@register(CAT, "one(list: any [unknown]) -> any",
          "The single element of a zero- or one-element collection, or null if empty.")
def one(lst: Value) -> Value:
    _require_seq(lst, 0, "must be a list, set, or tuple value")
    et = lst.type.element if lst.type.is_collection else DYNAMIC
    if lst.raw is UNKNOWN:
        return unknown(et)
    if len(lst.raw) > 1 or (lst.type.is_set and not lst.is_wholly_known and len(lst.raw) > 1):
        raise ArgError(0, "must be a list, set, or tuple value with either zero or one elements")
    if not lst.raw:
        return null(et)
    return lst.raw[0]


# ---- sets ----------------------------------------------------------------------------

def _sets(args: tuple[Value, ...]) -> tuple[Type, list[Value]]:
    unified = unify_values(list(args))
    if unified is None:
        raise FunctionError("given sets must all have compatible element types")
    t, sets = unified
    return t, sets


@register(CAT, "setunion(first_set: set(any), ...other_sets: set(any)) -> set(any)",
          "A set of the elements present in any of the given sets.")
def setunion(*sets: Value) -> Value:
    t, sets_ = _sets(sets)
    return Value(t, canonical_set(e for s in sets_ for e in s.raw))


@register(CAT, "setintersection(first_set: set(any), ...other_sets: set(any)) -> set(any)",
          "A set of the elements present in all of the given sets.")
def setintersection(*sets: Value) -> Value:
    t, sets_ = _sets(sets)
    common = [e for e in sets_[0].raw if all(e in set(s.raw) for s in sets_[1:])]
    return Value(t, canonical_set(common))


@register(CAT, "setsubtract(a: set(any), b: set(any)) -> set(any)",
          "A set of the elements of a that are not in b.")
def setsubtract(a: Value, b: Value) -> Value:
    t, (a_, b_) = _sets((a, b))
    drop = set(b_.raw)
    return Value(t, canonical_set(e for e in a_.raw if e not in drop))


@register(CAT, "setproduct(...sets: any) -> any",
          "Every combination of one element from each argument (the Cartesian product).")
def setproduct(*sets: Value) -> Value:
    if len(sets) < 2:
        raise FunctionError("at least two arguments are required")
    lists = 0
    ets: list[Type] = []
    elems: list[list[Value]] = []
    for i, s in enumerate(sets):
        t = s.type
        if t.is_set or t.is_list:
            ets.append(t.element)
            elems.append(list(s.raw))
            lists += t.is_list
        elif t.is_tuple:
            if not t.elements:
                ets.append(DYNAMIC)
                elems.append([])
            else:
                u = unify_values(list(s.raw))
                if u is None:
                    raise ArgError(i, "all elements must be of the same type")
                ets.append(u[0])
                elems.append(u[1])
            lists += 1
        else:
            raise ArgError(i, "a set or a list is required")
    if lists not in (0, len(sets)):
        raise FunctionError("either all arguments must be sets, or all arguments must be lists")
    size = 1
    for es in elems:
        size *= len(es)
    if size > MAX_COLLECTION_LENGTH:  # before building it: setproduct(range(1000), range(1000), range(1000))
        raise FunctionError(f"the product would have {size:,} elements (at most {MAX_COLLECTION_LENGTH:,})")
    combos: list[list[Value]] = [[]]
    for es in elems:
        combos = [c + [e] for c in combos for e in es]
    tt = TupleType(ets)
    rows = [Value(tt, tuple(c)) for c in combos] if all(elems) else []
    if lists:
        return list_val(rows, tt)
    return set_val(rows, tt)


@register(CAT, "transpose(map: map(list(string))) -> map(list(string))",
          "Swaps the keys and list values of a map of lists of strings.")
def transpose(m: Value) -> Value:
    out: dict[str, list[Value]] = {}
    for k, lst in m.raw.items():
        if lst.raw is None:
            raise ArgError(0, f'the value for key "{k}" is null')
        for e in lst.raw:
            if e.raw is None:
                raise ArgError(0, f'the list for key "{k}" contains a null element')
            out.setdefault(e.raw, []).append(string_val(k))
    return map_val({k: list_val(v, STRING) for k, v in out.items()}, ListType(STRING))


@register(CAT, "chunklist(list: list(any), size: number) -> list(list(any))",
          "Splits a list into lists of at most size elements.")
def chunklist(lst: Value, size: Value) -> Value:
    n = _whole(size, 1, "the size argument")
    if n < 0:
        raise ArgError(1, "the size argument must be positive")
    et = lst.type.element
    elems = list(lst.raw)
    if n == 0:
        return list_val([lst], lst.type)
    chunks = [list_val(elems[i:i + n], et) for i in range(0, len(elems), n)]
    return list_val(chunks, ListType(et))


@register(CAT, "alltrue(list: list(bool) [null]) -> bool",
          "Whether every element is true (true for an empty list).")
def alltrue(lst: Value) -> Value:
    if lst.raw is None:
        raise ArgError(0, "argument must not be null")
    return bool_val(all(e.raw is True for e in lst.raw))


@register(CAT, "anytrue(list: list(bool) [null]) -> bool",
          "Whether any element is true (false for an empty list).")
def anytrue(lst: Value) -> Value:
    if lst.raw is None:
        raise ArgError(0, "argument must not be null")
    return bool_val(any(e.raw is True for e in lst.raw))


@register(CAT, "sum(list: any) -> number", "The total of a list, tuple or set of numbers.")
def sum_(lst: Value) -> Value:
    _require_seq(lst, 0, "argument must be list, set, or tuple of number values")
    if not lst.raw:
        raise ArgError(0, "cannot sum an empty list")
    total = 0
    for i, e in enumerate(lst.raw):
        if e.raw is None:
            raise ArgError(0, f"argument must be list, set, or tuple of number values: element {i} is null")
        try:
            n = convert(e, NUMBER).raw
        except ConversionError:
            raise ArgError(0, "argument must be list, set, or tuple of number values") from None
        total = arithmetic("+", total, n)
    return number_val(total)


@register(CAT, "matchkeys(values: list(any), keys: list(any), searchset: list(any)) -> list(any)",
          "The elements of values whose corresponding element of keys is in searchset.")
def matchkeys(vals: Value, ks: Value, search: Value) -> Value:
    if len(vals.raw) != len(ks.raw):
        raise FunctionError("length of keys and values should be equal")
    want = set(search.raw)
    return list_val((v for v, k in zip(vals.raw, ks.raw) if k in want), vals.type.element)
