"""The loaded configuration: declarations of every module, by address.

Everything here is data produced by ``load_config``; evaluation of
instances (``expand``) and outputs lives in ``evaluate.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Any

from ..addrs import ConfigAddress, ModulePath, ResourceAddress
from ..eval import Value
from ..lang import ast as A
from ..lang.source import Range
from .files import ConfigFiles
from .typeexpr import TypeConstraint

if TYPE_CHECKING:
    from ..diagnostics import Diagnostic

Path = tuple[str | int, ...]  # an attribute path: ("container", 0, "env", "GREETING")


def module_prefix(module: ModulePath) -> str:
    return "".join(f"{m}." for m in module)


def module_name(module: ModulePath) -> str:
    """``root module`` or ``module.app``, for messages."""
    return "the root module" if not module else str(module[-1]) if len(module) == 1 else \
        ".".join(str(m) for m in module)


class Span(A.Node):
    """A source span that is not a syntax tree node (a block label, a --var value)."""

    __slots__ = ()

    def __init__(self, src, start: int, end: int) -> None:
        self.src, self.start, self.end = src, start, end


@dataclass
class Validation:
    condition: A.Expr
    error_message: A.Expr | None
    range: Range


@dataclass
class VariableDecl:
    name: str
    module: ModulePath
    type: TypeConstraint
    default: A.Attribute | None  # the ``default`` argument (None: required)
    description: str
    sensitive: bool
    nullable: bool
    validations: list[Validation]
    block: A.Block
    typed: bool  # whether ``type`` was given (untyped values from --var stay strings)
    default_value: Value | None = None  # converted default

    @property
    def required(self) -> bool:
        return self.default is None

    @property
    def range(self) -> Range:
        return self.block.range


@dataclass
class LocalDecl:
    name: str
    module: ModulePath
    attribute: A.Attribute
    references: set[ConfigAddress] = field(default_factory=set)

    @property
    def expr(self) -> A.Expr:
        return self.attribute.expr

    @property
    def range(self) -> Range:
        return self.attribute.range

    def __str__(self) -> str:
        return f"{module_prefix(self.module)}local.{self.name}"


@dataclass
class OutputDecl:
    name: str
    module: ModulePath
    expr: A.Expr | None
    description: str
    sensitive: bool
    depends_on: list[ConfigAddress]
    block: A.Block
    references: set[ConfigAddress] = field(default_factory=set)

    @property
    def range(self) -> Range:
        return self.block.range

    def __str__(self) -> str:
        return f"{module_prefix(self.module)}output.{self.name}"


@dataclass
class ModuleCall:
    """``module "app" { source = "./app", ... }`` in the module at ``parent``."""

    name: str
    parent: ModulePath
    path: ModulePath  # the child module's path: parent + (ModuleStep(name),)
    source: str
    directory: FsPath
    inputs: dict[str, A.Attribute]
    depends_on: list[ConfigAddress]
    block: A.Block

    @property
    def range(self) -> Range:
        return self.block.range


@dataclass
class Lifecycle:
    create_before_destroy: bool = False
    prevent_destroy: bool = False
    ignore_changes: list[Path] = field(default_factory=list)
    ignore_all_changes: bool = False  # ``ignore_changes = all``


@dataclass(eq=False)
class ResourceDecl:
    """A resource block: ``pod "web" { ... }`` in a module."""

    address: ConfigAddress
    block: A.Block
    count_expr: A.Expr | None = None  # ``count``, or a pod's ``replicas``
    for_each_expr: A.Expr | None = None
    count_argument: str = "count"  # which argument count_expr came from
    # a pod's ``autoscale`` block: the autoscaler owns its replica count (``Config.scale``), within the block's
    # min_replicas..max_replicas
    autoscale_block: A.Block | None = None
    depends_on: list[ConfigAddress] = field(default_factory=list)
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    references: set[ConfigAddress] = field(default_factory=set)
    config: Any = field(default=None, repr=False)  # the Config it belongs to (for expand)

    @property
    def type(self) -> str:
        return self.address.type

    @property
    def name(self) -> str:
        return self.address.name

    @property
    def module(self) -> ModulePath:
        return self.address.module

    @property
    def range(self) -> Range:
        return self.block.range

    @property
    def mode(self) -> str:
        """``single``, ``count`` (instances keyed 0..n-1) or ``for_each`` (keyed by string)."""
        if self.for_each_expr is not None:
            return "for_each"
        if self.count_expr is not None or self.autoscale_block is not None:
            return "count"
        return "single"

    def __str__(self) -> str:
        return str(self.address)


@dataclass
class ResourceInstanceConfig:
    """One instance of a resource block, evaluated."""

    address: ResourceAddress
    decl: ResourceDecl = field(repr=False)
    values: dict[str, Any]  # normalised attribute values; UNKNOWN where unknown
    sensitive_paths: set[Path] = field(default_factory=set)

    @property
    def key(self) -> int | str | None:
        return self.address.key


@dataclass
class OutputValue:
    name: str
    value: Any  # plain data, UNKNOWN where unknown
    sensitive: bool
    sensitive_paths: set[Path] = field(default_factory=set)
    decl: OutputDecl | None = field(default=None, repr=False)


@dataclass
class Module:
    """One module of the tree (the root has path ``()``)."""

    path: ModulePath
    directory: FsPath
    files: ConfigFiles
    variables: dict[str, VariableDecl] = field(default_factory=dict)
    locals: dict[str, LocalDecl] = field(default_factory=dict)
    outputs: dict[str, OutputDecl] = field(default_factory=dict)
    resources: dict[ConfigAddress, ResourceDecl] = field(default_factory=dict)
    calls: dict[str, ModuleCall] = field(default_factory=dict)


@dataclass
class Config:
    directory: FsPath
    modules: dict[ModulePath, Module] = field(default_factory=dict)
    variables: dict[str, Value] = field(default_factory=dict)  # final values of the root's variables
    resources: dict[ConfigAddress, ResourceDecl] = field(default_factory=dict)
    locals: dict[tuple[ModulePath, str], LocalDecl] = field(default_factory=dict)
    outputs: dict[tuple[ModulePath, str], OutputDecl] = field(default_factory=dict)
    module_calls: dict[ModulePath, ModuleCall] = field(default_factory=dict)  # by child module path
    scheduler_strategy: str = "spread"  # the root's scheduler { strategy = ... }: pods' default placement
    scheduler_block: Any = field(default=None, repr=False)
    settings: dict[str, str] = field(default_factory=dict)  # the root's orch { ... } block (literal strings)
    orch_block: Any = field(default=None, repr=False)
    backend: Any = None  # the orch block's backend (state.backends.BackendChoice); None: local
    # the replica count of each autoscaled pod as it is now (or as the reconciler decided): set by the planner
    # from the state before it expands blocks; without an entry, an autoscaled pod has min_replicas
    scale: dict[ConfigAddress, int] = field(default_factory=dict)
    _functions: dict = field(default_factory=dict, repr=False)

    def functions(self, module: ModulePath = ()) -> dict:
        """The function table of a module (file functions read relative to its directory)."""
        f = self._functions.get(module)
        if f is None:
            from ..eval import standard_functions
            f = self._functions[module] = standard_functions(self.modules[module].directory)
        return f

    @property
    def root(self) -> Module:
        return self.modules[()]

    @property
    def variable_decls(self) -> dict[str, VariableDecl]:
        return self.root.variables

    @property
    def root_outputs(self) -> dict[str, OutputDecl]:
        return self.root.outputs

    def expand(self, decl: ResourceDecl, ctx_values: dict) -> tuple[list[ResourceInstanceConfig],
                                                                       list[Diagnostic]]:
        from .evaluate import expand
        return expand(decl, ctx_values)

    def evaluate_outputs(self, ctx_values: dict) -> tuple[dict[str, OutputValue], list[Diagnostic]]:
        from .evaluate import evaluate_outputs
        return evaluate_outputs(self, ctx_values)
