"""One redaction path for sensitive values: what every human-readable rendering and diagnostic goes through.

Two mechanisms, both here:

* **by mark**: renderers that hold the sensitivity of what they show (a ``Value``'s mark, a state object's
  ``sensitive_attributes``, a plan change's ``after_sensitive``, an output's ``sensitive``) print
  ``SENSITIVE`` in place of the value (``orchdsl.eval.format``, ``orchdsl.state.render``,
  ``orchdsl.plan.render_text``);
* **by value**: text that was made without knowing what is sensitive (a function's error message, a
  provider's error or progress line, a schema error quoting what it was given) is scrubbed of every known
  secret: ``Secrets`` collects the sensitive leaves of the configuration's variables, the state and the plan,
  and ``redact`` replaces each one (quoted or bare) with ``SENSITIVE``. The CLI keeps one ``Secrets`` per
  command (``current()``) and passes every diagnostic and progress line through it.

Machine-readable output (plan and state JSON, ``orch output --json``/``--raw``) is not redacted: as in
Terraform, values are present and the ``*_sensitive`` mirrors say which ones a display must hide.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .diagnostics import Diagnostic
    from .eval.values import Value

SENSITIVE = "(sensitive value)"  # terraform's token, in every rendering
_MIN_BARE = 4  # shorter secrets are replaced only where quoted: "on", "web" or "1" are words of messages

PathT = tuple[str | int, ...]


def _leaf_texts(leaf: Any) -> list[str]:
    """How a secret leaf may appear in a message: its text, for strings and numbers."""
    if isinstance(leaf, bool) or leaf is None:
        return []  # true/false/null cannot be told apart from the message's own words
    if isinstance(leaf, str):
        return [leaf] if leaf else []
    if isinstance(leaf, (int, float, Decimal)):
        text = str(leaf)
        return [text] if text else []
    return []


def _leaves(data: Any) -> Iterator[Any]:
    """The scalars of plain data, without recursion (a value may be nested thousands deep)."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        else:
            yield item


def _at(data: Any, path: Sequence[str | int]) -> Any:
    for step in path:
        if isinstance(data, dict):
            if step not in data and str(step) not in data:
                return None
            data = data.get(step, data.get(str(step)))
        elif isinstance(data, list) and isinstance(step, int) and 0 <= step < len(data):
            data = data[step]
        else:
            return None
    return data


def marked_leaves(value: Value) -> Iterator[Any]:
    """The scalar payloads (str, numbers) of the sensitive parts of an evaluated value
    (``orchdsl.eval.Value``), without recursion."""
    stack: list[tuple[Value, bool]] = [(value, False)]
    while stack:
        v, inside = stack.pop()
        inside = inside or v.sensitive
        raw = v.raw
        if isinstance(raw, tuple):
            stack.extend((e, inside) for e in raw)
        elif isinstance(raw, dict):
            stack.extend((e, inside) for e in raw.values())
        elif inside and isinstance(raw, (str, int, Decimal)) and not isinstance(raw, bool):
            yield raw


class Secrets:
    """The sensitive values known to one command, to scrub from text made without knowing them."""

    def __init__(self) -> None:
        self._texts: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def __len__(self) -> int:
        return len(self._texts)

    # ---- collecting -------------------------------------------------------------------------------
    def add(self, data: Any) -> None:
        """Every leaf of ``data`` (plain data: str, numbers, lists, dicts) is a secret."""
        for leaf in _leaves(data):
            for text in _leaf_texts(leaf):
                if text not in self._texts:
                    self._texts.add(text)
                    self._pattern = None

    def add_paths(self, data: Any, paths: Iterable[Sequence[str | int]]) -> None:
        """The parts of ``data`` at ``paths`` are secrets (state ``sensitive_attributes``, plan mirrors)."""
        for path in paths:
            self.add(_at(data, tuple(path)) if path else data)

    def add_value(self, value: Value) -> None:
        """The sensitive parts of an evaluated value."""
        self.add(list(marked_leaves(value)))

    def add_state(self, state: Any) -> None:
        """Sensitive attributes (deposed objects too) and sensitive outputs of an ``orchdsl.state.State``."""
        for inst in state:
            paths = [tuple(p) for p in inst.sensitive_attributes]
            if not paths:
                continue
            self.add_paths(inst.attributes, paths)
            for entry in inst.deposed:
                self.add_paths(entry.get("attributes") or {}, paths)
        for out in state.outputs.values():
            if out.sensitive:
                self.add(out.value)

    def add_plan(self, plan: Any) -> None:
        """What an ``orchdsl.plan.model.Plan`` marks sensitive: change values at their mirrors, outputs."""
        for c in plan.changes:
            self.add_paths(c.before, c.before_sensitive)
            self.add_paths(c.after, c.after_sensitive)
        for o in plan.outputs:
            if o.sensitive:
                self.add(o.before)
                self.add(o.after)
        if plan.prior_state is not None:
            self.add_state(plan.prior_state)

    def add_config(self, config: Any) -> None:
        """The root module's sensitive input variables of an ``orchdsl.config.Config``."""
        for value in getattr(config, "variables", {}).values():
            self.add_value(value)

    # ---- redacting ------------------------------------------------------------------------------
    def redact(self, text: str) -> str:
        if not self._texts or not text:
            return text
        return redact(text, self._texts, self._compiled())

    def _compiled(self) -> re.Pattern[str] | None:
        if self._pattern is None and self._texts:
            self._pattern = _pattern(self._texts)
        return self._pattern

    def redact_diagnostic(self, d: Diagnostic) -> Diagnostic:
        """``d`` with summary, detail and hint scrubbed (in place; also returned). A source snippet that shows
        a secret (a sensitive value given with --var, a literal default) is left out; the location stays."""
        if not self._texts:
            return d
        d.summary, d.detail, d.hint = self.redact(d.summary), self.redact(d.detail), self.redact(d.hint)
        if d.source is not None and d.subject is not None:
            lines = range(d.subject.start.line, d.subject.end.line + 1)
            if any(self.redact(d.source.line_text(n)) != d.source.line_text(n) for n in lines):
                d.source = None
        return d

    def redact_all(self, diags: Iterable[Diagnostic]) -> list[Diagnostic]:
        return [self.redact_diagnostic(d) for d in diags]

    def redact_status(self, plan: Any) -> Any:
        """``plan`` (a copy, when something changes) whose observed status texts (a message, a health
        check's last output: what a provider read from the host) are scrubbed, for the text and Markdown
        renderings."""
        if not self._texts or not plan.status:
            return plan
        status = {}
        for addr, st in plan.status.items():
            members = tuple(replace(m, last_output=self.redact(m.last_output)) for m in st.members)
            status[addr] = replace(st, message=self.redact(st.message), members=members)
        out = copy.copy(plan)
        out.status = status
        return out


def _quoted_forms(text: str) -> list[str]:
    from .eval.format import go_quote

    forms = {json.dumps(text), json.dumps(text, ensure_ascii=False), go_quote(text), repr(text)}
    return sorted(forms, key=len, reverse=True)


def _pattern(texts: Iterable[str]) -> re.Pattern[str] | None:
    alternatives: set[str] = set()
    for t in texts:
        alternatives.update(_quoted_forms(t))
        if len(t) >= _MIN_BARE:
            alternatives.add(t)
    if not alternatives:
        return None
    try:  # a trie of the alternatives: matching costs the same with 10,000 secrets as with one
        return re.compile(_trie_pattern(alternatives))
    except (RecursionError, re.error):  # pathological nesting: the plain alternation, longest first
        return re.compile("|".join(re.escape(a) for a in sorted(alternatives, key=len, reverse=True)))


def _trie_pattern(words: Iterable[str]) -> str:
    """One regular expression matching any of ``words``, the longest where several match at one place
    (a quoted form before its bare text, a secret before a shorter one it starts with)."""
    end = ""  # key of the end-of-word mark ("" is no character)
    trie: dict[str, Any] = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[end] = {}

    def build(node: dict[str, Any]) -> str:
        branches = []
        for ch in sorted(k for k in node if k != end):
            chars, child = [ch], node[ch]
            while end not in child and len(child) == 1:  # a chain of single characters, without recursion
                (nxt, child), = child.items()
                chars.append(nxt)
            branches.append(re.escape("".join(chars)) + build(child))
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if end not in node:
            return body
        return f"(?:{body})?"  # greedy: the longer word first

    return build(trie)


def redact(text: str, secrets: Iterable[str], pattern: re.Pattern[str] | None = None) -> str:
    """``text`` with every secret of ``secrets`` (quoted as JSON, Go or Python would, or bare when long
    enough to be told from ordinary words) replaced with ``SENSITIVE``."""
    if not text:
        return text
    pat = pattern if pattern is not None else _pattern(secrets)
    return pat.sub(SENSITIVE, text) if pat is not None else text


def redact_by_values(text: str, values: Iterable[Value]) -> str:
    """``text`` scrubbed of the sensitive parts of ``values`` (a failed function call's arguments)."""
    secrets = Secrets()
    for v in values:
        secrets.add_value(v)
    return secrets.redact(text)


_CURRENT = Secrets()


def current() -> Secrets:
    """The secrets of the command being run (the CLI starts each command with ``reset()``)."""
    return _CURRENT


def reset() -> Secrets:
    global _CURRENT
    _CURRENT = Secrets()
    return _CURRENT


__all__ = ["SENSITIVE", "Secrets", "current", "marked_leaves", "redact", "redact_by_values", "reset"]
