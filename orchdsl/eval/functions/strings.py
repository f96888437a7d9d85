"""String functions (Terraform names and semantics)."""

from __future__ import annotations

from ..types import STRING, ListType, MapType
from ..values import (Value, bool_val, check_string_length, list_val, map_val, null, string_val)
from .base import ArgError, FunctionError, register
from .strformat import format_string
from .text import compile_regex, expand_template, graphemes

CAT = "string"
_MAX_PAD = 1 << 16  # guards against accidental multi-gigabyte strings


@register(CAT, "format(spec: string, ...args: any [null]) -> string",
          "Formats values according to a printf-style specification such as \"%s-%03d\".")
def format_(spec: Value, *args: Value) -> Value:
    return string_val(format_string(spec.raw, list(args)))


@register(CAT, "formatlist(spec: string, ...args: any [null]) -> list(string)",
          "Like format, once per element of the list arguments (scalars repeat).")
def formatlist(spec: Value, *args: Value) -> Value:
    length = None
    for i, a in enumerate(args):
        if a.type.is_list or a.type.is_tuple or a.type.is_set:
            if a.raw is None:
                raise ArgError(i + 1, "argument must not be null")
            if length is not None and len(a.raw) != length:
                raise ArgError(i + 1, f"argument {i + 1} has length {len(a.raw)}, which is inconsistent with "
                                      f"argument {_first_list(args) + 1} of length {length}")
            length = len(a.raw)
    out = []
    for n in range(1 if length is None else length):
        row = [a.raw[n] if (a.type.is_list or a.type.is_tuple or a.type.is_set) else a for a in args]
        try:
            out.append(string_val(format_string(spec.raw, row)))
        except FunctionError as e:
            raise FunctionError(f"error on format iteration {n}: {e.message}") from None
    return list_val(out, STRING)


def _first_list(args) -> int:
    return next(i for i, a in enumerate(args) if a.type.is_list or a.type.is_tuple or a.type.is_set)


@register(CAT, "join(separator: string, ...lists: list(string) [null]) -> string",
          "Concatenates the elements of one or more lists of strings with a separator.")
def join(sep: Value, *lists: Value) -> Value:
    if not lists:
        raise FunctionError("at least one list is required")
    parts = []
    for li, lst in enumerate(lists):
        if lst.raw is None:
            raise ArgError(li + 1, "argument must not be null")
        for ei, e in enumerate(lst.raw):
            if e.raw is None:
                raise ArgError(li + 1, f"element {ei} is null; cannot concatenate null values")
            parts.append(e.raw)
    check_string_length(sum(map(len, parts)) + len(sep.raw) * max(0, len(parts) - 1))  # before making it
    return string_val(sep.raw.join(parts))


@register(CAT, "split(separator: string, str: string) -> list(string)",
          "Splits a string at every occurrence of the separator.")
def split(sep: Value, s: Value) -> Value:
    parts = list(s.raw) if sep.raw == "" else s.raw.split(sep.raw)
    return list_val((string_val(p) for p in parts), STRING)


@register(CAT, "lower(str: string) -> string", "Converts all letters to lowercase.")
def lower(s: Value) -> Value:
    return string_val(s.raw.lower())


@register(CAT, "upper(str: string) -> string", "Converts all letters to uppercase.")
def upper(s: Value) -> Value:
    return string_val(s.raw.upper())


@register(CAT, "title(str: string) -> string", "Converts the first letter of each word to uppercase.")
def title(s: Value) -> Value:
    out = []
    prev = " "
    for c in s.raw:
        # Go's strings.Title: a word starts after anything but a letter, digit or underscore.
        out.append(c.upper() if not (prev.isalnum() or prev == "_") else c)
        prev = c
    return string_val("".join(out))


@register(CAT, "trim(str: string, cutset: string) -> string",
          "Removes the given characters from the start and end of a string.")
def trim(s: Value, cutset: Value) -> Value:
    return string_val(s.raw.strip(cutset.raw))


@register(CAT, "trimspace(str: string) -> string", "Removes whitespace from the start and end of a string.")
def trimspace(s: Value) -> Value:
    return string_val(s.raw.strip())


@register(CAT, "trimprefix(str: string, prefix: string) -> string",
          "Removes a prefix if the string starts with it.")
def trimprefix(s: Value, prefix: Value) -> Value:
    return string_val(s.raw.removeprefix(prefix.raw))


@register(CAT, "trimsuffix(str: string, suffix: string) -> string",
          "Removes a suffix if the string ends with it.")
def trimsuffix(s: Value, suffix: Value) -> Value:
    return string_val(s.raw.removesuffix(suffix.raw))


@register(CAT, "chomp(str: string) -> string", "Removes newline characters at the end of a string.")
def chomp(s: Value) -> Value:
    return string_val(s.raw.rstrip("\r\n"))


@register(CAT, "indent(spaces: number, str: string) -> string",
          "Adds the given number of spaces to the start of every line but the first.")
def indent(spaces: Value, s: Value) -> Value:
    n = spaces.raw
    if not isinstance(n, int) or n < 0:
        raise ArgError(0, "must be a non-negative whole number")
    if n > _MAX_PAD:
        raise ArgError(0, f"must be at most {_MAX_PAD}")
    check_string_length(len(s.raw) + n * s.raw.count("\n"))  # before making it
    return string_val(s.raw.replace("\n", "\n" + " " * n))


@register(CAT, "replace(str: string, substr: string, replace: string) -> string",
          "Replaces every occurrence of substr; a substr wrapped in slashes (/re/) is a regular expression.")
def replace(s: Value, sub: Value, rep: Value) -> Value:
    pattern = sub.raw
    if len(pattern) > 1 and pattern.startswith("/") and pattern.endswith("/"):
        rx = compile_regex(pattern[1:-1])
        made = [len(s.raw)]

        def expand(m) -> str:
            piece = expand_template(rep.raw, m)
            made[0] += len(piece)
            check_string_length(made[0])  # as it grows: the replacements can repeat the input's groups
            return piece

        return string_val(rx.sub(expand, s.raw))
    count = len(s.raw) + 1 if not pattern else s.raw.count(pattern)
    check_string_length(len(s.raw) + count * (len(rep.raw) - len(pattern)))  # before making it
    return string_val(s.raw.replace(pattern, rep.raw))


@register(CAT, "substr(str: string, offset: number, length: number) -> string",
          "Extracts length characters starting at offset (negative offset counts from the end; length -1: to the end).")
def substr(s: Value, offset: Value, length: Value) -> Value:
    off, ln = offset.raw, length.raw
    if not isinstance(off, int):
        raise ArgError(1, "must be a whole number")
    if not isinstance(ln, int):
        raise ArgError(2, "must be a whole number")
    chars = graphemes(s.raw)
    if off < 0:
        off = max(0, len(chars) + off)
    if off > len(chars):
        return string_val("")
    end = len(chars) if ln < 0 else min(len(chars), off + ln)
    return string_val("".join(chars[off:end]))


@register(CAT, "strrev(str: string) -> string", "Reverses the characters of a string.")
def strrev(s: Value) -> Value:
    return string_val("".join(reversed(graphemes(s.raw))))


@register(CAT, "startswith(str: string, prefix: string) -> bool",
          "Whether the string starts with the prefix.")
def startswith(s: Value, prefix: Value) -> Value:
    return bool_val(s.raw.startswith(prefix.raw))


@register(CAT, "endswith(str: string, suffix: string) -> bool", "Whether the string ends with the suffix.")
def endswith(s: Value, suffix: Value) -> Value:
    return bool_val(s.raw.endswith(suffix.raw))


@register(CAT, "strcontains(str: string, substr: string) -> bool", "Whether the string contains substr.")
def strcontains(s: Value, sub: Value) -> Value:
    return bool_val(sub.raw in s.raw)


def _match_value(rx, m) -> Value:
    """What regex() returns for one match: the match, a list of groups, or a map of named groups."""
    named = rx.groupindex
    if rx.groups == 0:
        return string_val(m.group())
    if named:
        if len(named) != rx.groups:
            raise FunctionError("invalid regular expression: cannot mix both named and unnamed capture groups")
        return map_val({k: (string_val(m.group(k)) if m.group(k) is not None else null(STRING))
                        for k in named}, STRING)
    return list_val((string_val(g) if g is not None else null(STRING) for g in m.groups()), STRING)


def _regex_result_type(rx):
    if rx.groups == 0:
        return STRING
    return MapType(STRING) if rx.groupindex else ListType(STRING)


@register(CAT, "regex(pattern: string, str: string) -> any",
          "The first match of a regular expression: the match, a list of its groups, or a map of named groups.")
def regex(pattern: Value, s: Value) -> Value:
    rx = compile_regex(pattern.raw)
    m = rx.search(s.raw)
    if m is None:
        raise FunctionError("pattern did not match any part of the given string")
    return _match_value(rx, m)


@register(CAT, "regexall(pattern: string, str: string) -> list(any)",
          "Every match of a regular expression, each as regex() would return it.")
def regexall(pattern: Value, s: Value) -> Value:
    rx = compile_regex(pattern.raw)
    return list_val((_match_value(rx, m) for m in rx.finditer(s.raw)), _regex_result_type(rx))
