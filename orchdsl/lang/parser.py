"""Parse .orch files: lexer tokens -> Lark LALR tables -> syntax tree.

Lark compiles ``grammar/orch.lark`` into LALR(1) tables; this module drives
them with a small loop of its own over plain-tuple tokens. Doing so (rather
than calling ``Lark.parse``) buys three things the language needs:

* contextual keywords: ``for``, ``in`` and ``if`` are identifiers except
  where the parse state accepts the keyword (HCL has no reserved words);
* error recovery: on a syntax error the parser reports it, rewinds to the
  start of the broken body item, skips to the next line of that body and
  continues, so every broken item in a file is reported, not just the first;
* speed: no Token objects, no tree of Lark nodes, garbage collection paused.
"""

from __future__ import annotations

import gc
import json
import os
from functools import lru_cache
from pathlib import Path

from ..diagnostics import Diagnostic
from . import ast as A
from .builder import Builder, bind_callbacks
from .lexer import BADUTF8, EOF, IDENT, INVALID, QNEWLINE, iter_token_chunks
from .source import SourceFile

GRAMMAR_PATH = Path(__file__).resolve().parents[2] / "grammar" / "orch.lark"
_KEYWORDS = {"for": "KW_FOR", "in": "KW_IN", "if": "KW_IF"}
_TABLES_VERSION = 3  # bump when the cached table format changes (3: JSON, never pickle)
# Unit rules whose value is their only child's: the driver skips the call.
_IDENTITY = {"pass", "chain_start", "ops_first", "fname"}


class _Tables:
    """LALR tables in the shape the driver wants."""

    def __init__(self, actions, start_state, end_state, rules):
        self.actions = actions  # state -> {terminal: (True, next_state) | (False, rule_index)}
        self.start_state = start_state
        self.end_state = end_state
        self.rules = rules  # rule_index -> (length, origin name, alias)


def _build_tables() -> _Tables:
    import lark
    from lark.parsers.lalr_analysis import Shift

    grammar = GRAMMAR_PATH.read_text()
    parser = lark.Lark(grammar, parser="lalr", lexer="basic", start="start")
    table = parser.parser.parser.parser.parse_table
    rule_ids: dict = {}
    rules: list = []
    actions: dict = {}
    for state, acts in table.states.items():
        row = {}
        for term, (action, arg) in acts.items():
            # Lark's symbol names are str subclasses with a slow __eq__: store plain str.
            term = str.__str__(term)
            if action is Shift:
                row[term] = (True, arg)
            else:
                rid = rule_ids.get(arg)
                if rid is None:
                    rid = rule_ids[arg] = len(rules)
                    rules.append((len(arg.expansion), str.__str__(arg.origin.name),
                                  str.__str__(arg.alias or arg.origin.name)))
                row[term] = (False, rid)
        actions[state] = row
    return _Tables(actions, table.start_states["start"], table.end_states["start"], rules)


def _tables_to_json(t: _Tables) -> str:
    return json.dumps({"actions": {str(state): {term: [shift, arg] for term, (shift, arg) in row.items()}
                                   for state, row in t.actions.items()},
                       "start_state": t.start_state, "end_state": t.end_state, "rules": t.rules},
                      separators=(",", ":"))


def _tables_from_json(text: str) -> _Tables:
    """Tables from the cache file; ValueError (or TypeError...) when it is not what _tables_to_json wrote.
    The cache is data only: reading it can never run code (it used to be a pickle)."""
    raw = json.loads(text)
    actions = {}
    for state, row in raw["actions"].items():
        actions[int(state)] = {str(term): (bool(shift), int(arg)) for term, (shift, arg) in row.items()}
    rules = [(int(n), str(origin), str(alias)) for n, origin, alias in raw["rules"]]
    start, end = int(raw["start_state"]), int(raw["end_state"])
    if start not in actions or not actions or any(
            not shift and not 0 <= arg < len(rules) for row in actions.values() for shift, arg in row.values()):
        raise ValueError("inconsistent tables")
    return _Tables(actions, start, end, rules)


@lru_cache(maxsize=1)
def tables() -> _Tables:
    """The compiled tables, cached on disk (JSON) next to the grammar's hash."""
    import hashlib

    grammar = GRAMMAR_PATH.read_bytes()
    digest = hashlib.sha256(grammar).hexdigest()[:16]
    cache_dir = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "orch"
    cache = cache_dir / f"grammar-{_TABLES_VERSION}-{digest}.json"
    try:
        return _tables_from_json(cache.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - missing, damaged or foreign: rebuild it
        pass
    t = _build_tables()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(_tables_to_json(t), encoding="utf-8")
        os.replace(tmp, cache)
    except OSError:
        pass
    return t


# ---- diagnostics for bad tokens and syntax errors --------------------------------

_INVALID_CHAR_DETAIL = {
    "'": ("Invalid character", 'Single quotes are not valid. Use double quotes (") to enclose strings.'),
    ";": ("Invalid character", 'The ";" character is not valid. Use newlines to separate arguments and blocks, '
          "and commas to separate items in collection values."),
    "`": ("Invalid character", 'The "`" character is not valid. To create a multi-line string, use the '
          '"heredoc" syntax, like "<<EOT".'),
    "&": ("Unsupported operator", 'Bitwise operators are not supported. Did you mean boolean AND ("&&")?'),
    "|": ("Unsupported operator", 'Bitwise operators are not supported. Did you mean boolean OR ("||")?'),
    "^": ("Unsupported operator", "Bitwise operators are not supported."),
}

_TOKEN_NAMES = {
    "NL": "newline", "IDENT": "identifier", "NUMBER": "number", "STRING": "string", "OQUOTE": "string",
    "CQUOTE": 'closing quote "\\""', "EQ": 'equals sign "="', "COLON": 'colon ":"', "QMARK": '"?"',
    "COMMA": 'comma ","', "DOT": '"."', "STAR": '"*"', "MINUS": '"-"', "BANG": '"!"', "LPAR": '"("',
    "RPAR": '")"', "LBRACK": '"["', "RBRACK": '"]"', "LBRACE": '"{"', "RBRACE": '"}"', "ELLIPSIS": '"..."',
    "FATARROW": '"=>"', "DCOLON": '"::"', "BINOP": "operator", "INTERP": '"${"', "SEQEND": '"}"',
    "OHEREDOC": "heredoc", "CHEREDOC": "heredoc end marker", EOF: "end of file", "KW_FOR": '"for"',
    "KW_IN": '"in"', "KW_IF": '"if"', "TCTRL": '"%{"', "QLIT": "text", "HLIT": "text",
}
_EXPR_START = {"IDENT", "NUMBER", "STRING", "OQUOTE", "LBRACK", "LBRACE", "LPAR", "MINUS", "BANG", "OHEREDOC"}


def _lexical_diagnostics(src: SourceFile, toks: list) -> list[Diagnostic]:
    out = []
    for t in toks:
        kind = t[0]
        if kind == INVALID:
            summary, detail = _INVALID_CHAR_DETAIL.get(
                t[1], ("Invalid character", "This character is not used within the language."))
            out.append(Diagnostic.error(summary, detail, src, t[2], t[3]))
        elif kind == BADUTF8:
            out.append(Diagnostic.error("Invalid character encoding",
                                        "All input files must be UTF-8 encoded. Ensure that UTF-8 encoding is "
                                        "selected in your editor.", src, t[2], t[3]))
        elif kind == QNEWLINE:
            out.append(Diagnostic.error(
                "Invalid multi-line string",
                "Quoted strings may not be split over multiple lines. To produce a multi-line string, either "
                'use the \\n escape to represent a newline character or use the "heredoc" multi-line template '
                "syntax.", src, t[2], t[3], hint='use "\\n" or a heredoc (<<EOT)'))
    return out


_OPENERS = {"LBRACE", "LBRACK", "LPAR", "INTERP", "TCTRL", "OQUOTE", "OHEREDOC", "CTRL_IF", "CTRL_FOR"}
_CLOSERS = {"RBRACE", "RBRACK", "RPAR", "SEQEND", "CQUOTE", "CHEREDOC"}
_EXPR_END = {"IDENT", "NUMBER", "STRING", "CQUOTE", "CHEREDOC", "RPAR", "RBRACK", "RBRACE", "STAR"}


def _context(toks: list, start: int, at: int) -> tuple[str | None, tuple | None]:
    """The innermost bracket still open at token ``at`` (since ``start``) and the token before ``at``."""
    stack: list[str] = []
    for j in range(start, at):
        kind = toks[j][0]
        if kind in _OPENERS:
            # A brace right after a block header opens a body, not an object.
            if kind == "LBRACE" and j > 0 and toks[j - 1][0] in ("IDENT", "STRING", "CQUOTE"):
                kind = "BLOCK"
            stack.append(kind)
        elif kind in _CLOSERS and stack:
            stack.pop()
    prev = toks[at - 1] if at > start else None
    return (stack[-1] if stack else None), prev


def _item_has_value(toks: list, start: int, at: int) -> bool:
    """Inside an object: has the current item already had its "=" or ":"?"""
    for j in range(at - 1, start - 1, -1):
        kind = toks[j][0]
        if kind in ("EQ", "COLON"):
            return True
        if kind in ("COMMA", "NL", "LBRACE"):
            return False
    return False


def _describe(tok: tuple, expected: set[str], opener: str | None, prev: tuple | None,
              item_has_value: bool = False) -> tuple[str, str, str]:
    """(summary, detail, hint) for an unexpected token, from what is open around it."""
    kind, value = tok[0], tok[1]
    found = _TOKEN_NAMES.get(kind, kind)
    if kind == IDENT or kind == "NUMBER":
        found = f'"{value}"'
    after_expr = prev is not None and prev[0] in _EXPR_END
    prev_kind = prev[0] if prev is not None else None
    if kind == EOF:
        if opener == "BLOCK":
            opener = None
        if opener in ("OQUOTE", "OHEREDOC"):
            return ("Unterminated template string", "No closing marker was found for the string.",
                    "close the string (or the heredoc, with its marker on a line of its own)")
        if opener is not None:
            return ("Unexpected end of file", f"The file ends before this {_TOKEN_NAMES.get(opener, opener)} is "
                    "closed.", "close every bracket, quote and heredoc")
        return ("Unclosed configuration block",
                "There is no closing brace for this block before the end of the file. This may be caused by "
                "incorrect brace nesting elsewhere in this file.", "check the nesting of braces above")
    if prev_kind in ("EQ", "COLON", "QMARK", "BINOP", "COMMA", "FATARROW") or kind == "NL" and not after_expr:
        if prev_kind == "EQ" or prev_kind in ("COLON", "QMARK", "BINOP", "FATARROW"):
            if kind == "NL":
                return ("Missing expression", "Expected the start of an expression, but found the end of the "
                        "line.", "an expression must start on the same line as what precedes it "
                        "(wrap multi-line expressions in parentheses)")
            return ("Invalid expression", f"Expected the start of an expression, but found {found}.", "")
    if opener is None:
        if "LBRACE" in expected and kind == "NL":
            return ("Invalid block definition",
                    'A block definition must have block content delimited by "{" and "}", starting on the '
                    "same line as the block header.", 'put "{" on the line of the block header')
        if "LBRACE" in expected and kind == "EQ":
            return ("Invalid block definition",
                    'The equals sign "=" indicates an argument definition, and must not be used when defining '
                    "a block.", "")
        if prev_kind == "NL" or prev is None:
            if kind == "OQUOTE" or kind == "STRING":
                return ("Invalid argument name", "Argument names must not be quoted.", "")
            return ("Argument or block definition required", "An argument or block definition is required here.",
                    "")
        if after_expr:
            if kind == "COMMA":
                return ("Unexpected comma after argument",
                        "Argument definitions must be separated by newlines, not commas. An argument definition "
                        "must end with a newline.", "")
            return ("Missing newline after argument", "An argument definition must end with a newline.",
                    "put each argument on a line of its own")
        if prev_kind == "IDENT":
            return ("Argument or block definition required",
                    "An argument or block definition is required here. To set an argument, use the equals sign "
                    '"=" to introduce the argument value.', "")
    if opener == "BLOCK" and kind == "NL" and "NL" not in expected:
        return ("Invalid single-argument block definition",
                "An argument definition on the same line as its containing block creates a single-line block "
                "definition, which must also be closed on the same line. Place the block's closing brace "
                "immediately after the argument definition.", "")
    if opener in ("INTERP", "TCTRL", "CTRL_IF", "CTRL_FOR") and after_expr:
        if kind == "CQUOTE":
            return ("Unclosed template interpolation sequence",
                    "There is no closing brace for this interpolation sequence before the end of the quoted "
                    "template.", "")
        return ("Extra characters after interpolation expression",
                "Expected a closing brace to end the interpolation expression, but found extra characters.",
                'to write a literal "${" in a string, escape it as "$${"')
    if opener == "TCTRL" or kind == "TCTRL":
        return ("Invalid template directive",
                'A template directive keyword ("if", "for", "else", "endif", "endfor") is expected at the '
                "beginning of a %{ sequence.", "")
    if opener == "LBRACK" and kind == "FATARROW":
        return ("Invalid 'for' expression", "Key expression is not valid when building a tuple.",
                "use braces {for ...} to build an object")
    if opener == "LBRACK" and after_expr:
        return ("Missing item separator", "Expected a comma to mark the beginning of the next item.", "")
    if opener == "LPAR" and after_expr:
        return ("Missing argument separator",
                "A comma is required to separate each function argument from the next.", "")
    if opener == "LBRACE" and after_expr:
        if not item_has_value:
            return ("Missing key/value separator",
                    'Expected an equals sign ("=") to mark the beginning of the attribute value.',
                    "quote keys that contain dots or spaces")
        return ("Missing attribute separator",
                "Expected a newline or comma to mark the beginning of the next attribute.", "")
    if expected & _EXPR_START and not after_expr:
        return ("Invalid expression", f"Expected the start of an expression, but found {found}.", "")
    names = sorted({_TOKEN_NAMES.get(e, e) for e in expected if e not in ("QLIT", "HLIT")})
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    return (f"Unexpected {found}", f"Expected {shown}.", "")


# ---- the driver ----------------------------------------------------------------------

def parse_source(src: SourceFile) -> tuple[A.Body, list[Diagnostic]]:
    """Parse a configuration file. Always returns a (possibly partial) Body."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _parse(src)
    finally:
        if gc_was_enabled:
            gc.enable()


def parse(text: str, filename: str = "<input>") -> tuple[A.Body, list[Diagnostic]]:
    return parse_source(SourceFile(filename, text))


def parse_file(path: str | os.PathLike) -> tuple[A.Body, list[Diagnostic]]:
    p = Path(path)
    return parse_source(SourceFile.from_bytes(str(path), p.read_bytes()))


class _TokenWindow:
    """Tokens from the lexer as the parser needs them, with the ones before
    the last checkpoint dropped: the token list never sits whole in memory.
    Bad characters are reported here and kept out of the parser's way."""

    __slots__ = ("buf", "base", "chunks", "src", "diags", "done")

    def __init__(self, src: SourceFile):
        self.src = src
        self.buf: list[tuple] = []
        self.base = 0  # absolute index of buf[0]
        self.chunks = iter_token_chunks(src.text)
        self.diags: list[Diagnostic] = []
        self.done = False

    def fill(self) -> bool:
        """Append the next chunk; False at the end (after the EOF token)."""
        if self.done:
            return False
        chunk = next(self.chunks, None)
        if chunk is None:
            n = len(self.src.text)
            self.buf.append((EOF, "", n, n))
            self.done = True
            return True
        bad = [t for t in chunk if t[0] in _BAD_TOKENS]
        if bad:
            self.diags.extend(_lexical_diagnostics(self.src, bad))
            chunk = [t for t in chunk if t[0] not in _BAD_TOKENS]
        self.buf.extend(chunk)
        return True

    def get(self, i: int) -> tuple | None:
        while i - self.base >= len(self.buf):
            if not self.fill():
                return None
        return self.buf[i - self.base]

    def trim(self, keep_from: int) -> None:
        drop = keep_from - self.base
        if drop > 8192:
            del self.buf[:drop]
            self.base = keep_from

    def slice(self, start: int, stop: int) -> list[tuple]:
        return self.buf[max(0, start - self.base):stop - self.base]


_BAD_TOKENS = frozenset((INVALID, BADUTF8, QNEWLINE))


def _parse(src: SourceFile) -> tuple[A.Body, list[Diagnostic]]:
    window = _TokenWindow(src)
    diags: list[Diagnostic] = []
    n_text = len(src.text)

    builder = Builder(src, diags)
    cbs = bind_callbacks(builder)
    t = tables()
    actions = t.actions
    rules = [(n, origin, None if alias in _IDENTITY else cbs[alias]) for n, origin, alias in t.rules]
    end_state = t.end_state

    states = [t.start_state]
    values: list = []
    checkpoint: tuple | None = None
    top_body: list | None = None
    result = None
    i = 0
    last_error_at = -1
    keywords = _KEYWORDS
    window.fill()
    buf = window.buf
    base = 0

    while True:
        k = i - base
        if k >= len(buf):
            if not window.fill():
                break
            if window.base != base:
                base = window.base
            continue
        tok = buf[k]
        ttype = tok[0]
        row = actions[states[-1]]
        if ttype == IDENT and tok[1] in keywords:
            kw = keywords[tok[1]]
            if kw in row:
                ttype = kw
        while True:
            act = row.get(ttype)
            if act is None:
                break
            if act[0]:
                states.append(act[1])
                values.append(tok)
                break
            n, origin, cb = rules[act[1]]
            if cb is None:  # identity unit rule: the value stays, only the state changes
                states[-1] = actions[states[-2]][origin][1]
                if ttype == EOF and states[-1] == end_state:
                    result = values[-1]
                    break
                row = actions[states[-1]]
                continue
            if n:
                args = values[-n:]
                del values[-n:]
                del states[-n:]
            else:
                args = []
            value = cb(args)
            values.append(value)
            states.append(actions[states[-1]][origin][1])
            if origin == "body":
                if top_body is None:
                    top_body = value
                checkpoint = (states[:], values[:], i)
                if k > 8192:
                    window.trim(i)
                    base = window.base
                    k = i - base
            if ttype == EOF and states[-1] == end_state:
                result = values[-1]
                break
            row = actions[states[-1]]
        if result is not None:
            break
        if act is None:
            # Syntax error.
            ck = checkpoint[2] if checkpoint else 0
            if i == last_error_at and checkpoint is not None:
                # Recovery resumed at the token that failed and it failed again
                # (a stray "}" at top level): drop the token.
                states = checkpoint[0][:]
                values = checkpoint[1][:]
                i += 1
                continue
            last_error_at = i
            if not (window.diags and _near_lexical_error(window.diags, tok)):
                before = window.slice(ck, i)
                opener, prev = _context(before, 0, len(before))
                summary, detail, hint = _describe(tok, set(row), opener, prev,
                                                  _item_has_value(before, 0, len(before)))
                end = tok[3] if tok[3] > tok[2] else tok[2]
                diags.append(Diagnostic.error(summary, detail, src, tok[2], end, hint))
            resume = _resync(window, ck, i)
            if resume is None or checkpoint is None:
                break
            states = checkpoint[0][:]
            values = checkpoint[1][:]
            i = resume
            continue
        i += 1

    if result is None:
        items = top_body if top_body is not None else []
        # Items recovered inside an unclosed block are lost; the top level is kept.
        body = builder.make_body([x for x in items if isinstance(x, (A.Attribute, A.Block))], 0, n_text)
    else:
        body = builder.make_body(result, 0, n_text)
    # Bad characters first, as Go HCL reports them; then syntax errors in file order.
    return body, window.diags + diags


def _near_lexical_error(lexical: list[Diagnostic], tok: tuple) -> bool:
    """A parse error right after a bad character is a consequence of it: report the cause once."""
    line = None
    for d in lexical:
        if d.subject is not None and d.source is not None:
            line = line or d.source.pos(tok[2]).line
            if d.subject.start.line <= line <= d.subject.end.line + 1:
                return True
    return False


def _resync(window: _TokenWindow, start: int, error_at: int) -> int | None:
    """Index of the token to resume at: after the next newline of the broken item's body."""
    depth = 0
    j = start
    while True:
        tok = window.get(j)
        if tok is None:
            return None
        kind = tok[0]
        if kind == "LBRACE":
            depth += 1
        elif kind == "RBRACE":
            depth -= 1
            if depth < 0:
                return j if j >= error_at else None
        elif kind == "NL" and depth == 0 and j >= error_at:
            return j + 1
        elif kind == EOF:
            return None
        j += 1


def parse_expression(text: str, filename: str = "<expr>") -> tuple[A.Expr | None, list[Diagnostic]]:
    """Parse a standalone expression (orch console, tests)."""
    # An expression is parsed as the value of a synthetic attribute; offsets
    # are shifted back so that ranges point into ``text``.
    prefix = "__expr__ = "
    src = SourceFile(filename, prefix + text.rstrip("\n") + "\n")
    body, diags = parse_source(src)
    shifted = SourceFile(filename, text)
    for d in diags:
        if d.subject is not None:
            d.subject = shifted.range(max(0, _offset(src, d.subject.start) - len(prefix)),
                                      max(0, _offset(src, d.subject.end) - len(prefix)))
            d.source = shifted
    attr = body.attributes.get("__expr__")
    if attr is None or len(body.items) != 1:
        if not diags:
            diags.append(Diagnostic.error("Invalid expression", "Expected a single expression.", shifted, 0,
                                          len(text)))
        return None, diags
    _rebase(attr.expr, src, shifted, len(prefix))
    return attr.expr, diags


def _offset(src: SourceFile, pos) -> int:
    return src.line_starts[pos.line - 1] + pos.column - 1


def _rebase(expr: A.Node, old: SourceFile, new: SourceFile, shift: int) -> None:
    for node in A.walk(expr):
        node.src = new
        node.start -= shift
        node.end -= shift
