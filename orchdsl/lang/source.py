"""Source files and positions.

Nodes and tokens store character offsets only; line, column and UTF-8 byte
offsets are computed on demand from the file (they are needed for
diagnostics, not on the parsing hot path).
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Pos:
    line: int  # 1-based
    column: int  # 1-based, in characters
    byte: int  # 0-based UTF-8 byte offset

    def to_json(self) -> dict:
        return {"line": self.line, "column": self.column, "byte": self.byte}


@dataclass(frozen=True, slots=True)
class Range:
    filename: str
    start: Pos
    end: Pos

    def __str__(self) -> str:
        return f"{self.filename}:{self.start.line},{self.start.column}-{self.end.line},{self.end.column}"

    def to_json(self) -> dict:
        return {"filename": self.filename, "start": self.start.to_json(), "end": self.end.to_json()}


class SourceFile:
    """A file's text (as str) with lazy line tables."""

    __slots__ = ("filename", "text", "_line_starts")

    def __init__(self, filename: str, text: str):
        self.filename = filename
        self.text = text
        self._line_starts: array | None = None

    @classmethod
    def from_bytes(cls, filename: str, data: bytes) -> SourceFile:
        # Invalid UTF-8 survives as lone surrogates, which the lexer reports.
        return cls(filename, data.decode("utf-8", "surrogateescape"))

    @property
    def line_starts(self) -> array:
        if self._line_starts is None:
            starts = array("q", [0])
            text = self.text
            find = text.find
            i = find("\n")
            while i >= 0:
                starts.append(i + 1)
                i = find("\n", i + 1)
            self._line_starts = starts
        return self._line_starts

    def pos(self, offset: int) -> Pos:
        starts = self.line_starts
        offset = max(0, min(offset, len(self.text)))
        line = bisect_right(starts, offset)
        line_start = starts[line - 1]
        byte = len(self.text[:offset].encode("utf-8", "surrogateescape"))
        return Pos(line, offset - line_start + 1, byte)

    def range(self, start: int, end: int) -> Range:
        return Range(self.filename, self.pos(start), self.pos(end))

    def line_text(self, line: int) -> str:
        starts = self.line_starts
        if line < 1 or line > len(starts):
            return ""
        end = starts[line] - 1 if line < len(starts) else len(self.text)
        return self.text[starts[line - 1]:end].rstrip("\r")
