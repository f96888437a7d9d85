"""Carrying out a rolling update: waves of replacements gated by health, endpoints kept exact, rollback.

The waves are decided at plan time (:mod:`orchdsl.cluster.rollout`); this runs them, through the executor's
own create/delete steps (so every step is recorded in the state as it happens):

* an *unavailable* replica leaves the endpoints of every node (the derived node programs are synced without
  it), drains for ``drain_timeout``, is deleted; its successor is created;
* a *surge* replica's successor is created beside it (the old one is kept as a deposed object, as a
  create_before_destroy replacement does);
* every successor of the wave must be ready (running, healthy when it has a check) within
  ``healthy_deadline``; then the node programs are synced again — the successors join the endpoints, the
  surge replicas' old objects leave them — and, after ``drain_timeout``, the old objects are deleted.

When a successor is not ready in time (or cannot be made), the rollout stops. ``on_failure = "rollback"``
returns every replica it touched to the previous version (old objects still deposed come back as they are;
the others are made again from their recorded values, in waves, gated by health); ``"pause"`` only undoes the
failed wave. Either way the apply fails naming the replica and its last health output, and the state lists
exactly what exists, so the next plan still shows the change.
"""

from __future__ import annotations

import concurrent.futures as cf
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..addrs import ResourceAddress
from ..cluster.rollout import Rollout, Strategy, Wave, away, failed, serving
from ..diagnostics import Diagnostic
from ..eval.plain import UNKNOWN, strip_unknown
from ..plan.model import Action, ResourceChange
from ..sdk.protocol import ApplyRequest, ObjectStatus, Provider, StateObject
from ..state import ResourceInstance
from .refresh import to_object

if TYPE_CHECKING:
    from .apply import Executor

POLL_SECONDS = 0.5
LEAVING = ObjectStatus("stopped", message="leaving the endpoints (rolling update)")


class RolloutFailed(Exception):
    def __init__(self, diags: list[Diagnostic]):
        super().__init__("; ".join(d.summary for d in diags))
        self.diagnostics = diags


def wait_ready(provider: Provider, obj: StateObject, deadline: float, stop: Callable[[], bool],
               clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
               ) -> tuple[bool, ObjectStatus | None]:
    """Poll the object's status until it serves (True), turns unhealthy or exits (False, early: Docker never
    restarts an unhealthy container), or the deadline passes (False). Returns the last status seen."""
    last: ObjectStatus | None = None
    while True:
        last = observe(provider, obj)
        if last is not None and serving(last):
            return True, last
        if last is not None and last.reachable and any(
                m.health == "unhealthy" or m.state in ("exited", "dead") for m in last.members):
            return False, last
        if clock() >= deadline or stop():
            return False, last
        sleep(POLL_SECONDS)


def observe(provider: Provider, obj: StateObject) -> ObjectStatus | None:
    """The object's status now: the provider's ``status`` step when it has one (exactly the recorded
    containers), else a refresh of the object."""
    status_of = getattr(provider, "status", None)
    if callable(status_of):
        got = status_of([obj]).get(obj.address)
        return got if isinstance(got, ObjectStatus) else None
    now = provider.refresh([obj]).current.get(obj.address)
    return now.status if now is not None else None


def not_ready(provider: Provider, obj: StateObject, within: float, stop: Callable[[], bool]) -> Diagnostic | None:
    """None once the new object serves; else the error naming it and its last health output."""
    ok, status = wait_ready(provider, obj, time.monotonic() + within, stop)
    if ok:
        return None
    return Diagnostic.error("Replica not healthy", _why_not(obj.address, status, within), address=str(obj.address),
                            hint="look at the container's logs and health command, fix the configuration, run "
                                 "orch apply again")


def _why_not(addr: ResourceAddress, status: ObjectStatus | None, waited: float) -> str:
    problems = status.problems() if status is not None else []
    said = "; ".join(problems) if problems else (f"is {status.state}" if status else "was never observed")
    return f"{addr} did not become healthy within {waited:g}s: {said}"


class RolloutRunner:
    """One pod block's rolling update inside an :class:`~orchdsl.engine.apply.Executor`."""

    def __init__(self, ex: Executor, rollout: Rollout, changes: dict[ResourceAddress, ResourceChange]):
        self.ex = ex
        self.rollout = rollout
        self.strategy = rollout.strategy
        self.changes = changes  # member -> its planned replacement
        self.leaving: set[ResourceAddress] = set()  # out of the endpoints while their object still exists
        self.replaced: list[ResourceAddress] = []  # members whose successor serves and whose old object is gone
        self.deposed: dict[ResourceAddress, str] = {}  # this wave's surge members: the key of their old object
        self.away: set[ResourceAddress] = set()  # members whose node did not answer at plan time
        self.idle: set[ResourceAddress] = set()  # members that served nothing at plan time (unhealthy, away)
        self.before: dict[ResourceAddress, dict[str, Any]] = {
            a: dict(c.before or {}) for a, c in changes.items()}

    def say(self, msg: str) -> None:
        self.ex.say(f"{self.rollout.block}: {msg}")

    # -- the rollout ----------------------------------------------------------------------------------
    def run(self) -> int:
        """Carry out every wave; returns the number of replicas replaced; raises RolloutFailed."""
        waves = [Wave(tuple(a for a in w.surge if a in self.changes),
                      tuple(a for a in w.unavailable if a in self.changes)) for w in self.rollout.waves]
        waves = [w for w in waves if w.members]
        status = self.ex.plan.status
        # replicas that serve nothing (unhealthy, on a lost node) leave every node's endpoints at once
        idle = self.idle = {a for a in self.changes if failed(status.get(a))}
        self.away = {a for a in idle if not getattr(status.get(a), "reachable", True)}  # their node is not answering
        if idle:
            self.leaving |= idle
            self.sync()
        for i, wave in enumerate(waves, 1):
            if self.ex.stop.is_set():
                raise RolloutFailed([Diagnostic.error(
                    "Rolling update interrupted", f"{self.rollout.block}: stopped before wave {i} of {len(waves)}; "
                    f"{len(self.replaced)} replica(s) replaced, the others keep the previous version.",
                    address=self.rollout.block, hint="run orch apply again to finish it")])
            self.say(f"wave {i}/{len(waves)}: {', '.join(str(a) for a in wave.members)}")
            problems = self._wave(wave, {a: self.changes[a] for a in wave.members})
            if problems and self.ex.stop.is_set():
                # interrupted (Ctrl+C, SIGTERM): the step in flight is finished and recorded, nothing is undone;
                # the next plan shows what is left
                raise RolloutFailed(problems)
            if problems:
                self._undo_wave(wave)
                diags = problems
                if self.strategy.on_failure == "rollback" and self.replaced:
                    diags = diags + self._rollback()
                raise RolloutFailed(diags)
        return len(self.replaced)

    def _wave(self, wave: Wave, changes: dict[ResourceAddress, ResourceChange]) -> list[Diagnostic]:
        """One wave: stop the unavailable ones, start every successor, wait for health, swap the endpoints,
        drain and stop the surge ones' old objects. Returns the errors (the wave failed) or []."""
        s = self.strategy
        self.deposed = {}
        # a replica whose node does not answer cannot be stopped: it stays recorded (deposed) beside its
        # successor, and goes when its node answers again (the next plan deletes deposed objects)
        stop_first = [a for a in wave.unavailable if a not in self.away]
        if stop_first:
            self.leaving |= set(stop_first)
            self.sync()
            if set(stop_first) - self.idle:  # replicas that serve nothing (unhealthy) have nothing to drain
                self._drain()
            stopped = self._each(stop_first, lambda a: self._delete_current(changes[a]))
            if stopped:
                return stopped  # an old replica that could not be stopped gets no successor beside it
        made: dict[ResourceAddress, StateObject] = {}
        errors: list[Diagnostic] = []

        def start(a: ResourceAddress) -> None:
            made[a] = self._start_successor(changes[a], keep_old=a not in stop_first)
            with self.ex.lock:
                self.leaving.discard(a)  # the old object is deposed or gone: the address is the successor's

        errors += self._each(wave.members, start)
        deadline = time.monotonic() + s.healthy_deadline

        def gate(a: ResourceAddress) -> None:
            ok, status = wait_ready(self._provider(a), made[a], deadline, self.ex.stop.is_set)
            if not ok and self.ex.stop.is_set():
                raise RolloutFailed([Diagnostic.error(
                    "Rolling update interrupted", f"{a} was made and is recorded; its health was not awaited.",
                    address=str(a), hint="run orch apply (or orch reconcile) again to finish the rollout")])
            if not ok:
                raise RolloutFailed([Diagnostic.error(
                    "Replica not healthy", _why_not(a, status, s.healthy_deadline), address=str(a),
                    hint=f"the rolling update of {self.rollout.block} stopped ({s.on_failure}); look at the "
                         "container's logs and health command, fix the configuration, run orch apply again")])
            self.say(f"{a} is ready")

        errors += self._each([a for a in wave.members if a in made], gate)
        if errors:
            return errors
        self.sync()  # successors in, surge replicas' old objects out
        for a in sorted(set(self.deposed) & self.away):
            self.say(f"{a}: the old object stays recorded on its node, which does not answer; orch removes it "
                     "when the node answers again")
        gone = [a for a in self.deposed if a not in self.away]
        if gone:
            self._drain()
            errors += self._each(gone, lambda a: self._delete_old(changes[a], self.deposed[a]))
        if not errors:
            self.replaced.extend(wave.members)
            self.deposed = {}
        return errors

    # -- steps ----------------------------------------------------------------------------------------
    def _provider(self, addr: ResourceAddress) -> Provider:
        return self.ex.providers[addr.type]

    def _each(self, addrs: Any, fn: Callable[[ResourceAddress], None]) -> list[Diagnostic]:
        """Run ``fn`` for every address at once (a wave's replicas are independent); collect the errors."""
        from .apply import ChangeFailed

        addrs = list(addrs)
        errors: list[Diagnostic] = []
        if not addrs:
            return errors
        with cf.ThreadPoolExecutor(min(len(addrs), max(1, self.ex.parallelism))) as pool:
            futs = {pool.submit(fn, a): a for a in addrs}
            for f in cf.as_completed(futs):
                exc = f.exception()
                if isinstance(exc, (ChangeFailed, RolloutFailed)):
                    errors += exc.diagnostics
                elif exc is not None:
                    errors.append(Diagnostic.error(f"Failed to replace {futs[f]}", f"{type(exc).__name__}: {exc}",
                                                   address=str(futs[f])))
        return sorted(errors, key=lambda d: d.address or "")

    def _drain(self) -> None:
        if self.strategy.drain_timeout > 0:
            self.ex.stop.wait(self.strategy.drain_timeout)

    def _delete_current(self, change: ResourceChange) -> None:
        self.ex._delete(replace(change, action=Action.DELETE), self._provider(change.address))

    def _start_successor(self, change: ResourceChange, keep_old: bool) -> StateObject:
        """Create the successor; with ``keep_old`` the current object stays (deposed) until it is drained."""
        ex, addr = self.ex, change.address
        provider = self._provider(addr)
        fresh = ex._fresh_after(change, provider)
        prior = ex.state.get(addr)
        if not keep_old or prior is None or not prior.attributes:
            return ex._create(replace(fresh, action=Action.CREATE), provider,
                              prior.deposed if prior is not None else ())
        key = secrets.token_hex(4)
        with ex.lock:
            self.deposed[addr] = key
        deposed = (*prior.deposed, {"key": key, "attributes": dict(prior.attributes),
                                    "private": prior.private if isinstance(prior.private, dict) else {}})
        return ex._create(replace(fresh, action=Action.CREATE), provider, deposed)

    def _delete_old(self, change: ResourceChange, key: str) -> None:
        self.ex._delete_deposed(replace(change, action=Action.DELETE, deposed=key), self._provider(change.address))

    def sync(self) -> None:
        """Every existing derived object (each node's program) made again from the state as it is now, with
        the replicas leaving excluded: endpoints follow the rollout step by step."""
        ex = self.ex
        status = {a: LEAVING for a in self.leaving}
        for dv in ex.derivations:
            if not dv.produces:
                continue
            made = ex.derive_objects(dv, status)
            for addr, values in sorted(made.items()):
                inst = ex.state.get(addr)
                if inst is None or self._away(addr, values):
                    continue  # not made yet, or on a node that does not answer (the next plan catches up)
                provider = ex.providers.get(addr.type)
                if provider is None:
                    continue
                planned = provider.plan(addr, to_object(inst), values).planned
                if strip_unknown(planned) == inst.attributes:
                    continue
                change = ResourceChange(addr, Action.UPDATE, dict(inst.attributes), planned, derived_by=dv.name)
                ex._update(change, provider)
                self.say(f"{addr} updated (endpoints)")

    def _away(self, addr: ResourceAddress, values: dict[str, Any]) -> bool:
        return away(addr, values, self.ex.plan.status)

    # -- failure --------------------------------------------------------------------------------------
    def _undo_wave(self, wave: Wave) -> None:
        """Put the failed wave's replicas back as they were: old objects still deposed become current again
        (their successors deleted); replicas whose old object is gone are made again from its values."""
        self.leaving -= set(wave.members)
        for addr, key in sorted(self.deposed.items()):
            self._restore_deposed(addr, key)
        missing = [a for a in wave.members if a not in self.deposed]
        self.deposed = {}
        if missing:
            self._remake_previous(missing)
        self.sync()

    def _restore_deposed(self, addr: ResourceAddress, key: str) -> None:
        ex = self.ex
        provider = self._provider(addr)
        inst = ex.state.get(addr)
        if inst is None:
            return
        entry = next((d for d in inst.deposed if d.get("key") == key), None)
        if entry is None:
            return
        if inst.attributes:  # the failed successor goes
            old = StateObject(addr, dict(entry.get("attributes") or {}), dict(entry.get("private") or {}))
            result = provider.delete(ApplyRequest(addr, None, to_object(inst), ex.world,
                                                  lambda m: ex.say(f"{addr}: {m}"), (old,)))
            if any(d.is_error for d in result.diagnostics):
                return  # both stay recorded: the next plan deletes the deposed one or the tainted successor
        rest = tuple(d for d in inst.deposed if d.get("key") != key)
        back = ResourceInstance.for_address(addr, inst.provider, dict(entry.get("attributes") or {}),
                                            private=entry.get("private") or None, dependencies=inst.dependencies,
                                            status="ready", deposed=rest)
        ex._record(back, addr)
        self.say(f"{addr} back to the previous version (kept serving)")

    def previous(self, addr: ResourceAddress) -> ResourceChange:
        """A change making the previous version of ``addr`` again, from its recorded values: what the
        provider computes (an id, an ip) is unknown again; what the cluster layer decided (its node) stays."""
        change = self.changes[addr]
        info = self._provider(addr).resource_types().get(addr.type)
        computed = info.computed if info else frozenset()
        before = self.before[addr]
        after = {k: (UNKNOWN if k in computed and k not in change.derived else v) for k, v in before.items()}
        return replace(change, after=after, before=None, derived={k: before[k] for k in change.derived
                                                                  if k in before})

    def _remake_previous(self, addrs: list[ResourceAddress]) -> None:
        ex = self.ex
        for addr in addrs:
            inst = ex.state.get(addr)
            if inst is not None and inst.attributes.get("id") is not None and \
                    inst.attributes.get("id") == self.before[addr].get("id"):
                continue  # still the previous version (it could not be stopped): nothing to undo
            if inst is not None and inst.attributes:  # its failed successor first
                ex._delete(replace(self.changes[addr], action=Action.DELETE), self._provider(addr))
            try:
                ex._create(replace(self.previous(addr), action=Action.CREATE), self._provider(addr),
                           inst.deposed if inst is not None else ())
                self.say(f"{addr} made again with the previous version")
            except Exception as e:  # noqa: BLE001 - reported; the state lists what exists
                ex.say(f"{addr}: could not make the previous version again: {e}")

    def _rollback(self) -> list[Diagnostic]:
        """Every replica already replaced returns to the previous version, in waves like the update's."""
        members = list(self.replaced)
        self.say(f"rolling back {len(members)} replica(s) to the previous version")
        back = RolloutRunner(self.ex, Rollout(self.rollout.block, replace(self.strategy, on_failure="pause"),
                                              _same_waves(self.rollout, members)),
                             {a: self.previous(a) for a in members})
        now = {a: self.ex.state.get(a) for a in members}
        back.before = {a: dict(inst.attributes) if inst is not None else {} for a, inst in now.items()}
        try:
            back.run()
        except RolloutFailed as e:
            return [Diagnostic.error("Rollback incomplete", "; ".join(d.detail for d in e.diagnostics),
                                     address=self.rollout.block,
                                     hint="orch plan shows what each replica runs now")]
        self.say("rolled back: every replica runs the previous version")
        return []


def _same_waves(rollout: Rollout, members: list[ResourceAddress]) -> tuple[Wave, ...]:
    wanted = set(members)
    waves = [Wave(tuple(a for a in w.surge if a in wanted), tuple(a for a in w.unavailable if a in wanted))
             for w in rollout.waves]
    return tuple(w for w in waves if w.members)


__all__ = ["LEAVING", "RolloutFailed", "RolloutRunner", "Strategy", "not_ready", "observe", "wait_ready"]
