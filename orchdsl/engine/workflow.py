"""plan / apply / destroy / show / graph / import, as the CLI runs them.

Each step returns diagnostics rather than raising; the CLI renders them.
Saved plans are versioned, checksummed JSON documents (``orchdsl.plan.planfile``): reading one never runs
anything, and anything orch did not write is refused with a diagnostic.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from ..addrs import ResourceAddress
from ..config import Config, load_config
from ..diagnostics import Diagnostic, DiagnosticsError
from ..plan.model import Action, Plan
from ..plan.planfile import SavedPlan as SavedPlan  # re-exported: the CLI saves plans through here
from ..plan.planfile import check_target, read_plan_file, write_plan_file
from ..provider import discover, providers_by_type
from ..sdk.protocol import ChangeView, Facts, Provider, StateObject
from ..state import LocalBackend, ResourceInstance, State
from ..state.backends import BackendChoice, StateBackend, open_backend, read_choice
from .apply import ApplyOutcome, Executor, plan_world
from .planner import PlanOptions, make_plan
from .refresh import Refreshed, refresh

@dataclass
class Session:
    """Everything one command works with."""

    directory: Path
    config: Config | None
    backend: StateBackend
    providers: dict[str, Provider]  # by resource type
    diagnostics: list[Diagnostic] = field(default_factory=list)


def load_providers(extra: list[Provider] | None = None) -> tuple[list[Provider], list[Diagnostic]]:
    """Installed providers (entry points), or instead ``ORCH_PROVIDER_MODULES=module:Class,...``
    when set (development and tests: load providers by import path in place of the installed ones)."""
    diags: list[Diagnostic] = []
    classes: list[type] = []
    explicit = [s for s in os.environ.get("ORCH_PROVIDER_MODULES", "").split(",") if s.strip()]
    if not explicit:
        try:
            classes.extend(discover().values())
        except Exception as e:  # a broken plugin must not take the CLI down
            diags.append(Diagnostic.error("Failed to load providers", str(e)))
    for spec in explicit:
        mod, _, cls = spec.strip().partition(":")
        try:
            classes.append(getattr(importlib.import_module(mod), cls))
        except Exception as e:
            diags.append(Diagnostic.error("Failed to load provider", f"{spec}: {e}",
                                          hint="ORCH_PROVIDER_MODULES takes module:Class entries"))
    return [c() for c in classes] + list(extra or []), diags


def open_session(directory: str | Path, var_overrides: dict[str, str] | None = None,
                 var_files: list[str] | None = None, state_path: str | None = None,
                 providers: list[Provider] | None = None, need_config: bool = True) -> Session:
    d = Path(directory)
    config, diags = (load_config(d, var_overrides or {}, var_files or []) if need_config else (None, []))
    if providers is None:
        providers, pdiags = load_providers()
        diags += pdiags
    by_type, tdiags = providers_by_type(providers)
    diags += tdiags
    backend: StateBackend
    if state_path:
        backend = LocalBackend(state_path)
    else:
        try:
            choice = read_choice(d) if config is None else \
                config.backend or BackendChoice("local", None, config.settings.get("namespace", ""))
            backend = open_backend(d, None, choice)
            diags += _workspace_problems(d, choice, backend)
        except DiagnosticsError as e:
            if not any(x.is_error for x in diags):  # parse errors were reported by load_config already
                diags += e.diagnostics
            backend = LocalBackend.for_config_dir(d)  # never used: the errors stop the command
    return Session(d, config, backend, by_type, diags)


def _workspace_problems(d: Path, choice: BackendChoice, backend: StateBackend) -> list[Diagnostic]:
    """The selected workspace must be a valid name and exist (a typo in ORCH_WORKSPACE must not plan an empty
    state in a namespace of its own)."""
    from ..state import workspace

    ws = workspace.current(d)
    problem = workspace.name_problem(ws)
    if problem:
        return [Diagnostic.error("Invalid workspace", problem, hint=f"unset {workspace.ENV} or select another")]
    if ws == workspace.DEFAULT:
        return []
    names = workspace.listed(d, choice, backend)  # the pg backend's connection serves the command after
    if ws not in names:
        return [Diagnostic.error("Workspace does not exist", f'the selected workspace "{ws}" does not exist.',
                                 hint=f"orch workspace new {ws} {d}, or select one of: {', '.join(names)}")]
    return []


def configure_providers(session: Session, state: State, extra: dict[str, Any] | None = None) -> list[Diagnostic]:
    """Providers learn the state's lineage and the configuration's cluster settings (its namespace...);
    ``extra``: settings of the command (the reconcile loop's shorter ``connect_timeout``)."""
    from .planner import cluster_settings

    settings = cluster_settings(session.config) if session.config is not None else {}
    settings.update(extra or {})
    diags = []
    for p in {id(p): p for p in session.providers.values()}.values():
        diags += p.configure(dict(settings), state.lineage)
    return diags


def plan(session: Session, state: State, options: PlanOptions) -> tuple[Plan | None, list[Diagnostic]]:
    diags = list(configure_providers(session, state))
    if session.config is None or any(d.is_error for d in diags):
        return None, diags
    refreshed = refresh(state, session.providers) if options.refresh else Refreshed(state.copy())
    for d in refreshed.diagnostics:
        if d.is_error and d.address:
            # One unreadable host (a node that is down) must not stop the work on the others: its objects
            # keep what the state recorded, and changes to them fail at apply, named, on their own.
            d.severity = "warning"
            d.detail = (d.detail + " " if d.detail else "") + \
                "orch goes on with what the state recorded for its objects; changes to them will fail."
    diags += refreshed.diagnostics
    if any(d.is_error for d in refreshed.diagnostics):
        return None, diags
    the_plan, pdiags = make_plan(session.config, state, refreshed, session.providers, options)
    if options.refresh and not any(d.is_error for d in diags + pdiags):
        found, fdiags = gather_facts(session, the_plan, refreshed.state)
        diags += fdiags
        if found:
            # Plan again with what the platform says about the objects to create (a new host's capacity):
            # facts are an input of the pure planner, like the refreshed state.
            the_plan, pdiags = make_plan(session.config, state, refreshed, session.providers, options,
                                         facts=found)
    diags += pdiags
    # -refresh=false reads nothing, as in Terraform: no facts and no preflight (a new node's capacity stays
    # unknown, and a node or image that is not there fails at apply instead)
    if options.refresh and not any(d.is_error for d in diags):
        diags += preflight(session, the_plan, refreshed.state)
    if refreshed.adopted:
        # Objects made by an interrupted apply: recorded now so that the plan's changes line up.
        for addr in refreshed.adopted:
            diags.append(Diagnostic("warning", "Adopted an object the state had lost",
                                    f"{addr} exists (made by an earlier apply of this state) and was not "
                                    "recorded; orch adopts it instead of creating a duplicate.",
                                    address=str(addr)))
    the_plan.adopted = list(refreshed.adopted)
    the_plan.prior_state = refreshed.state
    return the_plan, diags


def _provider_views(session: Session, the_plan: Plan, method: str, actions: frozenset[Action]
                    ) -> Iterator[tuple[Callable[..., Any], list[ChangeView]]]:
    """For each provider offering the optional ``method``: it and the planned changes of its types with one of
    ``actions`` (deposed objects left out), when there are any."""
    for p in {id(p): p for p in session.providers.values()}.values():
        fn = getattr(p, method, None)
        if fn is None:
            continue
        types = {t for t, q in session.providers.items() if q is p}
        views = [ChangeView(c.address, c.action.value, c.before, c.after) for c in the_plan.changes
                 if c.address.type in types and c.action in actions and c.deposed is None]
        if views:
            yield fn, views


_CREATING = frozenset({Action.CREATE, Action.REPLACE})
_CHANGING = frozenset(Action) - {Action.NOOP}


def gather_facts(session: Session, the_plan: Plan, state: State
                 ) -> tuple[dict[ResourceAddress, dict[str, Any]], list[Diagnostic]]:
    """Providers' read-only facts about the objects the plan creates (``Provider.facts``): values to plan with
    where their own planned ones are unknown."""
    found: dict[ResourceAddress, dict[str, Any]] = {}
    diags: list[Diagnostic] = []
    world: dict[ResourceAddress, dict[str, Any]] | None = None
    for read, views in _provider_views(session, the_plan, "facts", _CREATING):
        world = world if world is not None else plan_world(the_plan, state)
        result: Facts = read(world, views)
        wanted = {v.address for v in views}
        found.update({a: v for a, v in result.values.items() if a in wanted and v})
        diags += result.diagnostics
    return found, diags


def preflight(session: Session, the_plan: Plan, state: State) -> list[Diagnostic]:
    """Providers' read-only checks of the planned changes (a new host reachable, an image present), so that
    what cannot be carried out fails the plan, before anything changes."""
    diags: list[Diagnostic] = []
    world: dict[ResourceAddress, dict[str, Any]] | None = None
    for check, views in _provider_views(session, the_plan, "preflight", _CHANGING):
        world = world if world is not None else plan_world(the_plan, state)
        diags += check(world, views)
    return diags


def check_plan_target(path: str | Path) -> list[Diagnostic]:
    """Problems with saving a plan at ``path`` (a directory, a missing directory), found before planning."""
    return check_target(path)


def save_plan(path: str | Path, saved: SavedPlan) -> None:
    """Write a plan file: JSON, 0600, atomically. Raises DiagnosticsError; leaves nothing behind on failure."""
    write_plan_file(path, saved)


def load_plan(path: str | Path) -> SavedPlan:
    """Read a plan file. Raises DiagnosticsError (one diagnostic) for anything ``save_plan`` did not write."""
    return read_plan_file(path)


def check_fresh(saved_plan: Plan, state: State) -> list[Diagnostic]:
    if saved_plan.lineage != state.lineage or saved_plan.serial != state.serial:
        return [Diagnostic.error(
            "Saved plan is stale",
            f"The plan was made against state serial {saved_plan.serial} (lineage {saved_plan.lineage}), but "
            f"the state is now at serial {state.serial} (lineage {state.lineage}): something changed it since.",
            hint="run orch plan again and apply the new plan")]
    return []


# What asks orch to stop: Ctrl+C, and what CI cancellations, `timeout`, systemd and `docker stop` send (SIGTERM),
# or a closed terminal (SIGHUP). All of them are handled like Ctrl+C, as Terraform does.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _signal_name(signum: int) -> str:
    return "" if signum == signal.SIGINT else f" ({signal.Signals(signum).name})"


class Interrupts:
    """During apply. First stop signal (Ctrl+C, SIGTERM, SIGHUP): stop starting new changes, finish the ones in
    flight, save state. Second: KeyboardInterrupt (what a second Ctrl+C does by default)."""

    def __init__(self, say: Callable[[str], None]):
        self.stop = threading.Event()
        self.say = say
        self._old: dict[int, Any] = {}

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handle) for s in STOP_SIGNALS}
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.stop.set()
        try:
            self.say(f"Interrupt received{_signal_name(signum)}.\nPlease wait for orch to exit or data loss may "
                     "occur.\nGracefully shutting down...")
        except OSError:  # SIGHUP: the terminal may be gone; the stop is what matters
            pass

    def __exit__(self, *exc: object) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old = {}


def prime(session: Session, state: State) -> list[Diagnostic]:
    """Configure the providers and let them read the state (which tells them e.g. how to reach nodes),
    for commands that act without planning first: applying a saved plan, import."""
    diags = configure_providers(session, state)
    if not any(d.is_error for d in diags):
        diags += refresh(state, session.providers).diagnostics
    return diags


def apply(session: Session, the_plan: Plan, state: State, say: Callable[[str], None], parallelism: int = 10,
          stop: threading.Event | None = None) -> ApplyOutcome:
    from .arguments import check_parallelism

    if check_parallelism(parallelism):  # before anything is written
        raise DiagnosticsError(check_parallelism(parallelism))
    refreshed: State | None = the_plan.prior_state
    work = refreshed.copy() if refreshed is not None else state
    # The refreshed view (adopted objects included) becomes the record before anything changes.
    if refreshed is not None and not work.same_content(state):
        session.backend.write(work)
    ex = Executor(the_plan, session.config, work, session.backend, session.providers, say, parallelism, stop)
    return ex.run()


def import_resource(session: Session, state: State, addr: ResourceAddress, object_id: str
                    ) -> list[Diagnostic]:
    """Adopt an existing object: the provider reads it by id, the state records it."""
    if state.get(addr) is not None:
        return [Diagnostic.error("Resource already managed", f"{addr} is already in the state.",
                                 hint="orch state rm it first to import another object there")]
    if session.config is not None and addr.config not in session.config.resources:
        return [Diagnostic.error("Configuration for import target does not exist",
                                 f"The configuration has no {addr.config} block.",
                                 hint=f"add the block for {addr.config} before importing")]
    if session.config is not None:  # the key as the block expands: no key, an index, a for_each key
        from .arguments import import_key

        decl = session.config.resources[addr.config]
        bad_key = import_key(addr, decl.mode, _instances_of(session.config, decl, state))
        if bad_key:
            return bad_key
    provider = session.providers.get(addr.type)
    if provider is None:
        return [Diagnostic.error("No provider for resource type", f'No provider handles "{addr.type}".')]
    reader = getattr(provider, "import_object", None)
    if reader is None:
        return [Diagnostic.error("Import not supported", f"The {provider.name} provider cannot import objects.")]
    primed = prime(session, state)
    if any(d.is_error for d in primed):
        return primed
    obj: StateObject | None = reader(addr, object_id, {i.addr: i.attributes for i in state})
    if obj is None:
        return [Diagnostic.error("Cannot import non-existent remote object",
                                 f'No {addr.type} with id "{object_id}" exists.', address=str(addr))]
    managed = _managed_as(state, addr.type, obj.attributes.get("id"))
    if managed is not None:
        return [Diagnostic.error(
            "Object already managed",
            f'The {addr.type} with id "{obj.attributes.get("id")}" is already managed by orch as {managed}: '
            f"importing it at {addr} too would give one object two addresses, each planned on its own.",
            address=str(addr), hint=f"to track it under the new address, move it: orch state mv {managed} {addr}")]
    state.set(ResourceInstance.for_address(addr, provider.name, obj.attributes, private=obj.private or None))
    session.backend.write(state)
    return []


def _instances_of(config: Config, decl: Any, state: State) -> list[ResourceAddress] | None:
    """The instances a resource block expands to against the state; None when that is not known here."""
    from .planner import _state_ctx

    try:
        instances, diags = config.expand(decl, _state_ctx(state, config))
    except Exception:  # noqa: BLE001 - an expansion that needs more than the state: not checked here
        return None
    if any(d.is_error for d in diags):
        return None
    return sorted(i.address for i in instances)


def _managed_as(state: State, rtype: str, object_id: Any) -> ResourceAddress | None:
    """The address the state records an object of this type and id at (current or deposed), if any."""
    if not object_id:
        return None
    for inst in state:
        if inst.type != rtype:
            continue
        if inst.attributes.get("id") == object_id or \
                any((d.get("attributes") or {}).get("id") == object_id for d in inst.deposed):
            return inst.addr
    return None


_SAY_LOCK = threading.Lock()


def say_stdout(line: str) -> None:
    """One progress line, whole: changes run in threads and must not interleave their output."""
    with _SAY_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
