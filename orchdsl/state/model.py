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

Scale: an apply records every change, so ``State`` keeps indexes (by address,
by resource block, in address order) that make ``get``/``set``/``remove`` of
one instance and ``resources_of`` independent of the state's size, and a lock
so that the executor's threads may change and read it at once.
"""

from __future__ import annotations

import gc
import json
import threading
import uuid
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from operator import itemgetter
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


@contextmanager
def gc_paused() -> Iterator[None]:
    """Suspend the cyclic garbage collector while building many objects at once.

    Loading a state creates hundreds of thousands of containers, none of them garbage; each
    automatic collection would walk them all again (half of the load time at 10,000 instances).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


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
    # older objects of this address that still exist: a create_before_destroy replacement made the new one
    # first and deletes these after it (Terraform's "deposed" objects); each {"key", "attributes", "private"}
    deposed: tuple[dict[str, Any], ...] = ()

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
        # Straight from the private dict: pydantic's __getattr__ fallback for private attributes
        # costs microseconds, and the state indexes look this up for every instance.
        return self.__pydantic_private__["_addr"]  # type: ignore[index,no-any-return]

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
    # Runs for every instance loaded: recurse only into containers (most values are scalars).
    if isinstance(value, dict):
        return {k: _sorted_json(value[k]) if isinstance(value[k], (dict, list)) else value[k]
                for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [_sorted_json(v) if isinstance(v, (dict, list)) else v for v in value]
    return value


# Parsing an address runs the expression parser (~0.1 ms); callers such as the executor and the
# CLI ask for the same addresses again and again. Addresses are immutable, so sharing them is safe.
_parse_address_cached = lru_cache(maxsize=16384)(parse_address)


def _to_address(addr: ResourceAddress | str) -> ResourceAddress:
    if isinstance(addr, ResourceAddress):
        return addr
    try:
        return _parse_address_cached(addr)
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


_Moves = list[tuple[ResourceAddress, ResourceAddress]]  # (old, new); an alias: State.list shadows list
_Instances = list["ResourceInstance"]  # the same, for annotations inside State after State.list
_Key = tuple[Any, ...]  # ResourceAddress._order()


def _order_key(addr: ResourceAddress) -> _Key:
    # The key ResourceAddress orders itself by: comparing these tuples directly is what
    # sorted(addresses) does, without two Python method calls per comparison.
    return addr._order()


class _SortedAddresses:
    """Distinct addresses in address order; adding or removing one costs O(log n) comparisons.

    The two lists are parallel: the sort keys (compared by bisect) and the addresses.
    """

    __slots__ = ("_addrs", "_keys")

    def __init__(self, keys: list[_Key] | None = None, addrs: list[ResourceAddress] | None = None) -> None:
        self._keys: list[_Key] = keys if keys is not None else []
        self._addrs: list[ResourceAddress] = addrs if addrs is not None else []

    @classmethod
    def of(cls, addrs: Iterable[ResourceAddress]) -> _SortedAddresses:
        pairs = sorted(((_order_key(a), a) for a in addrs), key=itemgetter(0))
        return cls([k for k, _ in pairs], [a for _, a in pairs])

    def add(self, addr: ResourceAddress) -> None:
        """Insert ``addr``, which must not be present."""
        key = _order_key(addr)
        i = bisect_left(self._keys, key)
        self._keys.insert(i, key)
        self._addrs.insert(i, addr)

    def append_last(self, key: _Key, addr: ResourceAddress) -> None:
        """Add an address known to sort after every present one (building from sorted input)."""
        self._keys.append(key)
        self._addrs.append(addr)

    def discard(self, addr: ResourceAddress) -> None:
        key = _order_key(addr)
        i = bisect_left(self._keys, key)
        if i < len(self._keys) and self._keys[i] == key:
            del self._keys[i]
            del self._addrs[i]

    def copy(self) -> _SortedAddresses:
        return _SortedAddresses(list(self._keys), list(self._addrs))

    def __iter__(self) -> Iterator[ResourceAddress]:
        return iter(self._addrs)

    def __len__(self) -> int:
        return len(self._addrs)


class State:
    """The in-memory state: resource instances by address, and root module outputs.

    Mutable on purpose: the engine updates it after every resource change and
    records it (``LocalBackend.journal`` or ``LocalBackend.write``); ``ResourceInstance``
    values themselves are immutable so that a stored instance never changes behind the state.

    Thread-safe: every method takes an internal lock, so one thread may ``set`` while
    another lists; what a reader gets is a snapshot (a list), never a live view.
    """

    def __init__(self, *, lineage: str | None = None, serial: int = 0, orch_version: str | None = None,
                 resources: Iterable[ResourceInstance] = (), outputs: dict[str, OutputValue] | None = None,
                 version: int = FORMAT_VERSION) -> None:
        self.version = version
        self.orch_version = orch_version or current_orch_version()
        self.serial = serial
        self.lineage = lineage or str(uuid.uuid4())
        self.outputs: dict[str, OutputValue] = dict(outputs or {})
        self._lock = threading.RLock()
        self._resources: dict[ResourceAddress, ResourceInstance] = {}
        self._sorted = _SortedAddresses()
        self._by_config: dict[ConfigAddress, _SortedAddresses] = {}
        # (type, name) -> the module instances holding such a block: resolves patterns such as
        # module.app.pod.web (any instance of module.app) without scanning every resource.
        self._by_name: dict[tuple[str, str], set[ConfigAddress]] = {}
        self._load(resources, unique=False)

    # ---- indexes -------------------------------------------------------------------

    def _load(self, instances: Iterable[ResourceInstance], *, unique: bool) -> None:
        """Add many instances, sorting once (loading a file must not cost n insertions)."""
        resources = self._resources
        for r in instances:
            if unique and r.addr in resources:
                raise StateFormatError(f"resource {r.address} appears twice")
            resources[r.addr] = r
        self._sorted = _SortedAddresses.of(resources)
        self._by_config, self._by_name = {}, {}
        for key, addr in zip(self._sorted._keys, self._sorted._addrs):  # our own index
            self._group(addr.config).append_last(key, addr)  # global order, so each group stays sorted

    def _group(self, config: ConfigAddress) -> _SortedAddresses:
        group = self._by_config.get(config)
        if group is None:
            group = self._by_config[config] = _SortedAddresses()
            self._by_name.setdefault((config.type, config.name), set()).add(config)
        return group

    def _put(self, instance: ResourceInstance) -> None:
        addr = instance.addr
        if addr not in self._resources:  # a replacement keeps its place: only new addresses are indexed
            self._sorted.add(addr)
            self._group(addr.config).add(addr)
        self._resources[addr] = instance

    def _pop(self, addr: ResourceAddress) -> ResourceInstance | None:
        inst = self._resources.pop(addr, None)
        if inst is None:
            return None
        self._sorted.discard(addr)
        config = addr.config
        group = self._by_config[config]
        group.discard(addr)
        if not group:
            del self._by_config[config]
            names = self._by_name[(config.type, config.name)]
            names.discard(config)
            if not names:
                del self._by_name[(config.type, config.name)]
        return inst

    def _matching(self, target: Target) -> Iterator[ResourceAddress]:
        """The addresses ``target`` matches, in address order within each resource block."""
        if target.is_module:
            yield from (a for a in self._sorted if target.matches(a))  # state commands only: a scan is fine
            return
        assert target.type is not None and target.name is not None
        if all(step.key is not None for step in target.module):  # names one block exactly
            configs: Iterable[ConfigAddress] = (ConfigAddress(target.type, target.name, target.module),)
        else:  # a module step without a key matches every instance of that module call
            configs = sorted(c for c in self._by_name.get((target.type, target.name), ())
                             if target.matches(ResourceAddress(c.type, c.name, target.key, c.module)))
        for config in configs:
            group = self._by_config.get(config)
            if group is None:
                continue
            if target.key is None:
                yield from group
            else:
                addr = config.instance(target.key)
                if addr in self._resources:
                    yield addr

    # ---- resources -----------------------------------------------------------------

    def get(self, addr: ResourceAddress | str) -> ResourceInstance | None:
        return self._resources.get(_to_address(addr))

    def set(self, instance: ResourceInstance) -> None:
        """Add or replace the instance at ``instance.addr``."""
        with self._lock:
            self._put(instance)

    def discard(self, addr: ResourceAddress | str) -> ResourceInstance | None:
        """Remove exactly the instance at ``addr`` (no pattern); the removed instance or None."""
        address = _to_address(addr)
        with self._lock:
            return self._pop(address)

    def remove(self, target: Target | ResourceAddress | str) -> list[ResourceInstance]:
        """Remove what ``target`` matches (an instance, all instances of a resource, or a module).

        Returns the removed instances in address order; empty when nothing matched.
        """
        with self._lock:
            removed = self.list(target)
            for r in removed:
                self._pop(r.addr)
        return removed

    def list(self, *targets: Target | ResourceAddress | str) -> list[ResourceInstance]:
        """Instances in address order; with targets, only those matching at least one."""
        parsed = [_to_target(t) for t in targets]
        with self._lock:
            if not parsed:
                return [self._resources[a] for a in self._sorted]
            if len(parsed) == 1 and parsed[0].is_module:
                return [self._resources[a] for a in self._matching(parsed[0])]  # already in order
            found = {a: None for t in parsed for a in self._matching(t)}
            return [self._resources[a] for a in sorted(found, key=_order_key)]

    def move(self, src: Target | ResourceAddress | str,
             dst: Target | ResourceAddress | str) -> _Moves:
        """Track existing objects under new addresses, like ``terraform state mv``.

        instance -> instance; resource (no key) -> resource: every instance, keys kept;
        resource whose only instance has no key -> keyed instance; module -> module.
        Resource moves keep the type. Raises DiagnosticsError when nothing matches or
        a destination is taken. Returns (old, new) pairs in address order.
        """
        with self._lock:
            return self._move(_to_target(src), _to_target(dst))

    def _move(self, s: Target, d: Target) -> _Moves:
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

        if all(old == new for old, new in pairs):
            raise _move_error("Invalid state move", f"Cannot move {s} to itself ({d}): nothing would change.",
                              str(s))
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

        moved = [(new, self._pop(old)) for old, new in pairs]
        for new, inst in moved:
            assert inst is not None
            self._put(inst.with_address(new))
        self._rewrite_dependencies(pairs)
        return pairs

    def _rewrite_dependencies(self, pairs: _Moves) -> None:
        # Dependencies decide destroy order; keep them pointing at the moved objects.
        # They may name instances ("pod.web[0]") or whole resources ("pod.web").
        rename = {str(old): str(new) for old, new in pairs if old.key is not None}
        # A resource-level name ("pod.web", which is also how its keyless instance is written)
        # is renamed only when nothing of that resource is left at the old address.
        for old, new in pairs:
            if old.config not in self._by_config:
                rename.setdefault(str(old.config), str(new.config))
        for addr, inst in list(self._resources.items()):
            deps = tuple(rename.get(d, d) for d in inst.dependencies)
            if deps != inst.dependencies:
                self._resources[addr] = inst.model_copy(update={"dependencies": deps})  # same address

    def resources_of(self, config: ConfigAddress) -> _Instances:
        """All instances of one resource block, in key order."""
        with self._lock:
            group = self._by_config.get(config)
            return [self._resources[a] for a in group] if group is not None else []

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
        with self._lock:
            resources = [self._resources[a] for a in self._sorted]
            outputs = dict(sorted(self.outputs.items()))
        doc = _Document.model_construct(  # fields are already valid: skip re-validation, writes must be cheap
            version=self.version, orch_version=orch_version or self.orch_version,
            serial=self.serial if serial is None else serial, lineage=self.lineage,
            outputs=outputs, resources=resources)
        return doc.model_dump_json(indent=2) + "\n"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.to_json())
        return data

    @classmethod
    def from_json(cls, text: str | bytes) -> State:
        """Parse a state file's text. Raises StateFormatError saying what is wrong and where."""
        with gc_paused():
            return cls._from_json(text)

    @classmethod
    def _from_json(cls, text: str | bytes) -> State:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise StateFormatError(f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
        except UnicodeDecodeError as e:
            raise StateFormatError(f"not UTF-8 text: {e}") from None
        except ValueError as e:  # a number of more digits than Python converts (sys.get_int_max_str_digits)
            raise StateFormatError(f"invalid JSON: {e}") from None
        except RecursionError:
            raise StateFormatError("invalid JSON: nested too deeply") from None
        return cls._from_document(raw)

    @classmethod
    def from_dict(cls, raw: Any) -> State:
        """A state document already parsed from JSON (a saved plan holds one). Raises StateFormatError."""
        with gc_paused():
            return cls._from_document(raw)

    @classmethod
    def _from_document(cls, raw: Any) -> State:
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
        except RecursionError:
            raise StateFormatError("a value is nested too deeply") from None
        if doc.version != FORMAT_VERSION:
            raise StateFormatError(f"unsupported state format version {doc.version}")
        state = cls(lineage=doc.lineage, serial=doc.serial, orch_version=doc.orch_version,
                    outputs=doc.outputs, version=doc.version)
        state._load(doc.resources, unique=True)
        return state

    def copy(self) -> State:
        new = State(lineage=self.lineage, serial=self.serial, orch_version=self.orch_version,
                    outputs=self.outputs, version=self.version)
        with self._lock:  # copy the indexes as they are: no re-sorting
            new._resources = dict(self._resources)
            new._sorted = self._sorted.copy()
            new._by_config = {c: g.copy() for c, g in self._by_config.items()}
            new._by_name = {k: set(v) for k, v in self._by_name.items()}
        return new

    def same_content(self, other: State) -> bool:
        """Equal apart from ``serial`` (what decides whether a write is a change)."""
        return self.to_json(serial=0) == other.to_json(serial=0)

    def __repr__(self) -> str:
        return f"State(lineage={self.lineage!r}, serial={self.serial}, resources={len(self)})"


def _validation_message(err: ValidationError, raw: dict[str, Any]) -> str:
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
