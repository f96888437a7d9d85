"""The ``format`` verbs (cty's stdlib.Format, itself modelled on Go's fmt).

Supported: ``%%``, ``%v``, ``%#v``, ``%t``, ``%b``, ``%d``, ``%o``, ``%x``,
``%X``, ``%e``, ``%E``, ``%f``, ``%g``, ``%G``, ``%s``, ``%q``, with flags
``+ - # 0 space``, width, precision and explicit argument indexes ``%[2]d``.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from ..convert import ConversionError, convert
from ..format import go_quote, to_json
from ..types import BOOL, NUMBER, STRING
from ..values import NUMBER_CONTEXT, Value, format_number, to_decimal
from .base import FunctionError

_MAX_WIDTH = 1 << 16  # guards against accidental multi-gigabyte strings
_VERB = re.compile(r"%(?:\[(\d+)\])?([+\-# 0]*)(\d+)?(?:\.(\d*))?(?:\[(\d+)\])?(.?)", re.DOTALL)


def format_string(spec: str, args: list[Value]) -> str:
    out: list[str] = []
    argi = 0
    used = 0
    i = 0
    while True:
        j = spec.find("%", i)
        if j < 0:
            out.append(spec[i:])
            break
        out.append(spec[i:j])
        m = _VERB.match(spec, j)
        assert m is not None
        idx1, flags, width, prec, idx2, verb = m.groups()
        if (width and int(width) > _MAX_WIDTH) or (prec and int(prec) > _MAX_WIDTH):
            raise FunctionError(f"width or precision at offset {j} is larger than {_MAX_WIDTH}")
        i = m.end()
        if verb == "%" and not (idx1 or flags or width or prec is not None or idx2):
            out.append("%")
            continue
        if not verb:
            raise FunctionError(f"unterminated format verb at offset {j}")
        explicit = idx1 or idx2
        if explicit:
            argi = int(explicit) - 1
            if argi < 0 or argi >= len(args):
                raise FunctionError(f"invalid argument index {explicit} for %{verb} at offset {j}")
        if argi >= len(args):
            raise FunctionError(f"not enough arguments for \"%{verb}\" at {j}: need index {argi + 1} but have "
                                f"{len(args)} total")
        arg = args[argi]
        argi += 1
        used = max(used, argi)
        try:
            text = _format_one(verb, flags, prec, arg)
        except ConversionError as e:
            raise FunctionError(f"unsupported value for \"%{verb}\" at {j}: {e}") from None
        out.append(_pad(text, flags, int(width) if width else 0, verb in "bdoxXeEfgG"))
    if used < len(args):
        raise FunctionError(f"too many arguments; only {used} used by format string")
    return "".join(out)


def _format_one(verb: str, flags: str, prec: str | None, arg: Value) -> str:
    p = int(prec) if prec else (0 if prec == "" else None)
    if arg.raw is None:
        if verb == "v":
            return "null"
        raise ConversionError("null value cannot be formatted")
    if verb == "v":
        if "#" in flags:
            return to_json(arg)
        if arg.type.is_primitive:
            return _truncate(convert(arg, STRING).raw, p)
        return to_json(arg)
    if verb == "t":
        return "true" if convert(arg, BOOL).raw else "false"
    if verb == "s":
        return _truncate(convert(arg, STRING).raw, p)
    if verb == "q":
        return go_quote(_truncate(convert(arg, STRING).raw, p))
    if verb in "bdoxX":
        n = convert(arg, NUMBER).raw
        if not isinstance(n, int):
            raise ConversionError("integer required")
        return _format_int(verb, flags, p, n)
    if verb in "eEfgG":
        return _format_float(verb, flags, p, to_decimal(convert(arg, NUMBER).raw))
    raise FunctionError(f"unsupported format verb %{verb}")


def _truncate(s: str, p: int | None) -> str:
    return s if p is None else s[:p]


def _format_int(verb: str, flags: str, p: int | None, n: int) -> str:
    digits = {"b": format(abs(n), "b"), "d": str(abs(n)), "o": format(abs(n), "o"),
              "x": format(abs(n), "x"), "X": format(abs(n), "X")}[verb]
    if p is not None:
        digits = digits.zfill(p) if p else ("" if n == 0 else digits)
    if "#" in flags:
        digits = {"b": "0b", "o": "0", "x": "0x", "X": "0X"}.get(verb, "") + digits
    return _sign(n < 0, flags) + digits


def _sign(negative: bool, flags: str) -> str:
    return "-" if negative else "+" if "+" in flags else " " if " " in flags else ""


def _format_float(verb: str, flags: str, p: int | None, d: Decimal) -> str:
    neg = d.is_signed() and d != 0
    d = NUMBER_CONTEXT.abs(d)
    if verb == "f":
        body = _fixed(d, 6 if p is None else p)
    elif verb in "eE":
        body = _exp(d, 6 if p is None else p)
    else:
        body = _general(d, p)
    if verb in "EG":
        body = body.upper()
    return _sign(neg, flags) + body


def _fixed(d: Decimal, places: int) -> str:
    with localcontext(NUMBER_CONTEXT) as ctx:
        ctx.rounding = ROUND_HALF_EVEN
        # quantize needs room for every digit of the result
        ctx.prec = max(ctx.prec, (d.adjusted() if d else 0) + places + 2)
        return format(d.quantize(Decimal(1).scaleb(-places)), "f")


def _exp(d: Decimal, places: int) -> str:
    if d == 0:
        mant, exp = _fixed(Decimal(0), places), 0
    else:
        exp = d.adjusted()
        mant_d = NUMBER_CONTEXT.scaleb(d, -exp)
        mant = _fixed(mant_d, places)
        if mant.startswith("10"):  # rounding carried into a new digit
            exp += 1
            mant = _fixed(NUMBER_CONTEXT.scaleb(d, -exp), places)
    return f"{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"


def _general(d: Decimal, p: int | None) -> str:
    """Go's %g: shortest representation, exponent form for large or tiny magnitudes."""
    if d == 0:
        return "0"
    if p is not None:
        p = max(p, 1)
        with localcontext(NUMBER_CONTEXT) as ctx:
            ctx.prec = p
            d = +d
    norm = d.normalize(NUMBER_CONTEXT)
    sign, digits, e = norm.as_tuple()
    nd = len(digits)
    dp = nd + e  # position of the decimal point relative to the digit string
    eprec = 6 if p is None else (nd if p > nd >= dp else p)
    exp = dp - 1
    if exp < -4 or exp >= eprec:
        body = "".join(map(str, digits))
        mant = body[0] + ("." + body[1:] if len(body) > 1 else "")
        return f"{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    return format_number(norm)


def _pad(text: str, flags: str, width: int, numeric: bool) -> str:
    if len(text) >= width:
        return text
    if "-" in flags:
        return text.ljust(width)
    if "0" in flags and numeric:
        sign = text[0] if text[:1] in "+- " and text else ""
        return sign + text[len(sign):].rjust(width - len(sign), "0")
    return text.rjust(width)
