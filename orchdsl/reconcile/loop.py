"""``orch reconcile``: the control loop, agentless — refresh, decide (purely), apply what was decided.

One *cycle* holds the state lock from its refresh to its last change, so two reconcilers never act at once
and an ``orch apply`` started meanwhile waits for the cycle to end. A cycle:

1. refreshes every object with its status;
2. decides with the pure rules of :mod:`.decide` and :mod:`.autoscale`: replicas unhealthy after their
   check's retries are replaced; nodes unreachable for longer than ``lost_after`` are *lost* (the scheduler
   places their replicas elsewhere; the stale containers stay recorded and go when the node answers again);
   autoscaled pods get the replica count the Horizontal Pod Autoscaler's rule gives;
3. plans with those decisions (the same planner as ``orch plan``) and keeps the changes that restore what
   was applied: the decisions above, objects deleted or stopped behind orch's back, deposed leftovers, and
   every node's program (endpoints follow health). Changes of the configuration itself are not applied —
   that is ``orch apply``'s, after review — only reported as pending;
4. applies them through the executor: replacements go as rolling updates (successor healthy first, old one
   out of the endpoints, drained, stopped), whatever the pod's ``strategy``.

It never touches an object whose node does not answer (except to move replicas away from a lost node).
Each action and each failure is one line (or one JSON object with ``--json``); nothing raises out of a cycle.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..addrs import ConfigAddress, ResourceAddress
from ..cluster.rollout import Strategy
from ..diagnostics import Diagnostic, DiagnosticsError
from ..plan import model as M
from ..plan.model import Action, Plan, ResourceChange
from ..sdk.protocol import ObjectStatus
from ..state import LocalBackend, State
from ..state.backends import StateBackend, open_backend
from ..state.pg import PgBackend
from .autoscale import Recommendation, ScaleDecision, decide_scale
from .decide import Heal, NodeSeen, ReplicaView, heal, track_unreachable
from .leader import Leadership

POD = "pod"
NODE = "node"
# how long a cycle waits for a node's SSH connection (orch apply waits 10s): a node that does not answer must
# not hold every cycle — and the endpoints of every other node — for long
CONNECT_TIMEOUT = 3.0


@dataclass(frozen=True)
class Settings:
    interval: float = 5.0
    lost_after: float = 300.0
    parallelism: int = 10
    lock_timeout: float = 0.0  # beyond it, a cycle that finds the state locked says so and tries next time


@dataclass(frozen=True)
class Event:
    """One line of the reconciler's output."""

    kind: str  # replace, reschedule, recreate, restart, remove, scale, endpoints, waiting, pending, failed, ...
    subject: str  # an address, a node, a block
    reason: str
    at: float = field(default_factory=time.time)

    def text(self) -> str:
        stamp = datetime.fromtimestamp(self.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{stamp} {self.kind} {self.subject}: {self.reason}" if self.reason else \
            f"{stamp} {self.kind} {self.subject}"

    def to_json(self) -> str:
        stamp = datetime.fromtimestamp(self.at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return json.dumps({"time": stamp, "action": self.kind, "subject": self.subject, "reason": self.reason})


HISTORY_LINES = 200  # the reconciler's last actions kept beside the state, for orch status


def history_path(state_path: str | Path) -> Path:
    """Where the local backend keeps the reconciler's last actions (JSON lines, data only): beside the state."""
    return Path(f"{state_path}.reconcile.jsonl")


def record(backend: StateBackend | str | Path, events: list[Event]) -> None:
    """Keep events in the state's backend (beside a local state file, a table of the pg one), the last
    :data:`HISTORY_LINES`; a failure to do so is no failure of the loop (the history is for orch status)."""
    if not events:
        return
    if isinstance(backend, str | Path):
        backend = LocalBackend(backend)
    try:
        backend.record_events([e.to_json() for e in events], HISTORY_LINES)
    except (OSError, DiagnosticsError):
        pass


def read_history(backend: StateBackend | str | Path, last: int = 10) -> list[dict[str, Any]]:
    """The reconciler's last actions, newest last (lines that are not what it writes are skipped)."""
    if isinstance(backend, str | Path):
        backend = LocalBackend(backend)
    try:
        raw = backend.event_lines(last * 4)
    except (OSError, DiagnosticsError):
        return []
    out = []
    for line in raw:
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and all(isinstance(doc.get(k), str) for k in ("time", "action", "subject")):
            out.append(doc)
    return out[-last:]


@dataclass
class CycleResult:
    events: list[Event] = field(default_factory=list)
    seconds: float = 0.0
    ok: bool = True


def replica_view(addr: ResourceAddress, attrs: dict[str, Any], status: ObjectStatus | None) -> ReplicaView:
    node = attrs.get("node") if isinstance(attrs.get("node"), str) else None
    if status is None:
        return ReplicaView(addr, node, "unknown", True, None)
    detail = "; ".join(p.removeprefix("is unhealthy: ").removeprefix("is unhealthy ") for p in status.problems())
    return ReplicaView(addr, node, status.state, status.reachable, status.health, detail)


def node_of(values: dict[str, Any] | None) -> str | None:
    v = (values or {}).get("node")
    return v if isinstance(v, str) else None


@dataclass
class Selection:
    """The plan's changes a cycle carries out, each with what to call it, and what it leaves for apply."""

    changes: list[ResourceChange]
    events: list[Event]
    pending: list[ResourceChange]


def select(the_plan: Plan, was: set[ResourceAddress], decided: Heal, scaled: set[ConfigAddress]) -> Selection:
    """Which changes of a full plan restore what was applied (pure): see the module's docstring. Each node's
    program is left out here: the reconciler plans again targeting what it keeps and the programs, so that
    these follow what exists (and its health), not what pending configuration changes would make."""
    replace_why = dict(decided.replace)
    lost = dict(decided.lost_nodes)
    keep: list[ResourceChange] = []
    events: list[Event] = []
    pending: list[ResourceChange] = []
    for c in the_plan.changes:
        if c.action is Action.NOOP or c.derived_by is not None:
            continue
        kind, why = _kind(c, was, replace_why, lost, scaled)
        if kind is None:
            pending.append(c)
            continue
        if away(the_plan, c) and kind != "reschedule":
            continue  # its node does not answer: nothing to do there now (a lost node's replicas move)
        keep.append(c)
        events.append(Event(kind, str(c.address), why))
    return Selection(keep, events, pending)


def away(the_plan: Plan, c: ResourceChange) -> bool:
    """Whether a change touches an object that, or whose node (before or after), did not answer."""
    from ..cluster.rollout import away as did_not_answer

    return any(did_not_answer(c.address, values or {}, the_plan.status) for values in (c.before, c.after))


def _kind(c: ResourceChange, was: set[ResourceAddress], replace_why: dict[ResourceAddress, str],
          lost: dict[str, str], scaled: set[ConfigAddress]) -> tuple[str | None, str]:
    if c.address in replace_why and c.action is Action.REPLACE:
        return "replace", replace_why[c.address]
    if c.action is Action.REPLACE and node_of(c.before) in lost:
        return "reschedule", f"to node {node_of(c.after) or '?'}: node {node_of(c.before)} is lost " \
                             f"({lost[node_of(c.before) or '']})"
    if c.deposed is not None and c.action is Action.DELETE:
        return "remove", "the old object of an earlier replacement (its node answers again)"
    if c.address.config in scaled and c.action in (Action.CREATE, Action.DELETE):
        return "scale", "up" if c.action is Action.CREATE else "down"
    if c.action is Action.CREATE and c.address in was:
        return "recreate", "it was deleted outside of orch, or its containers are gone"
    if c.action is Action.UPDATE and c.action_reason == M.UPDATE_BECAUSE_STATUS:
        return "restart", c.reason.removeprefix("because ")
    if c.action is Action.REPLACE and c.action_reason == M.REPLACE_BECAUSE_TAINTED:
        return "recreate", "the last apply did not finish creating it"
    return None, ""


class Reconciler:
    """The loop's memory between cycles (when nodes stopped answering, recent scale recommendations) and its
    cycles. ``emit`` prints one event; ``stop`` ends the loop after the current step."""

    def __init__(self, directory: str | Path, settings: Settings, emit: Callable[[Event], None],
                 stop: threading.Event | None = None, var_overrides: dict[str, str] | None = None,
                 var_files: list[str] | None = None, state_path: str | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.directory = Path(directory)
        self.settings = settings
        self._out = emit
        self._events: list[Event] = []  # this cycle's, for the history beside the state
        self.stop = stop or threading.Event()
        self.var_overrides = var_overrides or {}
        self.var_files = var_files or []
        self.state_path = state_path
        self.clock = clock
        self.unreachable_since: dict[str, float] = {}
        self.history: dict[ConfigAddress, tuple[Recommendation, ...]] = {}
        self._said: dict[str, str] = {}  # what was last said about a standing condition (a waiting node)
        self.last: CycleResult | None = None
        self._backend: StateBackend | None = None  # this cycle's: the history is recorded there

    def emit(self, event: Event) -> None:
        self._events.append(event)
        self._out(event)

    def say_once(self, key: str, event: Event, same: str | None = None) -> None:
        """A standing condition (a node not answering, pending changes) is said when it changes, not every cycle
        (``same``: what makes it the same condition, when its reason changes with time)."""
        seen = same if same is not None else event.reason
        if self._said.get(key) != seen:
            self._said[key] = seen
            self.emit(event)

    def forget(self, key: str) -> None:
        self._said.pop(key, None)

    # -- the loop -------------------------------------------------------------------------------------
    def run(self, once: bool) -> int:
        """Cycle until stopped (or once). Exit status: 0 (stopped on request, or one clean cycle), 1 when the
        single cycle of ``--once`` failed."""
        leadership = self._leadership()
        try:
            while True:
                leading = self._leading(leadership)
                result = self.cycle() if leading else CycleResult(ok=leading is not None)
                if once:
                    return 0 if result.ok else 1
                if self.stop.wait(max(0.0, self.settings.interval - result.seconds)):
                    return 0
        finally:
            if leadership is not None:
                leadership.close()

    def _leadership(self) -> Leadership | None:
        """With the pg backend, the leader lock that makes one reconciler among several the active one."""
        if self.state_path:
            return None
        try:
            backend = open_backend(self.directory)
        except DiagnosticsError:
            return None  # the first cycle says what is wrong with the configuration
        return Leadership(backend) if isinstance(backend, PgBackend) else None

    def _leading(self, leadership: Leadership | None) -> bool | None:
        """Whether this reconciler is the one to act now; None when that could not be known (the server does not
        answer): it does not act, and ``--once`` exits 1."""
        if leadership is None:
            return True
        was = leadership.leading
        try:
            leading, holder = leadership.try_lead()
        except DiagnosticsError as e:
            d = e.diagnostics[0]
            self.say_once("leader", Event("failed", "leader election", f"{d.summary}: {d.detail}"))
            return None
        if leading and not was:
            self.say_once("leader", Event("leading", str(self.directory), "this reconciler is the active one"))
        elif not leading:
            self.say_once("leader", Event("standby", str(self.directory),
                                          f"{holder} is the active reconciler; this one takes over when it stops"))
        return leading

    def cycle(self) -> CycleResult:
        started = self.clock()
        result = CycleResult()
        self._events = []
        try:
            self._cycle(result)
        except DiagnosticsError as e:
            result.ok = False
            for d in e.diagnostics:
                self._fail(result, d)
        except Exception as e:  # noqa: BLE001 - the loop survives anything one cycle meets, and says it
            result.ok = False
            self._fail(result, Diagnostic.error("Reconcile cycle failed", f"{type(e).__name__}: {e}"))
        result.seconds = self.clock() - started
        self.last = result
        backend, self._backend = self._backend, None
        if backend is None and self.state_path:
            backend = LocalBackend(self.state_path)
        if backend is not None:
            record(backend, self._events)
            if isinstance(backend, PgBackend):
                backend.close()
        return result

    def _fail(self, result: CycleResult, d: Diagnostic) -> None:
        ev = Event("failed", d.address or "cycle", d.summary + (f": {d.detail}" if d.detail else ""))
        result.events.append(ev)
        self.emit(ev)

    def _cycle(self, result: CycleResult) -> None:
        from ..engine import workflow
        from ..engine.apply import Executor
        from ..engine.planner import PlanOptions, make_plan
        from ..engine.refresh import refresh
        from ..state.targets import parse_target

        session = workflow.open_session(self.directory, self.var_overrides, self.var_files, self.state_path)
        self._backend = session.backend
        errors = [d for d in session.diagnostics if d.is_error]
        if errors or session.config is None:
            raise DiagnosticsError(errors or [Diagnostic.error("No configuration", str(self.directory))])
        config = session.config
        try:
            with session.backend.lock("reconcile", self.settings.lock_timeout):
                state = session.backend.read()
                if not len(state):
                    self.say_once("empty", Event("waiting", str(self.directory), "nothing applied yet: run orch "
                                                 "apply first; the reconciler keeps what was applied"))
                    return
                self.forget("empty")
                diags = workflow.configure_providers(session, state, {"connect_timeout": CONNECT_TIMEOUT})
                if any(d.is_error for d in diags):
                    raise DiagnosticsError(diags)
                refreshed = refresh(state, session.providers)
                now = self.clock()
                decided = self._heal(state, refreshed.status, now)
                counts, scaled = self._scale(config, refreshed.state, refreshed.status, session.providers, now,
                                             result)
                options = PlanOptions(replace=[a for a, _ in decided.replace], rolling_default=Strategy(),
                                      lost_nodes=dict(decided.lost_nodes), scale=counts)
                full, pdiags = make_plan(config, state, refreshed, session.providers, options)
                errors = [d for d in pdiags if d.is_error]
                if errors:
                    raise DiagnosticsError(errors)
                chosen = select(full, {i.addr for i in state}, decided, scaled)
                self._pending(chosen.pending)
                # again, only what it keeps and every node's program: programs follow what exists
                targets = {c.address for c in chosen.changes} | {c.address for c in full.changes if c.derived_by}
                if not targets:
                    return
                options.targets = [parse_target(a) for a in sorted(targets)]
                the_plan, pdiags = make_plan(config, state, refreshed, session.providers, options)
                errors = [d for d in pdiags if d.is_error]
                if errors:
                    raise DiagnosticsError(errors)
                decided_here = {k.address for k in chosen.changes}
                kept = {id(c) for c in the_plan.changes if c.action is not Action.NOOP and
                        (c.address in decided_here or not away(the_plan, c))}
                if not kept:
                    return
                programs = [c for c in the_plan.changes if id(c) in kept and c.derived_by is not None]
                events = list(chosen.events)
                if programs:
                    events.append(Event("endpoints", ", ".join(str(c.address) for c in programs),
                                        "service endpoints follow what runs and its health"))
                for ev in events:
                    result.events.append(ev)
                    self.emit(ev)
                the_plan.changes = [c for c in the_plan.changes if id(c) in kept]
                work = refreshed.state.copy()
                if not work.same_content(state):
                    session.backend.write(work)
                the_plan.prior_state = refreshed.state
                outcome = Executor(the_plan, config, work, session.backend, session.providers,
                                   lambda line: None, self.settings.parallelism, self.stop).run()
                for d in outcome.diagnostics:
                    if d.is_error:
                        result.ok = False
                        self._fail(result, d)
        finally:
            for p in {id(p): p for p in session.providers.values()}.values():
                close = getattr(p, "close", None)
                if callable(close):
                    close()

    # -- decisions ----------------------------------------------------------------------------------
    def _heal(self, state: State, status: dict[ResourceAddress, ObjectStatus], now: float) -> Heal:
        nodes = [NodeSeen(i.addr.name, getattr(status.get(i.addr), "reachable", True))
                 for i in state if i.type == NODE]
        self.unreachable_since = track_unreachable(self.unreachable_since, nodes, now)
        replicas = [replica_view(i.addr, i.attributes, status.get(i.addr)) for i in state if i.type == POD]
        decided = heal(replicas, self.unreachable_since, now, self.settings.lost_after)
        for name, why in decided.waiting:
            self.say_once(f"node:{name}", Event("waiting", f"node.{name}", why), same="waiting")
        for name, why in decided.lost_nodes:
            self.say_once(f"node:{name}", Event("lost", f"node.{name}", why), same="lost")
        for n in nodes:
            if n.reachable and f"node:{n.name}" in self._said:
                self.forget(f"node:{n.name}")
                self.emit(Event("back", f"node.{n.name}", "answers again"))
        return decided

    def _scale(self, config: Any, state: State, status: dict[ResourceAddress, ObjectStatus],
               providers: dict[str, Any], now: float, result: CycleResult
               ) -> tuple[dict[ConfigAddress, int], set[ConfigAddress]]:
        """Autoscaled pods' replica counts (the HPA rule on Docker's CPU measurements)."""
        from . import scaling

        counts: dict[ConfigAddress, int] = {}
        changed: set[ConfigAddress] = set()
        for caddr, policy in scaling.autoscaled(config).items():
            replicas = [i for i in state if i.addr.config == caddr]
            usages = scaling.cpu_percent(replicas, status, providers)
            current = len(replicas)
            decision: ScaleDecision
            decision, self.history[caddr] = decide_scale(current, usages, policy, self.history.get(caddr, ()), now)
            counts[caddr] = decision.desired
            if decision.desired != current:
                changed.add(caddr)
                ev = Event("scale", str(caddr), f"{current} -> {decision.desired}: {decision.reason}")
                result.events.append(ev)
                self.emit(ev)
        return counts, changed

    def _pending(self, pending: list[ResourceChange]) -> None:
        if not pending:
            self.forget("pending")
            return
        names = ", ".join(sorted({str(c.address) for c in pending})[:5]) + ("..." if len(pending) > 5 else "")
        self.say_once("pending", Event("pending", "configuration",
                                       f"{len(pending)} change(s) not applied by the reconciler ({names}): "
                                       "review them with orch plan, apply with orch apply"))


__all__ = ["CycleResult", "Event", "HISTORY_LINES", "Reconciler", "Selection", "Settings", "history_path",
           "read_history", "record", "replica_view", "select"]
