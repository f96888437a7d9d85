"""The text plan: what ``orch plan`` prints, in Terraform's words and layout.

PR tools (tfcmt, Atlantis) read Terraform's plan text with anchored regular
expressions such as ``^ *# (.*) will be created$`` and ``^(Plan: \\d|No changes.)``,
so the lines they match are kept exactly; orch's additions (the reason a change
is made, the node a pod replica is placed on) go on lines of their own in
Terraform's ``  # (...)`` style. The layout follows Terraform's structured
renderer (``internal/command/jsonformat``): 4-space indent steps, a 3-character
action column, ``=`` aligned per block, unchanged attributes hidden behind a
count, ``id``/``name``/``tags`` always shown for context.

Values carry no schema, so a nested dict renders as a map (quoted keys) and a
dict inside a list as an object (bare keys), as Terraform shows ``map(string)``
and ``list(object)`` attributes; output values render like Terraform's
schema-less JSON values.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from dataclasses import replace as _replace
from typing import Any

from ..redact import SENSITIVE
from .model import (CREATE_BECAUSE_MISSING, DELETE_BECAUSE_COUNT_INDEX, DELETE_BECAUSE_EACH_KEY,
                    DELETE_BECAUSE_NO_MODULE, DELETE_BECAUSE_NO_RESOURCE_CONFIG, REPLACE_BECAUSE_TAINTED,
                    REPLACE_BY_REQUEST, UNKNOWN, UPDATE_BECAUSE_DRIFT, Action, DriftChange, OutputChange,
                    Path, Plan, ResourceChange)

__all__ = [
    "DEFAULT_WIDTH",
    "changed_outside",
    "reason_lines",
    "render_plan_text",
    "status_lines",
    "resource_symbol",
    "strip_ansi",
]

TOOL = "orch"
DEFAULT_WIDTH = 78  # Terraform's column count when the output is not a terminal
REPLACE_BY_TRIGGERS = "replace_by_triggers"  # Terraform's reason; orch has no constant for it yet

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


# ---------------------------------------------------------------------------------------------------
# colour


@dataclass(frozen=True)
class Palette:
    """Wraps text in ANSI codes, or returns it untouched when colour is off."""

    enabled: bool = False

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled and text else text

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def red(self, text: str) -> str:
        return self._wrap("31", text)

    def green(self, text: str) -> str:
        return self._wrap("32", text)

    def yellow(self, text: str) -> str:
        return self._wrap("33", text)

    def cyan(self, text: str) -> str:
        return self._wrap("36", text)

    def dim(self, text: str) -> str:
        return self._wrap("90", text)

    def bold_red(self, text: str) -> str:
        return self._wrap("1;31", text)

    def bold_green(self, text: str) -> str:
        return self._wrap("1;32", text)

    def bold_cyan(self, text: str) -> str:
        return self._wrap("1;36", text)


def symbol(action: Action, p: Palette) -> str:
    """The 3-character action column of an attribute line (``format.DiffActionSymbol``)."""
    if action is Action.CREATE:
        return "  " + p.green("+")
    if action is Action.DELETE:
        return "  " + p.red("-")
    if action is Action.UPDATE:
        return "  " + p.yellow("~")
    if action is Action.READ:
        return " " + p.cyan("<=")
    return "   "


def resource_symbol(action: Action, create_before_destroy: bool, p: Palette) -> str:
    """The action column of a resource line: replacements are ``-/+`` or ``+/-``."""
    if action is Action.REPLACE:
        if create_before_destroy:
            return p.green("+") + "/" + p.red("-")
        return p.red("-") + "/" + p.green("+")
    return symbol(action, p)


# ---------------------------------------------------------------------------------------------------
# value diffs: compute a tree of Diff nodes, then render it


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()  # a key that is absent (as opposed to present with a null value)


@dataclass(frozen=True)
class Opts:
    p: Palette
    override_null_suffix: bool = False
    force_forces_replacement: bool = False
    forbid_forces_replacement: bool = False
    show_unchanged: bool = False

    def but(self, **changes: Any) -> Opts:
        return _replace(self, **changes)


def _indent(level: int) -> str:
    return "    " * level


def _forces(replace: bool, opts: Opts) -> str:
    if not opts.forbid_forces_replacement and (replace or opts.force_forces_replacement):
        return " " + opts.p.red("# forces replacement")
    return ""


def _null_suffix(action: Action, opts: Opts) -> str:
    if action is Action.DELETE and not opts.override_null_suffix:
        return " " + opts.p.dim("-> null")
    return ""


def _unchanged(keyword: str, count: int, p: Palette) -> str:
    noun = keyword if count == 1 else keyword + "s"
    return p.dim(f"# ({count} unchanged {noun} hidden)")


def _unchanged_line(keyword: str, count: int, indent: int, opts: Opts) -> str:
    return f"{_indent(indent + 1)}{symbol(Action.NOOP, opts.p)} {_unchanged(keyword, count, opts.p)}\n"


def compare_actions(current: Action, nxt: Action) -> Action:
    """A collection's action from its elements' (``collections.CompareActions``)."""
    if nxt is Action.NOOP:
        return current
    return Action.UPDATE if current is not nxt else current


def go_quote(s: str) -> str:
    """A string as Go's ``%q`` prints it."""
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch in "\"\\":
            out.append("\\" + ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif not ch.isprintable():
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_IMPORTANT = ("id", "name", "tags")


def attribute_name(name: str) -> str:
    """An attribute name, quoted when it is not a valid HCL identifier."""
    return name if _IDENT.match(name) else go_quote(name)


def format_number(v: int | float) -> str:
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e21:
            return str(int(v))
        return repr(v)
    return str(v)


def _primitive_text(v: Any, p: Palette) -> str:
    if v is None or v is MISSING:
        return p.dim("null")
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return format_number(v)
    return go_quote(str(v))


class Diff:
    """One node of a computed diff: an action, a forces-replacement flag and a way to render."""

    action: Action = Action.NOOP
    replace: bool = False

    def render(self, indent: int, opts: Opts) -> str:
        raise NotImplementedError

    def warnings(self, indent: int, opts: Opts) -> list[str]:
        return []


@dataclass
class PrimitiveDiff(Diff):
    before: Any
    after: Any
    kind: str  # "null", "bool", "number" or "string"
    action: Action = Action.NOOP
    replace: bool = False

    def render(self, indent: int, opts: Opts) -> str:
        if self.kind == "string":
            return self._render_string(indent, opts)
        p = opts.p
        before, after = _primitive_text(self.before, p), _primitive_text(self.after, p)
        forces = _forces(self.replace, opts)
        if self.action is Action.CREATE:
            return after + forces
        if self.action is Action.DELETE:
            return before + _null_suffix(self.action, opts) + forces
        if self.action is Action.NOOP:
            return before + forces
        return f"{before} {p.yellow('->')} {after}{forces}"

    def _render_string(self, indent: int, opts: Opts) -> str:
        p = opts.p
        forces = _forces(self.replace, opts)
        if self.action in (Action.CREATE, Action.NOOP):
            s = _evaluate_string(self.after, p)
            if s.json is not _NO_JSON:
                before = s if self.action is Action.NOOP else _EvaluatedString("")
                return self._render_json_string(indent, opts, before, s)
            if not s.multiline:
                return s.quoted() + forces
            lines = _heredoc_lines(s.text, indent, opts)
        elif self.action is Action.DELETE:
            s = _evaluate_string(self.before, p)
            if s.json is not _NO_JSON:
                return self._render_json_string(indent, opts, s, _EvaluatedString(""))
            if not s.multiline:
                return s.quoted() + _null_suffix(self.action, opts) + forces
            lines = _heredoc_lines(s.text, indent, opts)
        else:
            b, a = _evaluate_string(self.before, p), _evaluate_string(self.after, p)
            if b.json is not _NO_JSON and a.json is not _NO_JSON:
                return self._render_json_string(indent, opts, b, a)
            if b.json is not _NO_JSON or a.json is not _NO_JSON:
                change = TypeChangeDiff(PrimitiveDiff(self.before, MISSING, "string", Action.DELETE),
                                        PrimitiveDiff(MISSING, self.after, "string", Action.CREATE),
                                        self.action, self.replace)
                return change.render(indent, opts)
            if not b.multiline and not a.multiline:
                return f"{b.quoted()} {p.yellow('->')} {a.quoted()}{forces}"
            lines = _heredoc_update_lines(b.text, a.text, indent, opts)
        body = "\n".join(lines)
        close = f"{_indent(indent)}{symbol(Action.NOOP, p)} EOT{_null_suffix(self.action, opts)}"
        return f"<<-EOT{forces}\n{body}\n{close}"

    def _render_json_string(self, indent: int, opts: Opts, before: _EvaluatedString,
                            after: _EvaluatedString) -> str:
        inner = diff_json(before.json if before.json is not _NO_JSON else MISSING,
                          after.json if after.json is not _NO_JSON else MISSING)
        action = self.action
        whitespace = forces = ""
        inner_opts = opts
        if inner.action is Action.NOOP and self.action is Action.UPDATE:
            # Only whitespace differs: the JSON diff shows nothing, so say so and show it all.
            whitespace = " # whitespace changes" + (" force replacement" if self.replace else "")
            inner_opts = opts.but(show_unchanged=True)
            action = Action.NOOP
        else:
            forces = _forces(self.replace, opts)
        rendered = inner.render(indent + 1, inner_opts)
        if self.action in (Action.CREATE, Action.DELETE):
            action = Action.NOOP  # the elements carry the + and - marks
        if "\n" in rendered:
            inside = _indent(indent + 1)
            return f"jsonencode({whitespace}\n{inside}{symbol(action, opts.p)} {rendered}{forces}\n{inside})"
        return f"jsonencode({rendered}){whitespace}{forces}"


_NO_JSON: Any = object()


@dataclass
class _EvaluatedString:
    text: str
    json: Any = _NO_JSON
    multiline: bool = False
    is_null: bool = False

    def quoted(self) -> str:
        return self.text if self.is_null else go_quote(self.text)


def _reject_constant(name: str) -> Any:
    raise ValueError(name)  # NaN and Infinity are not JSON


def _evaluate_string(value: Any, p: Palette) -> _EvaluatedString:
    if value is None or value is MISSING:
        return _EvaluatedString(p.dim("null"), is_null=True)
    s = str(value)
    if s.startswith(("{", "[")):
        try:
            return _EvaluatedString(s, json.loads(s, parse_constant=_reject_constant))
        except ValueError:
            pass
    if "\n" in s:
        return _EvaluatedString(s.strip(), multiline=True)
    return _EvaluatedString(s)


def _heredoc_lines(text: str, indent: int, opts: Opts) -> list[str]:
    prefix = f"{_indent(indent + 1)}{symbol(Action.NOOP, opts.p)} "
    return [prefix + line for line in text.split("\n")]


def _heredoc_update_lines(before: str, after: str, indent: int, opts: Opts) -> list[str]:
    b_lines, a_lines = before.split("\n"), after.split("\n")
    lines: list[str] = []

    def process(bi: int, ai: int) -> None:
        if bi >= len(b_lines):
            lines.append(f"{_indent(indent + 1)}{symbol(Action.CREATE, opts.p)} {a_lines[ai]}")
        elif ai >= len(a_lines):
            lines.append(f"{_indent(indent + 1)}{symbol(Action.DELETE, opts.p)} {b_lines[bi]}")
        else:
            lines.append(f"{_indent(indent + 1)}{symbol(Action.NOOP, opts.p)} {b_lines[bi]}")

    process_slice(b_lines, a_lines, process, lambda _: False)
    return lines


@dataclass
class MapDiff(Diff):
    """A map: quoted keys, ``-> null`` on elements removed from a map that stays."""

    elements: dict[str, Diff]
    action: Action = Action.NOOP
    replace: bool = False

    def render(self, indent: int, opts: Opts) -> str:
        forces = _forces(self.replace, opts)
        if not self.elements:
            return "{}" + _null_suffix(self.action, opts) + forces
        width = max(len(k) for k in self.elements) + 2  # keys are always quoted
        element_opts = opts.but(override_null_suffix=self.action is Action.DELETE,
                                force_forces_replacement=False)
        out = ["{" + forces + "\n"]
        hidden = 0
        for key in sorted(self.elements):
            element = self.elements[key]
            if element.action is Action.NOOP and not opts.show_unchanged:
                hidden += 1
                continue
            out.extend(f"{_indent(indent + 1)}{w}\n" for w in element.warnings(indent + 1, opts))
            comma = "," if isinstance(element, ObjectDiff) else ""
            out.append(f"{_indent(indent + 1)}{symbol(element.action, opts.p)} "
                       f"{go_quote(key).ljust(width)} = {element.render(indent + 1, element_opts)}{comma}\n")
        if hidden:
            out.append(_unchanged_line("element", hidden, indent, opts))
        out.append(f"{_indent(indent)}{symbol(Action.NOOP, opts.p)} }}{_null_suffix(self.action, opts)}")
        return "".join(out)


@dataclass
class ObjectDiff(Diff):
    """An object: bare attribute names; ``id``, ``name`` and ``tags`` always shown."""

    attributes: dict[str, Diff]
    action: Action = Action.NOOP
    replace: bool = False

    def render(self, indent: int, opts: Opts) -> str:
        forces = _forces(self.replace, opts)
        if not self.attributes:
            return "{}" + _null_suffix(self.action, opts) + forces
        attribute_opts = opts.but(override_null_suffix=True)
        return "{" + forces + "\n" + _attribute_lines(self.attributes, indent, opts, attribute_opts) + \
            f"{_indent(indent)}{symbol(Action.NOOP, opts.p)} }}{_null_suffix(self.action, opts)}"


def _attribute_lines(attributes: dict[str, Diff], indent: int, opts: Opts, attribute_opts: Opts) -> str:
    """The ``name = value`` lines of a block or object, ``=`` aligned, unchanged ones counted."""
    names = {key: attribute_name(key) for key in attributes}
    width = max(len(n) for n in names.values())
    out: list[str] = []
    hidden = 0
    for key in sorted(attributes):
        attribute = attributes[key]
        important = key in _IMPORTANT
        if not important and attribute.action is Action.NOOP and not opts.show_unchanged:
            hidden += 1
            continue
        these_opts = attribute_opts.but(show_unchanged=True) if important else attribute_opts
        out.extend(f"{_indent(indent + 1)}{w}\n" for w in attribute.warnings(indent + 1, these_opts))
        out.append(f"{_indent(indent + 1)}{symbol(attribute.action, opts.p)} {names[key].ljust(width)} = "
                   f"{attribute.render(indent + 1, these_opts)}\n")
    if hidden:
        out.append(_unchanged_line("attribute", hidden, indent, opts))
    return "".join(out)


@dataclass
class ListDiff(Diff):
    """A list, with one unchanged element of context either side of each change."""

    elements: list[Diff]
    action: Action = Action.NOOP
    replace: bool = False

    def render(self, indent: int, opts: Opts) -> str:
        p = opts.p
        forces = _forces(self.replace, opts)
        if not self.elements:
            return "[]" + _null_suffix(self.action, opts) + forces
        element_opts = opts.but(override_null_suffix=True)
        unchanged_opts = opts.but(show_unchanged=True)
        out = ["[" + forces + "\n"]
        skipped: list[Diff] = []
        render_next = False
        for element in self.elements:
            if element.action is Action.NOOP and not render_next and not opts.show_unchanged:
                skipped.append(element)
                continue
            render_next = False
            these_opts = element_opts
            if len(skipped) > 1:
                out.append(_unchanged_line("element", len(skipped) - 1, indent, opts))
            if skipped:
                last = skipped[-1]
                out.append(f"{_indent(indent + 1)}{symbol(last.action, p)} "
                           f"{last.render(indent + 1, unchanged_opts)},\n")
            skipped = []
            if element.action is Action.NOOP:
                these_opts = unchanged_opts
            else:
                render_next = True
            out.extend(f"{_indent(indent + 1)}{w}\n" for w in element.warnings(indent + 1, these_opts))
            out.append(f"{_indent(indent + 1)}{symbol(element.action, p)} "
                       f"{element.render(indent + 1, these_opts)},\n")
        if skipped:
            out.append(_unchanged_line("element", len(skipped), indent, opts))
        out.append(f"{_indent(indent)}{symbol(Action.NOOP, p)} ]{_null_suffix(self.action, opts)}")
        return "".join(out)


@dataclass
class UnknownDiff(Diff):
    before: Diff | None
    action: Action = Action.CREATE
    replace: bool = False

    def render(self, indent: int, opts: Opts) -> str:
        forces = _forces(self.replace, opts)
        if self.action is Action.CREATE or self.before is None:
            return "(known after apply)" + forces
        before_opts = opts.but(override_null_suffix=True,
                               forbid_forces_replacement=opts.forbid_forces_replacement or self.replace)
        return f"{self.before.render(indent, before_opts)} -> (known after apply){forces}"


@dataclass
class SensitiveDiff(Diff):
    inner_action: Action
    before_sensitive: bool
    after_sensitive: bool
    action: Action = Action.NOOP
    replace: bool = False

    def render(self, indent: int, opts: Opts) -> str:
        return SENSITIVE + _null_suffix(self.action, opts) + _forces(self.replace, opts)

    def warnings(self, indent: int, opts: Opts) -> list[str]:
        if self.before_sensitive == self.after_sensitive or \
                self.inner_action in (Action.CREATE, Action.DELETE):
            return []
        label = opts.p.yellow("Warning")
        if self.before_sensitive:
            text = (f"  # {label}: this attribute value will no longer be marked as sensitive\n"
                    f"{_indent(indent)}  # after applying this change.")
        else:
            text = (f"  # {label}: this attribute value will be marked as sensitive and will not\n"
                    f"{_indent(indent)}  # display in UI output after applying this change.")
        if self.inner_action is Action.NOOP:
            text += " The value is unchanged."
        return [text]


@dataclass
class TypeChangeDiff(Diff):
    before: Diff
    after: Diff
    action: Action = Action.UPDATE
    replace: bool = False

    def render(self, indent: int, opts: Opts) -> str:
        opts = opts.but(override_null_suffix=True)
        return f"{self.before.render(indent, opts)} {opts.p.yellow('->')} {self.after.render(indent, opts)}"


@dataclass
class BlockDiff(Diff):
    """A resource's attributes: the body of ``resource "type" "name" { ... }``."""

    attributes: dict[str, Diff]
    action: Action = Action.NOOP
    replace: bool = False

    def render(self, indent: int, opts: Opts) -> str:
        forces = _forces(self.replace, opts)
        if not self.attributes:
            return "{}" + forces
        return "{" + forces + "\n" + _attribute_lines(self.attributes, indent, opts, opts) + \
            f"{_indent(indent)}{symbol(Action.NOOP, opts.p)} }}"


# --- computing diffs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PathFlags:
    """Per-path metadata of one change: what is sensitive before/after, what forces replacement."""

    before_sensitive: frozenset[Path] = frozenset()
    after_sensitive: frozenset[Path] = frozenset()
    replace: frozenset[Path] = frozenset()

    @classmethod
    def of(cls, before_sensitive: Sequence[Sequence[str | int]] = (),
           after_sensitive: Sequence[Sequence[str | int]] = (),
           replace: Sequence[Sequence[str | int]] = ()) -> PathFlags:
        def paths(xs: Sequence[Sequence[str | int]]) -> frozenset[Path]:
            return frozenset(tuple(x) for x in xs)

        return cls(paths(before_sensitive), paths(after_sensitive), paths(replace))


_NO_FLAGS = PathFlags()


def json_kind(v: Any) -> str:
    if v is None or v is MISSING or v is UNKNOWN:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return "object"
    if isinstance(v, (list, tuple)):
        return "array"
    return "string"  # anything else is shown as its text


def strict_equal(a: Any, b: Any) -> bool:
    """Equality that, like Go's DeepEqual on JSON, tells ``true`` from ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b))
    if type(a) in (dict, list, tuple) or type(b) in (dict, list, tuple):
        return False
    return a is b if (a is UNKNOWN or b is UNKNOWN or a is MISSING or b is MISSING) else a == b


@dataclass(frozen=True)
class _Differ:
    flags: PathFlags
    objects_everywhere: bool  # JSON values (outputs, jsonencode): every dict is an object

    def diff(self, before: Any, after: Any, path: Path, in_list: bool = False) -> Diff:
        before_sensitive = path in self.flags.before_sensitive
        after_sensitive = path in self.flags.after_sensitive
        if before_sensitive or after_sensitive:
            return self._sensitive(before, after, path, in_list, before_sensitive, after_sensitive)
        return self._plain(before, after, path, in_list)

    def _sensitive(self, before: Any, after: Any, path: Path, in_list: bool, bs: bool, as_: bool) -> Diff:
        inner = self._plain(before, after, path, in_list)
        action = inner.action
        both_null = before in (None, MISSING) and after in (None, MISSING)
        if action is Action.NOOP and bs != as_ and not both_null:
            action = Action.UPDATE
        return SensitiveDiff(inner.action, bs, as_, action, inner.replace)

    def _plain(self, before: Any, after: Any, path: Path, in_list: bool) -> Diff:
        replace = path in self.flags.replace
        if after is UNKNOWN:
            if before is MISSING or before is None or before is UNKNOWN:
                return UnknownDiff(None, Action.CREATE, replace)
            return UnknownDiff(self.diff(before, MISSING, path, in_list), Action.UPDATE, replace)
        if before is UNKNOWN:
            before = MISSING
        before_kind, after_kind = json_kind(before), json_kind(after)
        if before_kind == after_kind or before is MISSING or after is MISSING:
            kind = before_kind if before_kind != "null" else after_kind
            return self._same_kind(before, after, kind, path, in_list, replace)
        return TypeChangeDiff(self._same_kind(before, MISSING, before_kind, path, in_list, False),
                              self._same_kind(MISSING, after, after_kind, path, in_list, False),
                              Action.UPDATE, replace)

    def _same_kind(self, before: Any, after: Any, kind: str, path: Path, in_list: bool,
                   replace: bool) -> Diff:
        if kind == "object":
            return self._object(before, after, path, in_list, replace)
        if kind == "array":
            return self._array(before, after, path, replace)
        return PrimitiveDiff(None if before is MISSING else before, None if after is MISSING else after, kind,
                             _primitive_action(before, after), replace)

    def _object(self, before: Any, after: Any, path: Path, in_list: bool, replace: bool) -> Diff:
        b = before if isinstance(before, dict) else {}
        a = after if isinstance(after, dict) else {}
        children = {str(k): self.diff(b.get(k, MISSING), a.get(k, MISSING), path + (k,))
                    for k in _ordered_keys(b, a)}
        action = _collection_action(before, after, [c.action for c in children.values()])
        if self.objects_everywhere or in_list:
            return ObjectDiff(children, action, replace)
        return MapDiff(children, action, replace)

    def _array(self, before: Any, after: Any, path: Path, replace: bool) -> Diff:
        b = list(before) if isinstance(before, (list, tuple)) else []
        a = list(after) if isinstance(after, (list, tuple)) else []
        elements: list[Diff] = []

        def process(bi: int, ai: int) -> None:
            be = b[bi] if bi < len(b) else MISSING
            ae = a[ai] if ai < len(a) else MISSING
            # A changed element's path is its position after the change (or before, when removed).
            elements.append(self.diff(be, ae, path + (ai if ai < len(a) else bi,), in_list=True))

        process_slice(b, a, process, lambda v: isinstance(v, dict))
        action = _collection_action(before, after, [e.action for e in elements])
        return ListDiff(elements, action, replace)


def _ordered_keys(b: dict[str, Any], a: dict[str, Any]) -> list[str]:
    keys = list(b)
    keys.extend(k for k in a if k not in b)
    return keys


def _primitive_action(before: Any, after: Any) -> Action:
    if before is MISSING and after is not MISSING:
        return Action.CREATE
    if before is not MISSING and after is MISSING:
        return Action.DELETE
    return Action.NOOP if strict_equal(before, after) else Action.UPDATE


def _collection_action(before: Any, after: Any, children: list[Action]) -> Action:
    current = Action.NOOP
    if before is not MISSING and after is MISSING:
        current = Action.DELETE
    elif before is MISSING and after is not MISSING:
        current = Action.CREATE
    for action in children:
        current = compare_actions(current, action)
    return current


def longest_common_subsequence(xs: Sequence[Any], ys: Sequence[Any],
                               equal: Callable[[Any, Any], bool] = strict_equal) -> list[Any]:
    """Terraform's ``objchange.LongestCommonSubsequence`` (same tie-breaking, so the same diffs)."""
    if not xs or not ys:
        return []
    w = len(xs)
    c = [0] * (len(xs) * len(ys))
    eqs = [False] * (len(xs) * len(ys))
    for y in range(len(ys)):
        for x in range(len(xs)):
            i = w * y + x
            if equal(xs[x], ys[y]):
                eqs[i] = True
                c[i] = (c[w * (y - 1) + x - 1] if x > 0 and y > 0 else 0) + 1
            else:
                left = c[i - 1] if x > 0 else 0
                up = c[w * (y - 1) + x] if y > 0 else 0
                c[i] = max(left, up)
    result: list[Any] = []
    x, y = len(xs) - 1, len(ys) - 1
    while x > -1 and y > -1:
        i = w * y + x
        if eqs[i]:
            result.append(xs[x])
            x, y = x - 1, y - 1
            continue
        left = c[i - 1] if x > 0 else 0
        up = c[w * (y - 1) + x] if y > 0 else 0
        if left > up:
            x -= 1
        else:
            y -= 1
    result.reverse()
    return result


def process_slice(before: Sequence[Any], after: Sequence[Any], process: Callable[[int, int], None],
                  is_object: Callable[[Any], bool]) -> None:
    """Walk two lists as Terraform's ``collections.ProcessSlice``: removed, added, then common items.

    ``process(i, j)`` gets an index of each side; an index equal to the list's length means the
    element is absent on that side. Objects at the same position are diffed rather than removed
    and re-added, so a change inside one element shows as an update of that element.
    """
    lcs = longest_common_subsequence(before, after)
    bi = ai = li = 0
    while bi < len(before) or ai < len(after) or li < len(lcs):
        while bi < len(before) and (li >= len(lcs) or not strict_equal(before[bi], lcs[li])):
            if (is_object(before[bi]) and ai < len(after) and is_object(after[ai])
                    and (li >= len(lcs) or not strict_equal(after[ai], lcs[li]))):
                process(bi, ai)
                bi, ai = bi + 1, ai + 1
                continue
            process(bi, len(after))
            bi += 1
        while ai < len(after) and (li >= len(lcs) or not strict_equal(after[ai], lcs[li])):
            process(len(before), ai)
            ai += 1
        if li < len(lcs):
            process(bi, ai)
            bi, ai, li = bi + 1, ai + 1, li + 1


def diff_json(before: Any, after: Any) -> Diff:
    """A diff of two schema-less JSON values (outputs, JSON inside strings)."""
    return _Differ(_NO_FLAGS, objects_everywhere=True).diff(before, after, ())


def diff_block(before: dict[str, Any] | None, after: dict[str, Any] | None,
               flags: PathFlags = _NO_FLAGS) -> BlockDiff:
    """The attribute diffs of one resource; attributes null on both sides are left out."""
    differ = _Differ(flags, objects_everywhere=False)
    b, a = before or {}, after or {}
    attributes: dict[str, Diff] = {}
    for key in _ordered_keys(b, a):
        bv, av = b.get(key), a.get(key)
        if bv is None and av is None:
            continue
        attributes[str(key)] = differ.diff(MISSING if bv is None else bv, MISSING if av is None else av,
                                           (key,))
    action = _collection_action(MISSING if before is None else before, MISSING if after is None else after,
                                [d.action for d in attributes.values()])
    return BlockDiff(attributes, action, () in flags.replace)


def diff_output(change: OutputChange) -> Diff:
    before = MISSING if change.action is Action.CREATE or change.before is None else change.before
    after = MISSING if change.action is Action.DELETE or change.after is None else change.after
    flags = PathFlags.of([()], [()]) if change.sensitive else _NO_FLAGS
    return _Differ(flags, objects_everywhere=True).diff(before, after, ())


# ---------------------------------------------------------------------------------------------------
# the plan


def _index_json(change: ResourceChange | DriftChange) -> str:
    return json.dumps(change.address.key, ensure_ascii=False)


def _module_address(change: ResourceChange | DriftChange) -> str:
    return ".".join(str(m) for m in change.address.module)


def reason_lines(change: ResourceChange) -> list[str]:
    """The ``(...)`` notes under a change's heading: why, and where (without ``  # ``)."""
    lines: list[str] = []
    because = _action_reason_text(change)
    if because:
        lines.append(f"({because})")
    reason = change.reason.strip()
    if reason and reason.strip("()") != because:
        lines.append(reason if reason.startswith("(") else f"({reason})")
    if change.location:
        lines.append(f"(on {change.location})")
    return lines


def _action_reason_text(change: ResourceChange) -> str:
    reason = change.action_reason
    if change.action is Action.DELETE:
        if reason == DELETE_BECAUSE_NO_RESOURCE_CONFIG:
            return f"because {change.type}.{change.name} is not in configuration"
        if reason == DELETE_BECAUSE_NO_MODULE:
            return f"because {_module_address(change)} is not in configuration"
        if reason == DELETE_BECAUSE_COUNT_INDEX:
            return f"because index [{_index_json(change)}] is out of range for count"
        if reason == DELETE_BECAUSE_EACH_KEY:
            return f"because key [{_index_json(change)}] is not in for_each map"
    if change.action is Action.CREATE and reason == CREATE_BECAUSE_MISSING:
        return f"because the object was deleted outside of {TOOL}"
    if change.action is Action.UPDATE and reason == UPDATE_BECAUSE_DRIFT:
        return f"because the object was changed outside of {TOOL}"
    return ""


def _heading(address: str, action: Action, action_reason: str | None, drift: bool, p: Palette) -> str:
    subject = p.bold(f"  # {address}")
    if action is Action.CREATE:
        return f"{subject} will be created"
    if action is Action.READ:
        return f"{subject} will be read during apply"
    if action is Action.UPDATE:
        return f"{subject} has changed" if drift else f"{subject} will be updated in-place"
    if action is Action.REPLACE:
        if action_reason == REPLACE_BECAUSE_TAINTED:
            return f"{subject} is tainted, so must be {p.bold_red('replaced')}"
        if action_reason == REPLACE_BY_REQUEST:
            return f"{subject} will be {p.bold_red('replaced')}, as requested"
        if action_reason == REPLACE_BY_TRIGGERS:
            return f"{subject} will be {p.bold_red('replaced')} due to changes in replace_triggered_by"
        return f"{subject} must be {p.bold_red('replaced')}"
    if action is Action.DELETE:
        return f"{subject} has been deleted" if drift else f"{subject} will be {p.bold_red('destroyed')}"
    return f"{subject} has no changes"


def _resource_line(type_: str, name: str, action: Action, create_before_destroy: bool, body: str,
                   p: Palette) -> str:
    mode = "data" if action is Action.READ else "resource"
    mark = resource_symbol(action, create_before_destroy, p)
    return f"{mark} {mode} {go_quote(type_)} {go_quote(name)} {body}"


def render_change(change: ResourceChange, p: Palette) -> str:
    """One planned change: heading, notes and the attribute diff."""
    subject = f"{change.address} (deposed object {change.deposed})" if change.deposed else str(change.address)
    lines = [_heading(subject, change.action, change.action_reason, False, p)]
    lines.extend(f"  # {note}" for note in reason_lines(change))
    flags = PathFlags.of(change.before_sensitive, change.after_sensitive, change.replace_paths)
    body = diff_block(change.before, change.after, flags).render(0, Opts(p))
    lines.append(_resource_line(change.type, change.name, change.action, change.create_before_destroy,
                                body, p))
    return "\n".join(lines)


def render_drift(drift: DriftChange, flags: PathFlags, p: Palette) -> str:
    """One object changed outside orch: ``has changed`` or ``has been deleted``, with its diff."""
    heading = _heading(str(drift.address), drift.action, None, True, p)
    notes = [f"  # ({drift.reason.strip().strip('()')})"] if drift.reason.strip() else []
    body = diff_block(drift.before, drift.after, flags).render(0, Opts(p))
    line = _resource_line(drift.address.type, drift.address.name, drift.action, False, body, p)
    return "\n".join([heading, *notes, line])


def drift_flags(plan: Plan, drift: DriftChange) -> PathFlags:
    """Sensitive paths for a drift diff, borrowed from the planned change of the same object.

    ``DriftChange`` carries no sensitivity of its own; what is sensitive in the resource's change is
    what must not be shown in its drift either.
    """
    for change in plan.changes:
        if change.address == drift.address:
            paths = [*change.before_sensitive, *change.after_sensitive]
            return PathFlags.of(paths, paths)
    return _NO_FLAGS


def changed_outside(plan: Plan) -> list[DriftChange]:
    """The drift to report: all of it in a refresh-only plan, otherwise what changed."""
    if plan.refresh_only:
        return list(plan.drift)
    return [d for d in plan.drift if d.action is not Action.NOOP]


def output_lines(outputs: Sequence[OutputChange], p: Palette) -> list[str]:
    if not outputs:
        return []
    width = max(len(attribute_name(o.name)) for o in outputs)
    lines = []
    for output in sorted(outputs, key=lambda o: o.name):
        diff = diff_output(output)
        if diff.action is Action.NOOP:
            continue
        lines.append(f"{symbol(diff.action, p)} {attribute_name(output.name).ljust(width)} = "
                     f"{diff.render(0, Opts(p))}")
    return lines


def word_wrap(text: str, width: int) -> str:
    """Terraform's ``format.WordWrap``: wrap each line at ``width - 1``; indented lines stay whole."""
    if width <= 1:
        return text
    wrapped = []
    for line in text.split("\n"):
        if line.startswith(" ") or not line:
            wrapped.append(line)
        else:
            wrapped.append("\n".join(textwrap.wrap(line, width - 1, break_long_words=False,
                                                   break_on_hyphens=False)))
    return "\n".join(wrapped)


def _rule(p: Palette, width: int) -> str:
    return "\n" + p.dim("─" * (width - 1)) if width > 1 else "\n"


_LEGEND = [
    ((Action.CREATE, False), "  {+} create"),
    ((Action.UPDATE, False), "  {~} update in-place"),
    ((Action.DELETE, False), "  {-} destroy"),
    ((Action.REPLACE, False), "{-}/{+} destroy and then create replacement"),
    ((Action.REPLACE, True), "{+}/{-} create replacement and then destroy"),
    ((Action.READ, False), " {<=} read (data resources)"),
]


def _legend(changes: Sequence[ResourceChange], p: Palette) -> list[str]:
    used = {(c.action, c.action is Action.REPLACE and c.create_before_destroy) for c in changes}
    marks = {"+": p.green("+"), "~": p.yellow("~"), "-": p.red("-"), "<=": p.cyan("<=")}
    return [template.format_map(marks) for key, template in _LEGEND if key in used]


class _Out:
    """Text written the way Terraform's streams write it (Print / Println)."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def print(self, text: str = "") -> None:
        self.parts.append(text)

    def println(self, text: str = "") -> None:
        self.parts.append(text + "\n")

    def text(self) -> str:
        return "".join(self.parts).lstrip("\n")


PLACING = (Action.CREATE, Action.REPLACE)  # changes that place something: the cluster layer's summaries show


def render_plan_text(plan: Plan, color: bool = False, width: int = DEFAULT_WIDTH) -> str:
    """The human-readable plan, as ``orch plan`` prints it (ends with a newline)."""
    p = Palette(color)
    out = _Out()
    changes = [c for c in plan.changes if c.action is not Action.NOOP]
    outputs = output_lines(plan.outputs, p)
    _write_status(out, plan, p, width)
    drift_shown = _write_drift(out, plan, bool(changes or outputs), p, width)
    if not changes and not outputs:
        _write_no_changes(out, plan, drift_shown, p, width)
        return out.text()
    if drift_shown:
        out.println(_rule(p, width))
    if changes:
        out.println(word_wrap(f"\n{TOOL} used the selected providers to generate the following execution "
                              "plan. Resource actions are indicated with the following symbols:", width))
        for line in _legend(changes, p):
            out.println(line)
        out.print(f"\n{TOOL} will perform the following actions:\n")
        for change in changes:
            out.println()
            out.println(render_change(change, p))
        for summary in plan.summaries:
            if any((c.action in PLACING or summary.any_change) and str(c.address) in summary.concerns
                   for c in changes):
                out.print("\n" + summary.text + "\n")
        add, change_count, destroy = plan.counts
        out.print(f"\n{p.bold('Plan:')} {add} to add, {change_count} to change, {destroy} to destroy.\n")
    if outputs:
        out.print("\nChanges to Outputs:\n")
        out.print("\n".join(outputs) + "\n")
        if not changes:
            out.println(word_wrap(f"\nYou can apply this plan to save these new output values to the {TOOL} "
                                  "state, without changing any real infrastructure.", width))
    return out.text()


def status_lines(plan: Plan) -> list[str]:
    """One line per problem of an observed object: ``pod.web[1] is unhealthy: 5 failing checks (...)``."""
    lines: list[str] = []
    for addr, status in sorted(plan.status.items()):
        lines.extend(f"{addr} {phrase}" for phrase in status.problems())
    return lines


def _write_status(out: _Out, plan: Plan, p: Palette, width: int) -> None:
    lines = status_lines(plan)
    if not lines:
        return
    out.println(f"\n{p.bold('Object status:')} what refresh observed that is not as it should be\n")
    for line in lines:
        out.println(word_wrap(f"  # {line}", width))
    out.println()


def _write_drift(out: _Out, plan: Plan, has_changes: bool, p: Palette, width: int) -> bool:
    drifted = changed_outside(plan)
    if not drifted or (not has_changes and not plan.refresh_only):
        return False  # as Terraform: drift that the plan does not act on is not news
    out.print("\n" + p.bold_cyan("Note:") + p.bold(f" Objects have changed outside of {TOOL}") + "\n")
    out.println()
    out.print(word_wrap(f"{TOOL} detected the following changes made outside of {TOOL} since the last "
                        f"\"{TOOL} apply\" which may have affected this plan:\n", width))
    for drift in drifted:
        if drift.action is Action.NOOP:
            continue
        out.println()
        out.println(render_drift(drift, drift_flags(plan, drift), p))
    if plan.refresh_only:
        out.println(word_wrap(f"\n\nThis is a refresh-only plan, so {TOOL} will not take any actions to undo "
                              "these. If you were expecting these changes then you can apply this plan to "
                              f"record the updated values in the {TOOL} state without changing any remote "
                              "objects.", width))
    else:
        out.println(word_wrap("\n\nUnless you have made equivalent changes to your configuration, or ignored "
                              "the relevant attributes using ignore_changes, the following plan may include "
                              "actions to undo or respond to these changes.", width))
    return True


def _write_no_changes(out: _Out, plan: Plan, drift_shown: bool, p: Palette, width: int) -> None:
    """The "No changes." message, worded for the plan's mode."""
    if plan.refresh_only:
        if drift_shown:
            return  # the drift section already said what applying would do
        out.print("\n" + p.bold_green("No changes.") + p.bold(" Your infrastructure still matches the "
                                                                "configuration.") + "\n\n")
        out.println(word_wrap(f"{TOOL} has checked that the real remote objects still match the result of "
                              "your most recent changes, and found no differences.", width))
        return
    if drift_shown:
        out.println(_rule(p, width))
    if plan.destroy:
        out.print("\n" + p.bold_green("No changes.") + p.bold(" No objects need to be destroyed.") + "\n\n")
        out.println(word_wrap("Either you have not created any objects yet or the existing objects were "
                              f"already deleted outside of {TOOL}.", width))
        return
    out.print("\n" + p.bold_green("No changes.") + p.bold(" Your infrastructure matches the configuration.")
              + "\n\n")
    if drift_shown:
        out.println(word_wrap("Your configuration already matches the changes detected above, so applying "
                              "this plan will only update the state to include the changes detected above "
                              "and won't change any real infrastructure.", width))
        return
    out.println(word_wrap(f"{TOOL} has compared your real infrastructure against your configuration and "
                          "found no differences, so no changes are needed.", width))
