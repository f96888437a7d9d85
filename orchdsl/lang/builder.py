"""Grammar callbacks: one method per named alternative of grammar/orch.lark.

Each callback receives the values of the alternative's symbols (tokens are
``(type, value, start, end)`` tuples, nonterminals whatever their callback
returned) and returns a syntax tree node or an intermediate value. Semantic
checks that Go HCL makes while parsing (duplicate attributes, template
directive nesting, labels without templates...) are made here too.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation

from ..diagnostics import Diagnostic
from . import ast as A
from .source import SourceFile

_ESCAPE = re.compile(r"\\(?:u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)|\$\$\{|%%\{", re.DOTALL)
_SIMPLE_ESC = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}
_TEMPLATE_ESC = re.compile(r"\$\$\{|%%\{")


def _start(v) -> int:
    return v[2] if type(v) is tuple else v.start


def _end(v) -> int:
    return v[3] if type(v) is tuple else v.end


class _Chain:
    """A postfix traversal under construction: source then steps."""

    __slots__ = ("source", "steps", "end")

    def __init__(self, source):
        self.source = source
        self.steps: list[tuple] = []
        self.end = source.end


class _Ops:
    """operand (op operand)* waiting for precedence."""

    __slots__ = ("items", "start", "end")

    def __init__(self, first):
        self.items = [first]
        self.start = first.start


class _Part:
    """One flat template part before directives are nested."""

    __slots__ = ("kind", "value", "start", "end", "open_strip", "close_strip", "extra")

    def __init__(self, kind, value, start, end, open_strip=False, close_strip=False, extra=None):
        self.kind = kind
        self.value = value
        self.start = start
        self.end = end
        self.open_strip = open_strip
        self.close_strip = close_strip
        self.extra = extra


class Builder:
    def __init__(self, src: SourceFile, diags: list[Diagnostic]):
        self.src = src
        self.diags = diags

    def error(self, summary: str, detail: str, start: int, end: int, hint: str = "") -> None:
        self.diags.append(Diagnostic.error(summary, detail, self.src, start, end, hint))

    # ---- generic -----------------------------------------------------------
    def pass_(self, a):
        return a[0]

    def none(self, a):
        return None

    def list_empty(self, a):
        return []

    def list_first(self, a):
        return [a[0]]

    def list_add(self, a):
        a[0].append(a[1])
        return a[0]

    def items_more(self, a):
        a[0].append(a[2])
        return a[0]

    # ---- structure ------------------------------------------------------------
    body_empty = list_empty
    list_add = list_add

    def body_add(self, a):
        a[0].append(a[1])
        return a[0]

    def body_skip(self, a):
        return a[0]

    def make_body(self, items: list, start: int, end: int) -> A.Body:
        body = A.Body(self.src, start, end, items)
        names = [i.name for i in items if type(i) is A.Attribute]
        if len(set(names)) != len(names):
            seen: dict[str, A.Attribute] = {}
            for item in items:
                if type(item) is not A.Attribute:
                    continue
                first = seen.get(item.name)
                if first is None:
                    seen[item.name] = item
                    continue
                r = first.name_range
                self.error("Attribute redefined",
                           f'The argument "{item.name}" was already set at '
                           f"{r.filename}:{r.start.line},{r.start.column}. Each argument may be set only once.",
                           item.start, item.name_end, hint="remove one of the two definitions")
            body._attributes = seen
        return body

    def attribute(self, a):
        name, _eq, expr, _nl = a
        return A.Attribute(self.src, name[2], expr.end, name[1], expr)

    def block(self, a):
        ident, labels, lbrace, _nl, items, rbrace, _nl2 = a
        body = self.make_body(items, lbrace[3], rbrace[2])
        return self._block(ident, labels, body, rbrace[3])

    def block_empty(self, a):
        ident, labels, lbrace, rbrace, _nl = a
        return self._block(ident, labels, A.Body(self.src, lbrace[3], rbrace[2], []), rbrace[3])

    def block_oneline(self, a):
        ident, labels, lbrace, name, _eq, expr, rbrace, _nl = a
        attr = A.Attribute(self.src, name[2], expr.end, name[1], expr)
        return self._block(ident, labels, A.Body(self.src, lbrace[3], rbrace[2], [attr]), rbrace[3])

    def _block(self, ident, labels, body, end):
        names = [lab[0] for lab in labels]
        ranges = [(lab[1], lab[2]) for lab in labels]
        return A.Block(self.src, ident[2], end, ident[1], names, body, ranges)

    def label_ident(self, a):
        a[0].append((a[1][1], a[1][2], a[1][3]))
        return a[0]

    def label_string(self, a):
        s = a[1]
        if type(s) is A.Literal:
            a[0].append((s.value, s.start, s.end))
        else:
            self.error("Invalid string literal",
                       "Template sequences are not allowed in this string. To include a literal \"$\", "
                       'double it (as "$$") to escape it.', s.start, s.end,
                       hint="block labels must be plain quoted strings")
            a[0].append(("", s.start, s.end))
        return a[0]

    # ---- expressions -------------------------------------------------------------
    def ops_done(self, a):
        v = a[0]
        if type(v) is _Ops:
            return self._precedence(v.items)
        return v

    def conditional(self, a):
        cond, _q, t, _c, f = a
        cond = self.ops_done([cond])
        return A.Conditional(self.src, cond.start, f.end, cond, t, f)

    def ops_first(self, a):
        return a[0]

    def ops_more(self, a):
        lhs, op, rhs = a
        if type(lhs) is _Ops:
            lhs.items.append(op[1])
            lhs.items.append(rhs)
            return lhs
        o = _Ops(lhs)
        o.items.append(op[1])
        o.items.append(rhs)
        return o

    def _precedence(self, items: list):
        # Precedence climbing over operand, op, operand, ...; left associative.
        prec = A.BINARY_PRECEDENCE
        pos = 0

        def climb(min_prec: int):
            nonlocal pos
            lhs = items[pos]
            pos += 1
            while pos < len(items):
                op = items[pos]
                p = prec[op]
                if p < min_prec:
                    break
                pos += 1
                rhs = climb(p + 1)
                lhs = A.BinaryOp(self.src, lhs.start, rhs.end, op, lhs, rhs)
            return lhs

        return climb(1)

    def unary(self, a):
        op, operand = a
        return A.UnaryOp(self.src, op[2], operand.end, op[1], operand)

    # postfix chains
    def chain_start(self, a):
        return a[0]

    def _chain(self, v) -> _Chain:
        return v if type(v) is _Chain else _Chain(v)

    def step_attr(self, a):
        c = self._chain(a[0])
        c.steps.append(("attr", a[2][1], a[1][2], a[2][3]))
        c.end = a[2][3]
        return c

    def step_legacy_index(self, a):
        c = self._chain(a[0])
        num = a[2]
        text = num[1]
        if "." in text:
            first, _, second = text.partition(".")
            self.error("Invalid legacy index syntax",
                       "When using the legacy index syntax, chaining two indexes together is not permitted. "
                       f"Use the proper index syntax instead, like [{first}][{second}].", num[2], num[3])
            c.steps.append(("index", A.Invalid(self.src, num[2], num[3]), a[1][2], num[3]))
        else:
            c.steps.append(("index", A.Literal(self.src, num[2], num[3], self._number_value(num)), a[1][2], num[3]))
        c.end = num[3]
        return c

    def step_attr_splat(self, a):
        c = self._chain(a[0])
        c.steps.append(("asplat", None, a[1][2], a[2][3]))
        c.end = a[2][3]
        return c

    def step_index(self, a):
        c = self._chain(a[0])
        c.steps.append(("index", a[2], a[1][2], a[3][3]))
        c.end = a[3][3]
        return c

    def step_full_splat(self, a):
        c = self._chain(a[0])
        c.steps.append(("fsplat", None, a[1][2], a[3][3]))
        c.end = a[3][3]
        return c

    def chain_done(self, a):
        v = a[0]
        if type(v) is not _Chain:
            return v
        return self._apply_steps(v.source, v.steps, 0, len(v.steps))

    def _apply_steps(self, expr, steps: list, i: int, n: int):
        src = self.src
        while i < n:
            kind, val, s, e = steps[i]
            if kind == "attr":
                expr = self._traverse(expr, A.GetAttr(src, s, e, val), e)
                i += 1
            elif kind == "index":
                t = type(val)
                if t is A.Literal:
                    expr = self._traverse(expr, A.IndexKey(src, s, e, val.value), e)
                else:
                    expr = A.Index(src, expr.start, e, expr, val)
                i += 1
            elif kind == "asplat":
                # Attribute-only splat: takes the .attr / .0 steps that follow.
                anon = A.AnonSymbol(src, s, e)
                j = i + 1
                while j < n and (steps[j][0] == "attr" or (steps[j][0] == "index" and self._is_legacy(steps[j]))):
                    j += 1
                each = self._apply_steps(anon, steps, i + 1, j) if j > i + 1 else anon
                end = steps[j - 1][3]
                expr = A.Splat(src, expr.start, end, expr, each, True)
                i = j
            else:  # full splat: takes every following step, splats included
                anon = A.AnonSymbol(src, s, e)
                each = self._apply_steps(anon, steps, i + 1, n) if i + 1 < n else anon
                expr = A.Splat(src, expr.start, steps[n - 1][3], expr, each, False)
                i = n
        return expr

    def _is_legacy(self, step) -> bool:
        return self.src.text[step[2]] == "."

    def _traverse(self, expr, step, end):
        t = type(expr)
        if t is A.ScopeTraversal or t is A.RelativeTraversal:
            expr.steps.append(step)
            expr.end = end
            return expr
        return A.RelativeTraversal(self.src, expr.start, end, expr, [step])

    # primaries
    def _number_value(self, tok):
        text = tok[1]
        if text.isdigit() and len(text) <= 1000:  # the common case; far within the range of numbers
            return int(text)
        from ..eval.values import MAX_NUMBER_EXPONENT, in_range

        try:
            d = Decimal(text)
        except InvalidOperation:
            d = None
        if d is None or text.count(".") > 1:
            self.error("Invalid number literal", "Failed to recognize the value of this number literal.",
                       tok[2], tok[3])
            return 0
        if not in_range(d):  # before any conversion: 1e999999999 would become a billion-digit integer
            self.error("Number out of range",
                       f"This number is out of range: orch numbers are limited to magnitudes below "
                       f"1e{MAX_NUMBER_EXPONENT} and, unless zero, at least 1e-{MAX_NUMBER_EXPONENT}.",
                       tok[2], tok[3])
            return 0
        if text.isdigit():
            return int(d)  # leading zeros
        return int(d) if d == d.to_integral_value() and "e" not in text.lower() and "." not in text else d

    def number(self, a):
        t = a[0]
        return A.Literal(self.src, t[2], t[3], self._number_value(t))

    def variable(self, a):
        t = a[0]
        name = t[1]
        if name == "true":
            return A.Literal(self.src, t[2], t[3], True)
        if name == "false":
            return A.Literal(self.src, t[2], t[3], False)
        if name == "null":
            return A.Literal(self.src, t[2], t[3], None)
        return A.ScopeTraversal(self.src, t[2], t[3], name, [])

    def parens(self, a):
        return A.Parens(self.src, a[0][2], a[2][3], a[1])

    def tuple_empty(self, a):
        return A.Tuple(self.src, a[0][2], a[1][3], [])

    def tuple(self, a):
        return A.Tuple(self.src, a[0][2], a[2][3], a[1])

    def tuple_trailing(self, a):
        return A.Tuple(self.src, a[0][2], a[3][3], a[1])

    def object_empty(self, a):
        return A.Object(self.src, a[0][2], a[2][3], [])

    def object(self, a):
        items = a[2]
        items.reverse()
        return A.Object(self.src, a[0][2], a[3][3], items)

    def obj_items_trailing(self, a):
        return [a[0]]

    def obj_items_more(self, a):
        a[3].append(a[0])
        return a[3]

    def obj_item(self, a):
        key, _sep, value = a
        force = self.src.text[key.start] == "("
        return (A.ObjectKey(self.src, key.start, key.end, key, force), value)

    def fname(self, a):
        return a[0]

    def fname_ns(self, a):
        first, _dc, nxt = a
        return (first[0], f"{first[1]}::{nxt[1]}", first[2], nxt[3])

    def call_empty(self, a):
        return A.FunctionCall(self.src, a[0][2], a[2][3], a[0][1], [], False)

    def call(self, a):
        return A.FunctionCall(self.src, a[0][2], a[3][3], a[0][1], a[2], False)

    def call_trailing(self, a):
        return A.FunctionCall(self.src, a[0][2], a[4][3], a[0][1], a[2], False)

    def call_expand(self, a):
        return A.FunctionCall(self.src, a[0][2], a[4][3], a[0][1], a[2], True)

    # for expressions
    def for_intro(self, a):
        return (None, a[1][1], a[3])

    def for_intro_kv(self, a):
        return (a[1][1], a[3][1], a[5])

    def _for(self, open_, close, intro, key, val, cond, group):
        k, v, coll = intro
        return A.For(self.src, open_[2], close[3], k, v, coll, key, val, cond, group)

    def for_tuple(self, a):
        return self._for(a[0], a[3], a[1], None, a[2], None, False)

    def for_tuple_if(self, a):
        return self._for(a[0], a[5], a[1], None, a[2], a[4], False)

    def for_object(self, a):
        return self._for(a[0], a[5], a[1], a[2], a[4], None, False)

    def for_object_if(self, a):
        return self._for(a[0], a[7], a[1], a[2], a[4], a[6], False)

    def for_object_group(self, a):
        return self._for(a[0], a[6], a[1], a[2], a[4], None, True)

    def for_object_group_if(self, a):
        return self._for(a[0], a[8], a[1], a[2], a[4], a[7], True)

    # ---- templates -----------------------------------------------------------------
    def simple_string(self, a):
        t = a[0]
        raw = t[1]
        if "\\" in raw or "$${" in raw or "%%{" in raw:
            raw = self._unescape(raw, t[2] + 1)
        return A.Literal(self.src, t[2], t[3], raw)

    def _unescape(self, raw: str, offset: int) -> str:
        def repl(m: re.Match) -> str:
            s = m.group()
            if s[0] != "\\":
                return s[0] + "{"
            c = s[1]
            if c in _SIMPLE_ESC:
                return _SIMPLE_ESC[c]
            if c in "uU" and len(s) > 2:
                code = int(s[2:], 16)
                if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                    self.error("Invalid escape sequence", f"Cannot encode character U+{code:04x} in UTF-8.",
                               offset + m.start(), offset + m.end())
                    return ""
                return chr(code)
            if c in "uU":
                self.error("Invalid escape sequence",
                           f"The \\{c} escape sequence must be followed by "
                           f"{'four' if c == 'u' else 'eight'} hexadecimal digits.",
                           offset + m.start(), offset + m.end())
                return ""
            self.error("Invalid escape sequence", f'The symbol "{c}" is not a valid escape sequence selector.',
                       offset + m.start(), offset + m.end(),
                       hint='write a literal backslash as "\\\\"')
            return c

        return _ESCAPE.sub(repl, raw)

    def t_lit(self, a):
        t = a[0]
        raw = t[1]
        if t[0] == "QLIT":
            if "\\" in raw or "$${" in raw or "%%{" in raw:
                raw = self._unescape(raw, t[2])
        elif "$${" in raw or "%%{" in raw:
            raw = _TEMPLATE_ESC.sub(lambda m: m.group()[0] + "{", raw)
        return _Part("lit", raw, t[2], t[3])

    def _seq(self, kind, open_, close, value=None, extra=None):
        return _Part(kind, value, open_[2], close[3], open_[1].endswith("~"), close[1] == "~}", extra)

    def t_interp(self, a):
        return self._seq("interp", a[0], a[2], a[1])

    def t_if(self, a):
        return self._seq("if", a[0], a[2], a[1])

    def t_else(self, a):
        return self._seq("else", a[0], a[1])

    def t_endif(self, a):
        return self._seq("endif", a[0], a[1])

    def t_for(self, a):
        return self._seq("for", a[0], a[4], a[3], (None, a[1][1]))

    def t_for_kv(self, a):
        return self._seq("for", a[0], a[6], a[5], (a[1][1], a[3][1]))

    def t_endfor(self, a):
        return self._seq("endfor", a[0], a[1])

    def quoted_template(self, a):
        return self._template(a[1], a[0][2], a[2][3], flush=False)

    def heredoc(self, a):
        open_ = a[0]
        flush = open_[1].startswith("<<-")
        return self._template(a[1], open_[2], a[2][3], flush)

    def _template(self, parts: list[_Part], start: int, end: int, flush: bool):
        src = self.src
        # Strip markers apply to the literal directly beside them (syntax level).
        prev_lit = None
        ltrim_next = False
        for p in parts:
            if p.kind == "lit":
                if ltrim_next:
                    p.value = p.value.lstrip()
                prev_lit = p
                ltrim_next = False
                continue
            if p.open_strip and prev_lit is not None:
                prev_lit.value = prev_lit.value.rstrip()
            prev_lit = None
            ltrim_next = p.close_strip
        if flush:
            _flush_heredoc(parts)
        # Meld literals.
        melded: list[_Part] = []
        for p in parts:
            if p.kind == "lit" and melded and melded[-1].kind == "lit":
                melded[-1].value += p.value
                melded[-1].end = p.end
            else:
                melded.append(p)
        if len(melded) == 1 and melded[0].kind == "interp":
            return A.TemplateWrap(src, start, end, melded[0].value)
        if not melded:
            return A.Literal(src, start, end, "")
        if len(melded) == 1 and melded[0].kind == "lit":
            return A.Literal(src, start, end, melded[0].value)
        pos = 0
        exprs, pos, stop = self._nest(melded, 0, None)
        while stop is not None:  # an unbalanced closing directive at top level
            more, pos, stop = self._nest(melded, pos, None)
            exprs.extend(more)
        return A.Template(src, start, end, exprs)

    def _nest(self, parts: list[_Part], i: int, opener: _Part | None):
        """Nest directives; returns (exprs, next index, closing part or None)."""
        src = self.src
        out: list = []
        n = len(parts)
        while i < n:
            p = parts[i]
            k = p.kind
            i += 1
            if k == "lit":
                out.append(A.Literal(src, p.start, p.end, p.value))
            elif k == "interp":
                out.append(p.value)
            elif k == "if":
                true_parts, i, stop = self._nest(parts, i, p)
                false_parts: list = []
                if stop is not None and stop.kind == "else":
                    false_parts, i, stop = self._nest(parts, i, p)
                    if stop is not None and stop.kind == "else":
                        self.error("Unexpected else directive", "Already in the else clause for this if.",
                                   stop.start, stop.end)
                if stop is None or stop.kind != "endif":
                    self._unbalanced(p, stop, "endif")
                end = stop.end if stop is not None else p.end
                out.append(A.TemplateIf(src, p.start, end, p.value,
                                        A.Template(src, p.end, end, true_parts),
                                        A.Template(src, p.end, end, false_parts)))
            elif k == "for":
                body, i, stop = self._nest(parts, i, p)
                if stop is None or stop.kind != "endfor":
                    self._unbalanced(p, stop, "endfor")
                end = stop.end if stop is not None else p.end
                key_var, val_var = p.extra
                loop = A.For(src, p.start, end, key_var, val_var, p.value, None,
                             A.Template(src, p.end, end, body), None, False)
                out.append(A.TemplateJoin(src, p.start, end, loop))
            else:  # else / endif / endfor
                if opener is None:
                    self.error(f"Unexpected {k} directive", "The control directives within this template are "
                               "unbalanced.", p.start, p.end, hint="remove it or add the matching opening directive")
                    continue
                return out, i, p
        return out, i, None

    def _unbalanced(self, opener: _Part, stop: _Part | None, want: str) -> None:
        r = self.src.range(opener.start, opener.end)
        where = f"{r.filename}:{r.start.line},{r.start.column}"
        if stop is None:
            self.error("Unexpected end of template",
                       f"The {opener.kind} directive at {where} is missing its corresponding {want} directive.",
                       opener.start, opener.end, hint=f"add %{{ {want} }}")
        else:
            self.error(f"Unexpected {stop.kind} directive",
                       f"Expecting an {want} directive for the {opener.kind} started at {where}.",
                       stop.start, stop.end)


def _flush_heredoc(parts: list[_Part]) -> None:
    """<<- heredocs: remove the smallest indentation of line-leading literals."""
    min_spaces = None
    newline = True
    adjust = []
    for p in parts:
        if newline:
            newline = False
            if p.kind == "lit":
                trimmed = p.value.lstrip()
                if not trimmed and p.value.endswith("\n"):
                    pass  # blank line: not counted
                else:
                    spaces = _grapheme_count(p.value[: len(p.value) - len(trimmed)])
                    adjust.append(p)
                    if min_spaces is None or spaces < min_spaces:
                        min_spaces = spaces
            else:
                min_spaces = 0
        if p.kind == "lit" and p.value.endswith("\n"):
            newline = True
    if not min_spaces:
        return
    for p in adjust:
        v = p.value
        cut = 0
        count = 0
        while count < min_spaces and cut < len(v):
            cut += 1
            while cut < len(v) and unicodedata.combining(v[cut]):
                cut += 1
            count += 1
        p.value = v[cut:]


def _grapheme_count(s: str) -> int:
    return sum(1 for c in s if not unicodedata.combining(c))


def bind_callbacks(builder: Builder) -> dict:
    """Map each grammar alias to its builder method."""
    out = {}
    for name in dir(builder):
        if not name.startswith("_"):
            out[name] = getattr(builder, name)
    out["pass"] = builder.pass_
    return out
