"""Numeric functions. Arithmetic is exact decimal (see values.NUMBER_CONTEXT)."""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation, localcontext

from ..values import MAX_NUMBER_EXPONENT, NUMBER_CONTEXT, NumberRangeError, Value, number_val, to_decimal
from .base import ArgError, FunctionError, register

CAT = "numeric"


@register(CAT, "abs(num: number) -> number", "The absolute value.")
def abs_(n: Value) -> Value:
    x = n.raw
    return number_val(abs(x) if isinstance(x, int) else NUMBER_CONTEXT.abs(x))


@register(CAT, "ceil(num: number) -> number", "The closest whole number greater than or equal to num.")
def ceil(n: Value) -> Value:
    return number_val(math.ceil(n.raw))


@register(CAT, "floor(num: number) -> number", "The closest whole number less than or equal to num.")
def floor(n: Value) -> Value:
    return number_val(math.floor(n.raw))


def _extra_precision():
    ctx = NUMBER_CONTEXT.copy()
    ctx.prec += 20  # compute transcendental functions with guard digits, then round
    return localcontext(ctx)


@register(CAT, "log(num: number, base: number) -> number", "The logarithm of num in the given base.")
def log(n: Value, base: Value) -> Value:
    x, b = to_decimal(n.raw), to_decimal(base.raw)
    if x <= 0:
        raise ArgError(0, "the number must be greater than zero")
    if b <= 0 or b == 1:
        raise ArgError(1, "the base must be greater than zero and not equal to one")
    with _extra_precision():
        r = x.ln() / b.ln()
    return number_val(_round_result(r))


def _round_result(r: Decimal) -> Decimal:
    # Guard digits can leave 2.99999...98 where the exact answer is 3.
    q = NUMBER_CONTEXT.plus(r)
    nearest = q.to_integral_value()
    return nearest if abs(q - nearest) < Decimal("1e-140") else q


@register(CAT, "pow(num: number, power: number) -> number", "num raised to the given power.")
def pow_(n: Value, p: Value) -> Value:
    x, y = n.raw, p.raw
    if x == 0 and y < 0:
        raise FunctionError("zero cannot be raised to a negative power: the result would be infinite")
    if x != 0 and abs(x) != 1:
        # the result's magnitude before computing it: x ** 1e9 would never finish
        digits = float(y) * float(to_decimal(abs(x)).log10())
        if abs(digits) > MAX_NUMBER_EXPONENT + 1:
            raise NumberRangeError("the result")
    if isinstance(x, int) and isinstance(y, int) and y >= 0:
        return number_val(x ** y)
    try:
        with _extra_precision():
            r = to_decimal(x) ** to_decimal(y)
    except (InvalidOperation, ZeroDivisionError, ArithmeticError):
        raise FunctionError("the result is not a real number") from None
    return number_val(_round_result(r))


@register(CAT, "signum(num: number) -> number", "-1, 0 or 1: the sign of num.")
def signum(n: Value) -> Value:
    x = n.raw
    return number_val((x > 0) - (x < 0))


@register(CAT, "max(...numbers: number) -> number", "The greatest of the given numbers.")
def max_(*nums: Value) -> Value:
    if not nums:
        raise FunctionError("must pass at least one number")
    return number_val(max(x.raw for x in nums))


@register(CAT, "min(...numbers: number) -> number", "The smallest of the given numbers.")
def min_(*nums: Value) -> Value:
    if not nums:
        raise FunctionError("must pass at least one number")
    return number_val(min(x.raw for x in nums))


_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@register(CAT, "parseint(number: string, base: number) -> number",
          "Parses a string as an integer in a base from 2 to 62.")
def parseint(s: Value, base: Value) -> Value:
    b = base.raw
    if not isinstance(b, int) or not 2 <= b <= 62:
        raise ArgError(1, "base must be a whole number between 2 and 62 inclusive")
    text = s.raw
    body = text[1:] if text[:1] in "+-" else text
    # Go's big.Int.SetString: digits are case-insensitive up to base 36.
    digits = _DIGITS[:b] if b > 36 else _DIGITS[:b] + _DIGITS[10:b].upper()
    if not body or any(c not in digits for c in body):
        raise ArgError(0, f"cannot parse {text!r} as a base {b} integer".replace("'", '"'))
    if (len(body.lstrip("0")) - 1) * math.log10(b) >= MAX_NUMBER_EXPONENT:  # before a quadratic conversion
        raise NumberRangeError("the result")
    n = 0
    for c in body:
        n = n * b + (_DIGITS.index(c) if b > 36 else _DIGITS.index(c.lower()))
    return number_val(-n if text.startswith("-") else n)
