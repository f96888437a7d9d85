"""Quantities in configuration: memory sizes, CPU amounts and durations.

The notations are Kubernetes' and Go's, so that values can be copied from
manifests and Docker documentation:

* memory: a byte count with an optional suffix, decimal (``k``, ``M``,
  ``G``, ``T``, ``P``, ``E``; ``K`` is accepted for ``k``) or binary
  (``Ki``, ``Mi``, ``Gi``, ``Ti``, ``Pi``, ``Ei``): ``"64Mi"`` is 67108864,
  ``"512M"`` is 512000000. A ``B`` after the suffix is tolerated
  (``"512MB"``, ``"1GiB"``), a bare number is bytes. The result is a whole
  number of bytes.
* cpu: cores, as a number (``0.25``) or a string (``"0.25"``, ``"250m"``
  for millicores). The result is a float with millicore precision.
* duration: Go's ``time.ParseDuration`` units (``ns``, ``us``/``µs``,
  ``ms``, ``s``, ``m``, ``h``) combined as in ``"1m30s"``; a bare number is
  seconds. The result is a float number of seconds.

Each parser raises ``ValueError`` with a message fit for a diagnostic.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_DECIMAL = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_MEMORY_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?\s*([A-Za-z]*)\s*$")


def _number(x: object) -> Decimal | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, (int, Decimal)):
        return Decimal(x)
    if isinstance(x, float):
        return Decimal(repr(x))
    return None


def parse_memory(value: object) -> int:
    """``"64Mi"`` -> 67108864 bytes."""
    n = _number(value)
    if n is None:
        if not isinstance(value, str):
            raise ValueError(f"a memory size is a number of bytes or a string like \"64Mi\", not {value!r}")
        m = _MEMORY_RE.match(value)
        if not m:
            raise ValueError(f'"{value}" is not a memory size; write a number with a unit, like "64Mi", '
                             '"1Gi" or "512M"')
        digits, exp, unit = m.groups()
        if unit.endswith("B") and unit not in ("B",):
            unit = unit[:-1]
        elif unit == "B":
            unit = ""
        factor = _BINARY.get(unit) or _DECIMAL.get(unit)
        if factor is None:
            raise ValueError(f'"{value}": unknown memory unit "{unit}"; use Ki, Mi, Gi, Ti (powers of 1024) '
                             "or k, M, G, T (powers of 1000)")
        n = Decimal(digits) * (Decimal(10) ** int(exp) if exp else 1) * factor
    if n < 0:
        raise ValueError(f"a memory size cannot be negative ({value})")
    if n != n.to_integral_value():
        raise ValueError(f'"{value}" is not a whole number of bytes')
    return int(n)


def parse_cpu(value: object) -> float:
    """``"250m"`` or ``0.25`` -> 0.25 cores."""
    n = _number(value)
    if n is None:
        if not isinstance(value, str):
            raise ValueError(f'a CPU amount is a number of cores (0.5) or millicores ("500m"), not {value!r}')
        s = value.strip()
        try:
            n = Decimal(s[:-1]) / 1000 if s.endswith("m") else Decimal(s)
        except InvalidOperation:
            n = None
        if n is None or not n.is_finite():
            raise ValueError(f'"{value}" is not a CPU amount; write cores (0.5, "2") or millicores ("500m")')
    if n < 0:
        raise ValueError(f"a CPU amount cannot be negative ({value})")
    millis = n * 1000
    if millis != millis.to_integral_value():
        raise ValueError(f"{value}: the smallest CPU unit is 1m (0.001 cores)")
    return float(n)


_DURATION_UNITS = {"ns": Decimal("1e-9"), "us": Decimal("1e-6"), "µs": Decimal("1e-6"), "μs": Decimal("1e-6"),
                   "ms": Decimal("0.001"), "s": Decimal(1), "m": Decimal(60), "h": Decimal(3600)}
_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(value: object) -> float:
    """``"1m30s"`` -> 90.0 seconds."""
    n = _number(value)
    if n is None:
        if not isinstance(value, str):
            raise ValueError(f'a duration is a string like "5s" or "1m30s", not {value!r}')
        s = value.strip()
        if s in ("0", ""):
            if s == "":
                raise ValueError('an empty string is not a duration; write e.g. "5s"')
            return 0.0
        try:
            return float(parse_duration(Decimal(s)))
        except (InvalidOperation, ValueError):
            pass
        total = Decimal(0)
        pos = 0
        for m in _DURATION_PART.finditer(s):
            if m.start() != pos:
                break
            total += Decimal(m.group(1)) * _DURATION_UNITS[m.group(2)]
            pos = m.end()
        if pos != len(s) or pos == 0:
            raise ValueError(f'"{value}" is not a duration; write a number with a unit (ms, s, m, h), like "5s" '
                             'or "1m30s"')
        n = total
    if not n.is_finite():
        raise ValueError(f"{value} is not a duration")
    if n < 0:
        raise ValueError(f"a duration cannot be negative ({value})")
    return float(n)


def format_memory(n: int) -> str:
    """Bytes in the largest binary unit that divides them: 67108864 -> "64Mi"."""
    for unit, factor in sorted(_BINARY.items(), key=lambda kv: -kv[1]):
        if n and n % factor == 0:
            return f"{n // factor}{unit}"
    return str(n)
