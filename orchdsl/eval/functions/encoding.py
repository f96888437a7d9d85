"""Encoding and hashing functions."""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import json
from decimal import Decimal
from urllib.parse import quote_plus

from ..format import to_json
from ..values import MAX_NUMBER_EXPONENT, NumberRangeError, format_number
from ..types import STRING, ObjectType
from ..values import (NULL, Value, list_val, number_val, object_val, string_val, tuple_val, bool_val)
from .base import ArgError, register

CAT = "encoding"


@register(CAT, "jsonencode(value: any [null]) -> string", "Encodes a value as compact JSON.")
def jsonencode(v: Value) -> Value:
    return string_val(to_json(v))


def _from_json(obj) -> Value:
    if obj is None:
        return NULL
    if isinstance(obj, bool):
        return bool_val(obj)
    if isinstance(obj, (int, Decimal)):
        return number_val(obj)
    if isinstance(obj, str):
        return string_val(obj)
    if isinstance(obj, list):
        return tuple_val(_from_json(x) for x in obj)
    return object_val({k: _from_json(v) for k, v in obj.items()})


def _reject_constant(name: str):
    raise ValueError(f"invalid number {name}")


@register(CAT, "jsondecode(str: string) -> any",
          "Decodes JSON: objects become objects, arrays tuples, numbers exact.")
def jsondecode(s: Value) -> Value:
    try:
        data = json.loads(s.raw, parse_float=Decimal, parse_int=_json_int, parse_constant=_reject_constant)
    except NumberRangeError as e:
        raise ArgError(0, f"{e}") from None
    except (ValueError, RecursionError) as e:
        raise ArgError(0, f"invalid JSON: {e}") from None
    return _from_json(data)


def _json_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_NUMBER_EXPONENT:  # int() of it would be refused, or slow
        raise NumberRangeError(f"the number {text[:20]}... ({len(text)} digits)")
    return int(text)


@register(CAT, "yamlencode(value: any [null]) -> string",
          "Encodes a value as YAML (block style, strings double-quoted, as Terraform prints it).")
def yamlencode(v: Value) -> Value:
    lines: list[str] = []
    _yaml(v, 0, lines, None)
    return string_val("\n".join(lines) + "\n")


def _yaml_scalar(v: Value) -> str | None:
    """The inline form of a scalar or empty collection; None for a non-empty collection."""
    raw = v.raw
    if raw is None:
        return "null"
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, str):
        return json.dumps(raw, ensure_ascii=False)
    if isinstance(raw, (int, Decimal)):
        return format_number(raw)
    if not raw:
        return "[]" if isinstance(raw, tuple) else "{}"
    return None


def _yaml(v: Value, indent: int, lines: list[str], prefix: str | None) -> None:
    """Append ``v`` at ``indent``; ``prefix`` is text already started on the current line ("- ", "key:")."""
    pad = " " * indent
    inline = _yaml_scalar(v)
    if inline is not None:
        lines.append(f"{prefix or pad}{' ' if prefix and prefix.endswith(':') else ''}{inline}")
        return
    if prefix is not None and prefix.endswith(":"):
        lines.append(prefix)
        prefix = None
    items = list(v.raw.items()) if isinstance(v.raw, dict) else list(v.raw)
    for i, item in enumerate(items):
        # The first entry of a sequence item shares the "- " line.
        head = prefix if (i == 0 and prefix is not None) else pad
        if isinstance(v.raw, dict):
            key, val = item
            nested = indent + 2 if val.raw and isinstance(val.raw, dict) else indent
            _yaml(val, nested, lines, f"{head}{json.dumps(key, ensure_ascii=False)}:")
        else:
            _yaml(item, indent + 2, lines, f"{head}- ")


@register(CAT, "base64encode(str: string) -> string", "Encodes the UTF-8 bytes of a string as Base64.")
def base64encode(s: Value) -> Value:
    return string_val(base64.b64encode(s.raw.encode("utf-8")).decode("ascii"))


@register(CAT, "base64decode(str: string) -> string", "Decodes Base64 to a UTF-8 string.")
def base64decode(s: Value) -> Value:
    try:
        data = base64.b64decode(s.raw, validate=True)
    except (binascii.Error, ValueError):
        raise ArgError(0, "failed to decode base64 data " + json.dumps(s.raw)) from None
    try:
        return string_val(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ArgError(0, "the result of decoding the provided string is not valid UTF-8") from None


@register(CAT, "urlencode(str: string) -> string", "URL query encoding: spaces become +, others %XX.")
def urlencode(s: Value) -> Value:
    return string_val(quote_plus(s.raw, safe="~"))


@register(CAT, "csvdecode(str: string) -> list(any)",
          "Parses CSV with a header line into a list of objects of strings.")
def csvdecode(s: Value) -> Value:
    rows = list(csv.reader(io.StringIO(s.raw, newline="")))
    rows = [r for r in rows if r]  # Go's reader skips empty lines
    if not rows:
        raise ArgError(0, "missing header line")
    header = rows[0]
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ArgError(0, f"record on line {n}: wrong number of fields")
        out.append(object_val({k: string_val(v) for k, v in zip(header, row)}))
    return list_val(out, ObjectType({k: STRING for k in header}))


# ---- hashes -------------------------------------------------------------------------

def _hex(algo: str):
    def impl(s: Value) -> Value:
        return string_val(hashlib.new(algo, s.raw.encode("utf-8")).hexdigest())
    return impl


def _b64(algo: str):
    def impl(s: Value) -> Value:
        return string_val(base64.b64encode(hashlib.new(algo, s.raw.encode("utf-8")).digest()).decode("ascii"))
    return impl


for _algo in ("md5", "sha1", "sha256", "sha512"):
    register("hash", f"{_algo}(str: string) -> string",
             f"The {_algo.upper()} hash of the string's UTF-8 bytes, as hex.")(_hex(_algo))
for _algo in ("sha256", "sha512"):
    register("hash", f"base64{_algo}(str: string) -> string",
             f"The {_algo.upper()} hash of the string's UTF-8 bytes, Base64-encoded.")(_b64(_algo))
