"""The type system of evaluated values, after go-cty.

Types are immutable and hashable so they can be compared with ``==`` and
used as dictionary keys. ``DYNAMIC`` is cty's DynamicPseudoType: "any type,
decided later"; it is the type of a literal ``null`` and of values whose
type is not known yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


class Type:
    """Base class of every type."""

    __slots__ = ()

    # Kind tests, overridden by the subclasses (cheaper than isinstance chains at call sites).
    is_primitive = False
    is_list = False
    is_set = False
    is_map = False
    is_tuple = False
    is_object = False

    @property
    def is_collection(self) -> bool:
        """list, set or map: every element has the same type."""
        return self.is_list or self.is_set or self.is_map

    @property
    def is_sequence(self) -> bool:
        """Values with integer-indexed elements."""
        return self.is_list or self.is_tuple

    def friendly_name(self) -> str:
        raise NotImplementedError

    def type_expr(self) -> str:
        """The type as written in a type constraint, e.g. ``list(string)``."""
        raise NotImplementedError

    def has_dynamic(self) -> bool:
        """Does DYNAMIC appear anywhere in this type?"""
        return False

    def __str__(self) -> str:
        return self.type_expr()


@dataclass(frozen=True, slots=True, repr=False)
class PrimitiveType(Type):
    name: str

    is_primitive = True  # type: ignore[assignment]

    def friendly_name(self) -> str:
        return self.name

    def type_expr(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return self.name.upper()


@dataclass(frozen=True, slots=True, repr=False)
class DynamicType(Type):
    def friendly_name(self) -> str:
        return "dynamic"

    def type_expr(self) -> str:
        return "any"

    def has_dynamic(self) -> bool:
        return True

    def __repr__(self) -> str:
        return "DYNAMIC"


STRING = PrimitiveType("string")
NUMBER = PrimitiveType("number")
BOOL = PrimitiveType("bool")
DYNAMIC = DynamicType()


@dataclass(frozen=True, slots=True, repr=False)
class ListType(Type):
    element: Type
    is_list = True  # type: ignore[assignment]

    def friendly_name(self) -> str:
        return f"list of {self.element.friendly_name()}"

    def type_expr(self) -> str:
        return f"list({self.element.type_expr()})"

    def has_dynamic(self) -> bool:
        return self.element.has_dynamic()

    def __repr__(self) -> str:
        return f"ListType({self.element!r})"


@dataclass(frozen=True, slots=True, repr=False)
class SetType(Type):
    element: Type
    is_set = True  # type: ignore[assignment]

    def friendly_name(self) -> str:
        return f"set of {self.element.friendly_name()}"

    def type_expr(self) -> str:
        return f"set({self.element.type_expr()})"

    def has_dynamic(self) -> bool:
        return self.element.has_dynamic()

    def __repr__(self) -> str:
        return f"SetType({self.element!r})"


@dataclass(frozen=True, slots=True, repr=False)
class MapType(Type):
    element: Type
    is_map = True  # type: ignore[assignment]

    def friendly_name(self) -> str:
        return f"map of {self.element.friendly_name()}"

    def type_expr(self) -> str:
        return f"map({self.element.type_expr()})"

    def has_dynamic(self) -> bool:
        return self.element.has_dynamic()

    def __repr__(self) -> str:
        return f"MapType({self.element!r})"


@dataclass(frozen=True, slots=True, repr=False)
class TupleType(Type):
    elements: tuple[Type, ...]
    is_tuple = True  # type: ignore[assignment]

    def __init__(self, elements) -> None:
        object.__setattr__(self, "elements", tuple(elements))

    def friendly_name(self) -> str:
        return "tuple"

    def type_expr(self) -> str:
        return "tuple([" + ", ".join(t.type_expr() for t in self.elements) + "])"

    def has_dynamic(self) -> bool:
        return any(t.has_dynamic() for t in self.elements)

    def __repr__(self) -> str:
        return f"TupleType({list(self.elements)!r})"


@dataclass(frozen=True, slots=True, repr=False)
class ObjectType(Type):
    """Attributes are kept sorted by name: cty iterates objects lexically.

    ``optional`` names attributes that a type constraint marked
    ``optional(...)``: conversion fills them with null when absent.
    """

    attrs: tuple[tuple[str, Type], ...]
    optional: frozenset[str] = field(default=frozenset())
    is_object = True  # type: ignore[assignment]

    def __init__(self, attrs: Mapping[str, Type], optional=frozenset()) -> None:
        object.__setattr__(self, "attrs", tuple(sorted(attrs.items())))
        object.__setattr__(self, "optional", frozenset(optional))

    @property
    def attr_types(self) -> dict[str, Type]:
        return dict(self.attrs)

    def friendly_name(self) -> str:
        return "object"

    def type_expr(self) -> str:
        inner = ", ".join(
            f"{k} = optional({t.type_expr()})" if k in self.optional else f"{k} = {t.type_expr()}"
            for k, t in self.attrs)
        return "object({" + inner + "})"

    def has_dynamic(self) -> bool:
        return any(t.has_dynamic() for _, t in self.attrs)

    def __repr__(self) -> str:
        return f"ObjectType({dict(self.attrs)!r})"


EMPTY_TUPLE = TupleType(())
EMPTY_OBJECT = ObjectType({})


def element_type(t: Type) -> Type:
    """The element type of a collection; DYNAMIC for anything else."""
    if isinstance(t, (ListType, SetType, MapType)):
        return t.element
    return DYNAMIC


def friendly_name_article(t: Type) -> str:
    """``a string``, ``an object``... for error messages."""
    name = t.friendly_name()
    return ("an " if name[0] in "aeiou" else "a ") + name
