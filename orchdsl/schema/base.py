"""The vocabulary resource schemas are written in.

A resource schema is a pydantic model. Its fields are the arguments and
nested blocks of the resource's configuration block; ``Annotated`` markers
say what the configuration loader needs to know beyond the Python type:

* ``Hcl(type)``: the HCL type an argument's value is converted to before
  pydantic sees it (derived from the Python type when absent);
* ``Block(labels=..., min_items=..., max_items=...)``: the field is a nested
  block (a model, ``Model | None`` for at most one, ``list[Model]`` for many);
  the block's labels fill the named fields of the model;
* ``Computed()``: an attribute orch sets (a pod's ``ip``): readable in
  expressions, not settable in configuration;
* ``Sensitive()``: the value is hidden in plans and output.

Every leaf type accepts the ``UNKNOWN`` sentinel (a value known only after
apply): validation checks what is known and lets unknowns through, so a
configuration can be validated at plan time. ``Str``, ``Int``, ``Number``,
``Bool``, ``Memory``, ``Cpu``, ``Duration``, ``Port`` are the leaf types;
``dump(model)`` turns a validated model back into plain data (by HCL name).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from types import NoneType, UnionType
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WrapValidator, model_validator

from ..eval.types import BOOL, DYNAMIC, NUMBER, STRING, ListType, MapType, ObjectType, Type
from ..eval.plain import UNKNOWN
from .quantities import parse_cpu, parse_duration, parse_memory


# ---- markers --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Hcl:
    """The HCL type constraint of an argument."""

    type: Type


@dataclass(frozen=True)
class Block:
    """The field is a nested block."""

    labels: tuple[str, ...] = ()
    min_items: int = 0
    max_items: int | None = None


@dataclass(frozen=True)
class Computed:
    """Set by orch when planning or applying; read-only in configuration."""


@dataclass(frozen=True)
class Sensitive:
    """Hidden in plans and outputs."""


def is_unknown(v: Any) -> bool:
    return v is UNKNOWN


def _pass_unknown(value: Any, handler: Any) -> Any:
    # An unknown value could be any value of the right type: nothing to check yet.
    if value is UNKNOWN:
        return value
    return handler(value)


UNKNOWN_OK = WrapValidator(_pass_unknown)

Str = Annotated[str, UNKNOWN_OK, Hcl(STRING)]
Int = Annotated[int, UNKNOWN_OK, Hcl(NUMBER)]
Number = Annotated[float, UNKNOWN_OK, Hcl(NUMBER)]
Bool = Annotated[bool, UNKNOWN_OK, Hcl(BOOL)]
NonNegInt = Annotated[int, Field(ge=0), UNKNOWN_OK, Hcl(NUMBER)]
Port = Annotated[int, Field(ge=1, le=65535), UNKNOWN_OK, Hcl(NUMBER)]
Memory = Annotated[int, BeforeValidator(parse_memory), UNKNOWN_OK, Hcl(STRING)]
Cpu = Annotated[float, BeforeValidator(parse_cpu), UNKNOWN_OK, Hcl(STRING)]
Duration = Annotated[float, BeforeValidator(parse_duration), UNKNOWN_OK, Hcl(STRING)]
StrMap = Annotated[dict[str, Str], UNKNOWN_OK, Hcl(MapType(STRING))]
StrList = Annotated[list[Str], UNKNOWN_OK, Hcl(ListType(STRING))]
Protocol = Annotated[Literal["tcp", "udp", "sctp"], BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v),
                     UNKNOWN_OK, Hcl(STRING)]


class Schema(BaseModel):
    """Base of every schema model: unknown arguments are errors, null means "not set"."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_unset(cls, data: Any) -> Any:
        # As in Terraform, an argument set to null is the same as an argument left out.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


class Resource(Schema):
    """Base of the resource types. ``type_name`` is the block type in configuration."""

    type_name: ClassVar[str] = ""
    # An argument that sets the number of instances, like ``count`` (a pod's ``replicas``).
    count_attribute: ClassVar[str | None] = None
    summary: ClassVar[str] = ""

    name: Annotated[str | None, Computed(), Field(
        description="The instance's name: the block label, followed by `-KEY` for an instance of "
                    "`count`/`for_each`/`replicas` (`web-0`, `web-blue`).")] = None


def all_known(*values: Any) -> bool:
    return not any(v is UNKNOWN for v in values)


# ---- introspection ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AttributeSpec:
    name: str  # as written in configuration
    field: str  # the Python field name
    type: Type
    required: bool
    default: Any
    description: str
    computed: bool = False
    sensitive: bool = False


@dataclass(frozen=True)
class BlockSpec:
    name: str
    field: str
    model: type[Schema]
    labels: tuple[str, ...]
    nesting: str  # "single" or "list"
    min_items: int
    max_items: int | None
    description: str

    @property
    def spec(self) -> ModelSpec:
        return describe(self.model)


@dataclass(frozen=True)
class ModelSpec:
    model: type[Schema]
    attributes: dict[str, AttributeSpec]
    blocks: dict[str, BlockSpec]

    def settable(self) -> dict[str, AttributeSpec]:
        return {n: a for n, a in self.attributes.items() if not a.computed}

    def names(self) -> list[str]:
        """Every argument, block and exported attribute (for "did you mean" and references)."""
        return list(self.attributes) + list(self.blocks)


def _markers(metadata: list) -> dict[type, Any]:
    return {type(m): m for m in metadata if isinstance(m, (Hcl, Block, Computed, Sensitive))}


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = get_origin(tp)
    if origin in (Union, UnionType):
        args = [a for a in get_args(tp) if a is not NoneType]
        if len(args) == 1:
            return args[0], True
    return tp, False


def hcl_type(tp: Any) -> Type:
    """The HCL type constraint for a Python annotation."""
    if tp is Any:
        return DYNAMIC
    origin = get_origin(tp)
    if origin is Annotated:
        args = get_args(tp)
        for m in tp.__metadata__:
            if isinstance(m, Hcl):
                return m.type
        return hcl_type(args[0])
    inner, optional = _strip_optional(tp)
    if optional:
        return hcl_type(inner)
    if origin in (Union, UnionType):
        return DYNAMIC
    if origin is Literal:
        return STRING if all(isinstance(a, str) for a in get_args(tp)) else DYNAMIC
    if origin is dict:
        return MapType(hcl_type(get_args(tp)[1]))
    if origin in (list, tuple, set, frozenset):
        return ListType(hcl_type(get_args(tp)[0]))
    if tp is str:
        return STRING
    if tp is bool:
        return BOOL
    if tp in (int, float):
        return NUMBER
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        spec = describe(tp)
        attrs = {a.name: a.type for a in spec.attributes.values() if not a.computed}
        optional_names = {a.name for a in spec.attributes.values() if not a.required}
        return ObjectType(attrs, optional_names)
    return DYNAMIC


@cache
def describe(model: type[Schema]) -> ModelSpec:
    """The arguments and blocks of a schema model, by configuration name."""
    attributes: dict[str, AttributeSpec] = {}
    blocks: dict[str, BlockSpec] = {}
    for field_name, info in model.model_fields.items():
        name = info.alias or field_name
        marks = _markers(info.metadata)
        description = info.description or ""
        block = marks.get(Block)
        if block is not None:
            tp, _ = _strip_optional(info.annotation)
            if get_origin(tp) is list:
                nesting, sub = "list", get_args(tp)[0]
            else:
                nesting, sub = "single", tp
            min_items = block.min_items or (1 if info.is_required() else 0)
            max_items = block.max_items if nesting == "list" else 1
            blocks[name] = BlockSpec(name, field_name, sub, block.labels, nesting, min_items, max_items,
                                     description)
            continue
        hcl = marks.get(Hcl)
        t = hcl.type if hcl is not None else hcl_type(info.annotation)
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        attributes[name] = AttributeSpec(name, field_name, t, info.is_required(), default, description,
                                         Computed in marks, Sensitive in marks)
    return ModelSpec(model, attributes, blocks)


def sensitive_paths(model: type[Schema], data: Any, prefix: tuple = ()) -> set[tuple]:
    """Paths of ``data`` (dumped ``model``) that the schema declares sensitive."""
    out: set[tuple] = set()
    if not isinstance(data, dict):
        return out
    spec = describe(model)
    for name, a in spec.attributes.items():
        if a.sensitive and name in data:
            out.add(prefix + (name,))
    for name, b in spec.blocks.items():
        v = data.get(name)
        if b.nesting == "list" and isinstance(v, list):
            for i, item in enumerate(v):
                out |= sensitive_paths(b.model, item, prefix + (name, i))
        elif isinstance(v, dict):
            out |= sensitive_paths(b.model, v, prefix + (name,))
    return out


def dump(value: Any, exclude_computed: bool = False) -> Any:
    """A validated model as plain data keyed by configuration names (UNKNOWN stays UNKNOWN)."""
    if isinstance(value, BaseModel):
        spec = describe(type(value))
        out = {}
        for name, a in spec.attributes.items():
            if exclude_computed and a.computed:
                continue
            out[name] = dump(getattr(value, a.field), exclude_computed)
        for name, b in spec.blocks.items():
            out[name] = dump(getattr(value, b.field), exclude_computed)
        return out
    if isinstance(value, dict):
        return {k: dump(v, exclude_computed) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [dump(v, exclude_computed) for v in value]
    return value
