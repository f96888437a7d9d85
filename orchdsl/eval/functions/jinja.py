"""``jinjafile(path, vars)``: render a Jinja2 template file (for ``.j2`` templates brought from Ansible).

The counterpart of ``templatefile`` for Jinja2 syntax, built the same way: the path is resolved against
the configuration directory and read as UTF-8 by the same code (regular files only, bounded size), the
vars must be a known map or object, an unknown var makes the result unknown and a sensitive one makes the
whole result sensitive (both by ``Function.call``, as for every function), and every problem is an
``ArgError``/``FunctionError`` naming the template's file and line, never a traceback.

Rendering runs in Jinja2's ``SandboxedEnvironment`` (no attribute access to internals such as
``__class__``, no unsafe calls), with ``StrictUndefined`` (a name or attribute that does not exist is an
error, except under ``default``/``is defined``), no autoescaping and the file's trailing newline kept.
The template sees only its vars and Jinja2's own filters, tests and globals: no orch functions, no other
files (``include``, ``import``, ``from`` and ``extends`` are refused when the file is compiled).
Bounds: ``range()`` gives at most MAX_RANGE_ELEMENTS elements over a whole rendering, ``*`` and ``**``
refuse results beyond orch's string, collection and number limits, and the output stops at
MAX_STRING_LENGTH characters.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from decimal import Decimal
from types import TracebackType
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from ..types import STRING
from ..values import (MAX_COLLECTION_LENGTH, MAX_NUMBER_EXPONENT, MAX_STRING_LENGTH, UNKNOWN, Value,
                      ValueTooLarge, string_val)
from .base import ArgError, FunctionError
from .filesystem import _read_text, _resolve

# Elements all range() calls of one rendering may produce (nested loops multiply; Jinja2's own sandbox
# bounds one range at 100,000 but not a range inside a loop).
MAX_RANGE_ELEMENTS = 100_000
# Bits of an integer `**` may produce: numbers in orch stay below 1e4000.
_MAX_POW_BITS = int(MAX_NUMBER_EXPONENT * math.log2(10)) + 2

_REFUSED_TAGS: dict[type[nodes.Node], str] = {
    nodes.Include: "include", nodes.Import: "import", nodes.FromImport: "from ... import",
    nodes.Extends: "extends",
}


def jinjafile(base_dir: str, path: str, vars_: Value) -> Value:
    """Render the Jinja2 template at ``path`` (relative to ``base_dir``) with ``vars_`` (a map or object)."""
    if not (vars_.type.is_map or vars_.type.is_object):
        raise ArgError(1, "invalid vars value: must be a map")
    if vars_.raw is None:
        raise ArgError(1, "argument must not be null")
    if vars_.raw is UNKNOWN:  # (Function.call already returns unknown for a not wholly known vars)
        return Value(STRING, UNKNOWN)
    for name in vars_.raw:
        if not name.isidentifier():
            raise ArgError(1, f'invalid template variable name "{name}": a Jinja2 name starts with a letter or '
                              "underscore, followed by letters, digits and underscores")
    source = _read_text(base_dir, path)
    # The name the template is loaded under is the path as written (what messages show); the filename
    # Jinja2 compiles it with is the resolved path, which identifies the template's frames in a traceback.
    filename = str(_resolve(base_dir, path).absolute())
    env = _Environment(_OneFileLoader(path, source, filename))
    try:
        tree = env.parse(source, path, filename)
        _refuse_other_files(tree, path)
        template = env.get_template(path)
    except jinja2.TemplateSyntaxError as e:
        raise ArgError(0, f"invalid template: {path}:{e.lineno}: {e.message}") from None
    data = {name: _to_jinja(v) for name, v in vars_.raw.items()}
    try:
        text = _collect(template.generate(data))
    except ValueTooLarge:
        raise
    except jinja2.UndefinedError as e:
        where = f"{path}:{_template_line(e.__traceback__, filename)}"
        missing = _undefined_name(e)
        if missing is not None and missing not in data:
            raise ArgError(1, f'vars map does not contain key "{missing}", referenced at {where}') from None
        raise FunctionError(f"{where}: undefined value: {e.message or e}") from None
    except SecurityError as e:
        raise FunctionError(f"{path}:{_template_line(e.__traceback__, filename)}: the template sandbox refused "
                            f"an unsafe operation: {_strip_period(str(e))}") from None
    except jinja2.TemplateNotFound as e:  # refused above already; a name computed at run time lands here
        raise FunctionError(f"{path}:{_template_line(e.__traceback__, filename)}: cannot load template "
                            f'"{e.name}": jinjafile renders a single file (no include, import or extends)') \
            from None
    except RecursionError as e:
        raise FunctionError(f"{path}:{_template_line(e.__traceback__, filename)}: recursion too deep (a macro "
                            "that calls itself without end?)") from None
    except Exception as e:  # TypeError, ZeroDivisionError, TemplateRuntimeError, ...: a template's error
        message = str(e) or type(e).__name__
        raise FunctionError(f"{path}:{_template_line(e.__traceback__, filename)}: {message}") from None
    return string_val(text)


# ---- environment -------------------------------------------------------------------------------------------------

class _OneFileLoader(jinja2.BaseLoader):
    """Loads the one template being rendered; every other name is refused."""

    def __init__(self, name: str, source: str, filename: str) -> None:
        self.name, self.source, self.filename = name, source, filename

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Any]:
        if template != self.name:
            raise jinja2.TemplateNotFound(template)
        return self.source, self.filename, lambda: True


class _Environment(SandboxedEnvironment):
    """The sandbox, plus bounds on what a few operations may build."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, loader: jinja2.BaseLoader) -> None:
        super().__init__(loader=loader, undefined=jinja2.StrictUndefined, autoescape=False,
                         keep_trailing_newline=True, cache_size=0, auto_reload=False)
        self.range_left = MAX_RANGE_ELEMENTS
        self.globals["range"] = self._range

    def _range(self, *args: int) -> range:
        r = range(*args)
        self.range_left -= len(r)
        if self.range_left < 0:
            raise OverflowError(f"range() would give more than {MAX_RANGE_ELEMENTS:,} elements in one rendering")
        return r

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and not isinstance(n, bool):
                    limit = MAX_STRING_LENGTH if isinstance(seq, str) else MAX_COLLECTION_LENGTH
                    if len(seq) * n > limit:
                        raise OverflowError(f"the repetition would give {len(seq) * n:,} "
                                            f"{'characters' if isinstance(seq, str) else 'elements'} "
                                            f"(at most {limit:,})")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 \
                and abs(left) > 1 and right * abs(left).bit_length() > _MAX_POW_BITS:
            raise OverflowError(f"the result of {left} ** {right} would be too large")
        return super().call_binop(context, operator, left, right)


def _refuse_other_files(tree: nodes.Template, path: str) -> None:
    for node in tree.find_all(tuple(_REFUSED_TAGS)):
        tag = _REFUSED_TAGS[type(node)]
        raise ArgError(0, f"invalid template: {path}:{node.lineno}: {{% {tag} %}} is not supported: jinjafile "
                          "renders a single file; render the other file with its own jinjafile call and pass "
                          "the result in vars")


def _collect(pieces: Iterator[str]) -> str:
    out: list[str] = []
    size = 0
    for piece in pieces:
        size += len(piece)
        if size > MAX_STRING_LENGTH:
            raise ValueTooLarge(f"the rendered template would be larger than {MAX_STRING_LENGTH >> 20} Mi "
                                "characters")
        out.append(piece)
    return "".join(out)


# ---- values --------------------------------------------------------------------------------------------------------

def _to_jinja(v: Value) -> Any:
    """A known, unmarked Value as plain Python: str, int or float, bool, None, list, dict."""
    raw = v.raw
    if isinstance(raw, tuple):  # list, tuple or set (sets in orch's order)
        return [_to_jinja(x) for x in raw]
    if isinstance(raw, dict):
        return {k: _to_jinja(x) for k, x in raw.items()}
    if isinstance(raw, Decimal):  # whole numbers are ints already; floats mix with Jinja2's literals
        return float(raw)
    return raw


# ---- error positions -----------------------------------------------------------------------------------------------

def _template_line(tb: TracebackType | None, filename: str) -> int | str:
    """The template line of the innermost frame of the template in ``tb`` (Jinja2 rewrites the traceback
    of a rendering so that its frames carry the template's filename and line numbers)."""
    line: int | str = "?"
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _undefined_name(e: jinja2.UndefinedError) -> str | None:
    """The name in StrictUndefined's "'name' is undefined" (not an attribute or key that is missing)."""
    msg = e.message or ""
    if msg.startswith("'") and msg.endswith("' is undefined"):
        name = msg[1:-len("' is undefined")]
        if name.isidentifier():
            return name
    return None


def _strip_period(s: str) -> str:
    return s[:-1] if s.endswith(".") else s


__all__ = ["jinjafile", "MAX_RANGE_ELEMENTS"]
