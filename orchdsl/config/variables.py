"""Input variables: declarations, where values come from, and checking them.

Precedence (later wins), as Terraform's with orch's names::

    default  <  ORCH_VAR_<name> environment variables  <  *.orchvars files of the
    configuration directory (alphabetical)  <  --var-file FILE (in order)  <  --var NAME=VALUE

Values from the environment and ``--var`` are strings for variables typed
``string`` or untyped, and otherwise parsed as expressions (``--var
'ports=[80, 443]'``). ``.orchvars`` files hold ``name = expression`` lines.
Every value is converted to the variable's type (optional attributes
filled), checked against ``nullable`` and the ``validation`` rules, and
marked if the variable is ``sensitive``. Problems are diagnostics at the
source of the value: the line of the file, or a pseudo-file named
``<value for var.NAME>`` for command-line and environment values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..addrs import ModulePath
from ..diagnostics import WARNING, Diagnostic
from ..eval import (ConversionError, EvalContext, Value, evaluate, object_val, standard_functions, string_val,
                    unknown)
from ..eval.ops import suggest
from ..eval.types import BOOL, STRING
from ..eval.values import UNKNOWN, NumberRangeError
from ..lang import ast as A
from ..lang import parse_expression, parse_file
from ..lang.source import SourceFile
from .refs import references
from .model import Span, Validation, VariableDecl
from .typeexpr import ANY, parse_type

VARS_SUFFIX = ".orchvars"
VARS_JSON_SUFFIX = ".orchvars.json"  # as terraform.tfvars.json: one JSON object, NAME: VALUE
ENV_PREFIX = "ORCH_VAR_"

def _refs(expr: A.Node) -> list[A.Node]:
    return [t for t, _ in references(expr)]


_VARIABLE_ARGS = ("type", "default", "description", "sensitive", "nullable")


def _header_range_end(block: A.Block) -> int:
    return block.label_ranges[-1][1] if block.label_ranges else block.start + len(block.type)


def header_error(block: A.Block, summary: str, detail: str, hint: str = "", severity: str = "error") -> Diagnostic:
    d = Diagnostic.error(summary, detail, block.src, block.start, _header_range_end(block), hint=hint)
    d.severity = severity
    return d


def constant_bool(attr: A.Attribute | None, default: bool, diags: list[Diagnostic]) -> bool:
    """A literal true/false argument (``sensitive``, ``prevent_destroy``...): no references allowed."""
    if attr is None:
        return default
    if any(True for _ in _refs(attr.expr)):
        diags.append(Diagnostic.error("Variables not allowed",
                                      f'The argument "{attr.name}" must be a literal true or false; it cannot '
                                      "refer to other values.", attr.src, attr.expr.start, attr.expr.end,
                                      hint=f"write {attr.name} = true or {attr.name} = false"))
        return default
    v, d = evaluate(attr.expr, EvalContext({}, {}))
    if d:
        diags.extend(d)
        return default
    try:
        from ..eval import convert
        v = convert(v, BOOL)
    except ConversionError:
        v = unknown()
    if v.raw is None or v.raw is UNKNOWN or not isinstance(v.raw, bool):
        diags.append(Diagnostic.error("Invalid argument value", f'The argument "{attr.name}" must be true or false.',
                                      attr.src, attr.expr.start, attr.expr.end))
        return default
    return v.raw


def constant_string(attr: A.Attribute | None, diags: list[Diagnostic]) -> str:
    if attr is None:
        return ""
    v, d = evaluate(attr.expr, EvalContext({}, {}))
    if d or v.type != STRING or not isinstance(v.raw, str):
        diags.extend(d)
        if not d:
            diags.append(Diagnostic.error("Invalid argument value", f'The argument "{attr.name}" must be a literal '
                                          "string.", attr.src, attr.expr.start, attr.expr.end))
        return ""
    return v.raw


def decode_variable(block: A.Block, module: ModulePath, functions: dict) -> tuple[VariableDecl | None,
                                                                                    list[Diagnostic]]:
    diags: list[Diagnostic] = []
    name = block.labels[0]
    body = block.body
    for attr in body.attributes.values():
        if attr.name not in _VARIABLE_ARGS:
            diags.append(Diagnostic.error("Unsupported argument", f'An argument named "{attr.name}" is not expected '
                                          "in a variable block.", attr.src, attr.start, attr.name_end,
                                          hint=suggest(attr.name, _VARIABLE_ARGS)))
    validations = []
    for b in body.blocks:
        if b.type != "validation":
            diags.append(Diagnostic.error("Unsupported block type", f'Blocks of type "{b.type}" are not expected '
                                          "in a variable block.", b.src, b.start, b.start + len(b.type),
                                          hint=suggest(b.type, ["validation"])))
            continue
        cond = b.body.attributes.get("condition")
        msg = b.body.attributes.get("error_message")
        for a in b.body.attributes.values():
            if a.name not in ("condition", "error_message"):
                diags.append(Diagnostic.error("Unsupported argument", f'An argument named "{a.name}" is not '
                                              "expected in a validation block.", a.src, a.start, a.name_end,
                                              hint=suggest(a.name, ["condition", "error_message"])))
        if cond is None or msg is None:
            missing = "condition" if cond is None else "error_message"
            diags.append(header_error(b, "Missing required argument",
                                      f'The argument "{missing}" is required, but no definition was found.',
                                      hint=f"add {missing} = ... to the validation block"))
            continue
        bad = [r for r in _refs(cond.expr) if not (r.name == "var" and r.steps and type(r.steps[0]) is A.GetAttr
                                                   and r.steps[0].name == name)]
        if bad:
            r = bad[0]
            diags.append(Diagnostic.error("Invalid reference in variable validation",
                                          f"The condition for variable \"{name}\" can only refer to the variable "
                                          f"itself, using var.{name}.", r.src, r.start, r.end,
                                          hint="check other values with a validation on their own variables"))
            continue
        validations.append(Validation(cond.expr, msg.expr, b.range))
    type_attr = body.attributes.get("type")
    tc = ANY
    if type_attr is not None:
        tc, d = parse_type(type_attr.expr)
        diags.extend(d)
    decl = VariableDecl(
        name=name, module=module, type=tc, default=body.attributes.get("default"),
        description=constant_string(body.attributes.get("description"), diags),
        sensitive=constant_bool(body.attributes.get("sensitive"), False, diags),
        nullable=constant_bool(body.attributes.get("nullable"), True, diags),
        validations=validations, block=block, typed=type_attr is not None)
    if decl.default is not None:
        expr = decl.default.expr
        refs = list(_refs(expr))
        if refs:
            diags.append(Diagnostic.error("Variables not allowed", "A variable's default value must be a constant; "
                                          "it cannot refer to other values.", refs[0].src, refs[0].start,
                                          refs[0].end, hint="use a local value to compute from other values"))
        else:
            v, d = evaluate(expr, EvalContext({}, functions))
            diags.extend(d)
            if not d:
                try:
                    decl.default_value = tc.convert(v)
                except ConversionError as e:
                    diags.append(Diagnostic.error("Invalid default value for variable",
                                                  f"This default value is not compatible with the variable's type "
                                                  f"constraint: {e}.", expr.src, expr.start, expr.end,
                                                  hint=f"the type is {tc}"))
                if decl.default_value is not None and decl.default_value.raw is None and not decl.nullable:
                    # nullable = false with a null default: the variable is required.
                    decl.default = None
                    decl.default_value = None
    return decl, diags


# ---- value sources ---------------------------------------------------------------------------------

@dataclass
class RawValue:
    """A value for a variable before conversion, and where it came from."""

    value: Value
    node: A.Node | None  # the expression (file values) or pseudo-source span
    origin: str  # "default", "environment", "file", "command line"

    def subject(self) -> tuple:
        if self.node is None:
            return (None, None, None)
        return (self.node.src, self.node.start, self.node.end)


def _value_from_text(name: str, text: str, decl: VariableDecl | None, origin: str, filename: str,
                     functions: dict) -> tuple[RawValue | None, list[Diagnostic]]:
    """A --var or environment value: literal string or expression, depending on the type."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:  # bytes that are not UTF-8, kept by Python as surrogate escapes
        return None, [Diagnostic.error("Invalid value for input variable",
                                       f"The value for var.{name} ({origin}) is not UTF-8 text: byte "
                                       f"{e.start + 1} cannot be decoded.",
                                       hint="pass the value as UTF-8 text")]
    literal = decl is None or not decl.typed or decl.type.type == STRING
    if literal:
        src = SourceFile(filename, text)
        return RawValue(string_val(text), Span(src, 0, len(text)), origin), []
    expr, diags = parse_expression(text, filename)
    if expr is None or any(d.is_error for d in diags):
        for d in diags:
            d.hint = d.hint or f"the value of var.{name} is read as an expression because its type is " \
                               f"{decl.type}; quote strings inside it"
        return None, diags
    refs = list(_refs(expr))
    if refs:
        r = refs[0]
        return None, [Diagnostic.error("Variables not allowed",
                                       f"The value for var.{name} is read as an expression because the variable's "
                                       f"type is {decl.type}, and an expression given here cannot refer to other "
                                       "values.", r.src, r.start, r.end,
                                       hint=f"give a {decl.type} value; quote strings inside it, as in "
                                            '\'["a", "b"]\'')]
    v, d = evaluate(expr, EvalContext({}, functions))
    if d:
        return None, d
    return RawValue(v, expr, origin), []


def _json_file_values(path: Path, data: bytes, decls: dict[str, VariableDecl], out: dict[str, RawValue],
                      diags: list[Diagnostic]) -> None:
    """A JSON variables file (``x.orchvars.json``, as Terraform's ``.tfvars.json``): one object whose keys name
    variables; each value is converted to its variable's type, and problems point at it in the file."""
    import json
    from decimal import Decimal

    from ..eval import from_python

    src = SourceFile.from_bytes(str(path), data)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        diags.append(Diagnostic.error("Invalid variables file", f"{path} is not UTF-8 text.", src, e.start,
                                      e.start + 1, hint="save the file as UTF-8"))
        return

    def reject(name: str) -> None:
        raise ValueError(f"{name} is not valid JSON")

    decoder = json.JSONDecoder(parse_float=Decimal, parse_constant=reject)
    text, pos = src.text, 0

    def skip(at: int) -> int:
        while at < len(text) and text[at] in " \t\r\n":
            at += 1
        return at

    def bad_json(at: int, what: str) -> None:
        diags.append(Diagnostic.error("Invalid JSON in variables file", what, src, at, min(at + 1, len(text)),
                                      hint='write one JSON object: {"name": value, ...}'))

    pos = skip(0)
    if pos >= len(text) or text[pos] != "{":
        diags.append(Diagnostic.error("Invalid variables file", f"{path} must hold one JSON object.", src, pos,
                                      min(pos + 1, len(text)), hint='write {"name": value, ...}'))
        return
    items: list[tuple[str, int, int, object, int, int]] = []
    pos = skip(pos + 1)
    try:
        while pos < len(text) and text[pos] != "}":
            if text[pos] != '"':
                return bad_json(pos, "Expected a variable name in double quotes.")
            key_start = pos
            key, pos = decoder.raw_decode(text, pos)
            key_end, pos = pos, skip(pos)
            if pos >= len(text) or text[pos] != ":":
                return bad_json(pos, 'Expected ":" after the variable name.')
            pos = skip(pos + 1)
            value_start = pos
            try:
                value, pos = decoder.raw_decode(text, pos)
            except RecursionError:
                return bad_json(value_start, "The value is nested too deeply.")
            items.append((key, key_start, key_end, value, value_start, pos))
            pos = skip(pos)
            if pos < len(text) and text[pos] == ",":
                pos = skip(pos + 1)
            elif pos >= len(text) or text[pos] != "}":
                return bad_json(pos, 'Expected "," or "}" after the value.')
        if pos >= len(text):
            return bad_json(pos, "The object is not closed.")
    except json.JSONDecodeError as e:
        return bad_json(e.pos, f"{e.msg}.")
    except ValueError as e:  # NaN, Infinity, numbers of thousands of digits
        return bad_json(pos, f"{e}.")
    end = skip(pos + 1)
    if end < len(text):
        return bad_json(end, "Extra data after the object.")
    for key, key_start, key_end, value, value_start, value_end in items:
        if key not in decls:
            d = Diagnostic.error("Value for undeclared variable",
                                 f'The variables file sets "{key}", but the configuration does not declare a '
                                 "variable of that name.", src, key_start, key_end,
                                 hint=suggest(key, decls) or f'declare it: variable "{key}" {{}}')
            d.severity = WARNING
            diags.append(d)
            continue
        try:
            converted = from_python(value)
        except NumberRangeError as e:  # 1e999999: a Decimal, refused by the number's magnitude limit
            diags.append(Diagnostic.error("Number out of range", f"{e}.", src, value_start, value_end,
                                          hint="numbers this large (or small) are not supported"))
            continue
        out[key] = RawValue(converted, Span(src, value_start, value_end), "file")


def _file_values(path: Path, decls: dict[str, VariableDecl], functions: dict, explicit: bool,
                 out: dict[str, RawValue], diags: list[Diagnostic]) -> None:
    if path.name.endswith(".json"):  # as Terraform: a JSON variables file by its name
        try:
            data = path.read_bytes()
        except OSError as e:
            diags.append(Diagnostic.error("Failed to read variables file",
                                          f"Cannot read {path}: {e.strerror or e}.",
                                          hint="check the --var-file path" if explicit else ""))
            return
        _json_file_values(path, data, decls, out, diags)
        return
    try:
        body, d = parse_file(path)
    except OSError as e:
        diags.append(Diagnostic.error("Failed to read variables file",
                                      f"Cannot read {path}: {e.strerror or e}.",
                                      hint="check the --var-file path" if explicit else ""))
        return
    diags.extend(d)
    if any(x.is_error for x in d):
        return
    for b in body.blocks:
        diags.append(Diagnostic.error("Unexpected block", f'Blocks are not allowed in a variables file; found '
                                      f'"{b.type}".', b.src, b.start, b.start + len(b.type),
                                      hint="write NAME = VALUE lines only"))
    for attr in body.attributes.values():
        if attr.name not in decls:
            d2 = Diagnostic.error("Value for undeclared variable",
                                  f'The variables file sets "{attr.name}", but the configuration does not declare '
                                  "a variable of that name.", attr.src, attr.start, attr.name_end,
                                  hint=suggest(attr.name, decls) or f'declare it: variable "{attr.name}" {{}}')
            d2.severity = WARNING
            diags.append(d2)
            continue
        refs = list(_refs(attr.expr))
        if refs:
            r = refs[0]
            diags.append(Diagnostic.error("Variables not allowed", "Values in a variables file must be constants.",
                                          r.src, r.start, r.end))
            continue
        v, d = evaluate(attr.expr, EvalContext({}, functions))
        diags.extend(d)
        if not d:
            out[attr.name] = RawValue(v, attr.expr, "file")


def gather_root_values(directory: Path, decls: dict[str, VariableDecl], var_overrides: Mapping[str, str],
                       var_files: list[str], env: Mapping[str, str], functions: dict
                       ) -> tuple[dict[str, RawValue], list[Diagnostic]]:
    """The winning raw value of each root variable that was given one (defaults not included)."""
    diags: list[Diagnostic] = []
    values: dict[str, RawValue] = {}
    for key in sorted(env):
        if key.startswith(ENV_PREFIX) and key[len(ENV_PREFIX):] in decls:
            name = key[len(ENV_PREFIX):]
            rv, d = _value_from_text(name, env[key], decls[name], "environment",
                                     f"<value for var.{name} from {key}>", functions)
            diags.extend(d)
            if rv is not None:
                values[name] = rv
    auto = {*directory.glob(f"*{VARS_SUFFIX}"), *directory.glob(f"*{VARS_JSON_SUFFIX}")}
    for path in sorted(auto, key=lambda p: p.name):  # both kinds, in the order of their names
        _file_values(path, decls, functions, False, values, diags)
    for f in var_files:
        _file_values(Path(f), decls, functions, True, values, diags)
    for name, text in var_overrides.items():
        decl = decls.get(name)
        if decl is None:
            src = SourceFile("<command line>", f"--var {name}={text}")
            diags.append(Diagnostic.error("Value for undeclared variable",
                                          f'A variable named "{name}" was assigned on the command line, but the '
                                          "configuration does not declare a variable of that name.",
                                          src, 6, 6 + len(name),
                                          hint=suggest(name, decls) or f'declare it: variable "{name}" {{}}'))
            continue
        rv, d = _value_from_text(name, text, decl, "command line", f"<value for var.{name}>", functions)
        diags.extend(d)
        if rv is not None:
            values[name] = rv
    return values, diags


# ---- finishing values --------------------------------------------------------------------------------

def _where(decl: VariableDecl) -> str:
    r = decl.block.range
    return f"{r.filename}:{r.start.line}"


def finalize(decl: VariableDecl, raw: RawValue | None, functions: dict, what: str = "") -> tuple[Value,
                                                                                                  list[Diagnostic]]:
    """The variable's value from ``raw`` (or its default): converted, checked, marked.

    Problems point at ``raw``'s source; a missing required value at the
    declaration. ``what`` names the variable in messages (``var.x``).
    """
    what = what or f"var.{decl.name}"
    diags: list[Diagnostic] = []
    if raw is not None and raw.value.raw is None and not decl.nullable and decl.default_value is not None:
        raw = None  # nullable = false: a null value means "use the default"
    if raw is None:
        if decl.default_value is None:
            if decl.default is not None:  # the default was invalid; reported already
                return unknown(decl.type.type).mark(decl.sensitive), []
            return unknown(decl.type.type), [header_error(
                decl.block, "No value for required variable",
                f'The input variable "{decl.name}" is not set, and has no default value.',
                hint=f"pass --var {decl.name}=VALUE, set it in a {VARS_SUFFIX} file, or set "
                     f"{ENV_PREFIX}{decl.name}")]
        value = decl.default_value
        subject = (decl.default.src, decl.default.expr.start, decl.default.expr.end) if decl.default else \
            (None, None, None)
    else:
        subject = raw.subject()
        try:
            value = decl.type.convert(raw.value)
        except ConversionError as e:
            return unknown(decl.type.type), [Diagnostic.error(
                "Invalid value for input variable",
                f"The given value is not suitable for {what} declared at {_where(decl)}: {e}.", *subject,
                hint=f"{what} must be {decl.type}")]
        if value.raw is None and not decl.nullable:
            return unknown(decl.type.type), [Diagnostic.error(
                "Invalid value for input variable", f"The given value is null, but {what} is not nullable.",
                *subject, hint=f"give {what} a value, or declare it with nullable = true")]
    value = value.mark(decl.sensitive)
    diags.extend(check_validations(decl, value, subject, functions, what))
    return value, diags


def check_validations(decl: VariableDecl, value: Value, subject: tuple, functions: dict, what: str
                      ) -> list[Diagnostic]:
    diags: list[Diagnostic] = []
    ctx = EvalContext({"var": object_val({decl.name: value})}, functions)
    for rule in decl.validations:
        result, d = evaluate(rule.condition, ctx)
        if d:
            diags.extend(d)
            continue
        if result.raw is UNKNOWN:
            continue  # decided when the value is known
        try:
            from ..eval import convert
            result = convert(result, BOOL)
        except ConversionError as e:
            diags.append(Diagnostic.error("Invalid validation result",
                                          f"The condition value is invalid: {e}.", rule.condition.src,
                                          rule.condition.start, rule.condition.end))
            continue
        if result.raw is None or result.raw is UNKNOWN:
            if result.raw is None:
                diags.append(Diagnostic.error("Invalid validation result", "The condition value is null.",
                                              rule.condition.src, rule.condition.start, rule.condition.end))
            continue
        if result.raw:
            continue
        message = "The value is not valid."
        if rule.error_message is not None:
            mv, md = evaluate(rule.error_message, ctx)
            if not md and mv.type == STRING and isinstance(mv.raw, str):
                message = mv.raw if not mv.sensitive else "(error message hidden: it refers to a sensitive value)"
        r = rule.range
        diags.append(Diagnostic.error(
            "Invalid value for variable",
            f"{message}\n\nThis was checked by the validation rule at {r.filename}:{r.start.line}.", *subject,
            hint=f"give {what} a value the rule accepts"))
    return diags


def root_variable_values(directory: Path, decls: dict[str, VariableDecl], var_overrides: Mapping[str, str],
                         var_files: list[str], env: Mapping[str, str], unset_required_unknown: bool = False
                         ) -> tuple[dict[str, Value], list[Diagnostic]]:
    """``unset_required_unknown``: a required variable without a value is unknown (validation), not an error."""
    functions = standard_functions(directory)
    raws, diags = gather_root_values(directory, decls, var_overrides, var_files, env, functions)
    values: dict[str, Value] = {}
    for name, decl in decls.items():
        if unset_required_unknown and name not in raws and decl.default is None:
            values[name] = unknown(decl.type.type).mark(decl.sensitive)
            continue
        v, d = finalize(decl, raws.get(name), functions)
        values[name] = v
        diags.extend(d)
    return values, diags
