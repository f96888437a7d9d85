"""The executor: carry out a plan with a concurrent walk, recording the state after every change.

Providers only create, update and delete; the executor sequences replacement itself:

* delete-then-create (the default): the old object is deleted (and forgotten), then the new one created;
* ``create_before_destroy``: the old object is *deposed* (kept in the state under its address as a deposed
  object), the new one created, then the deposed one deleted — as Terraform does. A deposed object left by
  an interrupted apply is deleted by the next plan.

Crash safety: before a provider creates an object, the state records the intent (the instance with status
"tainted"); the object is recorded "ready" once the provider returns. Each record is durable before the next
step starts. A process killed at any moment therefore leaves a state that lists every object that may exist:
the next refresh finds out which do, and the plan replaces the half-made ones.

Cost: one expansion of a resource block per apply (not one per instance), and records appended to the
state's journal (not a rewrite of the whole state per change): apply is linear in the number of changes.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from typing import Any

import networkx as nx

from .. import graph
from ..addrs import ConfigAddress, ResourceAddress
from ..config import Config, ResourceInstanceConfig
from ..diagnostics import Diagnostic, DiagnosticsError
from ..eval.plain import UNKNOWN, contains_unknown, prune_nulls, strip_unknown
from ..plan.model import Action, Plan, ResourceChange
from ..sdk.protocol import ApplyRequest, ApplyResult, Provider, StateObject
from ..sdk.values import set_path
from ..state import ResourceInstance, State
from ..state.backends import StateBackend
from ..cluster import DERIVATIONS, Derivation, Inputs
from ..cluster.rollout import NAME as ROLLOUTS, Rollout, from_summary, gated
from .planner import AUTOSCALE, _state_ctx, cluster_settings
from .refresh import to_object

Say = Callable[[str], None]
# Called after an object is created or updated, before what depends on it starts: returns errors to stop
# there (the availability work waits for health here).
Gate = Callable[[ResourceChange, StateObject], list[Diagnostic]]

_VERBS = {
    Action.CREATE: ("Creating...", "Creation complete"),
    Action.UPDATE: ("Modifying...", "Modifications complete"),
    Action.DELETE: ("Destroying...", "Destruction complete"),
    Action.REPLACE: ("Replacing...", "Replacement complete"),
}


class ChangeFailed(Exception):
    def __init__(self, diags: list[Diagnostic]):
        super().__init__("; ".join(d.summary for d in diags))
        self.diagnostics = diags


@dataclass
class ApplyOutcome:
    added: int = 0
    changed: int = 0
    destroyed: int = 0
    diagnostics: list[Diagnostic] = field(default_factory=list)
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.interrupted and not any(d.is_error for d in self.diagnostics)


def change_key(c: ResourceChange) -> Hashable:
    """A change's node in the apply graph: its address, or (address, deposed key) for a deposed object."""
    return c.address if c.deposed is None else (c.address, c.deposed)


def rollout_key(block: str) -> tuple[str, str]:
    """A rolling update's node in the apply graph: it stands for the replacements of its replicas."""
    return ("rollout", block)


def plan_rollouts(plan: Plan) -> dict[Hashable, Rollout]:
    """The plan's rolling updates by graph key, with the replacements they carry out."""
    found = plan.summary(ROLLOUTS)
    return {rollout_key(r.block): r for r in from_summary(found.data if found else None)}


def change_graph(plan: Plan) -> tuple[nx.DiGraph[Hashable], dict[Hashable, ResourceChange]]:
    """Creates and updates after what they depend on; deletes before what depended on them.

    The replacements a rolling update carries out are one node of the graph (the rollout), and every object
    the cluster layer produces (each node's program) comes after it: the rollout keeps them exact itself,
    step by step, and they settle once it is done."""
    changes = {change_key(c): c for c in plan.changes if c.action is not Action.NOOP}
    by_addr = {c.address: c for c in plan.changes if c.action is not Action.NOOP and c.deposed is None}
    group: dict[Hashable, Hashable] = {}
    for rkey, r in plan_rollouts(plan).items():
        for m in r.members:
            c = by_addr.get(m)
            if c is not None and c.action is Action.REPLACE:
                group[m] = rkey
    g = graph.build({group.get(k, k): [] for k in changes})

    def edge(a: Hashable, b: Hashable) -> None:
        a, b = group.get(a, a), group.get(b, b)
        if a != b:
            g.add_edge(a, b)

    for key, c in changes.items():
        if c.deposed is not None:
            main = by_addr.get(c.address)
            if main is not None:  # the object's new generation first, then the old one goes
                edge(change_key(main), key)
            continue
        for dep in plan.dependencies.get(c.address, []):
            d = by_addr.get(dep)
            if d is None:
                continue
            if c.action is Action.DELETE and d.action is Action.DELETE:
                edge(key, dep)  # delete the dependent first
            elif c.action is not Action.DELETE:
                edge(dep, key)
        if c.derived_by is not None:
            for rkey in set(group.values()):
                g.add_edge(rkey, key)
    return g, changes


def _without_facts(change: ResourceChange) -> ResourceChange:
    """The change with the values its provider planned: what the plan read ahead of it (facts, such as a new
    host's capacity) is unknown again, for the provider to report as it would without facts."""
    paths = getattr(change, "facts", None)  # None: a plan saved before facts existed
    if not paths or change.after is None:
        return change
    after = change.after
    for path in paths:
        after = set_path(after, tuple(path), UNKNOWN)
    return replace(change, after=after, facts=[])


def plan_world(plan: Plan, state: State) -> dict[ResourceAddress, dict[str, Any]]:
    """What providers may look up during apply: every object's planned values, else its recorded ones."""
    world: dict[ResourceAddress, dict[str, Any]] = {i.addr: i.attributes for i in state}
    for c in plan.changes:
        if c.deposed is not None:
            continue
        if c.after is not None:
            world[c.address] = c.after
        elif c.action is Action.DELETE:
            world.setdefault(c.address, c.before or {})
    return world


class Executor:
    def __init__(self, plan: Plan, config: Config | None, state: State, backend: StateBackend,
                 providers: dict[str, Provider], say: Say, parallelism: int = 10,
                 stop: threading.Event | None = None, gate: Gate | None = None,
                 derivations: tuple[Derivation, ...] = DERIVATIONS):
        self.plan = plan
        self.config = config
        self.state = state
        self.backend = backend
        self.providers = providers
        self.say = say
        if parallelism < 1:  # nothing would ever start, and the apply would look successful
            from .arguments import check_parallelism

            raise DiagnosticsError(check_parallelism(parallelism))
        self.parallelism = parallelism
        self.stop = stop or threading.Event()
        self.gate = gate
        self.derivations = derivations
        self.lock = threading.Lock()
        self.outcome = ApplyOutcome()
        self.world = plan_world(plan, state)
        self._expansions: dict[ConfigAddress, tuple[dict[ResourceAddress, ResourceInstanceConfig],
                                                    list[Diagnostic]]] = {}
        self._expansion_locks: dict[ConfigAddress, threading.Lock] = {}
        self._journal: Any = None
        self.plan_changes: dict[Hashable, ResourceChange] = {}
        self.rollouts: dict[Hashable, Rollout] = plan_rollouts(plan)
        scaled = plan.summary(AUTOSCALE)
        if config is not None and scaled is not None:  # the replica counts the plan used (a saved plan too)
            for block, c in (scaled.data.get("counts") or {}).items():
                if isinstance(c, dict) and isinstance(c.get("planned"), int):
                    config.scale[ResourceAddress.parse(block).config] = c["planned"]

    # -- state, always under self.lock ---------------------------------------------------------------
    def _record(self, inst: ResourceInstance | None, addr: ResourceAddress) -> None:
        """Make one change to the state durable before going on (the journal groups concurrent records into
        one write, so it is called outside the executor's lock)."""
        if self._journal is not None:
            if inst is None:
                self._journal.remove(addr)
            else:
                self._journal.set(inst)
            with self.lock:
                if inst is not None:
                    self.world[addr] = inst.attributes
            return
        with self.lock:
            if inst is None:
                self.state.discard(addr)
            else:
                self.state.set(inst)
                self.world[addr] = inst.attributes
            self.backend.write(self.state)

    # -- values known only now -----------------------------------------------------------------------
    def _expansion(self, caddr: ConfigAddress) -> tuple[dict[ResourceAddress, ResourceInstanceConfig],
                                                         list[Diagnostic]] | None:
        """The resource block evaluated against the state as it is now — once per block: every instance of a
        block has the same dependencies, all applied by the time the first instance is visited."""
        if self.config is None or caddr not in self.config.resources:
            return None
        with self.lock:
            lock = self._expansion_locks.setdefault(caddr, threading.Lock())
        with lock:
            cached = self._expansions.get(caddr)
            if cached is None:
                with self.lock:
                    ctx = _state_ctx(self.state, self.config)
                instances, diags = self.config.expand(self.config.resources[caddr], ctx)
                cached = self._expansions[caddr] = ({i.address: i for i in instances}, diags)
            return cached

    def _fresh_after(self, change: ResourceChange, provider: Provider) -> ResourceChange:
        """Re-evaluate the configuration once what the change depends on exists: unknowns become known.

        Only when configured values are unknown; the provider's computed attributes (an id, an ip) are
        unknown until the provider makes the object, and need no re-evaluation."""
        if change.after is None:
            return change
        info = provider.resource_types().get(change.address.type)
        computed = info.computed if info else frozenset()
        if not contains_unknown({k: v for k, v in change.after.items() if k not in computed}):
            return change
        if change.derived_by is not None:
            return self._derived_again(change, provider)
        found = self._expansion(change.address.config)
        if found is None:
            return change
        instances, diags = found
        if any(d.is_error for d in diags):
            raise ChangeFailed([d for d in diags if d.is_error])
        inst = instances.get(change.address)
        if inst is None:
            return change
        prior = self.state.get(change.address) if change.action is Action.UPDATE else None
        values = prune_nulls(inst.values)
        values.update(change.derived)  # the cluster layer's decisions at plan time (a replica's node)
        planned = provider.plan(change.address, to_object(prior) if prior else None, values)
        return replace(change, after=planned.planned)

    def derive_objects(self, dv: Derivation, status: dict[ResourceAddress, Any] | None = None
                       ) -> dict[ResourceAddress, dict[str, Any]]:
        """The objects ``dv`` produces, derived again from the state as it is now: what they depend on exists,
        so values unknown at plan time (a pod's IP) are known. ``status`` overrides observed status (a replica
        leaving the endpoints during a rolling update)."""
        if self.config is None:
            return {}
        with self.lock:
            objects = list(self.state)
        read = {i.addr: i.attributes for i in objects if i.type in dv.reads}
        mine = {i.addr: i.attributes for i in objects if i.type in dv.writes | dv.produces}
        wanted = {a: v for a, v in mine.items() if a.type in dv.writes}
        changing = {c.address for c in self.plan.changes if c.action is not Action.NOOP}
        seen = {a: st for a, st in self.plan.status.items() if a not in changing}
        seen.update(status or {})
        made = dv.derive(Inputs(read, wanted, mine, cluster_settings(self.config), seen)).objects
        return {a: prune_nulls(dict(m.values)) for a, m in made.items()}

    def _derived_again(self, change: ResourceChange, provider: Provider) -> ResourceChange:
        """An object the cluster layer produces, derived again from the state as it is now."""
        dv = next((d for d in self.derivations if d.name == change.derived_by), None)
        if dv is None or self.config is None:
            return change
        made = self.derive_objects(dv).get(change.address)
        if made is None:
            return change
        prior = self.state.get(change.address) if change.action is Action.UPDATE else None
        planned = provider.plan(change.address, to_object(prior) if prior else None, made)
        return replace(change, after=planned.planned)

    # -- one change ----------------------------------------------------------------------------------
    def visit(self, key: Hashable) -> None:
        if key in self.rollouts:
            return self._roll(self.rollouts[key])
        change = _without_facts(self.plan_changes[key])
        addr = change.address
        provider = self.providers.get(addr.type)
        if provider is None:
            raise ChangeFailed([Diagnostic.error("No provider for resource type",
                                                 f'No installed provider handles "{addr.type}".',
                                                 address=str(addr))])
        start_verb, done_verb = _VERBS[change.action]
        label = f"{addr} (deposed object {change.deposed})" if change.deposed else str(addr)
        self.say(f"{label}: {start_verb}")
        started = time.monotonic()
        new: StateObject | None = None
        if change.deposed is not None:
            self._delete_deposed(change, provider)
        elif change.action is Action.DELETE:
            self._delete(change, provider)
        elif change.action is Action.CREATE:
            new = self._create(self._fresh_after(change, provider), provider)
            self._wait_ready(change, provider, new)
        elif change.action is Action.UPDATE:
            new = self._update(self._fresh_after(change, provider), provider)
        elif change.create_before_destroy:
            new = self._replace_create_first(self._fresh_after(change, provider), provider)
        else:
            self._delete(change, provider)
            new = self._create(self._fresh_after(change, provider), provider)
        elapsed = int(time.monotonic() - started)
        ident = f" [id={new.attributes['id']}]" if new is not None and new.attributes.get("id") else ""
        self.say(f"{label}: {done_verb} after {elapsed}s{ident}")
        with self.lock:
            if change.action is Action.CREATE:
                self.outcome.added += 1
            elif change.action is Action.UPDATE:
                self.outcome.changed += 1
            elif change.action is Action.DELETE:
                self.outcome.destroyed += 1
            else:
                self.outcome.added += 1
                self.outcome.destroyed += 1

    def _wait_ready(self, change: ResourceChange, provider: Provider, new: StateObject) -> None:
        """A new replica of a block that rolls is ready (running, healthy when checked) before what depends on
        it — its node's program, the service endpoints — goes on, as a rolling update's successors are."""
        strategy = gated(change.after)
        if strategy is None:
            return
        from .rollout import not_ready

        problem = not_ready(provider, new, strategy.healthy_deadline, self.stop.is_set)
        if problem is not None:
            raise ChangeFailed([problem])
        self.say(f"{change.address}: ready")

    def _roll(self, rollout: Rollout) -> None:
        from .rollout import RolloutFailed, RolloutRunner

        members = {a: _without_facts(self.plan_changes[a]) for a in rollout.members
                   if a in self.plan_changes and self.plan_changes[a].action is Action.REPLACE}
        self.say(f"{rollout.block}: Rolling update of {len(members)} replica(s) in {len(rollout.waves)} wave(s)...")
        started = time.monotonic()
        runner = RolloutRunner(self, rollout, members)
        try:
            runner.run()
        except RolloutFailed as e:
            raise ChangeFailed(e.diagnostics) from None
        finally:
            with self.lock:
                self.outcome.added += len(runner.replaced)
                self.outcome.destroyed += len(runner.replaced)
        self.say(f"{rollout.block}: Rolling update complete after {int(time.monotonic() - started)}s")

    def _request(self, change: ResourceChange, prior: ResourceInstance | None, planned: dict[str, Any] | None,
                 keep: tuple[StateObject, ...] = ()) -> ApplyRequest:
        addr = change.address
        return ApplyRequest(addr, planned, to_object(prior) if prior is not None else None, self.world,
                            lambda msg: self.say(f"{addr}: {msg}"), keep,
                            tuple(tuple(p) for p in change.after_sensitive))

    def _errors(self, result: ApplyResult, addr: ResourceAddress) -> list[Diagnostic]:
        errors = [d for d in result.diagnostics if d.is_error]
        for d in errors:  # name the change that failed; keep what the provider blamed (a node) in the text
            if d.address and d.address != str(addr):
                d.detail = f"({d.address}) {d.detail}"
            d.address = str(addr)
        return errors

    def _create(self, change: ResourceChange, provider: Provider,
                deposed: tuple[dict[str, Any], ...] = ()) -> StateObject:
        addr = change.address
        # Intent first: if we die after the provider acts, the state still lists the object.
        intent = ResourceInstance.for_address(addr, provider.name, strip_unknown(change.after or {}),
                                              status="tainted", dependencies=self._deps(addr), deposed=deposed)
        self._record(intent, addr)
        olds = tuple(StateObject(addr, dict(d.get("attributes") or {}), dict(d.get("private") or {}))
                     for d in deposed)
        result = provider.create(self._request(change, None, change.after, olds))
        return self._settle(change, provider, result, deposed)

    def _update(self, change: ResourceChange, provider: Provider) -> StateObject:
        prior = self.state.get(change.address)
        result = provider.update(self._request(change, prior, change.after))
        return self._settle(change, provider, result, prior.deposed if prior is not None else ())

    def _settle(self, change: ResourceChange, provider: Provider, result: ApplyResult,
                deposed: tuple[dict[str, Any], ...]) -> StateObject:
        addr = change.address
        errors = self._errors(result, addr)
        if result.new is None:
            if change.action is not Action.UPDATE:
                # nothing was made: drop the intent (deposed objects stay recorded)
                self._record(self._only_deposed(addr, provider, deposed), addr)
            if errors:
                raise ChangeFailed(errors)
            raise ChangeFailed([Diagnostic.error("Provider returned no object",
                                                 f"{provider.name} did not return the new object.",
                                                 address=str(addr))])
        inst = ResourceInstance.for_address(
            addr, provider.name, result.new.attributes, private=result.new.private or None,
            sensitive_attributes=tuple(tuple(p) for p in change.after_sensitive),
            dependencies=self._deps(addr), status="tainted" if errors else "ready", deposed=deposed)
        self._record(inst, addr)
        if errors:
            raise ChangeFailed(errors)
        if self.gate is not None:
            gate_errors = self.gate(change, result.new)
            if gate_errors:
                raise ChangeFailed(gate_errors)
        return result.new

    def _only_deposed(self, addr: ResourceAddress, provider: Provider,
                      deposed: tuple[dict[str, Any], ...]) -> ResourceInstance | None:
        """What the state keeps of an address whose current object is gone: its deposed objects, if any."""
        if not deposed:
            return None
        return ResourceInstance.for_address(addr, provider.name, {}, status="tainted",
                                            dependencies=self._deps(addr), deposed=deposed)

    def _delete(self, change: ResourceChange, provider: Provider) -> None:
        addr = change.address
        prior = self.state.get(addr)
        if prior is None:
            return
        result = provider.delete(self._request(change, prior, None))
        errors = self._errors(result, addr)
        if errors:
            raise ChangeFailed(errors)
        self._record(self._only_deposed(addr, provider, prior.deposed), addr)

    def _replace_create_first(self, change: ResourceChange, provider: Provider) -> StateObject:
        """create_before_destroy: depose the current object, create the new one, delete the deposed one."""
        addr = change.address
        prior = self.state.get(addr)
        if prior is None:
            return self._create(change, provider)
        key = secrets.token_hex(4)
        deposed = (*prior.deposed, {"key": key, "attributes": dict(prior.attributes),
                                    "private": prior.private if isinstance(prior.private, dict) else {}})
        new = self._create(change, provider, deposed)
        self._delete_deposed(replace(change, deposed=key), provider)
        return new

    def _delete_deposed(self, change: ResourceChange, provider: Provider) -> None:
        addr = change.address
        inst = self.state.get(addr)
        if inst is None:
            return
        entry = next((d for d in inst.deposed if d.get("key") == change.deposed), None)
        if entry is None:
            return
        old = StateObject(addr, dict(entry.get("attributes") or {}), dict(entry.get("private") or {}))
        current = (to_object(inst),) if inst.attributes else ()
        result = provider.delete(ApplyRequest(addr, None, old, self.world,
                                              lambda msg: self.say(f"{addr} (deposed): {msg}"), current))
        errors = self._errors(result, addr)
        if errors:
            raise ChangeFailed(errors)
        with self.lock:
            inst = self.state.get(addr)
        if inst is None:
            return
        rest = tuple(d for d in inst.deposed if d.get("key") != change.deposed)
        if not inst.attributes and not rest and inst.status == "tainted":
            self._record(None, addr)  # only the deposed object was left
        else:
            self._record(inst.model_copy(update={"deposed": rest}), addr)

    def _deps(self, addr: ResourceAddress) -> tuple[str, ...]:
        return tuple(str(a) for a in self.plan.dependencies.get(addr, []))

    # -- the whole plan ------------------------------------------------------------------------------
    def run(self) -> ApplyOutcome:
        g, self.plan_changes = change_graph(self.plan)
        journal = getattr(self.backend, "journal", None)
        if journal is not None:
            with journal(self.state) as j:
                self._journal = j
                try:
                    result = graph.walk(g, self.visit, self.parallelism, self.stop)
                finally:
                    self._journal = None
                    self._outputs()
        else:
            result = graph.walk(g, self.visit, self.parallelism, self.stop)
            self._outputs()
            with self.lock:
                self.backend.write(self.state)
        for key, exc in sorted(result.errors.items(), key=lambda kv: str(kv[0])):
            if isinstance(exc, ChangeFailed):
                self.outcome.diagnostics.extend(exc.diagnostics)
            else:
                addr = key[0] if isinstance(key, tuple) else key
                self.outcome.diagnostics.append(Diagnostic.error(
                    f"Failed to apply {addr}", f"{type(exc).__name__}: {exc}", address=str(addr),
                    hint="the other independent changes were applied; fix the cause and run orch apply again"))
        # An interrupt makes the apply an interrupted one, whether or not it cancelled anything: the changes in
        # flight when it came finished, and the user is told the run was cut short (exit 1), never "complete".
        self.outcome.interrupted = self.stop.is_set()
        return self.outcome

    def _outputs(self) -> None:
        """The outputs as the state now is (the journal's close writes them with everything else)."""
        with self.lock:
            if self.plan.destroy:
                for name in list(self.state.outputs):
                    del self.state.outputs[name]
            elif self.config is not None:
                outputs, diags = self.config.evaluate_outputs(_state_ctx(self.state, self.config))
                self.outcome.diagnostics.extend(d for d in diags if d.is_error)
                for name in list(self.state.outputs):
                    if name not in outputs:
                        del self.state.outputs[name]
                for name, out in outputs.items():
                    if not contains_unknown(out.value):
                        self.state.set_output(name, out.value, out.sensitive)


__all__ = ["ApplyOutcome", "ChangeFailed", "Executor", "Gate", "UNKNOWN", "change_graph", "plan_world"]
