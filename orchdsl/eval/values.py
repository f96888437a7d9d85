"""Values: a type, a payload, and an optional "sensitive" mark.

Payloads by type:

* string: ``str`` (NFC-normalised, as cty does, so that equal-looking
  strings compare equal);
* number: ``int`` or ``decimal.Decimal``; integral results are stored as
  ``int`` so that ``4/2`` prints as ``2``. Decimal arithmetic uses
  ``NUMBER_CONTEXT`` (155 significant digits ~ cty's 512-bit floats), so
  ``0.1 + 0.2 == 0.3`` holds, unlike binary floating point;
* bool: ``bool``;
* list, tuple, set: ``tuple`` of Values (sets deduplicated and in a
  canonical order, so equal sets have equal payloads);
* map, object: ``dict`` of str -> Value, keys sorted (cty iterates
  lexically);
* null: ``None``; unknown: the ``UNKNOWN`` sentinel.

An unknown value ("known after apply") stands for a value that will exist
later; every operation on one yields another unknown of the right type.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from decimal import Context, Decimal, InvalidOperation, ROUND_HALF_EVEN
from typing import Any

from .types import (BOOL, DYNAMIC, EMPTY_OBJECT, EMPTY_TUPLE, NUMBER, STRING, ListType, MapType,
                    ObjectType, SetType, TupleType, Type)

NUMBER_CONTEXT = Context(prec=155, rounding=ROUND_HALF_EVEN, Emax=999_999_999, Emin=-999_999_999)
# Numbers are limited in magnitude: below 10**4000 and, unless zero, at least 10**-4000. Within that range
# integers are exact and other numbers have 155 significant digits (cty's 512-bit floats); beyond it, a
# tiny input (`1e999999999`) would make an integer of a billion digits. 4,000 digits also stay under Python's
# limit on int-to-string conversion (4,300 digits), so every number can be printed.
MAX_NUMBER_EXPONENT = 4000
_MAX_INT = 10 ** MAX_NUMBER_EXPONENT


class NumberRangeError(ValueError):
    """A number outside the magnitudes orch computes with (see ``MAX_NUMBER_EXPONENT``)."""

    def __init__(self, what: str = "the number") -> None:
        super().__init__(f"{what} is out of range: orch numbers are limited to magnitudes below "
                         f"1e{MAX_NUMBER_EXPONENT} and, unless zero, at least 1e-{MAX_NUMBER_EXPONENT}")


# The size of one value: a string of at most 16 Mi characters, a collection of at most 1,000,000 elements.
# Each producer is linear in what it is given, so with these bounds a chain of doublings
# (`b = "${local.a}${local.a}"`, `c = concat(local.b, local.b)`, ...) stops after a few steps instead of
# growing past the machine's memory.
MAX_STRING_LENGTH = 16 << 20
MAX_COLLECTION_LENGTH = 1_000_000


class ValueTooLarge(ValueError):
    """A string or collection beyond MAX_STRING_LENGTH or MAX_COLLECTION_LENGTH."""


def _check_length(n: int, what: str) -> None:
    if n > (MAX_STRING_LENGTH if what == "string" else MAX_COLLECTION_LENGTH):
        limit = f"{MAX_STRING_LENGTH >> 20} Mi characters" if what == "string" else \
            f"{MAX_COLLECTION_LENGTH:,} elements"
        raise ValueTooLarge(f"the {what} would be too large ({n:,} {'characters' if what == 'string' else 'elements'}"
                            f"; at most {limit})")


def check_string_length(n: int) -> None:
    """For producers that know a result's size before making it (``join``, ``indent``, ``replace``)."""
    if n > MAX_STRING_LENGTH:
        _check_length(n, "string")


def in_range(n: Number) -> bool:
    """Whether ``n`` is within the magnitudes orch computes with (cheap: no conversion of big numbers)."""
    if isinstance(n, int):
        return -_MAX_INT < n < _MAX_INT
    return not n or -MAX_NUMBER_EXPONENT <= n.adjusted() < MAX_NUMBER_EXPONENT

Number = int | Decimal


class _Unknown:
    """Payload of unknown values (a singleton)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __copy__(self):  # copies stay the one singleton
        return self

    def __deepcopy__(self, memo):
        return self


UNKNOWN: Any = _Unknown()


class Value:
    __slots__ = ("type", "raw", "sensitive")

    def __init__(self, type_: Type, raw: Any, sensitive: bool = False) -> None:
        self.type = type_
        self.raw = raw
        self.sensitive = sensitive

    # ---- state -------------------------------------------------------------------
    @property
    def is_null(self) -> bool:
        return self.raw is None

    @property
    def is_known(self) -> bool:
        return self.raw is not UNKNOWN

    @property
    def is_wholly_known(self) -> bool:
        """Known all the way down (no unknown element anywhere)."""
        raw = self.raw
        if raw is UNKNOWN:
            return False
        if isinstance(raw, tuple):
            return all(v.is_wholly_known for v in raw)
        if isinstance(raw, dict):
            return all(v.is_wholly_known for v in raw.values())
        return True

    @property
    def is_deeply_sensitive(self) -> bool:
        if self.sensitive:
            return True
        raw = self.raw
        if isinstance(raw, tuple):
            return any(v.is_deeply_sensitive for v in raw)
        if isinstance(raw, dict):
            return any(v.is_deeply_sensitive for v in raw.values())
        return False

    def mark(self, sensitive: bool = True) -> Value:
        """This value, marked sensitive if ``sensitive``."""
        if not sensitive or self.sensitive:
            return self
        return Value(self.type, self.raw, True)

    def unmark(self) -> Value:
        return Value(self.type, self.raw) if self.sensitive else self

    def unmark_deep(self) -> Value:
        raw = self.raw
        if isinstance(raw, tuple):
            raw = tuple(v.unmark_deep() for v in raw)
        elif isinstance(raw, dict):
            raw = {k: v.unmark_deep() for k, v in raw.items()}
        elif not self.sensitive:
            return self
        return Value(self.type, raw)

    # ---- access ------------------------------------------------------------------
    @property
    def elements(self) -> tuple[Value, ...]:
        """Elements of a known list, tuple or set."""
        assert isinstance(self.raw, tuple), self
        return self.raw

    @property
    def attrs(self) -> dict[str, Value]:
        """Elements of a known map or attributes of a known object."""
        assert isinstance(self.raw, dict), self
        return self.raw

    def __len__(self) -> int:
        return len(self.raw)

    def __bool__(self) -> bool:
        # Without this, truth testing would fall back to __len__ and fail on numbers.
        return True

    def iter_items(self) -> Iterator[tuple[Value, Value]]:
        """(key, value) pairs in cty order: index for sequences, key for maps, element for sets."""
        t = self.type
        if t.is_set:
            for v in self.raw:
                yield v, v
        elif isinstance(self.raw, tuple):
            for i, v in enumerate(self.raw):
                yield Value(NUMBER, i), v
        else:
            for k, v in self.raw.items():
                yield Value(STRING, k), v

    # ---- identity ------------------------------------------------------------------
    def raw_equals(self, other: Value) -> bool:
        """Exact identity: same type, same payload, same marks (cty RawEquals)."""
        return self == other and self.sensitive == other.sensitive

    def __eq__(self, other: object) -> bool:
        # Structural equality of type and payload (marks ignored); used for set
        # membership and by tests. HCL's ``==`` operator lives in ops.equals.
        if not isinstance(other, Value):
            return NotImplemented
        if self.type != other.type:
            return False
        a, b = self.raw, other.raw
        if a is UNKNOWN or b is UNKNOWN:
            return a is b
        if a is None or b is None:
            return a is b
        return a == b

    def __hash__(self) -> int:
        raw = self.raw
        if isinstance(raw, dict):
            raw = tuple(raw.items())
        return hash((self.type, raw if raw is not UNKNOWN else id(UNKNOWN)))

    def __repr__(self) -> str:
        s = "UNKNOWN" if self.raw is UNKNOWN else repr(self.raw)
        return f"Value({self.type!r}, {s}{', sensitive' if self.sensitive else ''})"

    # ---- shortcuts for known primitives ----------------------------------------------
    def as_str(self) -> str:
        assert isinstance(self.raw, str)
        return self.raw

    def as_number(self) -> Number:
        assert isinstance(self.raw, (int, Decimal)) and not isinstance(self.raw, bool)
        return self.raw

    def as_bool(self) -> bool:
        assert isinstance(self.raw, bool)
        return self.raw


# ---- numbers -----------------------------------------------------------------------

def normalize_number(n: Number) -> Number:
    """Integral numbers as int; others as Decimal in NUMBER_CONTEXT precision."""
    if isinstance(n, bool):
        return int(n)
    if isinstance(n, int):
        if not in_range(n):
            raise NumberRangeError()
        return n
    if not n.is_finite():
        raise ValueError("number is not finite")
    if not in_range(n):
        raise NumberRangeError()
    n = NUMBER_CONTEXT.plus(n)
    if n == n.to_integral_value():
        # Huge exponents would make enormous ints; cty keeps them as floats, but
        # Terraform prints them in full too, so an int is a faithful payload.
        return int(n)
    return n


def parse_number(text: str) -> Number:
    """Parse a decimal number as cty.ParseNumberVal does (no hex, no inf)."""
    s = text.strip()
    if not s or s.lower().lstrip("+-") in ("inf", "infinity", "nan") or "_" in s:
        raise ValueError("a number is required")
    try:
        d = Decimal(s)
    except InvalidOperation:
        raise ValueError("a number is required") from None
    if not d.is_finite():
        raise ValueError("a number is required")
    if not in_range(d):
        raise NumberRangeError(f'"{s[:40]}{"..." if len(s) > 40 else ""}"')
    return normalize_number(d)


def format_number(n: Number) -> str:
    """Decimal notation without exponent, as big.Float Text('f', -1)."""
    if isinstance(n, int):
        # str() refuses ints of more than 4,300 digits (sys.get_int_max_str_digits); Decimal does not
        return str(n) if n.bit_length() < 14_000 else format(Decimal(n), "f")
    s = format(n.normalize(NUMBER_CONTEXT), "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def to_decimal(n: Number) -> Decimal:
    return Decimal(n) if isinstance(n, int) else n


# ---- constructors ----------------------------------------------------------------------

def normalize_string(s: str) -> str:
    """NFC, as cty normalises every string, map key and attribute name."""
    return s if s.isascii() else unicodedata.normalize("NFC", s)


def string_val(s: str) -> Value:
    if len(s) > MAX_STRING_LENGTH:
        _check_length(len(s), "string")
    return Value(STRING, normalize_string(s))


def number_val(n: Number | float) -> Value:
    if isinstance(n, float):
        n = Decimal(repr(n))
    return Value(NUMBER, normalize_number(n))


def bool_val(b: bool) -> Value:
    return TRUE if b else FALSE


def null(t: Type = DYNAMIC) -> Value:
    return Value(t, None)


def unknown(t: Type = DYNAMIC) -> Value:
    return Value(t, UNKNOWN)


def tuple_val(elems: Iterable[Value]) -> Value:
    elems = tuple(elems)
    if len(elems) > MAX_COLLECTION_LENGTH:
        _check_length(len(elems), "collection")
    return Value(TupleType(e.type for e in elems), elems) if elems else EMPTY_TUPLE_VAL


def object_val(attrs: Mapping[str, Value]) -> Value:
    if not attrs:
        return EMPTY_OBJECT_VAL
    if len(attrs) > MAX_COLLECTION_LENGTH:
        _check_length(len(attrs), "collection")
    items = dict(sorted((normalize_string(k), v) for k, v in attrs.items()))
    return Value(ObjectType({k: v.type for k, v in items.items()}), items)


def list_val(elems: Iterable[Value], element_type: Type | None = None) -> Value:
    """A list; the elements must already have one type (convert first otherwise)."""
    elems = tuple(elems)
    if len(elems) > MAX_COLLECTION_LENGTH:
        _check_length(len(elems), "collection")
    et = element_type if element_type is not None else (elems[0].type if elems else DYNAMIC)
    return Value(ListType(et), elems)


def map_val(items: Mapping[str, Value], element_type: Type | None = None) -> Value:
    if len(items) > MAX_COLLECTION_LENGTH:
        _check_length(len(items), "collection")
    items = dict(sorted((normalize_string(k), v) for k, v in items.items()))
    et = element_type if element_type is not None else (next(iter(items.values())).type if items else DYNAMIC)
    return Value(MapType(et), items)


def set_val(elems: Iterable[Value], element_type: Type | None = None) -> Value:
    elems = tuple(elems)
    if len(elems) > MAX_COLLECTION_LENGTH:
        _check_length(len(elems), "collection")
    et = element_type if element_type is not None else (elems[0].type if elems else DYNAMIC)
    return Value(SetType(et), canonical_set(elems))


def canonical_set(elems: Iterable[Value]) -> tuple[Value, ...]:
    """Deduplicate and order set elements (strings lexically, numbers numerically).

    Unknown elements cannot be compared, so they are all kept, at the end.
    Marks are ignored for identity, as in cty where a set is marked as a whole.
    """
    seen: dict[Value, Value] = {}
    unknowns: list[Value] = []
    for e in elems:
        if not e.is_wholly_known:
            unknowns.append(e)
        elif e not in seen:
            seen[e] = e
    return tuple(sorted(seen.values(), key=_set_order_key)) + tuple(unknowns)


def _set_order_key(v: Value) -> tuple:
    raw = v.raw
    if raw is None:
        return (3, "")
    if isinstance(raw, bool):
        return (0, raw)
    if isinstance(raw, (int, Decimal)):
        return (1, raw)
    if isinstance(raw, str):
        return (2, raw)
    from .format import to_json  # ordering of structured elements: by their JSON text

    return (4, to_json(v))


TRUE = Value(BOOL, True)
FALSE = Value(BOOL, False)
EMPTY_TUPLE_VAL = Value(EMPTY_TUPLE, ())
EMPTY_OBJECT_VAL = Value(EMPTY_OBJECT, {})
DYNAMIC_VAL = Value(DYNAMIC, UNKNOWN)  # "an unknown value of unknown type": the result of a failed evaluation
NULL = Value(DYNAMIC, None)
