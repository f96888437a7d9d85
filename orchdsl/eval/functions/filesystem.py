"""Filesystem functions: the only functions with I/O.

Relative paths are resolved against ``base_dir`` (the configuration's
directory), so a configuration behaves the same wherever orch is run from.
These functions are built per base directory by ``file_functions``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import posixpath
import re
import stat
from collections.abc import Callable
from pathlib import Path

from ..types import STRING
from ..values import UNKNOWN, Value, bool_val, set_val, string_val
from .base import ArgError, Function, FunctionError, make_function, register

CAT = "filesystem"

_IDENT = re.compile(r"^[^\W\d][\w-]*$")


# ---- pure path functions ---------------------------------------------------------------

@register(CAT, "basename(path: string) -> string", "The last element of a path.")
def basename(p: Value) -> Value:
    s = p.raw.rstrip("/")
    if not p.raw:
        return string_val(".")
    if not s:
        return string_val("/")
    return string_val(s.rsplit("/", 1)[-1])


@register(CAT, "dirname(path: string) -> string", "A path without its last element.")
def dirname(p: Value) -> Value:
    s = p.raw
    d = posixpath.dirname(s)
    # Go's filepath.Dir cleans the result: "" -> ".", "a//b/" -> "a//b" cleaned.
    return string_val(posixpath.normpath(d) if d else ".")


@register(CAT, "pathexpand(path: string) -> string", "Replaces a leading ~ with the home directory.")
def pathexpand(p: Value) -> Value:
    s = p.raw
    if s == "~" or s.startswith("~/"):
        return string_val(os.path.expanduser("~") + s[1:])
    return string_val(s)


@register(CAT, "abspath(path: string) -> string",
          "The absolute form of a path (relative to the working directory).")
def abspath(p: Value) -> Value:
    return string_val(Path(os.path.abspath(p.raw)).as_posix())


# ---- functions reading files -------------------------------------------------------------

def _resolve(base_dir: str, path: str) -> Path:
    p = Path(os.path.expanduser(path)) if path.startswith("~") else Path(path)
    return p if p.is_absolute() else Path(base_dir) / p


# Bounds on what file functions read: a configuration's files are small; a named pipe, a device or
# fileset("/", "**") must not make a command hang.
MAX_FILE_BYTES = 64 << 20
MAX_FILESET_ENTRIES = 20_000


def _read_bytes(base_dir: str, path: str) -> bytes:
    full = _resolve(base_dir, path)
    try:
        # O_NONBLOCK: opening a named pipe without a writer must not block; it is refused just below
        fd = os.open(full, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError(path)
            if not stat.S_ISREG(st.st_mode):
                raise ArgError(0, f'"{path}" is not a regular file (a named pipe, socket or device): only files '
                                  "can be read")
            if st.st_size > MAX_FILE_BYTES:
                raise ArgError(0, f'"{path}" is larger than {MAX_FILE_BYTES >> 20} MiB')
            with os.fdopen(fd, "rb", closefd=False) as f:
                data = f.read(MAX_FILE_BYTES + 1)
        finally:
            os.close(fd)
        if len(data) > MAX_FILE_BYTES:  # grew while read
            raise ArgError(0, f'"{path}" is larger than {MAX_FILE_BYTES >> 20} MiB')
        return data
    except FileNotFoundError:
        raise ArgError(0, f'no file exists at "{path}"; this function works only with files that are '
                          "distributed as part of the configuration source code, so if this file will be "
                          "created by a resource in this configuration you must instead obtain this result from "
                          "an attribute of that resource") from None
    except IsADirectoryError:
        raise ArgError(0, f'"{path}" is a directory, not a file') from None
    except OSError as e:
        raise ArgError(0, f'failed to read "{path}": {e.strerror}') from None


def _read_text(base_dir: str, path: str) -> str:
    data = _read_bytes(base_dir, path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ArgError(0, f'contents of "{path}" are not valid UTF-8; use the filebase64 function to obtain the '
                          "Base64 encoded contents or the other file functions (e.g. filemd5, filesha256) to "
                          "obtain file hashing results instead") from None


def file_functions(base_dir: str, functions: dict[str, Function]) -> dict[str, Function]:
    """The file functions bound to ``base_dir``; templatefile sees ``functions``."""
    out: dict[str, Function] = {}

    def add(signature: str, doc: str, impl: Callable[..., Value]) -> None:
        f = make_function(CAT, signature, doc, impl)
        out[f.name] = f

    add("file(path: string) -> string", "The contents of a UTF-8 text file.",
        lambda p: string_val(_read_text(base_dir, p.raw)))
    add("fileexists(path: string) -> bool", "Whether a file exists at the path.",
        lambda p: _fileexists(base_dir, p.raw))
    add("filebase64(path: string) -> string", "The contents of a file, Base64-encoded.",
        lambda p: string_val(base64.b64encode(_read_bytes(base_dir, p.raw)).decode("ascii")))
    for algo in ("md5", "sha1", "sha256", "sha512"):
        add(f"file{algo}(path: string) -> string", f"The {algo.upper()} hash of a file's contents, as hex.",
            (lambda a: lambda p: string_val(hashlib.new(a, _read_bytes(base_dir, p.raw)).hexdigest()))(algo))
    add("fileset(path: string, pattern: string) -> set(string)",
        "The files under path matching a glob pattern (with ** for any depth), relative to path.",
        lambda p, pat: _fileset(base_dir, p.raw, pat.raw))
    add("templatefile(path: string, vars: any) -> any",
        "Renders a file as a template with the given variables (a map or object).",
        lambda p, v: _templatefile(base_dir, functions, p.raw, v))
    add("jinjafile(path: string, vars: any) -> string",
        "Renders a file as a Jinja2 template (an Ansible .j2 file, say) with the given variables (a map or "
        "object; the template sees them as strings, whole numbers as int and others as float, bools, None, "
        "lists and dicts). Differences from templatefile: Jinja2 syntax with Jinja2's own filters, tests and "
        "globals (no orch functions, no Ansible filters), and the result is always a string. The path is "
        "relative to the module directory; the file is read as UTF-8. Rendering runs in Jinja2's sandbox "
        "(no access to internals such as __class__) with StrictUndefined (a missing variable or attribute is "
        "an error unless handled by default() or is defined), no autoescaping, the file's trailing newline "
        "kept and Jinja2's default whitespace control (trim_blocks off, unlike Ansible's template module: "
        "use {%- and -%}). include, import, from and extends are refused: one file only. Errors name the "
        "template's file and line: a syntax error is an invalid path argument (invalid template: "
        "nginx.conf.j2:3: unexpected '}'), a variable missing from vars an invalid vars argument (vars map "
        "does not contain key, referenced at file:line), any other failure while rendering (undefined "
        "attribute, sandbox refusal, a Python error) an error in the call. range() gives at most 100,000 "
        "elements in one rendering. As with templatefile, the result is unknown while any var is not known, "
        "and the whole result is sensitive when any var holds a sensitive value.",
        lambda p, v: _jinjafile(base_dir, p.raw, v))
    return out


def _jinjafile(base_dir: str, path: str, vars_: Value) -> Value:
    from .jinja import jinjafile  # imports jinja2 only when a configuration uses it

    return jinjafile(base_dir, path, vars_)


def _fileexists(base_dir: str, path: str) -> Value:
    full = _resolve(base_dir, path)
    if full.is_dir():
        raise ArgError(0, f'"{path}" is a directory, not a file')
    return bool_val(full.is_file())


def _fileset(base_dir: str, path: str, pattern: str) -> Value:
    """Terraform's fileset: files (not directories) under ``path`` whose relative path matches ``pattern``
    (``*`` and ``?`` within a name, ``**`` across directories, ``[class]``, ``{a,b}``). The walk starts at the
    pattern's literal directories, goes no deeper than the pattern can match, does not follow symbolic links
    to directories, and stops with an error after MAX_FILESET_ENTRIES entries."""
    root = _resolve(base_dir, path)
    rx = _glob_regex(pattern)
    segments = pattern.split("/")
    prefix: list[str] = []
    for seg in segments[:-1]:
        if any(c in seg for c in "*?[{") or seg in ("", ".", ".."):
            break
        prefix.append(seg)
    depth_left = None if "**" in pattern else len(segments) - len(prefix)
    files: list[str] = []
    seen = 0
    stack: list[tuple[Path, str, int | None]] = [(root.joinpath(*prefix), "/".join(prefix), depth_left)]
    while stack:
        directory, rel, left = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue  # unreadable, vanished or not a directory: nothing under it matches
        seen += len(entries)
        if seen > MAX_FILESET_ENTRIES:
            raise FunctionError(f'the walk under "{path}" for "{pattern}" met more than {MAX_FILESET_ENTRIES:,} '
                                "files and directories; use a narrower path or pattern")
        for e in entries:
            name = f"{rel}/{e.name}" if rel else e.name
            try:
                if e.is_dir(follow_symlinks=False):
                    if left is None or left > 1:
                        stack.append((Path(e.path), name, None if left is None else left - 1))
                elif e.is_file() and rx.fullmatch(name):
                    files.append(name)
            except OSError:
                continue
    return set_val((string_val(f) for f in sorted(files)), STRING)


def _glob_regex(pattern: str):
    """A glob pattern as an RE2 expression over slash-separated relative paths (linear-time matching)."""
    from .text import compile_regex

    return compile_regex(_glob_part(pattern, 0, False)[0])


def _glob_part(p: str, i: int, in_braces: bool) -> tuple[str, int]:
    out: list[str] = []
    n = len(p)
    while i < n:
        c = p[i]
        if c == "*":
            if p.startswith("**", i):
                i += 2
                if p.startswith("/", i):  # "**/": any directories, or none
                    out.append("(?:.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = p.find("]", i + 2 if p.startswith(("[!", "[^"), i) else i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = p[i + 1:end]
                negate = body[:1] in ("!", "^")
                body = body[1:] if negate else body
                out.append("[" + ("^/" if negate else "") + body.replace("\\", "\\\\").replace("]", "\\]") + "]")
                i = end
        elif c == "{":
            alternatives = []
            i += 1
            while True:
                alt, i = _glob_part(p, i, True)
                alternatives.append(alt)
                if i >= n or p[i] == "}":
                    break
                i += 1  # the comma
            out.append("(?:" + "|".join(alternatives) + ")")
        elif in_braces and c in ",}":
            return "".join(out), i
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(p[i + 1]))
            i += 1
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out), i


def _templatefile(base_dir: str, functions: dict[str, Function], path: str, vars_: Value) -> Value:
    from ..evaluator import evaluate
    from ..scope import EvalContext
    from ..template_source import parse_template

    if not (vars_.type.is_map or vars_.type.is_object):
        raise ArgError(1, "invalid vars value: must be a map")
    if vars_.raw is None:
        raise ArgError(1, "argument must not be null")
    if vars_.raw is UNKNOWN:
        return Value(STRING, UNKNOWN)
    for name in vars_.raw:
        if not _IDENT.match(name):
            raise ArgError(1, f'invalid template variable name "{name}": must start with a letter, followed by '
                              "zero or more letters, digits, and underscores")
    content = _read_text(base_dir, path)
    expr, diags = parse_template(content, path)
    if expr is None or any(d.is_error for d in diags):
        d = next(d for d in diags if d.is_error)
        raise ArgError(0, f"failed to parse template: {d.summary} at {d.subject}: {d.detail}")
    # The template sees only its vars, and cannot call templatefile again (no recursion).
    fns = dict(functions)
    fns["templatefile"] = make_function(CAT, "templatefile(path: string, vars: any) -> any", "",
                                        _no_recursion)
    ctx = EvalContext(dict(vars_.raw), fns)
    from ...lang import ast as A

    for ref in A.traversal_refs(expr):
        if ref.name not in vars_.raw and not _bound_by_for(expr, ref):
            r = ref.range
            raise ArgError(1, f'vars map does not contain key "{ref.name}", referenced at '
                              f"{r.filename}:{r.start.line},{r.start.column}-{r.end.column}")
    value, diags = evaluate(expr, ctx)
    errors = [d for d in diags if d.is_error]
    if errors:
        d = errors[0]
        raise FunctionError(f"{d.subject}: {d.summary}; {d.detail}")
    return value


def _bound_by_for(expr, ref) -> bool:
    """Is ``ref`` a variable of an enclosing for expression or %{for} directive?"""
    from ...lang import ast as A

    for node in A.walk(expr):
        if type(node) is A.For and node.start <= ref.start and ref.end <= node.end and \
                ref.name in (node.key_var, node.val_var):
            return True
    return False


def _no_recursion(p: Value, v: Value) -> Value:
    raise FunctionError("cannot recursively call templatefile from inside another templatefile call")
