"""The reachability review, a derivation that only informs: who may talk to whom after this apply, against
before it, because of which policies.

Computed purely (:mod:`.policy`) from the planned pods and network policies and from those the state records;
shown in the plan (text, the Markdown PR comment, ``orch.reachability`` in JSON) whenever the allowed
(source pod -> destination pod : port) pairs change -- also when no policy block changed: a label, a selector
or a replica count can change who can talk to whom.
"""

from __future__ import annotations

from typing import Any

from .derive import Derived, Inputs, Summary

POD = "pod"
NETWORK_POLICY = "network_policy"


def _mark(before: str | None, after: str | None) -> str:
    if after == "allowed":
        return "+"
    if after == "denied":
        return "-"
    return "~"


def review(namespace: str, changes: list[Any]) -> tuple[str, dict[str, Any], str]:
    """(text, JSON data, Markdown) of the reachability changes."""
    rows = []
    for c in changes:
        rows.append({"from": c.src_group, "to": c.dst_group, "port": c.port_label, "before": c.before_state,
                     "after": c.after_state, "policies": list(c.policies)})
    lines = [f"Reachability (namespace {namespace}): what this apply changes"]
    for r in rows:
        was = r["before"] or "new"
        why = f"  ({', '.join(r['policies'])})" if r["policies"] else ""
        lines.append(f"  {_mark(r['before'], r['after'])} {r['from']} -> {r['to']}  {r['port']}  "
                     f"{was} -> {r['after']}{why}")
    md = [f"#### Reachability (namespace `{namespace}`)", "",
          "| | From | To | Port | Before | After | Because of |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        md.append(f"| {_mark(r['before'], r['after'])} | `{r['from']}` | `{r['to']}` | {r['port']} | "
                  f"{r['before'] or 'new'} | **{r['after']}** | "
                  f"{', '.join(f'`{p}`' for p in r['policies']) or '—'} |")
    return "\n".join(lines), {"namespace": namespace, "changes": rows}, "\n".join(md)


class ReachabilityDerivation:
    name = "reachability"
    reads = frozenset({POD, NETWORK_POLICY})
    writes: frozenset[str] = frozenset()
    produces: frozenset[str] = frozenset()

    def derive(self, inputs: Inputs) -> Derived:
        from . import policy as P

        out = Derived()
        after_pods = {a: v for a, v in inputs.read.items() if a.type == POD}
        after_pol = {a: v for a, v in inputs.read.items() if a.type == NETWORK_POLICY}
        before_pods = {a: v for a, v in inputs.recorded.items() if a.type == POD}
        before_pol = {a: v for a, v in inputs.recorded.items() if a.type == NETWORK_POLICY}
        if not after_pol and not before_pol:
            return out  # without policies everything may talk to everything, before and after
        ns = str(inputs.settings.get("namespace") or "default")
        before = P.reachability(P.pods_from_values(before_pods), P.policies_from_values(before_pol, ns))
        after = P.reachability(P.pods_from_values(after_pods), P.policies_from_values(after_pol, ns))
        changes = P.reach_diff(before, after)
        if not changes:
            return out
        text, data, md = review(str(inputs.settings.get("namespace") or "default"), changes)
        concerns = frozenset(str(a) for a in {*after_pods, *after_pol, *before_pods, *before_pol})
        out.summary = Summary("reachability", text, data, concerns, any_change=True, markdown=md)
        return out


REACHABILITY = ReachabilityDerivation()

__all__ = ["REACHABILITY", "review"]
