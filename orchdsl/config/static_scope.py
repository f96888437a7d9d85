"""The scope an expression sees before anything is planned: var.*, local.*, functions.

Input variables take their value from ``--var`` overrides, else their
default; ``locals`` are evaluated in dependency order (a cycle is a
diagnostic). Resources are not known yet: ``pod.web.x`` evaluates to an
unknown value, shown as ``(known after apply)``.
"""

from __future__ import annotations

from graphlib import CycleError, TopologicalSorter

from ..diagnostics import Diagnostic
from ..eval import EvalContext, evaluate, object_val, standard_functions, string_val, unknown
from ..lang import ast as A
from ..lang import parse_expression
from .files import ConfigFiles

_NOT_RESOURCES = {"variable", "locals", "output", "module", "terraform"}


def _var_value(name: str, raw: str, decl: A.Block | None, ctx: EvalContext) -> tuple:
    """``--var name=raw``: a string for string (or untyped) variables, else an expression."""
    type_attr = decl.body.attributes.get("type") if decl is not None else None
    is_string = type_attr is None or (type(type_attr.expr) is A.ScopeTraversal
                                      and type_attr.expr.name == "string" and not type_attr.expr.steps)
    if is_string:
        return string_val(raw), []
    expr, diags = parse_expression(raw, f"<value for var.{name}>")
    if expr is None:
        return unknown(), diags
    return evaluate(expr, ctx)


def _declared_sensitive(block: A.Block, ctx: EvalContext) -> bool:
    """``sensitive = true`` in a variable block: its value is shown as (sensitive value), as in plans."""
    attr = block.body.attributes.get("sensitive")
    if attr is None:
        return False
    value, diags = evaluate(attr.expr, ctx)
    return not diags and value.raw is True


def static_scope(config: ConfigFiles, overrides: dict[str, str] | None = None) -> tuple[EvalContext, list]:
    diags: list[Diagnostic] = []
    functions = standard_functions(config.directory)
    base = EvalContext({}, functions)
    overrides = dict(overrides or {})

    variables = {}
    decls = {b.labels[0]: b for b in config.blocks("variable") if b.labels}
    for name, block in decls.items():
        if name in overrides:
            value, d = _var_value(name, overrides.pop(name), block, base)
            diags.extend(d)
        elif "default" in block.body.attributes:
            value, d = evaluate(block.body.attributes["default"].expr, base)
            diags.extend(d)
        else:
            diags.append(Diagnostic("warning", f'No value for variable "{name}"',
                                    "It is unknown in this scope.", block.range,
                                    hint=f"pass --var {name}=VALUE or give it a default", source=block.src))
            value = unknown()
        variables[name] = value.mark(_declared_sensitive(block, base))
    for name in overrides:
        diags.append(Diagnostic.error(f'Value for undeclared variable "{name}"',
                                      f'No variable block declares "{name}".',
                                      hint=f'declare it: variable "{name}" {{}}'))

    scope: dict = {"var": object_val(variables)}
    resource_types: dict[str, dict] = {}
    for body in config.bodies:
        for block in body.blocks:
            if block.type not in _NOT_RESOURCES and block.labels:
                resource_types.setdefault(block.type, {})[block.labels[0]] = unknown()
    for rtype, names in resource_types.items():
        scope[rtype] = object_val(names)

    local_exprs: dict[str, A.Attribute] = {}
    for block in config.blocks("locals"):
        for attr in block.body.attributes.values():
            if attr.name in local_exprs:
                first = local_exprs[attr.name].range
                diags.append(Diagnostic.error("Duplicate local value definition",
                                              f'A local value named "{attr.name}" was already defined at '
                                              f"{first.filename}:{first.start.line}.",
                                              attr.src, attr.start, attr.name_end))
                continue
            local_exprs[attr.name] = attr
    deps = {name: {r.steps[0].name for r in A.traversal_refs(a.expr)
                   if r.name == "local" and r.steps and isinstance(r.steps[0], A.GetAttr)} & local_exprs.keys()
            for name, a in local_exprs.items()}
    locals_: dict = {}
    try:
        order = list(TopologicalSorter(deps).static_order())
    except CycleError as e:
        cycle = e.args[1]
        first = local_exprs[cycle[0]]
        diags.append(Diagnostic.error("Cycle in local values",
                                      "These local values refer to each other: "
                                      + " -> ".join(f"local.{n}" for n in cycle) + ".",
                                      first.src, first.start, first.name_end,
                                      hint="break the cycle by computing one of them from other values"))
        order = [n for n in local_exprs if n not in cycle]
        for n in cycle:
            locals_[n] = unknown()
    for name in order:
        ctx = EvalContext({**scope, "local": object_val(locals_)}, functions)
        value, d = evaluate(local_exprs[name].expr, ctx)
        diags.extend(d)
        locals_[name] = value
    scope["local"] = object_val(locals_)
    return EvalContext(scope, functions), diags
