"""The state document: which real objects orch manages, under which addresses.

On disk (``orch.orchstate``) it is one JSON object::

    {"version": 1, "orch_version": "0.1.0", "serial": 7, "lineage": "<uuid4>",
     "outputs": {"url": {"value": "http://...", "sensitive": false}},
     "resources": [{"address": "pod.web[0]", "type": "pod", "name": "web", "index": 0,
                    "module": "", "provider": "docker", "attributes": {...},
                    "sensitive_attributes": [["env", "PASSWORD"]], "private": {...},
                    "dependencies": ["network.app"], "status": "ready"}, ...]}

``serial`` counts content-changing writes and ``lineage`` identifies one
state across its history (both as in Terraform); the backend maintains them.
Resources are kept in address order so that files diff cleanly.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from ..addrs import AddressError, ConfigAddress, ResourceAddress, parse_address
from ..diagnostics import Diagnostic, DiagnosticsError
from .targets import Target, format_module_path, parse_module_path, parse_target

FORMAT_VERSION = 1

Path = tuple[StrictStr | StrictInt, ...]
"""A path into attributes: ``("env", "PASSWORD")``, ``("ports", 0, "host")``."""


@lru_cache(maxsize=1)
def current_orch_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("orch")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0"


class StateFormatError(ValueError):
    """The text is not a valid state document; the message says where and why."""


class ResourceInstance(BaseModel):
    """One managed object. Immutable: change it with ``model_copy(update=...)`` and ``State.set``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    address: str
    type: str
    name: str
    index: StrictInt | StrictStr | None = None
    module: str = ""
    provider: str
    attributes: dict[str, Any] = Field(default_factory=dict)
    sensitive_attributes: tuple[Path, ...] = ()
    private: Any = None
    dependencies: tuple[str, ...] = ()
    status: Literal["ready", "tainted"] = "ready"

    _addr: ResourceAddress = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _fill_address(cls, data: Any) -> Any:
        # "address" is redundant with type/name/index/module (it is stored for people
        # reading or grepping the file), so code may omit it.
        if isinstance(data, dict) and "address" not in data and "type" in data and "name" in data:
            try:
                module = parse_module_path(data.get("module", ""))
            except AddressError:
                return data  # reported by the after-validator
            data = {**data, "address": str(ResourceAddress(data["type"], data["name"], data.get("index"),
                                                           module))}
        return data

    @field_validator("attributes", "private")
    @classmethod
    def _sort_keys(cls, value: Any) -> Any:
        # Object keys in a fixed order, so an unchanged object serializes to the same text
        # whatever order a provider returned it in (the backend compares text to detect changes).
        return _sorted_json(value)

    @model_validator(mode="after")
    def _check_address(self) -> ResourceInstance:
        try:
            module = parse_module_path(self.module)
        except AddressError as e:
            raise ValueError(str(e)) from None
        addr = ResourceAddress(self.type, self.name, self.index, module)
        if str(addr) != self.address:
            raise ValueError(f'address "{self.address}" does not match type, name, index and module '
                             f'(which give "{addr}")')
        self._addr = addr
        return self

    @classmethod
    def for_address(cls, addr: ResourceAddress | str, provider: str, attributes: dict[str, Any] | None = None,
                    **fields: Any) -> ResourceInstance:
        """Build an instance at ``addr``; ``fields`` are the other model fields."""
        addr = _to_address(addr)
        return cls(address=str(addr), type=addr.type, name=addr.name, index=addr.key,
                   module=format_module_path(addr.module), provider=provider,
                   attributes=attributes or {}, **fields)

    @property
    def addr(self) -> ResourceAddress:
        return self._addr

    def with_address(self, addr: ResourceAddress) -> ResourceInstance:
        return self.for_address(addr, **self.model_dump(exclude={"address", "type", "name", "index", "module"}))

    def is_sensitive(self, path: tuple[str | int, ...]) -> bool:
        """True when ``path`` or one of its parents is marked sensitive."""
        return any(path[:len(p)] == p for p in self.sensitive_attributes)


class OutputValue(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    value: Any
    sensitive: bool = False
    type: Any = None
    """Type constraint in ``terraform output -json`` notation (``"string"``, ``["list", "string"]``);
    None: inferred from the value when shown."""


class _Document(BaseModel):
    """The on-disk schema; the key order here is the order in the file (Terraform's)."""

    model_config = ConfigDict(extra="forbid")

    version: StrictInt
    orch_version: str
    serial: StrictInt = Field(ge=0)
    lineage: str = Field(min_length=1)
    outputs: dict[str, OutputValue] = Field(default_factory=dict)
    resources: list[ResourceInstance] = Field(default_factory=list)


def _sorted_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted_json(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [_sorted_json(v) for v in value]
    return value


def _to_address(addr: ResourceAddress | str) -> ResourceAddress:
    if isinstance(addr, ResourceAddress):
        return addr
    try:
        return parse_address(addr)
    except AddressError as e:
        raise DiagnosticsError([Diagnostic.error("Invalid resource address", str(e))]) from None


def _to_target(target: Target | ResourceAddress | str) -> Target:
    try:
        return parse_target(target)
    except AddressError as e:
        raise DiagnosticsError([Diagnostic.error("Invalid address", str(e))]) from None


def _move_error(summary: str, detail: str, address: str) -> DiagnosticsError:
    return DiagnosticsError([Diagnostic.error(summary, detail, address=address,
                                              hint='"orch state list" shows the addresses in the state')])


class State:
    """The in-memory state: resource instances by address, and root module outputs.

    Mutable on purpose: the engine updates it after every resource change and
    hands it to ``LocalBackend.write``; ``ResourceInstance`` values themselves
    are immutable so that a stored instance never changes behind the state.
    """

    def __init__(self, *, lineage: str | None = None, serial: int = 0, orch_version: str | None = None,
                 resources: Iterable[ResourceInstance] = (), outputs: dict[str, OutputValue] | None = None,
                 version: int = FORMAT_VERSION) -> None:
        self.version = version
        self.orch_version = orch_version or current_orch_version()
        self.serial = serial
        self.lineage = lineage or str(uuid.uuid4())
        self.outputs: dict[str, OutputValue] = dict(outputs or {})
        self._resources: dict[ResourceAddress, ResourceInstance] = {}
        for r in resources:
            self.set(r)

    # ---- resources -----------------------------------------------------------------

    def get(self, addr: ResourceAddress | str) -> ResourceInstance | None:
        return self._resources.get(_to_address(addr))

    def set(self, instance: ResourceInstance) -> None:
        """Add or replace the instance at ``instance.addr``."""
        self._resources[instance.addr] = instance

    def remove(self, target: Target | ResourceAddress | str) -> list[ResourceInstance]:
        """Remove what ``target`` matches (an instance, all instances of a resource, or a module).

        Returns the removed instances in address order; empty when nothing matched.
        """
        removed = self.list(target)
        for r in removed:
            del self._resources[r.addr]
        return removed

    def list(self, *targets: Target | ResourceAddress | str) -> list[ResourceInstance]:
        """Instances in address order; with targets, only those matching at least one."""
        parsed = [_to_target(t) for t in targets]
        return [self._resources[a] for a in sorted(self._resources)
                if not parsed or any(t.matches(a) for t in parsed)]

    def move(self, src: Target | ResourceAddress | str,
             dst: Target | ResourceAddress | str) -> list[tuple[ResourceAddress, ResourceAddress]]:
        """Track existing objects under new addresses, like ``terraform state mv``.

        instance -> instance; resource (no key) -> resource: every instance, keys kept;
        resource whose only instance has no key -> keyed instance; module -> module.
        Resource moves keep the type. Raises DiagnosticsError when nothing matches or
        a destination is taken. Returns (old, new) pairs in address order.
        """
        s, d = _to_target(src), _to_target(dst)
        matched = self.list(s)
        if not matched:
            raise _move_error("Invalid source address",
                              f'Cannot move {s}: it does not match anything in the current state.', str(s))
        if s.is_module != d.is_module:
            what = {True: "a module", False: "a resource"}
            raise _move_error("Invalid state move",
                              f"Cannot move {s} to {d}: cannot move {what[s.is_module]} to {what[d.is_module]}.",
                              str(s))
        if not s.is_module and s.type != d.type:
            raise _move_error("Invalid state move",
                              f"Cannot move {s} to {d}: resource types don't match.", str(s))

        if s.is_module:
            # Only an exact module instance moves (module.a[0], not every instance of module.a),
            # so that the keys of the destination are never guessed.
            inexact = [r for r in matched if r.addr.module[:len(s.module)] != s.module]
            if inexact:
                example = format_module_path(inexact[0].addr.module[:len(s.module)])
                raise _move_error("Invalid source address",
                                  f"Cannot move {s}: it has several instances; move each one, "
                                  f"for example {example}.", str(s))
            pairs = [(r.addr, ResourceAddress(r.addr.type, r.addr.name, r.addr.key,
                                              d.module + r.addr.module[len(s.module):])) for r in matched]
        elif s.key is None and d.key is None:
            pairs = [(r.addr, ResourceAddress(d.type, d.name, r.addr.key, d.module)) for r in matched]  # type: ignore[arg-type]
        else:
            if len(matched) != 1 or (s.key is None and matched[0].addr.key is not None):
                raise _move_error("Invalid source address",
                                  f"Cannot move {s} to the single instance {d}: {s} has {len(matched)} "
                                  "instances with keys; name one instance, such as "
                                  f"{matched[0].addr}.", str(s))
            pairs = [(matched[0].addr, d.address())]

        moving = {old for old, _ in pairs}
        for old, new in pairs:
            if new in self._resources and new not in moving:
                raise _move_error("Invalid target address",
                                  f"Cannot move {old} to {new}: there is already an object at {new}. "
                                  f'Remove it first with "orch state rm {new}" if it is no longer needed.',
                                  str(new))
        if len({new for _, new in pairs}) != len(pairs):
            raise _move_error("Invalid target address", f"Cannot move {s} to {d}: addresses would collide.",
                              str(d))

        moved = [(old, new, self._resources.pop(old)) for old, new in pairs]
        for _, new, inst in moved:
            self._resources[new] = inst.with_address(new)
        self._rewrite_dependencies(pairs)
        return pairs

    def _rewrite_dependencies(self, pairs: list[tuple[ResourceAddress, ResourceAddress]]) -> None:
        # Dependencies decide destroy order; keep them pointing at the moved objects.
        # They may name instances ("pod.web[0]") or whole resources ("pod.web").
        rename = {str(old): str(new) for old, new in pairs if old.key is not None}
        # A resource-level name ("pod.web", which is also how its keyless instance is written)
        # is renamed only when nothing of that resource is left at the old address.
        resources_left = {a.config for a in self._resources}
        for old, new in pairs:
            if old.config not in resources_left:
                rename.setdefault(str(old.config), str(new.config))
        for addr, inst in list(self._resources.items()):
            deps = tuple(rename.get(d, d) for d in inst.dependencies)
            if deps != inst.dependencies:
                self._resources[addr] = inst.model_copy(update={"dependencies": deps})

    def resources_of(self, config: ConfigAddress) -> list[ResourceInstance]:
        """All instances of one resource block, in key order."""
        return [self._resources[a] for a in sorted(self._resources) if a.config == config]

    def __len__(self) -> int:
        return len(self._resources)

    def __iter__(self) -> Iterator[ResourceInstance]:
        return iter(self.list())

    def __contains__(self, addr: object) -> bool:
        if isinstance(addr, str):
            addr = _to_address(addr)
        return addr in self._resources

    # ---- outputs -------------------------------------------------------------------

    def set_output(self, name: str, value: Any, sensitive: bool = False, type: Any = None) -> None:
        self.outputs[name] = OutputValue(value=value, sensitive=sensitive, type=type)

    # ---- JSON ----------------------------------------------------------------------

    def to_json(self, serial: int | None = None, orch_version: str | None = None) -> str:
        """The file text (indented, resources in address order, trailing newline).

        ``serial``/``orch_version`` override the state's own (the backend stamps them).
        """
        doc = _Document.model_construct(  # fields are already valid: skip re-validation, writes must be cheap
            version=self.version, orch_version=orch_version or self.orch_version,
            serial=self.serial if serial is None else serial, lineage=self.lineage,
            outputs=dict(sorted(self.outputs.items())),
            resources=[self._resources[a] for a in sorted(self._resources)])
        return doc.model_dump_json(indent=2) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self.to_json())

    @classmethod
    def from_json(cls, text: str | bytes) -> State:
        """Parse a state file's text. Raises StateFormatError saying what is wrong and where."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise StateFormatError(f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
        except UnicodeDecodeError as e:
            raise StateFormatError(f"not UTF-8 text: {e}") from None
        if not isinstance(raw, dict):
            raise StateFormatError("the document is not a JSON object")
        version = raw.get("version")
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise StateFormatError(f"state format version {version} is newer than this orch supports "
                                   f"({FORMAT_VERSION}); it was written by orch {raw.get('orch_version')}")
        try:
            doc = _Document.model_validate(raw)
        except ValidationError as e:
            raise StateFormatError(_validation_message(e, raw)) from None
        if doc.version != FORMAT_VERSION:
            raise StateFormatError(f"unsupported state format version {doc.version}")
        state = cls(lineage=doc.lineage, serial=doc.serial, orch_version=doc.orch_version,
                    outputs=doc.outputs, version=doc.version)
        for r in doc.resources:
            if r.addr in state._resources:
                raise StateFormatError(f"resource {r.address} appears twice")
            state.set(r)
        return state

    def copy(self) -> State:
        return State(lineage=self.lineage, serial=self.serial, orch_version=self.orch_version,
                     resources=self._resources.values(), outputs=self.outputs, version=self.version)

    def same_content(self, other: State) -> bool:
        """Equal apart from ``serial`` (what decides whether a write is a change)."""
        return self.to_json(serial=0) == other.to_json(serial=0)

    def __repr__(self) -> str:
        return f"State(lineage={self.lineage!r}, serial={self.serial}, resources={len(self)})"


def _validation_message(err: ValidationError, raw: dict) -> str:
    e = err.errors()[0]
    loc = list(e["loc"])
    where = ".".join(str(x) for x in loc)
    # name the resource by its address rather than by a list index
    if len(loc) >= 2 and loc[0] == "resources" and isinstance(loc[1], int):
        try:
            where = f'resource {raw["resources"][loc[1]].get("address", "#" + str(loc[1]))}'
            if len(loc) > 2:
                where += ": " + ".".join(str(x) for x in loc[2:])
        except (AttributeError, IndexError, KeyError, TypeError):
            pass
    more = f" (and {err.error_count() - 1} more problems)" if err.error_count() > 1 else ""
    msg = e["msg"].removeprefix("Value error, ")
    return f"{where}: {msg}{more}" if where else f"{msg}{more}"
