"""Rendering values: Terraform-console style text and JSON.

``format_value`` follows Terraform's ``repl.FormatValue``: strings quoted Go
style (or as a heredoc when multi-line), lists ``tolist([...])``, maps
``tomap({...})``, typed nulls ``tostring(null)``, unknowns
``(known after apply)``, sensitive values ``(sensitive value)``.

``to_json`` follows cty's JSON encoding as used by ``jsonencode``: compact,
keys sorted, numbers in plain decimal notation, and ``<``, ``>``, ``&``
escaped as Go's encoder does.
"""

from __future__ import annotations

import json

from ..redact import SENSITIVE
from .types import BOOL, DYNAMIC, NUMBER, STRING
from .values import UNKNOWN, Value, format_number


def format_value(v: Value, indent: int = 0) -> str:
    """A value as ``terraform console`` prints it."""
    if v.raw is UNKNOWN:
        return "(known after apply)"
    if v.sensitive:
        return SENSITIVE
    t = v.type
    if v.raw is None:
        if t == DYNAMIC:
            return "null"
        if t == STRING:
            return "tostring(null)"
        if t == NUMBER:
            return "tonumber(null)"
        if t == BOOL:
            return "tobool(null)"
        if t.is_list:
            return f"tolist(null) /* of {t.element.friendly_name()} */"
        if t.is_set:
            return f"toset(null) /* of {t.element.friendly_name()} */"
        if t.is_map:
            return f"tomap(null) /* of {t.element.friendly_name()} */"
        return f"null /* {t.friendly_name()} */"
    if t == STRING:
        return _format_string(v.raw, indent)
    if t == NUMBER:
        return format_number(v.raw)
    if t == BOOL:
        return "true" if v.raw else "false"
    if t.is_object:
        return _format_mapping(v, indent)
    if t.is_tuple:
        return _format_sequence(v, indent)
    if t.is_list:
        return f"tolist({_format_sequence(v, indent)})"
    if t.is_set:
        return f"toset({_format_sequence(v, indent)})"
    if t.is_map:
        return f"tomap({_format_mapping(v, indent)})"
    return repr(v)


def _format_string(s: str, indent: int) -> str:
    lines = s.split("\n")
    if len(lines) < 2:
        return go_quote(s)
    if lines[-1] == "":  # a final newline ends the last line; it is not an empty line of its own
        lines.pop()
    # Multi-line strings print as a heredoc whose marker no line collides with.
    op = "<<-" if indent > 0 else "<<"
    marker = "EOT"
    while any(line.strip() == marker for line in lines):
        marker += "_"
    pad = " " * indent
    return op + marker + "".join("\n" + pad + line for line in lines) + "\n" + pad + marker


def _format_mapping(v: Value, indent: int) -> str:
    inner = indent + 2
    pad = " " * inner
    parts = [f"\n{pad}{go_quote(k)} = {format_value(x, inner)}" for k, x in v.raw.items()]
    return "{" + "".join(parts) + ("\n" + " " * indent if parts else "") + "}"


def _format_sequence(v: Value, indent: int) -> str:
    inner = indent + 2
    pad = " " * inner
    parts = [f"\n{pad}{format_value(x, inner)}," for x in v.raw]
    return "[" + "".join(parts) + ("\n" + " " * indent if parts else "") + "]"


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
               "\\": "\\\\", '"': '\\"'}


def go_quote(s: str) -> str:
    """Go's strconv.Quote: printable characters kept, others escaped."""
    out = ['"']
    for c in s:
        esc = _GO_ESCAPES.get(c)
        if esc is not None:
            out.append(esc)
        elif c.isprintable() or c == " ":
            out.append(c)
        else:
            o = ord(c)
            if o < 0x80:
                out.append(f"\\x{o:02x}")
            elif o <= 0xFFFF:
                out.append(f"\\u{o:04x}")
            else:
                out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


# ---- JSON ------------------------------------------------------------------------

def to_json(v: Value, indent: int | None = None) -> str:
    """JSON text of a known value (as Terraform's jsonencode). Raises ValueError for unknowns."""
    out: list[str] = []
    _json(v, out, indent, 0)
    return "".join(out)


def _json(v: Value, out: list[str], indent: int | None, level: int) -> None:
    # Hand-written because json.dumps cannot print a Decimal exactly.
    raw = v.raw
    if raw is UNKNOWN:
        raise ValueError("value is not known yet")
    if raw is None:
        out.append("null")
        return
    t = v.type
    if t == STRING:
        out.append(json_string(raw))
    elif t == NUMBER:
        out.append(format_number(raw))
    elif t == BOOL:
        out.append("true" if raw else "false")
    else:
        is_seq = isinstance(raw, tuple)
        items = raw if is_seq else sorted(raw.items())
        if not items:
            out.append("[]" if is_seq else "{}")
            return
        out.append("[" if is_seq else "{")
        nl = "" if indent is None else "\n" + " " * (indent * (level + 1))
        for i, item in enumerate(items):
            if i:
                out.append(",")
            out.append(nl)
            if is_seq:
                _json(item, out, indent, level + 1)
            else:
                out.append(json_string(item[0]))
                out.append(":" if indent is None else ": ")
                _json(item[1], out, indent, level + 1)
        if indent is not None:
            out.append("\n" + " " * (indent * level))
        out.append("]" if is_seq else "}")


def json_string(s: str) -> str:
    text = json.dumps(s, ensure_ascii=False)
    # Go's encoder escapes HTML-significant characters and JS line separators.
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
