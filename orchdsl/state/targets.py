"""Address patterns used by the state commands: ``pod.web``, ``pod.web[0]``, ``module.app``.

A resource instance address (``orchdsl.addrs``) names exactly one object.
The state commands also accept broader patterns, as Terraform's do: a
resource without a key means every instance of it, and a module path means
everything inside that module. ``Target`` is such a pattern.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

from ..addrs import EMPTY_ADDRESS, AddressError, InstanceKey, ModulePath, ModuleStep, ResourceAddress, parse_address

# module.NAME, module.NAME[0], module.NAME["key"]; the key syntax is what str(ModuleStep) produces.
_STEP = re.compile(r'module\.([A-Za-z_][A-Za-z0-9_-]*)(?:\[(?:(\d+)|("(?:[^"\\]|\\.)*"))\])?')


@lru_cache(maxsize=1024)
def parse_module_path(text: str) -> ModulePath:
    """``module.a["x"].module.b`` -> steps; ``""`` is the root module. Raises AddressError.

    Cached and regex-based because every resource of a loaded state goes
    through here; the full HCL expression parser would cost ~0.2 ms each.
    """
    if text == "":
        return ()
    steps: list[ModuleStep] = []
    pos = 0
    while True:
        m = _STEP.match(text, pos)
        if m is None:
            raise AddressError(f'"{text}" is not a module path (expected module.NAME or module.NAME[KEY])')
        key: InstanceKey = None
        if m.group(2) is not None:
            key = int(m.group(2))
        elif m.group(3) is not None:
            key = json.loads(m.group(3))
        steps.append(ModuleStep(m.group(1), key))
        pos = m.end()
        if pos == len(text):
            return tuple(steps)
        if text[pos] != ".":
            raise AddressError(f'"{text}" is not a module path')
        pos += 1


def format_module_path(module: ModulePath) -> str:
    return ".".join(str(step) for step in module)


@dataclass(frozen=True, slots=True)
class Target:
    """A pattern over resource instance addresses.

    ``type``/``name`` None: a whole module. ``key`` None with a resource: every
    instance of the resource (with or without a key). A module step without a
    key matches every instance of that module call, like Terraform's targets.
    """

    module: ModulePath = ()
    type: str | None = None
    name: str | None = None
    key: InstanceKey = None

    @property
    def is_module(self) -> bool:
        return self.type is None

    @property
    def is_instance(self) -> bool:
        return self.type is not None and self.key is not None

    def matches(self, addr: ResourceAddress) -> bool:
        if len(addr.module) < len(self.module):
            return False
        for want, have in zip(self.module, addr.module):
            if want.name != have.name or (want.key is not None and want.key != have.key):
                return False
        if self.is_module:
            return True
        return (len(addr.module) == len(self.module) and addr.type == self.type and addr.name == self.name
                and (self.key is None or addr.key == self.key))

    def address(self) -> ResourceAddress:
        """The instance this target names (resource targets only)."""
        assert self.type is not None and self.name is not None
        return ResourceAddress(self.type, self.name, self.key, self.module)

    def __str__(self) -> str:
        if self.is_module:
            return format_module_path(self.module)
        return str(self.address())


def parse_target(text: str | ResourceAddress | Target) -> Target:
    """Parse a resource, instance or module address. Raises AddressError with a readable message."""
    if isinstance(text, Target):
        return text
    if isinstance(text, ResourceAddress):
        return Target(text.module, text.type, text.name, text.key)
    text = text.strip()
    if not text:  # the root module's path, but never "everything" when given as an argument
        raise AddressError(EMPTY_ADDRESS)
    try:
        return Target(module=parse_module_path(text))
    except AddressError:
        pass
    addr = parse_address(text)
    if addr.type == "module":  # e.g. 'module.a.module' — "module" is reserved, never a resource type
        raise AddressError(f'"{text}" is not a resource or module address')
    return Target(addr.module, addr.type, addr.name, addr.key)
