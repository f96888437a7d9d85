"""`orch console`: evaluate expressions from standard input in a configuration's scope."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from . import redact
from .config import load_directory, static_scope
from .diagnostics import Diagnostic
from .eval import evaluate, format_value, to_json
from .lang import parse_expression


def _parse_overrides(pairs: list[str]) -> tuple[dict[str, str], list[Diagnostic]]:
    out: dict[str, str] = {}
    diags = []
    for p in pairs:
        name, sep, value = p.partition("=")
        if not sep or not name:
            diags.append(Diagnostic.error("Invalid --var option", f'The given --var option "{p}" is not '
                                          "correctly specified.", hint="use --var NAME=VALUE"))
            continue
        out[name.strip()] = value
    return out, diags


def run_console(directory: Path, stdin: TextIO, stdout: TextIO, stderr: TextIO, as_json: bool = False,
                color: bool = False, variables: list[str] | None = None) -> int:
    secrets = redact.current()

    def report(diags: list[Diagnostic]) -> None:
        for d in secrets.redact_all(diags):
            print(d.render(color=color), file=stderr)

    overrides, diags = _parse_overrides(variables or [])
    config, load_diags = load_directory(directory)
    diags += load_diags
    if any(d.is_error for d in diags):
        report(diags)
        return 1
    ctx, scope_diags = static_scope(config, overrides)
    var = ctx.lookup("var")
    if var is not None:
        secrets.add_value(var)
        # a sensitive variable's --var text, also when it did not evaluate (it shows in the error's snippet)
        marked = var.attrs if isinstance(var.raw, dict) else {}
        secrets.add([raw for name, raw in overrides.items() if name in marked and marked[name].sensitive])
    report(diags + scope_diags)
    if any(d.is_error for d in scope_diags):
        return 1

    status = 0
    for n, line in enumerate(stdin, 1):
        text = line.strip()
        if not text:
            continue
        expr, diags = parse_expression(text, f"<console input {n}>")
        if expr is None or any(d.is_error for d in diags):
            report(diags)
            status = 1
            continue
        value, diags = evaluate(expr, ctx)
        if any(d.is_error for d in diags):
            report(diags)
            status = 1
            continue
        if as_json and value.is_deeply_sensitive:
            report([Diagnostic.error("Sensitive value not shown",
                                     f"{text} is sensitive (or contains sensitive values); orch does not print "
                                     "it.", expr.src, expr.start, expr.end,
                                     hint="wrap it in nonsensitive(...) to print it")])
            status = 1
        elif as_json:
            try:
                print(to_json(value), file=stdout)
            except ValueError:
                report([Diagnostic.error("Value not known yet",
                                         f"{text} is known only after apply; it has no JSON value.",
                                         expr.src, expr.start, expr.end,
                                         hint="refer to values that are known before apply")])
                status = 1
        else:
            print(format_value(value), file=stdout)
        stdout.flush()
    return status
