"""Cycles among everything a configuration names, found when loading (so ``orch validate`` reports them).

The graph has one vertex per resource block, local value, module output and module input (a child module's
variable set by its module block), and an edge for each reference, ``depends_on`` entry and ordering the
planner imposes (a derivation plans every block of the types it reads before any block of the types it
writes: every node before any pod). A cycle there is a value that can never become known: the planner would
refuse it (resources), or leave it "(known after apply)" forever (module inputs and outputs, a resource
reading itself through a local value). Each cycle is one error naming every member at its file:line:col.
"""

from __future__ import annotations

from collections.abc import Iterable
from graphlib import CycleError, TopologicalSorter
from typing import Any

from ..diagnostics import Diagnostic
from ..lang import ast as A
from ..schema import RESOURCE_TYPES
from .model import Config, Module, module_prefix
from .refs import classify, references

Vertex = tuple  # ("resource", ConfigAddress) | ("local"|"output"|"var", ModulePath, name) | ("derivation", name)
_MAX_REPORTED = 10
_META = ("count", "for_each", "depends_on")


def cycle_diagnostics(config: Config) -> list[Diagnostic]:
    graph = _graph(config)
    try:
        TopologicalSorter(graph).prepare()
        return []
    except CycleError:
        pass
    cycles = [_cycle_in(config, graph, c) for c in _cyclic_components(graph)]
    cycles.sort(key=lambda c: _order_key(config, c[0]))
    return [_diagnostic(config, c) for c in cycles[:_MAX_REPORTED]]


# ---- the graph ---------------------------------------------------------------------------------------------

def _graph(config: Config) -> dict[Vertex, set[Vertex]]:
    types = set(RESOURCE_TYPES)
    g: dict[Vertex, set[Vertex]] = {}

    def refs(mod: Module, exprs: Iterable[A.Node | None]) -> set[Vertex]:
        out: set[Vertex] = set()
        for expr in exprs:
            if expr is None:
                continue
            for trav, steps in references(expr):
                ref = classify(trav, steps, mod.path, types)
                if ref.kind == "resource" and ref.address in mod.resources:
                    out.add(("resource", ref.address))
                elif ref.kind == "local" and ref.name in mod.locals:
                    out.add(("local", mod.path, ref.name))
                elif ref.kind == "var" and mod.path and ref.name in mod.variables:
                    out.add(("var", mod.path, ref.name))
                elif ref.kind == "module" and ref.name in mod.calls:
                    child = config.modules.get(mod.calls[ref.name].path)
                    if child is None:
                        continue
                    attr = ref.first_attr
                    for o in ([attr] if attr in child.outputs else list(child.outputs)):
                        out.add(("output", child.path, o))
        return out

    for mod in config.modules.values():
        for name, local in mod.locals.items():
            g[("local", mod.path, name)] = refs(mod, [local.expr])
        for name, out in mod.outputs.items():
            g[("output", mod.path, name)] = refs(mod, [out.expr]) | {("resource", a) for a in out.depends_on}
        for call in mod.calls.values():
            for name, attr in call.inputs.items():
                g[("var", call.path, name)] = refs(mod, [attr.expr])
        for addr, decl in mod.resources.items():
            skip = set(_META) | {decl.count_argument}
            deps = refs(mod, [decl.count_expr, decl.for_each_expr, *_body_exprs(decl.block.body, skip)])
            deps.discard(("resource", addr))  # a direct self-reference is its own error ("Self-referential")
            g[("resource", addr)] = deps | {("resource", a) for a in decl.depends_on if a != addr}
    from ..cluster import DERIVATIONS  # the cluster layer imports nothing of the configuration's

    for dv in DERIVATIONS:
        reads = {("resource", a) for a, d in config.resources.items() if d.type in dv.reads}
        writes = [("resource", a) for a, d in config.resources.items() if d.type in dv.writes]
        if reads and writes:
            g[("derivation", dv.name)] = reads
            for w in writes:
                g[w] = g.get(w, set()) | {("derivation", dv.name)}
    return g


def _body_exprs(body: A.Body, skip: set[str]) -> list[A.Node]:
    out: list[A.Node] = [a.expr for n, a in body.attributes.items() if n not in skip]
    for b in body.blocks:
        if b.type != "lifecycle":
            out.extend(_body_exprs(b.body, set()))
    return out


def _cyclic_components(g: dict[Vertex, set[Vertex]]) -> list[list[Vertex]]:
    """Strongly connected components that hold a cycle (Tarjan's algorithm, iterative), in a stable order."""
    index: dict[Vertex, int] = {}
    low: dict[Vertex, int] = {}
    on_stack: set[Vertex] = set()
    stack: list[Vertex] = []
    out: list[list[Vertex]] = []
    counter = 0
    for root in sorted(g, key=repr):
        if root in index:
            continue
        work: list[tuple[Vertex, Any]] = [(root, iter(sorted(g.get(root, ()), key=repr)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(g.get(w, ()), key=repr))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1 or v in g.get(v, ()):
                    out.append(comp)
    return out


def _cycle_in(config: Config, g: dict[Vertex, set[Vertex]], component: list[Vertex]) -> list[Vertex]:
    """One cycle through the component, starting at its first member in source order: a shortest path back to
    the start (breadth-first within the component)."""
    members = set(component)
    start = min(component, key=lambda v: _order_key(config, v))
    parent: dict[Vertex, Vertex] = {}
    queue = [start]
    seen = {start}
    while queue:
        nxt = []
        for v in queue:
            for w in sorted(g.get(v, ()), key=repr):
                if w not in members:
                    continue
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    path.reverse()
                    return path
                if w not in seen:
                    seen.add(w)
                    parent[w] = v
                    nxt.append(w)
        queue = nxt
    return [start]


# ---- the diagnostic --------------------------------------------------------------------------------------

def _order_key(config: Config, v: Vertex) -> tuple:
    node = _node(config, v)
    if node is None:
        return (1 << 30, "", 0, repr(v))
    depth = len(v[1].module) if v[0] == "resource" else len(v[1]) - (v[0] == "var")
    return (depth, node.src.filename, node.start, repr(v))


def _node(config: Config, v: Vertex) -> A.Node | None:
    kind = v[0]
    if kind == "resource":
        decl = config.resources.get(v[1])
        return decl.block if decl is not None else None
    if kind == "derivation":
        return None
    mod = config.modules.get(v[1])
    if mod is None:
        return None
    if kind == "local":
        return mod.locals[v[2]].attribute
    if kind == "output":
        return mod.outputs[v[2]].block
    call = config.module_calls.get(v[1])
    return call.inputs.get(v[2]) if call is not None else None


def _name(v: Vertex) -> str:
    kind = v[0]
    if kind == "resource":
        return str(v[1])
    if kind == "derivation":
        from ..cluster import DERIVATIONS

        dv = next((d for d in DERIVATIONS if d.name == v[1]), None)
        if dv is None:
            return v[1]
        return (f"{dv.name} (every {' and '.join(sorted(dv.reads))} is planned before any "
                f"{' and '.join(sorted(dv.writes))})")
    return f"{module_prefix(v[1])}{kind}.{v[2]}"


def _where(config: Config, v: Vertex) -> str:
    node = _node(config, v)
    if node is None:
        return ""
    pos = node.src.range(node.start, node.start).start
    return f" ({node.src.filename}:{pos.line}:{pos.column})"


def _diagnostic(config: Config, cycle: list[Vertex]) -> Diagnostic:
    names = [_name(v) for v in cycle]
    first = _node(config, cycle[0])
    only_locals = all(v[0] == "local" and v[1] == cycle[0][1] for v in cycle)
    if only_locals:
        summary = "Cycle in local values"
        detail = "These local values refer to each other: " + " -> ".join(names + names[:1]) + "."
        hint = "break the cycle by computing one of them from other values"
    else:
        summary = "Cycle in dependencies"
        detail = "These depend on each other: " + " -> ".join(names + names[:1]) + "."
        hint = "remove one reference or depends_on entry of the cycle"
    detail += "\n" + "\n".join(f"  {'-> ' if i else ''}{n}{_where(config, v)}"
                               for i, (n, v) in enumerate(zip(names, cycle)))
    if first is None:
        return Diagnostic.error(summary, detail, hint=hint)
    end = first.name_end if isinstance(first, A.Attribute) else \
        first.label_ranges[-1][1] if isinstance(first, A.Block) and first.label_ranges else first.end
    return Diagnostic.error(summary, detail, first.src, first.start, end, hint=hint)
