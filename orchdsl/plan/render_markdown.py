"""The plan as a pull-request comment (GitHub / GitLab flavoured Markdown).

Layout, as PR tools (tfcmt, Atlantis) lay out Terraform plans:

1. a one-line summary outside any collapsed block, so it shows in notifications
   and collapsed threads (``**Plan:** 1 to add, ...`` or ``**No changes.** ...``),
   then a warning line when objects changed outside orch;
2. a table of resources per action (Create / Update / Replace / Destroy / Read):
   address, node, reason;
3. the full text plan, without colour, in a collapsed ``<details>`` block as a
   ``diff`` code block: each line's ``+``/``-``/``~`` mark is moved to column 0
   and ``~`` becomes ``!`` (as Atlantis and tfcmt do) so that the code
   highlighter colours additions, deletions and updates.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .model import Action, Plan, ResourceChange
from .render_text import (DEFAULT_WIDTH, TOOL, changed_outside, reason_lines,
                          render_plan_text, status_lines)

__all__ = ["GITHUB_COMMENT_LIMIT", "diff_markdown", "render_plan_markdown"]

GITHUB_COMMENT_LIMIT = 65536  # characters in one GitHub comment
_DRIFT_LISTED = 10  # drifted addresses named in the warning line before "and N more"

_GROUPS: Sequence[tuple[str, Action]] = (
    ("Create", Action.CREATE),
    ("Update", Action.UPDATE),
    ("Replace", Action.REPLACE),
    ("Destroy", Action.DELETE),
    ("Read", Action.READ),
)

# An action mark in the text plan is always at column 4k+2, followed by a space (attributes, elements)
# or preceded by nothing but the indent; heredoc and JSON contents start at 4k+4 and are left alone.
_MARK = re.compile(r"^((?:    )*  )([-+~]) ", re.MULTILINE)
_TILDE = re.compile(r"^~", re.MULTILINE)


def diff_markdown(text: str) -> str:
    """Text plan -> lines a ``diff`` highlighter colours: marks to column 0, ``~`` to ``!``."""
    moved = _MARK.sub(lambda m: f"{m.group(2)}{m.group(1)} ", text)
    return _TILDE.sub("!", moved)


def _summary(plan: Plan) -> str:
    changes = [c for c in plan.changes if c.action is not Action.NOOP]
    outputs = [o for o in plan.outputs if o.action is not Action.NOOP]
    drifted = changed_outside(plan)
    if changes:
        add, change, destroy = plan.counts
        return f"**Plan:** {add} to add, {change} to change, {destroy} to destroy."
    if outputs:
        return "**Plan:** only outputs will change (0 to add, 0 to change, 0 to destroy)."
    if plan.refresh_only and drifted:
        return (f"**Refresh-only plan:** {_objects(len(drifted))} changed outside of {TOOL}; "
                "applying records them in the state.")
    if plan.refresh_only:
        return "**No changes.** Your infrastructure still matches the configuration."
    if plan.destroy:
        return "**No changes.** No objects need to be destroyed."
    return "**No changes.** Your infrastructure matches the configuration."


def _objects(n: int) -> str:
    return f"{n} object" if n == 1 else f"{n} objects"


def _drift_warning(plan: Plan) -> str | None:
    drifted = changed_outside(plan)
    if not drifted or plan.refresh_only:
        return None
    named = [f"`{d.address}` ({'deleted' if d.action is Action.DELETE else 'changed'})"
             for d in drifted[:_DRIFT_LISTED]]
    more = f" and {len(drifted) - _DRIFT_LISTED} more" if len(drifted) > _DRIFT_LISTED else ""
    return (f":warning: **{_objects(len(drifted))} changed outside of {TOOL}** since the last apply: "
            f"{', '.join(named)}{more}.")


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{_cell(text)}{pad}{fence}"


def _reason_cell(change: ResourceChange) -> str:
    notes = [n[1:-1] for n in reason_lines(change) if not n.startswith("(on node.")]
    if change.action is Action.REPLACE:
        if change.replace_paths and not change.reason:
            forcing = ", ".join(_code(_path_text(p)) for p in change.replace_paths)
            notes.append(f"{forcing} forces replacement")
        if change.create_before_destroy:
            notes.append("create before destroy")
    return _cell("; ".join(notes))


def _path_text(path: Sequence[str | int]) -> str:
    text = ""
    for step in path:
        if isinstance(step, int):
            text += f"[{step}]"
        elif re.match(r"^[A-Za-z_][A-Za-z0-9_-]*$", step):
            text += f".{step}" if text else step
        else:
            text += f'["{step}"]'
    return text


def _tables(plan: Plan) -> list[str]:
    lines: list[str] = []
    for title, action in _GROUPS:
        group = [c for c in plan.changes if c.action is action]
        if not group:
            continue
        lines += [f"#### {title} ({len(group)})", "", "| Resource | Node | Reason |", "| --- | --- | --- |"]
        for c in group:
            node = _code(c.location) if c.location else ""
            lines.append(f"| {_code(str(c.address))} | {node} | {_reason_cell(c)} |")
        lines.append("")
    return lines


def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    return "`" * (longest + 1)


def _details(text: str, budget: int) -> list[str]:
    body = diff_markdown(text).rstrip("\n")
    if len(body) > budget:
        cut = body.rfind("\n", 0, max(budget, 0))
        body = body[:max(cut, 0)] + f"\n\n... (truncated: run `{TOOL} plan` to see the whole plan)"
    fence = _fence(body)
    return ["<details><summary>Show plan</summary>", "", f"{fence}diff", body, fence, "", "</details>"]


def _status_warning(plan: Plan) -> str | None:
    """Observed problems (unhealthy, stopped, unreachable), apart from drift: what reviewers should know."""
    lines = status_lines(plan)
    if not lines:
        return None
    shown = [f"`{line.split(' ', 1)[0]}` {line.split(' ', 1)[1]}" for line in lines[:_DRIFT_LISTED]]
    more = f"; and {len(lines) - _DRIFT_LISTED} more" if len(lines) > _DRIFT_LISTED else ""
    return f":warning: **Object status:** {'; '.join(shown)}{more}."


def render_plan_markdown(plan: Plan, *, width: int = DEFAULT_WIDTH, limit: int = GITHUB_COMMENT_LIMIT) -> str:
    """A PR comment for the plan; the text plan inside is cut to keep the comment under ``limit``."""
    head = [_summary(plan)]
    warning = _drift_warning(plan)
    if warning:
        head.append("")
        head.append(warning)
    status = _status_warning(plan)
    if status:
        head.append("")
        head.append(status)
    head.append("")
    head += _tables(plan)
    changed = {str(c.address) for c in plan.changes if c.action is not Action.NOOP}
    for summary in plan.summaries:
        if summary.markdown and summary.any_change and changed & summary.concerns:
            head += [summary.markdown, ""]
    text = render_plan_text(plan, color=False, width=width)
    used = sum(len(line) + 1 for line in head) + 200  # 200: the <details> frame and the truncation note
    return "\n".join(head + _details(text, limit - used)) + "\n"
