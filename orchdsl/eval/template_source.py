"""Parse a whole file as a bare template (for ``templatefile``).

The language front end parses templates only inside expressions, so the
content is wrapped in a heredoc whose marker appears nowhere in it, parsed,
and every node's offsets are shifted back to point into the original file.
A heredoc always ends with a newline; when the file does not, the extra
newline is removed from the tree again.
"""

from __future__ import annotations

import uuid

from ..diagnostics import Diagnostic
from ..lang import ast as A
from ..lang import parse_expression
from ..lang.source import SourceFile


def parse_template(content: str, filename: str = "<template>") -> tuple[A.Expr | None, list[Diagnostic]]:
    marker = "EOT"
    while marker in content:
        marker = "EOT_" + uuid.uuid4().hex[:12].upper()
    prefix = f"<<{marker}\n"
    added_newline = not content.endswith("\n")
    wrapped = prefix + content + ("\n" if added_newline else "") + marker
    expr, diags = parse_expression(wrapped, filename)
    original = SourceFile(filename, content)
    shift = len(prefix)
    for d in diags:
        if d.subject is not None and d.source is not None:
            start = _offset(d.source, d.subject.start) - shift
            end = _offset(d.source, d.subject.end) - shift
            d.subject = original.range(max(0, min(start, len(content))), max(0, min(end, len(content))))
            d.source = original
    if expr is None:
        return None, diags
    for node in A.walk(expr):
        node.src = original
        node.start = max(0, min(node.start - shift, len(content)))
        node.end = max(0, min(node.end - shift, len(content)))
    if added_newline:
        expr = _drop_final_newline(expr, original, len(content))
    return expr, diags


def _offset(src: SourceFile, pos) -> int:
    return src.line_starts[pos.line - 1] + pos.column - 1


def _drop_final_newline(expr: A.Expr, src: SourceFile, n: int) -> A.Expr:
    if type(expr) is A.Literal and isinstance(expr.value, str) and expr.value.endswith("\n"):
        return A.Literal(src, 0, n, expr.value[:-1])
    if type(expr) is A.Template and expr.parts:
        last = expr.parts[-1]
        if type(last) is A.Literal and isinstance(last.value, str) and last.value.endswith("\n"):
            rest = last.value[:-1]
            parts = expr.parts[:-1] + ([A.Literal(src, last.start, last.end, rest)] if rest else [])
            if len(parts) == 1 and type(parts[0]) not in (A.Literal, A.TemplateIf, A.TemplateJoin):
                # A file that is exactly one interpolation yields its value unconverted.
                return A.TemplateWrap(src, 0, n, parts[0])
            return A.Template(src, 0, n, parts)
    return expr
