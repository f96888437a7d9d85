"""Text helpers shared by the function modules: grapheme clusters and RE2 regular expressions.

Regular expressions run on RE2 (Google's engine, the ``google-re2`` package), as Terraform's run on Go's
``regexp``, which implements the same syntax: matching takes time linear in the input, whatever the pattern
(``(a+)+$`` cannot backtrack for minutes), and what RE2 cannot do in linear time (lookaround,
backreferences) is refused, as Terraform refuses it.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any

import re2

from .base import FunctionError

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # errors are raised (and reported as diagnostics), not printed to stderr
_RE2_OPTIONS.max_mem = 64 << 20  # the compiled program's memory: a pattern like a{1000}{1000} is refused

_ZWJ = "\u200d"


def graphemes(s: str) -> list[str]:
    """Split into user-perceived characters (Terraform counts these, not code points).

    An approximation of UAX #29 good for real text: combining marks,
    variation selectors, emoji modifiers, ZWJ sequences, regional-indicator
    pairs and CRLF stay with their base character.
    """
    out: list[str] = []
    i, n = 0, len(s)
    while i < n:
        j = i + 1
        if s[i] == "\r" and j < n and s[j] == "\n":
            j += 1
        elif _is_regional(s[i]) and j < n and _is_regional(s[j]):
            j += 1
        while j < n and (_extends(s[j]) or s[j - 1] == _ZWJ):
            j += 1
        out.append(s[i:j])
        i = j
    return out


def _is_regional(c: str) -> bool:
    return "\U0001F1E6" <= c <= "\U0001F1FF"


def _extends(c: str) -> bool:
    return (unicodedata.combining(c) != 0 or c == _ZWJ or "\ufe00" <= c <= "\ufe0f"
            or "\U0001F3FB" <= c <= "\U0001F3FF" or unicodedata.category(c) in ("Mn", "Me", "Mc"))


@lru_cache(maxsize=256)
def compile_regex(pattern: str) -> Any:
    """Compile an RE2 pattern (Go's and Terraform's syntax); the result has ``re.Pattern``'s methods."""
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as e:
        why = e.args[0].decode("utf-8", "replace") if e.args and isinstance(e.args[0], bytes) else str(e)
        raise FunctionError(f"invalid regular expression pattern: {why}") from None


def expand_template(template: str, m: Any) -> str:
    """Go's regexp Expand: ``$1``, ``${1}``, ``$name``, ``${name}``, ``$$``."""
    out = []
    i, n = 0, len(template)
    while i < n:
        c = template[i]
        if c != "$" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        nxt = template[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt == "{":
            end = template.find("}", i + 2)
            if end < 0:
                out.append(c)
                i += 1
                continue
            name = template[i + 2:end]
            i = end + 1
        else:
            mm = re.match(r"\w+", template[i + 1:])
            if not mm:
                out.append(c)
                i += 1
                continue
            name = mm.group()
            i += 1 + len(name)
        out.append(_group(m, name))
    return "".join(out)


def _group(m: Any, name: str) -> str:
    try:
        g = m.group(int(name)) if name.isdigit() else m.group(name)
    except IndexError:
        return ""  # Go expands unknown groups to nothing
    return g or ""
