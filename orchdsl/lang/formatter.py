"""The canonical formatter behind ``orch fmt``.

This is a port of the rules of ``terraform fmt``, which is hclwrite's
``format`` (hashicorp/hcl, ``hclwrite/format.go``): a formatter over the token
stream, not over the syntax tree, that only ever changes the whitespace
*between* tokens. The text of every token is kept as is, so the literal text of
quoted strings, heredocs and block comments is never touched.

The input is split into lines at newline tokens (a ``#``/``//`` comment owns
the newline that ends it). A heredoc's body belongs to the line of its opener,
because its literal lines are not newline tokens: this is why heredoc content
is never re-indented. Each line is split into up to three cells:

* ``lead``: everything up to the other cells;
* ``assign``: from an ``=`` (not the first token) to the end of the line, but
  only when the brackets after the ``=`` balance (a single-line value);
* ``comment``: a trailing line comment, when something precedes it.

Then three passes, exactly as hclwrite does them:

1. indentation: two spaces per level; a line with a net surplus of opening
   brackets (``{ [ (`` and the template openers ``${ %{``) opens one level,
   however many brackets it opened, and a line with a net deficit closes as
   many levels as it takes to absorb the deficit;
2. spacing inside each cell, by :func:`_space_after` (hclwrite's
   ``spaceAfterToken``);
3. alignment: the ``=`` of consecutive lines that have an assign cell line up
   one space after the longest lead; then trailing comments of consecutive
   lines line up one space after the longest lead+assign.

On top of hclwrite, like ``terraform fmt`` writes files: trailing whitespace
of line comments is dropped and the file ends with exactly one newline (no
trailing blank lines). ``terraform fmt``'s Terraform-specific rewrites (unwrap
``"${var.x}"``, legacy quoted type names) are not done: they change the
syntax tree, and this formatter guarantees it does not.
"""

from __future__ import annotations

import difflib
import unicodedata

from ..diagnostics import DiagnosticsError
from .lexer import scan

try:  # grapheme clusters, for column counts of non-ASCII text (hclwrite uses textseg)
    import regex as _regex

    _GRAPHEME = _regex.compile(r"\X")
except ImportError:  # pragma: no cover - the fallback approximates clusters by code points
    _GRAPHEME = None

__all__ = ["format_file_check", "format_source", "format_tokens", "unified_diff"]

# ---- token kinds (hclsyntax token types) -------------------------------------

(NIL, NEWLINE, COMMENT, IDENT, IN, NUMBER, OQUOTE, CQUOTE, QLIT, SLIT, OHEREDOC, CHEREDOC, INTERP, CONTROL,
 SEQEND, OBRACE, CBRACE, OBRACK, CBRACK, OPAREN, CPAREN, EQUAL, COLON, QUESTION, COMMA, DOT, STAR, MINUS, BANG,
 PLUS, SLASH, PERCENT, EQOP, NEQ, LT, LE, GT, GE, AND, OR, ELLIPSIS, FATARROW, DCOLON, OTHER) = range(44)
_NKINDS = 44

_SIMPLE_KIND = {
    "NL": NEWLINE, "COMMENT": COMMENT, "NUMBER": NUMBER, "OQUOTE": OQUOTE, "CQUOTE": CQUOTE, "QLIT": QLIT,
    "HLIT": SLIT, "OHEREDOC": OHEREDOC, "CHEREDOC": CHEREDOC, "INTERP": INTERP, "TCTRL": CONTROL,
    "SEQEND": SEQEND, "LBRACE": OBRACE, "RBRACE": CBRACE, "LBRACK": OBRACK, "RBRACK": CBRACK, "LPAR": OPAREN,
    "RPAR": CPAREN, "EQ": EQUAL, "COLON": COLON, "QMARK": QUESTION, "COMMA": COMMA, "DOT": DOT, "STAR": STAR,
    "MINUS": MINUS, "BANG": BANG, "ELLIPSIS": ELLIPSIS, "FATARROW": FATARROW, "DCOLON": DCOLON,
}
_BINOP_KIND = {
    "+": PLUS, "/": SLASH, "%": PERCENT, "==": EQOP, "!=": NEQ, "<": LT, "<=": LE, ">": GT, ">=": GE,
    "&&": AND, "||": OR,
}
_CTRL = {"CTRL_IF", "CTRL_ELSE", "CTRL_ENDIF", "CTRL_FOR", "CTRL_ENDFOR"}

_BRACKET = [0] * _NKINDS  # hclwrite's tokenBracketChange
for _k in (OBRACE, OBRACK, OPAREN, CONTROL, INTERP):
    _BRACKET[_k] = 1
for _k in (CBRACE, CBRACK, CPAREN, SEQEND):
    _BRACKET[_k] = -1

_MINUS_IS_NEGATION_AFTER = frozenset({
    NIL, OPAREN, OBRACE, OBRACK, EQUAL, COLON, COMMA, QUESTION,  # an opening bracket or a separator
    PLUS, STAR, SLASH, PERCENT, MINUS,  # another arithmetic operator
    EQOP, NEQ, GT, GE, LT, LE,  # a comparison
    AND, OR, BANG,  # a logical operator
})
_TEMPLATE_TEXT_SUBJECT = frozenset({QLIT, SLIT, OQUOTE, OHEREDOC})
_TEMPLATE_TEXT_AFTER = frozenset({QLIT, SLIT, CQUOTE, CHEREDOC})


def _space_after(subject: int, before: int, after: int) -> bool:
    """hclwrite's spaceAfterToken, case for case and in the same order."""
    if after == NEWLINE or after == NIL:
        return False  # never a space before a newline
    if subject in (IDENT, IN) and after == OPAREN:
        return False  # a function name stays on its parenthesis
    if (subject in (IDENT, IN) and after == DCOLON) or (subject == DCOLON and after == IDENT):
        return False  # namespaced function names: provider::aws::arn_parse
    if subject == DOT or after == DOT:
        return False  # attribute access
    if after == COMMA or after == ELLIPSIS:
        return False
    if subject == COMMA:
        return True
    if subject in _TEMPLATE_TEXT_SUBJECT or after in _TEMPLATE_TEXT_AFTER:
        return False  # never add text inside templates
    if subject == IN and before in (IDENT, IN):
        return True  # the keyword of [for x in [y]: x]
    if after == OBRACK and (subject in (IDENT, IN, NUMBER) or _BRACKET[subject] < 0):
        return False  # index: foo[0], f()[0]
    if subject == BANG:
        return False
    if subject == MINUS:
        # Negation (no space) unless what precedes can end an operand.
        return before not in _MINUS_IS_NEGATION_AFTER
    if subject == OBRACE or after == CBRACE:
        # Braces are spaced inside, { a = 1 }, except the empty {}.
        return not (subject == OBRACE and after == CBRACE)
    if subject in (INTERP, CONTROL) and after == OBRACE:
        return True  # ${ {a = 1} }
    if subject == CBRACE and after == SEQEND:
        return True
    if subject == SEQEND and after in (INTERP, CONTROL):
        return False  # ${a}${b}
    if _BRACKET[subject] > 0:
        return False  # nothing after an opening bracket
    return _BRACKET[after] >= 0  # nor before a closing one; most tokens are space-separated


# SPACE[subject * _NKINDS + after] for every subject whose rule ignores "before".
_SPACE = [_space_after(s, NIL, a) for s in range(_NKINDS) for a in range(_NKINDS)]
_BEFORE_MATTERS = (MINUS, IN)


# ---- tokens ------------------------------------------------------------------

def _tokens(text: str) -> tuple[list[int], list[int], list[str], dict[int, str]]:
    """The token stream as hclwrite sees it: (kind as a left neighbour, kind as
    a right neighbour, text) per token.

    A whole simple string (one STRING token here, OQuote QuotedLit CQuote in Go)
    is an OQuote to what precedes it and a CQuote to what follows; a ``%{ if``
    directive opener (one token here, TemplateControl Ident in Go) is joined
    without the space hclwrite would remove anyway.
    """
    left: list[int] = []
    right: list[int] = []
    texts: list[str] = []
    # Template contents are never touched: token index -> the exact source
    # text (whitespace included) from the previous token to the end of this one.
    verbatim: dict[int, str] = {}
    la, ra, ta = left.append, right.append, texts.append
    simple = _SIMPLE_KIND
    toks = scan(text, keep_trivia=True)
    ntoks = len(toks)
    depth = 0  # open quoted templates and heredocs around the current token
    prev_end = 0
    for i in range(ntoks):
        typ, value, start, end = toks[i]
        if typ in ("CQUOTE", "CHEREDOC"):
            depth -= 1
        if depth > 0:
            verbatim[len(texts)] = text[prev_end:end]
        if typ in ("OQUOTE", "OHEREDOC"):
            depth += 1
        prev_end = end
        k = simple.get(typ)
        if k is not None:
            if k == COMMENT:
                if value[-1:] == "\n":  # line comment: drop trailing whitespace, keep the line ending
                    eol = "\r\n" if value.endswith("\r\n") else "\n"
                    value = value[: -len(eol)].rstrip(" \t") + eol
                else:
                    value = text[start:end]
            elif k == CHEREDOC:
                # The lexer drops the newline after a closing marker that sits inside
                # brackets; it is a line break all the same (Go emits it).
                la(k), ra(k), ta(value)
                if i + 1 < ntoks and toks[i + 1][0] != "NL" and end < len(text) and text[end] in "\r\n":
                    nl = "\r\n" if text.startswith("\r\n", end) else "\n"
                    la(NEWLINE), ra(NEWLINE), ta(nl)
                continue
            la(k), ra(k), ta(value)
        elif typ == "IDENT":
            la(IDENT), ra(IN if value == "in" else IDENT), ta(value)
        elif typ == "STRING":
            la(OQUOTE), ra(CQUOTE), ta(text[start:end])
        elif typ == "BINOP":
            k = _BINOP_KIND[value]
            la(k), ra(k), ta(value)
        elif typ in _CTRL:
            la(CONTROL), ra(IDENT), ta(value + text[start + len(value):end].lstrip(" \t"))
        else:  # INVALID, BADUTF8, QNEWLINE: only in files that do not parse
            raw = text[start:end]
            la(OTHER), ra(OTHER), ta(raw)
    return left, right, texts, verbatim


def _width(s: str) -> int:
    """Columns a token occupies: grapheme clusters, as hclwrite counts them."""
    if s.isascii():
        return len(s)
    if _GRAPHEME is not None:
        return len(_GRAPHEME.findall(s))
    return _approx_graphemes(s)  # pragma: no cover


def _approx_graphemes(s: str) -> int:
    """Grapheme clusters without the ``regex`` module: marks, joiners, variation
    selectors and emoji modifiers extend a cluster; flags are pairs."""
    count = 0
    joined = False
    flag_half = False
    for c in s:
        cp = ord(c)
        if joined:
            joined = False
            continue
        if cp == 0x200D:  # zero-width joiner: the next character joins this cluster
            joined = True
            continue
        if 0x1F1E6 <= cp <= 0x1F1FF:  # regional indicators pair up into one flag
            flag_half = not flag_half
            if not flag_half:
                continue
            count += 1
            continue
        flag_half = False
        if unicodedata.category(c) in ("Mn", "Me", "Cf") or 0x1F3FB <= cp <= 0x1F3FF:
            continue
        count += 1
    return count


# ---- formatting ----------------------------------------------------------------

def format_tokens(text: str) -> str:
    """Format ``text`` without checking that it parses (hclwrite's Format).

    Use :func:`format_source`; this is the raw pass, exposed for tests.
    """
    left, right, texts, verbatim = _tokens(text)
    n = len(texts)
    if n == 0:
        return ""
    spaces = [0] * n
    bracket = _BRACKET
    table = _SPACE
    nk = _NKINDS

    # Lines: (start, lead_end, assign_end, end); cells are lead [start, lead_end),
    # assign [lead_end, assign_end) (empty: no assign cell), comment [assign_end, end).
    lines: list[tuple[int, int, int, int]] = []
    start = 0
    for i in range(n):
        k = left[i]
        if k == NEWLINE or (k == COMMENT and texts[i][-1:] == "\n"):
            lines.append(_cells(start, i + 1, left, bracket))
            start = i + 1
    if start < n:
        lines.append(_cells(start, n, left, bracket))

    # Pass 1: indentation.
    indents: list[int] = []
    for s, lead_end, assign_end, _e in lines:
        if left[s] == NEWLINE:
            continue  # a blank line: no spaces before its newline
        net = 0
        for j in range(s, lead_end):
            k = left[j]
            net += bracket[k]
            if k == OHEREDOC:
                break
        for j in range(lead_end, assign_end):
            net += bracket[left[j]]
        if net < 0:
            closed = -net
            while closed > 0 and indents:
                top = indents[-1]
                if closed > top:
                    closed -= top
                    indents.pop()
                elif closed < top:
                    indents[-1] = top - closed
                    closed = 0
                else:
                    indents.pop()
                    closed = 0
            spaces[s] = 2 * len(indents)
        else:
            spaces[s] = 2 * len(indents)
            if net > 0:
                indents.append(net)

    # Pass 2: spaces between the tokens of each cell.
    for s, lead_end, assign_end, _e in lines:
        for lo, hi in ((s, lead_end), (lead_end, assign_end)):
            if hi - lo < 2:
                continue
            prev = NIL
            for j in range(lo, hi - 1):
                subj = right[j]
                if subj == MINUS or subj == IN:
                    sp = _space_after(subj, prev, left[j + 1])
                else:
                    sp = table[subj * nk + left[j + 1]]
                spaces[j + 1] = 1 if sp else 0
                prev = subj

    # Inside templates the source is kept as written (the alignment below
    # measures the kept text).
    for i, raw in verbatim.items():
        texts[i] = raw
        spaces[i] = 0

    # Pass 3: align the assign cells, then the comment cells, of consecutive lines.
    _align(lines, spaces, texts, comments=False)
    _align(lines, spaces, texts, comments=True)

    out = []
    for i in range(n):
        sp = spaces[i]
        if sp:
            out.append(" " * sp)
        out.append(texts[i])
    return "".join(out)


def _cells(s: int, e: int, left: list[int], bracket: list[int]) -> tuple[int, int, int, int]:
    lead_end = e
    if e - s > 1 and left[e - 1] == COMMENT:
        lead_end = e - 1  # a trailing comment cell
    for j in range(s + 1, lead_end):
        if left[j] == EQUAL:
            # Only a value that closes what it opens (a one-line value) is an assign cell.
            net = 0
            for m in range(j, lead_end):
                net += bracket[left[m]]
            if net == 0:
                return (s, j, lead_end, e)
            break
    return (s, lead_end, lead_end, e)


def _columns(lo: int, hi: int, spaces: list[int], texts: list[str]) -> int:
    return sum(spaces[j] + _width(texts[j]) for j in range(lo, hi))


def _align(lines: list, spaces: list[int], texts: list[str], comments: bool) -> None:
    chain: list[tuple[int, int]] = []  # (first token of the cell, columns before it)
    widest = 0
    for s, lead_end, assign_end, e in lines:
        if comments:
            has = assign_end < e
            cell = assign_end
        else:
            has = lead_end < assign_end
            cell = lead_end
        if has:
            cols = _columns(s, cell, spaces, texts)
            chain.append((cell, cols))
            widest = max(widest, cols)
        elif chain:
            for cell_start, cols in chain:
                spaces[cell_start] = widest - cols + 1
            chain = []
            widest = 0
    for cell_start, cols in chain:
        spaces[cell_start] = widest - cols + 1


def _finish(formatted: str, text: str) -> str:
    """The file ends with exactly one newline (none for an empty file)."""
    body = formatted.rstrip(" \t\r\n")
    if text.startswith("\ufeff"):
        body = "\ufeff" + body
    if not body.strip("\ufeff"):
        return body
    eol = "\r\n" if "\r\n" in text[: text.find("\n") + 1] else "\n"
    return body + eol


def format_source(text: str, filename: str = "<input>") -> str:
    """The canonical formatting of ``text``.

    Raises :class:`orchdsl.diagnostics.DiagnosticsError` when ``text`` does not
    parse: formatting broken input could make changes that are hard to undo.
    """
    from . import parse

    _, diags = parse(text, filename)
    if any(d.is_error for d in diags):
        raise DiagnosticsError(diags)
    return _finish(format_tokens(text), text)


def format_file_check(text: str, filename: str = "<input>") -> tuple[str, bool]:
    """(formatted text, whether it differs from ``text``)."""
    out = format_source(text, filename)
    return out, out != text


def unified_diff(path: str, old: str, new: str) -> str:
    """A unified diff as ``terraform fmt -diff`` prints it (labels old/PATH, new/PATH)."""
    if old == new:
        return ""
    lines = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                 fromfile=f"old/{path}", tofile=f"new/{path}")
    out = []
    for line in lines:
        out.append(line)
        if not line.endswith("\n"):
            out.append("\n\\ No newline at end of file\n")
    return "".join(out)
