"""Text shown by ``orch state show`` and ``orch output``, in Terraform's HCL-like layout."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from ..redact import SENSITIVE
from .model import OutputValue, ResourceInstance

SENSITIVE_ATTR = SENSITIVE  # terraform state show
SENSITIVE_OUTPUT = SENSITIVE  # one token everywhere (terraform output writes <sensitive>)

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")

PathT = tuple[str | int, ...]


def hcl_string(s: str) -> str:
    # JSON escapes are HCL escapes; only template sequences need doubling to stay literal.
    return json.dumps(s, ensure_ascii=False).replace("${", "$${").replace("%{", "%%{")


def render_value(value: Any, indent: int = 0, step: int = 2, path: PathT = (),
                 sensitive: Callable[[PathT], bool] = lambda p: False) -> str:
    """``value`` as HCL; nested lines indented by ``step`` more than ``indent``."""
    if path and sensitive(path):
        return SENSITIVE_ATTR
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return hcl_string(value)
    inner = " " * (indent + step)
    if isinstance(value, list):
        if not value:
            return "[]"
        items = [f"{inner}{render_value(v, indent + step, step, path + (i,), sensitive)}," for i, v in
                 enumerate(value)]
        return "[\n" + "\n".join(items) + "\n" + " " * indent + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        keys = [hcl_string(str(k)) for k in value]
        width = max(len(k) for k in keys)
        items = [f"{inner}{k:<{width}} = {render_value(v, indent + step, step, path + (str(raw),), sensitive)}"
                 for k, (raw, v) in zip(keys, value.items())]
        return "{\n" + "\n".join(items) + "\n" + " " * indent + "}"
    return hcl_string(str(value))


def render_instance(inst: ResourceInstance) -> str:
    """Like ``terraform state show``: a ``# ADDR:`` header, then a resource block with aligned ``=``."""
    addr = inst.addr
    header = f"# {addr}:" + (" (tainted)" if inst.status == "tainted" else "")
    lines = [header, f'resource "{addr.type}" "{addr.name}" {{']
    attrs = {k: v for k, v in inst.attributes.items() if v is not None}  # Terraform omits nulls
    if attrs:
        names = [k if _IDENT.match(k) else hcl_string(k) for k in attrs]
        width = max(len(n) for n in names)
        for shown, (key, value) in zip(names, attrs.items()):
            text = render_value(value, indent=4, step=4, path=(key,), sensitive=inst.is_sensitive)
            lines.append(f"    {shown:<{width}} = {text}")
    lines.append("}")
    return "\n".join(lines)


def render_output(value: OutputValue, hide_sensitive: bool) -> str:
    if value.sensitive and hide_sensitive:
        return SENSITIVE_OUTPUT
    return render_value(value.value)


def type_of(value: Any) -> Any:
    """Type of a JSON value in ``terraform output -json`` notation (tuples and objects, as Terraform infers)."""
    if value is None:
        return "dynamic"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return ["tuple", [type_of(v) for v in value]]
    if isinstance(value, dict):
        return ["object", {str(k): type_of(v) for k, v in value.items()}]
    return "dynamic"


def type_name(value: Any) -> str:
    """Friendly type name for messages: ``string``, ``tuple``, ``object``."""
    t = type_of(value)
    return t if isinstance(t, str) else t[0]
