"""Resource addresses: ``pod.web``, ``pod.web[2]``, ``pod.web["a"]``, ``module.app.service.api``.

Addresses are values (frozen, hashable, ordered) passed everywhere; nothing
formats an address by hand. ``ConfigAddress`` names a resource block of a
module; ``ResourceAddress`` one instance of it (with the ``count`` index or
``for_each`` key, if any).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import total_ordering

InstanceKey = int | str | None


def _fmt_key(key: InstanceKey) -> str:
    if key is None:
        return ""
    if isinstance(key, int):
        return f"[{key}]"
    return f"[{json.dumps(key)}]"


@dataclass(frozen=True, slots=True)
class ModuleStep:
    name: str
    key: InstanceKey = None

    def __str__(self) -> str:
        return f"module.{self.name}{_fmt_key(self.key)}"


ModulePath = tuple[ModuleStep, ...]


def _module_prefix(module: ModulePath) -> str:
    return "".join(f"{m}." for m in module)


def _sort_key(key: InstanceKey) -> tuple:
    # ints before strings, then natural order: pod.web[2] < pod.web[10]
    if key is None:
        return (0, 0, "")
    if isinstance(key, int):
        return (1, key, "")
    return (2, 0, key)


@total_ordering
@dataclass(frozen=True, slots=True)
class ConfigAddress:
    """A resource block in a module: ``module.app.pod.web``."""

    type: str
    name: str
    module: ModulePath = ()

    def __str__(self) -> str:
        return f"{_module_prefix(self.module)}{self.type}.{self.name}"

    def instance(self, key: InstanceKey = None) -> ResourceAddress:
        return ResourceAddress(self.type, self.name, key, self.module)

    def _order(self) -> tuple:
        return (tuple((m.name, _sort_key(m.key)) for m in self.module), self.type, self.name)

    def __lt__(self, other: ConfigAddress) -> bool:
        return self._order() < other._order()


@total_ordering
@dataclass(frozen=True, slots=True)
class ResourceAddress:
    """One resource instance: ``pod.web[2]``."""

    type: str
    name: str
    key: InstanceKey = None
    module: ModulePath = ()

    def __str__(self) -> str:
        return f"{_module_prefix(self.module)}{self.type}.{self.name}{_fmt_key(self.key)}"

    @property
    def config(self) -> ConfigAddress:
        return ConfigAddress(self.type, self.name, self.module)

    def _order(self) -> tuple:
        return (tuple((m.name, _sort_key(m.key)) for m in self.module), self.type, self.name,
                _sort_key(self.key))

    def __lt__(self, other: ResourceAddress) -> bool:
        return self._order() < other._order()

    @classmethod
    def parse(cls, text: str) -> ResourceAddress:
        """Parse ``module.a["x"].pod.web[0]``; raises ValueError with a readable message."""
        return parse_address(text)


class AddressError(ValueError):
    pass


EMPTY_ADDRESS = ("an empty address is not an address (it never means \"everything\"): name a resource "
                 "(pod.web), an instance (pod.web[0]) or a module (module.app)")


def parse_address(text: str) -> ResourceAddress:
    from .lang import ast as A
    from .lang import parse_expression

    if not text.strip():
        raise AddressError(EMPTY_ADDRESS)
    expr, diags = parse_expression(text.strip())
    if expr is None or diags or not isinstance(expr, A.ScopeTraversal):
        raise AddressError(f'"{text}" is not a resource address (expected TYPE.NAME, TYPE.NAME[KEY] or '
                           'module.NAME.TYPE.NAME)')
    parts: list[tuple[str, InstanceKey]] = []
    pending: str | None = expr.name
    for step in expr.steps:
        if isinstance(step, A.GetAttr):
            if pending is not None:
                parts.append((pending, None))
            pending = step.name
        elif isinstance(step, A.IndexKey) and pending is not None and isinstance(step.key, (int, str)) \
                and not isinstance(step.key, bool):
            parts.append((pending, step.key))
            pending = None
        else:
            raise AddressError(f'"{text}": an instance key must be a number or a quoted string')
    if pending is not None:
        parts.append((pending, None))
    module: list[ModuleStep] = []
    i = 0
    while len(parts) - i > 2:
        if parts[i] != ("module", None):
            raise AddressError(f'"{text}": expected "module.NAME." before the resource')
        name, key = parts[i + 1]
        module.append(ModuleStep(name, key))
        i += 2
    if len(parts) - i != 2 or parts[i][1] is not None:
        raise AddressError(f'"{text}" is not a resource address (expected TYPE.NAME)')
    (rtype, _), (name, key) = parts[i], parts[i + 1]
    return ResourceAddress(rtype, name, key, tuple(module))
