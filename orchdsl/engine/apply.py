"""The executor: carry out a plan with a concurrent walk, saving state after every change.

Crash safety: before a provider creates or replaces an object, the state
records the intent (the instance with status "tainted"); the object is
recorded "ready" once the provider returns. A process killed at any moment
therefore leaves a state that lists every object that may exist: the next
refresh finds out which do, and the plan replaces the half-made ones.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from ..addrs import ResourceAddress
from ..config import Config
from ..diagnostics import Diagnostic
from .. import graph
from ..plan.model import UNKNOWN, Action, Plan, ResourceChange
from ..provider import Provider
from ..state import LocalBackend, ResourceInstance, State
from .diff import contains_unknown
from .placement import POD
from .planner import _prune_nulls, _state_ctx
from .refresh import to_object

Say = Callable[[str], None]

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


def change_graph(plan: Plan):
    """Creates and updates after what they depend on; deletes before what depended on them."""
    changes = {c.address: c for c in plan.changes if c.action is not Action.NOOP}
    g = graph.build({a: [] for a in changes})
    for addr, c in changes.items():
        for dep in plan.dependencies.get(addr, []):
            d = changes.get(dep)
            if d is None:
                continue
            if c.action is Action.DELETE and d.action is Action.DELETE:
                g.add_edge(addr, dep)  # delete the dependent first
            elif c.action is not Action.DELETE and d.action is not Action.DELETE:
                g.add_edge(dep, addr)
            elif c.action is not Action.DELETE and d.action is Action.DELETE:
                g.add_edge(dep, addr)
    return g, changes


class Executor:
    def __init__(self, plan: Plan, config: Config | None, state: State, backend: LocalBackend,
                 providers: dict[str, Provider], say: Say, parallelism: int = 10,
                 stop: threading.Event | None = None):
        self.plan = plan
        self.config = config
        self.state = state
        self.backend = backend
        self.providers = providers
        self.say = say
        self.parallelism = parallelism
        self.stop = stop or threading.Event()
        self.lock = threading.Lock()
        self.outcome = ApplyOutcome()

    # -- state, always under self.lock ---------------------------------------------
    def _save(self) -> None:
        self.backend.write(self.state)

    def _record(self, inst: ResourceInstance | None, addr: ResourceAddress) -> None:
        with self.lock:
            if inst is None:
                self.state.remove(addr)
            else:
                self.state.set(inst)
            self._save()

    # -- one change ----------------------------------------------------------------------
    def _fresh_after(self, change: ResourceChange) -> ResourceChange:
        """Re-evaluate the configuration now that dependencies are applied: unknowns become known."""
        if self.config is None or change.after is None or not contains_unknown(change.after):
            return change
        decl = self.config.resources.get(change.address.config)
        provider = self.providers[change.address.type]
        if decl is None:
            return change
        with self.lock:
            ctx = _state_ctx(self.state, self.config)
        instances, diags = self.config.expand(decl, ctx)
        if any(d.is_error for d in diags):
            raise ChangeFailed([d for d in diags if d.is_error])
        for inst in instances:
            if inst.address == change.address:
                prior = self.state.get(change.address) if change.action is Action.UPDATE else None
                values = _prune_nulls(inst.values)
                if change.address.type == POD and isinstance(change.after.get("node"), str):
                    values["node"] = change.after["node"]  # placed by the scheduler at plan time
                planned = provider.plan(change.address, to_object(prior) if prior else None, values)
                return replace(change, after=planned.planned)
        return change

    def visit(self, addr: ResourceAddress) -> None:
        change = self.plan_changes[addr]
        provider = self.providers.get(addr.type)
        if provider is None:
            raise ChangeFailed([Diagnostic.error("No provider for resource type",
                                                 f'No installed provider handles "{addr.type}".',
                                                 address=str(addr))])
        start_verb, done_verb = _VERBS[change.action]
        self.say(f"{addr}: {start_verb}")
        started = time.monotonic()
        change = self._fresh_after(change)
        prior = self.state.get(addr)
        if change.action in (Action.CREATE, Action.REPLACE):
            # Intent first: if we die after the provider acts, the state still lists the object.
            intent_attrs = _known(change.after) if change.action is Action.CREATE else dict(prior.attributes)
            base = prior if prior is not None else ResourceInstance.for_address(addr, provider.name, {})
            self._record(base.model_copy(update={"attributes": intent_attrs, "status": "tainted",
                                                 "provider": provider.name,
                                                 "dependencies": self._deps(addr)}), addr)
        result = provider.apply(change, to_object(prior) if prior else None,
                                lambda msg: self.say(f"{addr}: {msg}"))
        errors = [d for d in result.diagnostics if d.is_error]
        for d in errors:  # name the change that failed; keep what the provider blamed (a node) in the text
            if d.address and d.address != str(addr):
                d.detail = f"({d.address}) {d.detail}"
            d.address = str(addr)
        if change.action is Action.DELETE:
            if errors:
                raise ChangeFailed(errors)
            self._record(None, addr)
        else:
            if result.new is None:
                if change.action is Action.CREATE:
                    self._record(None, addr)  # nothing was made: drop the intent
                if errors:
                    raise ChangeFailed(errors)
                raise ChangeFailed([Diagnostic.error("Provider returned no object",
                                                     f"{provider.name} did not return the new object.",
                                                     address=str(addr))])
            inst = ResourceInstance.for_address(
                addr, provider.name, result.new.attributes, private=result.new.private or None,
                sensitive_attributes=tuple(tuple(p) for p in change.after_sensitive),
                dependencies=self._deps(addr), status="tainted" if errors else "ready")
            self._record(inst, addr)
            if errors:
                raise ChangeFailed(errors)
        elapsed = int(time.monotonic() - started)
        ident = ""
        if result.new is not None and result.new.attributes.get("id"):
            ident = f" [id={result.new.attributes['id']}]"
        self.say(f"{addr}: {done_verb} after {elapsed}s{ident}")
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

    def _deps(self, addr: ResourceAddress) -> tuple[str, ...]:
        return tuple(str(a) for a in self.plan.dependencies.get(addr, []))

    # -- the whole plan ----------------------------------------------------------------------
    def run(self) -> ApplyOutcome:
        g, self.plan_changes = change_graph(self.plan)
        result = graph.walk(g, self.visit, self.parallelism, self.stop)
        for addr, exc in sorted(result.errors.items(), key=lambda kv: str(kv[0])):
            if isinstance(exc, ChangeFailed):
                self.outcome.diagnostics.extend(exc.diagnostics)
            else:
                self.outcome.diagnostics.append(Diagnostic.error(
                    f"Failed to apply {addr}", f"{type(exc).__name__}: {exc}", address=str(addr),
                    hint="the other independent changes were applied; fix the cause and run orch apply again"))
        self.outcome.interrupted = self.stop.is_set() and any(o == graph.CANCELLED for o in result.outcome.values())
        self._outputs()
        return self.outcome

    def _outputs(self) -> None:
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
            self._save()


def _known(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _known(x) for k, x in v.items() if x is not UNKNOWN}
    if isinstance(v, list):
        return [_known(x) for x in v if x is not UNKNOWN]
    return v
