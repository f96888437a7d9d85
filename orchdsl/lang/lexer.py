"""The lexer layer under the Lark grammar.

HCL cannot be lexed by a context-free tokenizer: quoted templates and heredocs
contain interpolations, which contain expressions, which contain templates...
and whether a newline ends an item depends on the brackets around it. This
module follows the scanner of Go HCL (hclsyntax/scan_tokens.rl) mode for mode:

* ``main`` mode: expressions and structure;
* ``string`` mode: inside ``"..."``;
* ``heredoc`` mode: between ``<<EOT`` and the closing marker line.

A single context stack drives both the mode and the newline rule of the Go
parser: newlines are tokens only directly inside a body (top level or a
block) or an object constructor, never inside ``()``, ``[]``, ``${}``,
``%{}`` or a ``{for ...}`` expression.

Tokens are plain tuples ``(type, value, start, end)`` with character offsets;
``type`` is the name of a Lark terminal in ``grammar/orch.lark``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from sys import intern

# Token types (Lark terminal names).
NL = "NL"
IDENT = "IDENT"
NUMBER = "NUMBER"
STRING = "STRING"  # a whole quoted string without template sequences
OQUOTE = "OQUOTE"
CQUOTE = "CQUOTE"
QLIT = "QLIT"  # literal run inside a quoted template
HLIT = "HLIT"  # literal run inside a heredoc
OHEREDOC = "OHEREDOC"
CHEREDOC = "CHEREDOC"
INTERP = "INTERP"  # ${ or ${~
TCTRL = "TCTRL"  # %{ not followed by a directive keyword
SEQEND = "SEQEND"  # } or ~} closing ${ or %{
CTRL_KW = {  # %{ if  %{ else ... merged into one token each
    "if": "CTRL_IF",
    "else": "CTRL_ELSE",
    "endif": "CTRL_ENDIF",
    "for": "CTRL_FOR",
    "endfor": "CTRL_ENDFOR",
}
BINOP = "BINOP"
COMMENT = "COMMENT"  # only with keep_trivia
INVALID = "INVALID"
BADUTF8 = "BADUTF8"
QNEWLINE = "QNEWLINE"  # newline inside a quoted string
EOF = "$END"

PUNCT = {
    "=": "EQ", ":": "COLON", "?": "QMARK", ",": "COMMA", ".": "DOT", "*": "STAR", "-": "MINUS",
    "!": "BANG", "(": "LPAR", ")": "RPAR", "[": "LBRACK", "]": "RBRACK", "{": "LBRACE", "}": "RBRACE",
    "...": "ELLIPSIS", "=>": "FATARROW", "::": "DCOLON",
    "==": BINOP, "!=": BINOP, "<": BINOP, ">": BINOP, "<=": BINOP, ">=": BINOP, "&&": BINOP,
    "||": BINOP, "+": BINOP, "/": BINOP, "%": BINOP,
}

# Characters Go HCL scans as tokens of their own but that the language does not use.
_INVALID_SELF = "&|^;`'~"

_MAIN = re.compile(
    r"""
    (?P<ws>[ \t]+)
  | (?P<nl>\r?\n)
  | (?P<number>[0-9](?:\.?[0-9]|[eE][+-]?[0-9])*)
  | (?P<ident>[^\W\d][\w-]*)
  | (?P<comment>(?:\#|//)[^\n]*\n?|/\*.*?\*/)
  | (?P<heredoc><<(?P<hd_dash>-?)(?P<hd_marker>[^\W\d][\w-]*)\r?\n)
  | (?P<op>\.\.\.|==|!=|<=|>=|&&|\|\||=>|::|~\}|[=:?,.*\-!()\[\]{}<>+/%"])
  | (?P<bad>[\udc80-\udcff])
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)

# A whole quoted string with no template sequence and no newline: one token.
_SIMPLE_STRING = re.compile(r'"((?:[^"\\$%\r\n\udc80-\udcff]|\\[^\r\n\udc80-\udcff]'
                            r'|\$\$\{~?|%%\{~?|\$(?!\{)|%(?!\{))*)"')

_QUOTED = re.compile(
    r"""
    (?P<lit>(?:[^"\\$%\r\n\udc80-\udcff]|\\[^\r\n\udc80-\udcff]|\$\$\{~?|%%\{~?|\$(?!\{)|%(?!\{))+)
  | (?P<interp>\$\{~?)
  | (?P<ctrl>%\{~?)
  | (?P<close>")
  | (?P<qnl>[\r\n]+)
  | (?P<bad>[\udc80-\udcff])
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)

# One heredoc literal: up to an interpolation, a directive or the end of the line.
_HEREDOC_LIT = re.compile(r"(?:[^$%\r\n\udc80-\udcff]|\$\$\{~?|%%\{~?|\$(?!\{)|%(?!\{))*(\r?\n)?")
_TEMPLATE_OPEN = re.compile(r"([$%])\{(~?)")

# After "{": does a for expression start here?
_FOR_AHEAD = re.compile(r"(?:[ \t\r\n]++|#[^\n]*+\n?|//[^\n]*+\n?|/\*.*?\*/)*+for(?![\w-])", re.DOTALL)
# After "%{" or "%{~": a directive keyword?
_CTRL_AHEAD = re.compile(r"[ \t]*(if|else|endif|for|endfor)(?![\w-])")

# Context kinds.
_BODY, _OBJECT, _IGNORE_NL, _INTERP, _STRING, _HEREDOC = range(6)

_BLOCK_OPENERS = {IDENT, STRING, CQUOTE}


class LexError(Exception):
    pass


def scan(text: str, keep_trivia: bool = False) -> list[tuple]:
    """Tokenise ``text`` into one list (see ``iter_token_chunks``)."""
    out: list[tuple] = []
    for chunk in iter_token_chunks(text, keep_trivia):
        out.extend(chunk)
    return out


def iter_token_chunks(text: str, keep_trivia: bool = False, chunk_size: int = 4096) -> Iterator[list[tuple]]:
    """Tokenise ``text``, yielding lists of tokens as they are made.

    With ``keep_trivia`` every newline and comment is kept as a token (the
    formatter needs them); otherwise newlines appear only where they are
    significant and comments are dropped (a line comment in a newline
    context stands for the newline it ends with). Chunks let the parser
    consume tokens while they are produced, so the whole token list never
    sits in memory.
    """
    toks: list[tuple] = []
    append = toks.append
    flushed_last = None
    n = len(text)
    pos = 0
    if text.startswith("\ufeff"):
        pos = 1
    # Context stack: each entry is a list [kind, ...extra].
    stack: list[list] = [[_BODY]]
    prev_type = NL  # last significant token type, for classifying "{"
    main_match = _MAIN.match
    quoted_match = _QUOTED.match
    simple_match = _SIMPLE_STRING.match

    while pos < n:
        if len(toks) >= chunk_size:
            flushed_last = toks[-1][0]
            yield toks
            toks = []
            append = toks.append
        top = stack[-1]
        kind = top[0]

        if kind == _STRING:
            m = quoted_match(text, pos)
            g = m.lastgroup
            end = m.end()
            if g == "lit":
                append((QLIT, m.group(), pos, end))
            elif g == "close":
                append((CQUOTE, '"', pos, end))
                stack.pop()
                prev_type = CQUOTE
            elif g == "interp":
                append((INTERP, m.group(), pos, end))
                stack.append([_INTERP])
                prev_type = INTERP
            elif g == "ctrl":
                cm = _CTRL_AHEAD.match(text, end)
                if cm:
                    append((CTRL_KW[cm.group(1)], m.group(), pos, cm.end()))
                    end = cm.end()
                else:
                    append((TCTRL, m.group(), pos, end))
                stack.append([_INTERP])
                prev_type = TCTRL
            elif g == "qnl":
                append((QNEWLINE, m.group(), pos, end))
            elif g == "bad":
                append((BADUTF8, m.group(), pos, end))
            else:
                append((INVALID, m.group(), pos, end))
            pos = end
            continue

        if kind == _HEREDOC:
            pos = _scan_heredoc(text, pos, top, stack, toks)
            prev_type = toks[-1][0] if toks else NL
            continue

        m = main_match(text, pos)
        g = m.lastgroup
        end = m.end()
        if g == "ws":
            pos = end
            continue
        if g == "ident":
            # Interned: the same few names (var, each, name, tags...) recur all over a file.
            append((IDENT, intern(m.group()), pos, end))
            prev_type = IDENT
        elif g == "op":
            s = m.group()
            if s == '"':
                sm = simple_match(text, pos)
                if sm:
                    end = sm.end()
                    append((STRING, sm.group(1), pos, end))
                    prev_type = STRING
                else:
                    append((OQUOTE, s, pos, end))
                    stack.append([_STRING])
                    prev_type = OQUOTE
            elif s == "{":
                if kind == _BODY and prev_type in _BLOCK_OPENERS:
                    stack.append([_BODY])
                elif _FOR_AHEAD.match(text, end):
                    stack.append([_IGNORE_NL, "{"])
                else:
                    stack.append([_OBJECT])
                append(("LBRACE", s, pos, end))
                prev_type = "LBRACE"
            elif s == "}" or s == "~}":
                # Close the innermost brace-like context; stray ( or [ inside are dropped.
                while len(stack) > 1 and stack[-1][0] == _IGNORE_NL and stack[-1][1] != "{":
                    stack.pop()
                closing = stack[-1][0] if len(stack) > 1 else None
                if closing == _INTERP:
                    stack.pop()
                    append((SEQEND, s, pos, end))
                    prev_type = SEQEND
                else:
                    if closing is not None:
                        stack.pop()
                    append((SEQEND if s == "~}" else "RBRACE", s, pos, end))
                    prev_type = "RBRACE"
            elif s == "(" or s == "[":
                stack.append([_IGNORE_NL, s])
                t = PUNCT[s]
                append((t, s, pos, end))
                prev_type = t
            elif s == ")" or s == "]":
                if len(stack) > 1 and top[0] == _IGNORE_NL and top[1] == ("(" if s == ")" else "["):
                    stack.pop()
                t = PUNCT[s]
                append((t, s, pos, end))
                prev_type = t
            else:
                t = PUNCT[s]
                append((t, s, pos, end))
                prev_type = t
        elif g == "nl":
            if keep_trivia or kind == _BODY or kind == _OBJECT:
                append((NL, m.group(), pos, end))
                prev_type = NL
        elif g == "number":
            append((NUMBER, m.group(), pos, end))
            prev_type = NUMBER
        elif g == "comment":
            s = m.group()
            if keep_trivia:
                append((COMMENT, s, pos, end))
            elif s[-1] == "\n" and (kind == _BODY or kind == _OBJECT):
                append((NL, "\n", end - 1, end))
                prev_type = NL
        elif g == "heredoc":
            append((OHEREDOC, m.group(), pos, end))
            stack.append([_HEREDOC, m.group("hd_marker"), m.group("hd_dash") == "-", True])
            prev_type = OHEREDOC
        elif g == "bad":
            append((BADUTF8, m.group(), pos, end))
        else:
            append((INVALID, m.group(), pos, end))
        pos = end

    # Unterminated strings and heredocs end at EOF; the parser reports them.
    last = toks[-1][0] if toks else flushed_last
    if not keep_trivia and len(stack) == 1 and last is not None and last != NL:
        # A body item may end at EOF instead of a newline.
        append((NL, "", n, n))
    if toks:
        yield toks


def _scan_heredoc(text: str, pos: int, top: list, stack: list, toks: list) -> int:
    """Scan heredoc content from ``pos``: one literal, or one template opener."""
    marker = top[1]
    start_of_line = top[3]
    m = _HEREDOC_LIT.match(text, pos)
    end = m.end()
    if m.group(1) is not None:  # literal ends the line
        if start_of_line and text[pos:end].strip() == marker:
            close_end = end - len(m.group(1))
            toks.append((CHEREDOC, text[pos:close_end], pos, close_end))
            stack.pop()
            # The newline after the marker ends the attribute.
            outer = stack[-1][0]
            if outer == _BODY or outer == _OBJECT:
                toks.append((NL, m.group(1), close_end, end))
            return end
        top[3] = True
        toks.append((HLIT, m.group(), pos, end))
        return end
    if end > pos:
        top[3] = False
        toks.append((HLIT, m.group(), pos, end))
        return end
    om = _TEMPLATE_OPEN.match(text, pos)
    if om:
        top[3] = False
        oend = om.end()
        if om.group(1) == "$":
            toks.append((INTERP, om.group(), pos, oend))
        else:
            cm = _CTRL_AHEAD.match(text, oend)
            if cm:
                toks.append((CTRL_KW[cm.group(1)], om.group(), pos, cm.end()))
                oend = cm.end()
            else:
                toks.append((TCTRL, om.group(), pos, oend))
        stack.append([_INTERP])
        return oend
    # A lone "\r", an invalid byte: not part of any literal.
    ch = text[pos]
    toks.append((BADUTF8 if "\udc80" <= ch <= "\udcff" else INVALID, ch, pos, pos + 1))
    return pos + 1
