"""Durations as Terraform (Go's time.ParseDuration) writes them: ``0s``, ``30s``, ``2m``, ``1m30s``, ``500ms``."""

from __future__ import annotations

import re

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in ``text``. Raises ValueError with a message fit for a diagnostic.

    Like Go: a sequence of number+unit parts (``1h2m3.5s``), ``0`` alone needs no unit.
    Negative durations are rejected: every duration here is a time to wait.
    """
    s = text.strip()
    if s == "0":
        return 0.0
    if not s:
        raise ValueError('empty duration (expected a number and a unit, such as "30s" or "2m")')
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            if s[pos] == "-" or s[pos] == "+":
                raise ValueError(f'"{text}": a duration cannot have a sign')
            if re.fullmatch(r"\d+(\.\d*)?", s[pos:]):
                raise ValueError(f'"{text}": missing unit (for example "{s[pos:]}s" for seconds)')
            raise ValueError(f'"{text}" is not a duration (expected a number and a unit such as "30s", '
                             f'"2m", "1m30s" or "500ms"; units: h, m, s, ms, us, ns)')
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return total


def format_duration(seconds: float) -> str:
    """``90.0`` -> ``1m30s``; for messages."""
    if seconds < 1 and seconds != 0:
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    frac = seconds - whole
    out = (f"{h}h" if h else "") + (f"{m}m" if m else "")
    if s or frac or not out:
        out += f"{s + frac:g}s"
    return out
