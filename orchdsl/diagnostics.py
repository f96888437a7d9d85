"""Diagnostics: every user error orch reports, with where and a hint.

A diagnostic points either at a source range (file:line:col) or at a
resource address. Text rendering shows the source line with carets; JSON
rendering follows ``terraform validate -json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # runtime import would be circular (the parser reports Diagnostics)
    from .lang.source import Range, SourceFile

ERROR = "error"
WARNING = "warning"


@dataclass(slots=True)
class Diagnostic:
    severity: str
    summary: str
    detail: str = ""
    subject: Range | None = None
    address: str | None = None
    hint: str = ""
    source: SourceFile | None = field(default=None, repr=False, compare=False)

    @classmethod
    def error(cls, summary: str, detail: str = "", src: SourceFile | None = None, start: int | None = None,
              end: int | None = None, hint: str = "", address: str | None = None) -> Diagnostic:
        subject = src.range(start, end if end is not None else start) if src is not None and start is not None \
            else None
        return cls(ERROR, summary, detail, subject, address, hint, src)

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def to_json(self) -> dict:
        d: dict = {"severity": self.severity, "summary": self.summary, "detail": self.full_detail}
        if self.subject is not None:
            d["range"] = self.subject.to_json()
            if self.source is not None:
                d["snippet"] = {
                    "context": None,
                    "code": self.source.line_text(self.subject.start.line),
                    "start_line": self.subject.start.line,
                    "highlight_start_offset": self.subject.start.column - 1,
                    "highlight_end_offset": self._highlight_end() - 1,
                }
        if self.address:
            d["address"] = self.address
        return d

    @property
    def full_detail(self) -> str:
        if self.hint:
            return f"{self.detail} Hint: {self.hint}" if self.detail else f"Hint: {self.hint}"
        return self.detail

    def _highlight_end(self) -> int:
        s = self.subject
        assert s is not None
        if s.end.line != s.start.line:
            return len(self.source.line_text(s.start.line)) + 1 if self.source else s.start.column + 1
        return max(s.end.column, s.start.column + 1)

    def render(self, color: bool = False) -> str:
        red, bold, reset = ("\x1b[31m", "\x1b[1m", "\x1b[0m") if color else ("", "", "")
        label = "Error" if self.is_error else "Warning"
        head = f"{red}{bold}{label}:{reset}{bold} {self.summary}{reset}"
        lines = [head]
        if self.subject is not None:
            lines.append(f"  on {self.subject.filename}:{self.subject.start.line}:{self.subject.start.column}")
        if self.address:
            lines.append(f"  with {self.address}")
        if self.subject is not None and self.source is not None:
            ln = self.subject.start.line
            code = self.source.line_text(ln)
            gutter = f"{ln:>4} | "
            lines.append(gutter + code.replace("\t", " "))
            width = max(1, self._highlight_end() - self.subject.start.column)
            lines.append(" " * (len(gutter) + self.subject.start.column - 1) + "^" * width)
        if self.detail:
            lines.append("")
            lines.append(self.detail)
        if self.hint:
            lines.append(f"Hint: {self.hint}")
        return "\n".join(lines)


def unique(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Drop repeated diagnostics (same message at the same place), keeping order."""
    seen = set()
    out = []
    for d in diags:
        key = (d.severity, d.summary, d.detail, str(d.subject), d.address)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def has_errors(diags: Iterable[Diagnostic]) -> bool:
    return any(d.is_error for d in diags)


def to_validate_json(diags: list[Diagnostic]) -> str:
    errors = sum(1 for d in diags if d.is_error)
    doc = {
        "format_version": "1.0",
        "valid": errors == 0,
        "error_count": errors,
        "warning_count": len(diags) - errors,
        "diagnostics": [d.to_json() for d in diags],
    }
    return json.dumps(doc, indent=2)


class DiagnosticsError(Exception):
    """Raised where a caller must stop; carries the diagnostics to show."""

    def __init__(self, diags: list[Diagnostic]):
        super().__init__("\n".join(d.summary for d in diags))
        self.diagnostics = diags
