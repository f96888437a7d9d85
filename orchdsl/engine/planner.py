"""The planner: configuration + refreshed state -> Plan. Pure apart from provider.plan (also pure).

Resources are planned in dependency order so that an expression referring to
another resource sees that resource's planned values (unknown where they are
known only after apply). Every change carries a reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from ..addrs import ConfigAddress, ResourceAddress
from ..cluster import DERIVATIONS, Derivation, Derived, DerivedInstance, DerivedObject, Inputs
from ..cluster.derive import Summary
from ..config import Config, ResourceDecl, ResourceInstanceConfig
from ..diagnostics import Diagnostic
from ..eval.plain import UNKNOWN, Path, prune_nulls
from ..plan import model as M
from ..plan.model import Action, OutputChange, Plan, ResourceChange
from ..sdk.protocol import ObjectStatus, Provider, StateObject
from ..sdk.values import configured_changes, get_path, set_path
from ..state import ResourceInstance, State
from .graph_order import config_order
from .refresh import Refreshed, to_object

Expansion = tuple[list[ResourceInstanceConfig], list[Diagnostic]]


@dataclass
class PlanOptions:
    targets: list[Any] = field(default_factory=list)  # orchdsl.state.targets.Target
    replace: list[ResourceAddress] = field(default_factory=list)
    refresh: bool = True
    refresh_only: bool = False
    destroy: bool = False
    # a rolling-update strategy (orchdsl.cluster.rollout.Strategy) for replaced replicas of blocks without
    # one: the reconciler replaces unhealthy replicas this way
    rolling_default: Any = None
    # nodes the reconciler gave up on (name -> why): the scheduler moves their replicas elsewhere
    lost_nodes: dict[str, str] = field(default_factory=dict)
    # the reconciler's replica count for autoscaled pods (others keep the count they have now)
    scale: dict[ConfigAddress, int] = field(default_factory=dict)


def _plain(v: Any) -> Any:
    from ..eval import to_python

    try:
        return to_python(v.unmark_deep())
    except Exception:  # noqa: BLE001 - a variable that cannot be shown is shown as unknown
        return UNKNOWN


def ctx_entry(decl: ResourceDecl, instances: dict[ResourceAddress, dict[str, Any]]) -> Any:
    """The value other expressions see for a resource: one object, a list (count) or a map (for_each)."""
    if decl.mode == "count":
        return [v for a, v in sorted(instances.items(), key=lambda kv: cast(int, kv[0].key))]
    if decl.mode == "for_each":
        return {a.key: v for a, v in instances.items()}
    return next(iter(instances.values()), UNKNOWN)


def _state_ctx(state: State, config: Config) -> dict[ConfigAddress, Any]:
    out: dict[ConfigAddress, Any] = {}
    for caddr, decl in config.resources.items():
        insts = {i.addr: dict(i.attributes) for i in state.resources_of(caddr)}
        if insts:
            out[caddr] = ctx_entry(decl, insts)
    return out


def _targeted(addr: ResourceAddress, targets: list[Any]) -> bool:
    return not targets or any(t.matches(addr) for t in targets)


def make_plan(config: Config, state: State, refreshed: Refreshed, providers: dict[str, Provider],
              options: PlanOptions, derivations: tuple[Derivation, ...] = DERIVATIONS,
              facts: Mapping[ResourceAddress, dict[str, Any]] | None = None) -> tuple[Plan, list[Diagnostic]]:
    """``facts``: what providers read about objects to be created (see ``Provider.facts``); each fills a value
    the provider planned as unknown. The planner does no I/O: the workflow gathers them."""
    diags: list[Diagnostic] = []
    work = refreshed.state
    plan = Plan(drift=list(refreshed.drift), lineage=state.lineage, serial=state.serial,
                refresh_only=options.refresh_only, destroy=options.destroy,
                timestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                # a sensitive variable's value is never carried into the plan (its JSON, plan files)
                variables={k: (None if getattr(v, "sensitive", False) else _plain(v))
                           for k, v in config.variables.items()},
                status=dict(refreshed.status))
    if options.refresh_only:
        return plan, _unmatched_arguments(options, config, refreshed.state, set(), expanded=False)

    order, order_diags = config_order(config, derivations)
    diags.extend(order_diags)
    if order_diags:
        return plan, diags
    scaled = set_scale(config, work, options.scale)
    if scaled is not None:
        plan.summaries.append(scaled)

    ctx: dict[ConfigAddress, Any] = {}
    wanted: set[ResourceAddress] = set()
    deps: dict[ResourceAddress, set[ResourceAddress]] = {}
    changes: list[ResourceChange] = []
    planned_by_type: dict[str, dict[ResourceAddress, dict[str, Any]]] = {}  # what derivations read
    derived: dict[ResourceAddress, DerivedInstance] = {}
    results: dict[str, Derived] = {}  # each derivation's result, by name
    expanded: dict[ConfigAddress, Expansion] = {}  # expansions made for a derivation, re-used when still valid
    planned_since: set[ConfigAddress] = set()  # planned after a derivation ran: what refers to them re-expands
    if not options.destroy:
        for caddr in order:
            decl = config.resources[caddr]
            provider = providers.get(decl.type)
            if provider is None:
                diags.append(Diagnostic.error(
                    "No provider for resource type",
                    f'No installed provider handles resource type "{decl.type}".',
                    decl.block.src, decl.block.start, decl.block.start + len(decl.type),
                    hint="install a provider that handles it (orch providers are Python packages registering "
                         "the entry point group orch.providers)"))
                continue
            for dv in derivations:
                if decl.type in dv.writes and dv.name not in results:
                    result, exp = _derive(dv, config, order, ctx, work, planned_by_type, options)
                    results[dv.name] = result
                    expanded.update(exp)
                    derived.update(result.instances)
                    if result.summary is not None:
                        plan.summaries.append(result.summary)
                    diags.extend(_located(result.diagnostics, config, options))
                    planned_since.clear()
            cached = expanded.pop(caddr, None)
            if cached is not None and not (set(decl.references) & planned_since):
                instances, d = cached
            else:
                instances, d = config.expand(decl, ctx)
            if results:
                planned_since.add(caddr)
            diags.extend(d)
            if any(x.is_error for x in d):
                continue
            planned_values: dict[ResourceAddress, dict[str, Any]] = {}
            refs = decl.references | set(decl.depends_on)
            dep_instances = {i.addr for ref in refs for i in work.resources_of(ref)}
            dep_instances |= {a for a in wanted if a.config in refs}
            for inst in instances:
                wanted.add(inst.address)
                dv_inst = derived.get(inst.address)
                deps[inst.address] = dep_instances | set(dv_inst.depends_on) if dv_inst else dep_instances
                prior = work.get(inst.address)
                if not _targeted(inst.address, options.targets):
                    planned_values[inst.address] = dict(prior.attributes) if prior else {}
                    continue
                change, d = _plan_instance(inst, prior, provider, options, decl, dv_inst,
                                           refreshed.status.get(inst.address), (facts or {}).get(inst.address))
                diags.extend(d)
                if change is None:
                    continue
                changes.append(change)
                planned_values[inst.address] = change.after if change.after is not None else {}
            planned_by_type.setdefault(decl.type, {}).update(planned_values)
            ctx[caddr] = ctx_entry(decl, planned_values)
        # Derivations that set no block's values (they produce objects, or only a summary for the reader), after
        # everything they may read.
        for dv in derivations:
            if not dv.writes and dv.name not in results:
                changing = {c.address for c in changes if c.action is not Action.NOOP}
                status = {a: st for a, st in refreshed.status.items() if a not in changing}
                result, _ = _derive(dv, config, order, ctx, work, planned_by_type, options, status)
                results[dv.name] = result
                if result.summary is not None:
                    plan.summaries.append(result.summary)
                diags.extend(_located(result.diagnostics, config, options))
        for dv in derivations:
            produced = results[dv.name].objects if dv.name in results else {}
            for addr, made in sorted(produced.items()):
                if not _targeted(addr, options.targets):
                    continue
                provider = providers.get(addr.type)
                if provider is None:
                    diags.append(Diagnostic.error(
                        "No provider for resource type", f'No installed provider handles "{addr.type}", which '
                        f"the cluster layer derives ({dv.name}).", address=str(addr)))
                    continue
                wanted.add(addr)
                deps[addr] = set(made.depends_on)
                change, d = _plan_derived(addr, made, dv.name, work.get(addr), provider,
                                          refreshed.status.get(addr))
                diags.extend(d)
                changes.append(change)

    # Objects in the state that the configuration no longer wants.
    for obj in sorted(work, key=lambda i: i.addr, reverse=True):
        if obj.addr in wanted or not _targeted(obj.addr, options.targets):
            continue
        obj_decl = config.resources.get(obj.addr.config)
        if options.destroy:
            reason, why = None, "destroy requested"
        elif obj_decl is None and any(obj.type in dv.produces for dv in derivations):
            reason, why = M.DELETE_BECAUSE_NOT_DERIVED, "because the cluster layer no longer derives it"
        elif obj_decl is None:
            reason, why = M.DELETE_BECAUSE_NO_RESOURCE_CONFIG, f"because {obj.addr.config} is not in configuration"
        elif obj_decl.mode == "count" or isinstance(obj.addr.key, int):
            reason, why = M.DELETE_BECAUSE_COUNT_INDEX, f"because index [{obj.addr.key}] is out of range"
        else:
            reason, why = M.DELETE_BECAUSE_EACH_KEY, f'because key ["{obj.addr.key}"] is not in for_each'
        if obj_decl is not None and obj_decl.lifecycle.prevent_destroy:
            diags.append(_prevent_destroy(obj.addr, obj_decl))
        provider = providers.get(obj.type)
        changes.append(ResourceChange(obj.addr, Action.DELETE, dict(obj.attributes), None, why, reason,
                                      before_sensitive=[tuple(p) for p in obj.sensitive_attributes],
                                      provider=provider.name if provider else obj.provider))
        deps[obj.addr] = {ResourceAddress.parse(d) for d in obj.dependencies}
    # Deposed objects an interrupted create_before_destroy replacement left behind: destroyed now.
    for obj in sorted(work, key=lambda i: i.addr):
        for entry in obj.deposed:
            if not _targeted(obj.addr, options.targets):
                continue
            provider = providers.get(obj.type)
            changes.append(ResourceChange(
                obj.addr, Action.DELETE, dict(entry.get("attributes") or {}), None,
                "because a create_before_destroy replacement made its successor and was interrupted before "
                "destroying it", M.DELETE_BECAUSE_DEPOSED, provider=provider.name if provider else obj.provider,
                deposed=str(entry.get("key"))))
    for i, c in enumerate(changes):
        c.index = i
    plan.changes = changes
    rolling = _rollouts(changes, refreshed.status, options)
    if rolling is not None:
        plan.summaries.append(rolling)
    # Sorted once per distinct address, not once per comparison: with depends_on between two blocks of 1,000
    # replicas each there are a million entries (ResourceAddress.__lt__ rebuilt both keys at every comparison).
    order_keys: dict[ResourceAddress, tuple[Any, ...]] = {}
    for dep_set in {id(s): s for s in deps.values()}.values():
        for dep in dep_set:
            if dep not in order_keys:
                order_keys[dep] = dep._order()
    plan.dependencies = {a: sorted(s, key=order_keys.__getitem__) for a, s in deps.items()}

    # Outputs.
    if not options.destroy:
        full_ctx = {**_state_ctx(work, config), **ctx}
        outputs, d = config.evaluate_outputs(full_ctx)
        diags.extend(d)
        for name, out in outputs.items():
            before = state.outputs.get(name)
            if before is None:
                action = Action.CREATE
            elif out.value is UNKNOWN or before.value != out.value:
                action = Action.UPDATE
            else:
                action = Action.NOOP
            plan.outputs.append(OutputChange(name, action, before.value if before else None, out.value,
                                             out.sensitive))
    for name, before in state.outputs.items():
        if options.destroy or name not in {o.name for o in plan.outputs}:
            plan.outputs.append(OutputChange(name, Action.DELETE, before.value, None, before.sensitive))
    if not any(d.is_error for d in diags):  # with errors, what the configuration wants is not all known
        diags.extend(_unmatched_arguments(options, config, work, wanted, expanded=not options.destroy))
    return plan, diags


AUTOSCALE = "autoscale"


def set_scale(config: Config, work: State, decided: Mapping[ConfigAddress, int]) -> Summary | None:
    """Autoscaled pods keep the replica count they have (the autoscaler owns it: a plan never undoes it),
    unless the reconciler decided another; the plan records the counts it used (``orch.autoscale``), for
    the apply of a saved plan and for the reader."""
    counts: dict[str, Any] = {}
    lines = []
    for caddr, decl in config.resources.items():
        if decl.autoscale_block is None:
            continue
        now = len(work.resources_of(caddr))
        if caddr in decided:
            config.scale[caddr] = decided[caddr]
        elif now:
            config.scale[caddr] = now
        else:
            config.scale.pop(caddr, None)
        want = config.scale.get(caddr)
        counts[str(caddr)] = {"now": now, "planned": want}
        lines.append(f"  {caddr}: {now} replica{'s' if now != 1 else ''} now" +
                     (f", {want} planned by orch reconcile" if want is not None and want != now else "") +
                     " (autoscaled: orch reconcile sets the count from measured CPU; plan keeps it)")
    if not counts:
        return None
    concerns = frozenset(f"{block}[{i}]" for block, c in counts.items()
                         for i in range(max(c["now"], c["planned"] or 0)))
    return Summary(AUTOSCALE, "Autoscaled pods:\n" + "\n".join(lines), {"counts": counts}, concerns,
                   any_change=True)


def _rollouts(changes: list[ResourceChange], status: Mapping[ResourceAddress, Any],
              options: PlanOptions) -> Summary | None:
    """Replacements of replicas whose block rolls (a ``strategy``, or the reconciler's default): in waves."""
    from ..cluster import rollout

    replaced = {c.address: c.after for c in changes
                if c.action is Action.REPLACE and c.deposed is None and c.after is not None}
    if not replaced:
        return None
    return rollout.summary(rollout.plan_rollouts(replaced, status, options.rolling_default))


def _unmatched_arguments(options: PlanOptions, config: Config, work: State, wanted: set[ResourceAddress],
                         expanded: bool) -> list[Diagnostic]:
    """--target and --replace addresses that match nothing: errors, never silently left out."""
    from .arguments import unmatched_replace, unmatched_targets

    in_state = {i.addr for i in work}
    out = unmatched_targets(options.targets, wanted | in_state, config.resources.keys(), expanded)
    if expanded:
        out += unmatched_replace(options.replace, wanted, in_state, lambda a: _targeted(a, options.targets))
    return out


def _derive(dv: Derivation, config: Config, order: list[ConfigAddress], ctx: dict[ConfigAddress, Any],
            work: State, planned_by_type: dict[str, dict[ResourceAddress, dict[str, Any]]],
            options: PlanOptions, status: Mapping[ResourceAddress, Any] | None = None
            ) -> tuple[Derived, dict[ConfigAddress, Expansion]]:
    """Run one derivation over the whole configuration: every instance of the types it writes, at once.

    Returns its result and each written resource's expansion, which the planner re-uses unless the resource
    refers to something planned after this point.
    """
    expanded: dict[ConfigAddress, Expansion] = {}
    wanted: dict[ResourceAddress, dict[str, Any]] = {}
    current: dict[ResourceAddress, dict[str, Any]] = {}
    for caddr in order:
        decl = config.resources[caddr]
        if decl.type not in dv.writes:
            continue
        instances, d = expanded[caddr] = config.expand(decl, ctx)
        if any(x.is_error for x in d):
            continue
        for inst in instances:
            prior = work.get(inst.address)
            if prior is not None:
                current[inst.address] = prior.attributes
            targeted = _targeted(inst.address, options.targets)
            wanted[inst.address] = inst.values if targeted or prior is None else dict(prior.attributes)
    for t in dv.produces:
        current.update({i.addr: i.attributes for i in work if i.type == t})
    read = {a: v for t in dv.reads for a, v in planned_by_type.get(t, {}).items()}
    recorded = {i.addr: i.attributes for i in work if i.type in dv.reads}
    settings = cluster_settings(config)
    if options.lost_nodes:
        settings["lost_nodes"] = dict(options.lost_nodes)
    return dv.derive(Inputs(read, wanted, current, settings, status or {}, recorded)), expanded


def cluster_settings(config: Config) -> dict[str, Any]:
    """The root module's settings derivations may use."""
    from ..cluster.settings import resolve

    return {"scheduler_strategy": config.scheduler_strategy, **resolve(config.settings, config.directory)}


def _plan_derived(addr: ResourceAddress, made: DerivedObject, derivation: str, prior: ResourceInstance | None,
                  provider: Provider, status: ObjectStatus | None
                  ) -> tuple[ResourceChange, list[Diagnostic]]:
    """Plan one object the cluster layer produces: like a configured instance, with the derivation's reason."""
    values = prune_nulls(dict(made.values))
    common: dict[str, Any] = dict(provider=provider.name, location=made.location, derived_by=derivation)
    if prior is None:
        planned = provider.plan(addr, None, values)
        return ResourceChange(addr, Action.CREATE, None, planned.planned, made.reason, **common), \
            planned.diagnostics
    planned = provider.plan(addr, to_object(prior, status), values)
    info = provider.resource_types().get(addr.type)
    force_new = info.force_new if info else frozenset()
    # exact, not "what is configured": the cluster layer derives the whole object, so an emptied map (the last
    # network policy removed) is a change too
    changed: list[Path] = [(k,) for k, v in values.items() if prior.attributes.get(k) != v]
    forcing = sorted({p for p in changed if p and p[0] in force_new} | {tuple(p) for p in planned.requires_replace},
                     key=str)
    if prior.status == "tainted":
        return ResourceChange(addr, Action.REPLACE, dict(prior.attributes), provider.plan(addr, None, values).planned,
                              "because the last apply did not finish creating it", M.REPLACE_BECAUSE_TAINTED,
                              **common), list(planned.diagnostics)
    if not changed and planned.repair is None:
        return ResourceChange(addr, Action.NOOP, dict(prior.attributes), dict(prior.attributes), **common), \
            list(planned.diagnostics)
    if forcing:
        return ResourceChange(addr, Action.REPLACE, dict(prior.attributes), provider.plan(addr, None, values).planned,
                              made.reason, M.REPLACE_BECAUSE_CANNOT_UPDATE, replace_paths=forcing, **common), \
            list(planned.diagnostics)
    return ResourceChange(addr, Action.UPDATE, dict(prior.attributes), planned.planned,
                          made.reason if changed else planned.repair or "",
                          None if changed else M.UPDATE_BECAUSE_STATUS, **common), list(planned.diagnostics)


def _located(found: list[Diagnostic], config: Config, options: PlanOptions) -> list[Diagnostic]:
    """A derivation's errors of targeted instances, pointing at their resource block."""
    out = []
    for d in found:
        if d.address:
            addr = ResourceAddress.parse(d.address)
            if not _targeted(addr, options.targets):
                continue
            decl = config.resources.get(addr.config)
            if decl is not None and d.subject is None:
                block = decl.block
                end = block.label_ranges[-1][1] if block.label_ranges else block.start + len(block.type)
                d.subject, d.source = block.src.range(block.start, end), block.src
        out.append(d)
    return out


def _prevent_destroy(addr: ResourceAddress, decl: ResourceDecl) -> Diagnostic:
    return Diagnostic.error("Instance cannot be destroyed",
                            f"Resource {addr} has lifecycle.prevent_destroy set, but the plan calls for this "
                            "resource to be destroyed.", decl.block.src, decl.block.start, decl.block.end,
                            hint="to destroy it, remove prevent_destroy first, or change the plan (e.g. with "
                                 "-target)", address=str(addr))


def _apply_ignore_changes(values: dict[str, Any], prior: ResourceInstance,
                          decl: ResourceDecl) -> dict[str, Any]:
    lc = decl.lifecycle
    if lc.ignore_all_changes:
        return {k: prior.attributes.get(k) for k in values}
    for path in lc.ignore_changes:
        values = set_path(values, tuple(path), get_path(prior.attributes, tuple(path)))
    return values


def with_facts(planned: dict[str, Any], facts: dict[str, Any] | None) -> tuple[dict[str, Any], list[Path]]:
    """``planned`` with each fact filling a value planned as unknown (never a known or absent one); the paths
    filled, which the executor turns unknown again before the provider creates the object."""
    if not facts:
        return planned, []
    filled: list[Path] = []

    def fill(value: Any, fact: Any, path: Path) -> Any:
        if value is UNKNOWN and fact is not None:  # a provider that read nothing there leaves it unknown
            filled.append(path)
            return fact
        if isinstance(value, dict) and isinstance(fact, dict):
            return {k: fill(v, fact[k], (*path, k)) if k in fact else v for k, v in value.items()}
        return value

    out = fill(planned, facts, ())
    return out, sorted(filled, key=str)


def _plan_instance(inst: ResourceInstanceConfig, prior: ResourceInstance | None, provider: Provider,
                   options: PlanOptions, decl: ResourceDecl, derived: DerivedInstance | None = None,
                   status: Any = None, facts: dict[str, Any] | None = None
                   ) -> tuple[ResourceChange | None, list[Diagnostic]]:
    addr = inst.address
    values = prune_nulls(inst.values)
    if derived is not None:
        values.update(derived.values)  # the cluster layer's decisions (a replica's node)
    info = provider.resource_types().get(addr.type)
    force_new = info.force_new if info else frozenset()
    sens = sorted(tuple(p) for p in inst.sensitive_paths)
    common: dict[str, Any] = dict(after_sensitive=sens, provider=provider.name,
                                  create_before_destroy=decl.lifecycle.create_before_destroy,
                                  location=derived.location if derived else None,
                                  derived=dict(derived.values) if derived else {})
    if prior is None:
        planned = provider.plan(addr, None, values)
        after, filled = with_facts(planned.planned, facts)
        return ResourceChange(addr, Action.CREATE, None, after, facts=filled, **common), planned.diagnostics
    values = _apply_ignore_changes(values, prior, decl)
    prior_obj: StateObject = to_object(prior, status)
    before_sens = [tuple(p) for p in prior.sensitive_attributes]
    planned = provider.plan(addr, prior_obj, values)
    diags = list(planned.diagnostics)
    after = planned.planned
    changed = configured_changes(prior.attributes, values)
    forcing = sorted({p for p in changed if p and p[0] in force_new} | {tuple(p) for p in planned.requires_replace},
                     key=str)
    move = derived.replace_reason if derived is not None else None
    if addr in options.replace:
        action, reason, why = Action.REPLACE, M.REPLACE_BY_REQUEST, "replacement requested with --replace"
    elif prior.status == "tainted":
        action, reason, why = Action.REPLACE, M.REPLACE_BECAUSE_TAINTED, \
            "because the last apply did not finish creating it"
    elif not changed and planned.repair is None:
        return ResourceChange(addr, Action.NOOP, dict(prior.attributes), dict(prior.attributes),
                              before_sensitive=before_sens, **common), diags
    elif move is not None and changed:
        action, reason, why = Action.REPLACE, M.REPLACE_BECAUSE_CANNOT_UPDATE, move
    elif forcing:
        action, reason = Action.REPLACE, M.REPLACE_BECAUSE_CANNOT_UPDATE
        why = "because " + ", ".join(".".join(str(s) for s in p) for p in forcing) + " cannot change in place"
    elif not changed:
        action, reason, why = Action.UPDATE, M.UPDATE_BECAUSE_STATUS, planned.repair or ""
    else:
        action, reason, why = Action.UPDATE, None, planned.repair or ""
    read_ahead: list[Path] = []
    if action is Action.REPLACE:
        after = provider.plan(addr, None, values).planned  # a new object: computed values unknown again
        after, read_ahead = with_facts(after, facts)
        if decl.lifecycle.prevent_destroy:
            diags.append(_prevent_destroy(addr, decl))
    return ResourceChange(addr, action, dict(prior.attributes), after, why, reason,
                          replace_paths=forcing if action is Action.REPLACE else [],
                          before_sensitive=before_sens, facts=read_ahead, **common), diags
