"""Checks of command-line arguments: addresses, counts and paths.

Every argument of every command goes through one of these before anything is read or changed, so that an
argument never means more than it says: an empty or blank address or path is refused (it is most often an
unset shell variable, and would otherwise mean "everything" or "the current directory"), an address that
matches nothing is an error naming the close ones, a count that would make a command do nothing is refused,
and options that contradict each other are named. Each check returns diagnostics (empty when fine); the CLI
prints them and stops.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..addrs import ConfigAddress, ResourceAddress
from ..diagnostics import Diagnostic

UNSET_HINT = "an empty argument is often an unset shell variable: check the command line"
CONFIG_SUFFIX = ".orch"


def _empty(text: str | None) -> bool:
    return text is not None and not text.strip()


def empty_argument(text: str | None, what: str, summary: str, example: str = "") -> list[Diagnostic]:
    """``text`` given but empty or blank."""
    if not _empty(text):
        return []
    return [Diagnostic.error(summary, f"{what} is empty{'; ' + example if example else ''}.", hint=UNSET_HINT)]


# ---- paths -----------------------------------------------------------------------------------------

def check_directory(text: str | None, what: str = "DIR") -> list[Diagnostic]:
    """A configuration directory argument: not empty, exists, is a directory."""
    if text is None:
        return []
    if _empty(text):
        return [Diagnostic.error("Invalid configuration directory",
                                 f"The configuration directory ({what}) is empty: orch does not read the current "
                                 "directory in its place.", hint=UNSET_HINT + ", or pass . for the current "
                                                                              "directory")]
    p = Path(text)
    if not p.exists():
        return [Diagnostic.error("No configuration directory", f"{text} does not exist.",
                                 hint="pass the directory that holds your .orch files")]
    if not p.is_dir():
        return [Diagnostic.error("No configuration directory", f"{text} is not a directory.",
                                 hint="pass the directory that holds your .orch files")]
    return []


def check_paths(paths: Sequence[str], what: str = "PATH") -> list[Diagnostic]:
    """File or directory arguments (validate, fmt): none of them empty."""
    for p in paths:
        if _empty(p):
            return [Diagnostic.error(f"Invalid {what}", f"A {what} argument is empty: orch does not read the "
                                     "current directory in its place.",
                                     hint=UNSET_HINT + ", or pass . for the current directory")]
    return []


def check_file_argument(text: str | None, flag: str, what: str) -> list[Diagnostic]:
    """A file argument (``--state``, ``--out``, ``--var-file``, a plan file): not empty, not a directory."""
    if text is None:
        return []
    if _empty(text):
        return [Diagnostic.error(f"Invalid {flag}", f"The {what} path ({flag}) is empty.", hint=UNSET_HINT)]
    if Path(text).is_dir():
        return [Diagnostic.error(f"Invalid {flag}", f"{text} is a directory; {flag} names the {what} file.",
                                 hint=f"name a file, e.g. {Path(text) / _EXAMPLE_FILES.get(flag, 'FILE')}")]
    return []


_EXAMPLE_FILES = {"--state": "orch.orchstate", "--out": "plan.orchplan", "--var-file": "prod.orchvars"}


_NOT_PLAN_SUFFIXES = {".orch": "a configuration file", ".tf": "a configuration file", ".hcl": "a configuration file",
                      ".orchvars": "a variables file", ".orchvars.json": "a variables file",
                      ".orchstate": "a state file"}


def check_plan_out(text: str | None, state_path: str | Path | None) -> list[Diagnostic]:
    """``--out``: a plan file path that is not the state (or one of its companions: backup, lock, journal), a
    configuration, variables or state file: a plan saved there would overwrite it."""
    if not text or not text.strip():
        return []
    out = Path(text).resolve()
    companions = {}
    if state_path is not None:  # None: the state is not a file (the pg backend)
        state = Path(state_path).resolve()
        companions = {state: "the state file", Path(f"{state}.backup"): "the state's backup",
                      Path(f"{state}.lock"): "the state lock", Path(f"{state}.journal"): "the state journal"}
    what = companions.get(out) or next((w for suffix, w in _NOT_PLAN_SUFFIXES.items()
                                        if out.name.endswith(suffix)), None)
    if what is None:
        return []
    return [Diagnostic.error("Invalid --out", f"{text} is {what}: a plan saved there would overwrite it.",
                             hint="save the plan under its own name, e.g. --out plan.orchplan")]


def config_files(directory: str | Path) -> list[Path]:
    """The configuration files of a directory, as the loader reads them."""
    return sorted(p for p in Path(directory).glob(f"*{CONFIG_SUFFIX}") if p.is_file())


def no_configuration(directory: str | Path, command: str) -> list[Diagnostic]:
    """A directory without configuration files is not an empty configuration: planning it would destroy
    everything the state holds (Terraform's "No configuration files" error). ``orch destroy`` and
    ``orch plan --destroy`` do not need configuration and do not call this."""
    if not Path(directory).is_dir() or config_files(directory):
        return []
    detail = {
        "plan": "Plan requires configuration to be present. Planning without a configuration would mark "
                "everything for destruction, which is normally not what is desired. If you would like to "
                "destroy everything, run plan with the --destroy option.",
        "apply": "Apply requires configuration to be present. Applying without a configuration would mark "
                 "everything for destruction, which is normally not what is desired. If you would like to "
                 "destroy everything, run orch destroy instead.",
    }.get(command, f"orch {command} requires configuration to be present.")
    return [Diagnostic.error("No configuration files", f"There are no {CONFIG_SUFFIX} files in {directory}. "
                             + detail, hint=f"check the directory, or create a configuration file "
                                            f"({Path(directory) / ('main' + CONFIG_SUFFIX)})")]


# ---- counts ----------------------------------------------------------------------------------------

def check_parallelism(n: int) -> list[Diagnostic]:
    if n >= 1:
        return []
    return [Diagnostic.error("Invalid --parallelism", f"--parallelism is {n}: it must be at least 1 (with {n}, "
                             "no change could ever start).", hint="e.g. --parallelism 10 (the default)")]


# ---- plan options ----------------------------------------------------------------------------------

def check_plan_modes(*, destroy: bool, refresh: bool, refresh_only: bool, replace: bool,
                     json_flag: bool = False, fmt: str = "text") -> list[Diagnostic]:
    """Options that contradict each other (Terraform's "Incompatible plan options")."""
    out: list[Diagnostic] = []

    def bad(detail: str, hint: str) -> None:
        out.append(Diagnostic.error("Incompatible plan options", detail, hint=hint))

    if destroy and refresh_only:
        bad("The --destroy and --refresh-only options are mutually exclusive.", "use one of them")
    if refresh_only and not refresh:
        bad("--refresh-only with --refresh=false would read nothing: there is nothing to do.",
            "drop --refresh=false")
    if replace and refresh_only:
        bad("--replace plans a replacement, --refresh-only plans none: they cannot be used together.",
            "drop --refresh-only to replace")
    if replace and destroy:
        bad("--replace cannot be used with --destroy (orch destroy, plan --destroy): everything is destroyed, "
            "nothing replaced.", "drop --replace")
    if json_flag and fmt not in ("text", "json"):
        bad(f"--json and --format {fmt} ask for two renderings.", "use --format json, or --format alone")
    return out


def saved_plan_options(given: dict[str, bool]) -> list[Diagnostic]:
    """Planning options given with a saved plan file: a saved plan is applied exactly as it was made."""
    out: list[Diagnostic] = []
    if given.get("--var") or given.get("--var-file"):
        out.append(Diagnostic.error(
            "Can't set variables when applying a saved plan",
            "The --var and --var-file options cannot be used when applying a saved plan file, because a saved "
            "plan includes the variable values that were set when it was created.",
            hint="make a new plan with these values (orch plan --out FILE --var ...), or apply without them"))
    for flag in ("--target", "--replace", "--refresh", "--refresh-only", "--destroy"):
        if given.get(flag):
            out.append(Diagnostic.error(
                f"Can't use {flag} when applying a saved plan",
                f"A saved plan is applied exactly as it was made; {flag} would be ignored.",
                hint=f"make a new plan with {flag} (orch plan --out FILE {flag} ...) and apply that"))
    return out


# ---- addresses ---------------------------------------------------------------------------------------

def _close(text: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    return difflib.get_close_matches(text, sorted(set(candidates)), n=n, cutoff=0.6)


def _listed(addrs: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(addrs[:limit])
    return shown + (f" and {len(addrs) - limit} more" if len(addrs) > limit else "")


def _candidates(instances: Iterable[ResourceAddress], blocks: Iterable[ConfigAddress]) -> list[str]:
    out: set[str] = set()
    for a in instances:
        out.add(str(a))
        out.add(str(a.config))
        for i in range(1, len(a.module) + 1):
            out.add(".".join(str(s) for s in a.module[:i]))
    for b in blocks:
        out.add(str(b))
        for i in range(1, len(b.module) + 1):
            out.add(".".join(str(s) for s in b.module[:i]))
    return sorted(out)


def state_hint(text: str, state: Any) -> str:
    """For an address that matches nothing in the state: the close ones, else how to list them."""
    close = _close(text, _candidates((i.addr for i in state), ()))
    if close:
        return "did you mean " + " or ".join(f'"{c}"' for c in close) + "?"
    return '"orch state list" lists the addresses in the state'


def _hint_for(text: str, instances: Sequence[ResourceAddress], blocks: Sequence[ConfigAddress],
              same_resource: Sequence[ResourceAddress]) -> str:
    if same_resource:
        return f"{same_resource[0].config} has {_listed([str(a) for a in sorted(same_resource)])}"
    close = _close(text, _candidates(instances, blocks))
    if close:
        return "did you mean " + " or ".join(f'"{c}"' for c in close) + "?"
    return '"orch state list" lists the instances in the state; the resource blocks are in the configuration'


def unmatched_targets(targets: Sequence[Any], instances: Iterable[ResourceAddress],
                      blocks: Iterable[ConfigAddress], expanded: bool) -> list[Diagnostic]:
    """``--target`` patterns (``orchdsl.state.targets.Target``) that match no instance of the configuration
    or the state. ``expanded``: ``instances`` include every instance the configuration has (a plan);
    otherwise (destroy, refresh-only) a target also counts as matched when it names a configured block."""
    insts = sorted(set(instances))
    blks = sorted(set(blocks))
    out: list[Diagnostic] = []
    for t in targets:
        if any(t.matches(a) for a in insts):
            continue
        if not expanded and any(t.matches(b.instance(None)) or t.matches(b.instance(0)) or
                                (t.type is not None and b == ConfigAddress(t.type, t.name, t.module))
                                for b in blks):
            continue
        same = [a for a in insts if t.type is not None and a.config == ConfigAddress(t.type, t.name, t.module)]
        out.append(Diagnostic.error(
            "Target matches nothing",
            f"--target {t} matches no resource instance of the configuration or the state, so the plan would "
            "leave it out silently.", hint=_hint_for(str(t), insts, blks, same)))
    return out


def unmatched_replace(replace: Sequence[ResourceAddress], wanted: Iterable[ResourceAddress],
                      in_state: Iterable[ResourceAddress], targeted: Any) -> list[Diagnostic]:
    """``--replace`` addresses that do not name an instance the plan keeps. ``targeted(addr)`` says whether
    the plan covers ``addr`` (``--target``)."""
    want = sorted(set(wanted))
    state = set(in_state)
    out: list[Diagnostic] = []
    for r in replace:
        if r in want:
            if not targeted(r):
                out.append(Diagnostic.error(
                    "Invalid --replace", f"--replace {r}: {r} is not targeted (--target), so it would not be "
                    "replaced.", hint=f"add --target {r}, or drop --replace"))
            continue
        if r in state:
            out.append(Diagnostic.error(
                "Invalid --replace", f"--replace {r}: {r} is no longer in the configuration, so the plan "
                "destroys it; there is nothing to replace.", hint="drop --replace"))
            continue
        same = [a for a in want if a.config == r.config] or [a for a in sorted(state) if a.config == r.config]
        if same and r.key is None:
            detail = f"--replace {r}: {r.config} has {len(same)} instance{'s' if len(same) != 1 else ''}; " \
                     "--replace names exactly one."
        else:
            detail = f"--replace {r} matches no resource instance of the configuration."
        out.append(Diagnostic.error("Invalid --replace", detail,
                                    hint=_hint_for(str(r), want + sorted(state), [], same)))
    return out


def import_key(addr: ResourceAddress, mode: str, instances: Sequence[ResourceAddress] | None
               ) -> list[Diagnostic]:
    """The key of an import address against its block: none for a single resource, a number with ``count``
    (or a pod's ``replicas``), a string with ``for_each``; within the instances when they are known."""
    block = addr.config
    if mode == "single" and addr.key is not None:
        return [Diagnostic.error("Invalid import address", f"{block} has no count or for_each: its address is "
                                 f"{block}, without a key.", hint=f"import to {block}")]
    if mode == "count" and not isinstance(addr.key, int):
        example = [str(a) for a in instances] if instances else [str(block.instance(0))]
        return [Diagnostic.error("Invalid import address", f"{block} has several instances (count or replicas): "
                                 "an import address names one, by its index.",
                                 hint=f"e.g. {_listed(example)}")]
    if mode == "for_each" and not isinstance(addr.key, str):
        example = [str(a) for a in instances] if instances else [str(block.instance("key"))]
        return [Diagnostic.error("Invalid import address", f"{block} uses for_each: an import address names "
                                 "one instance, by its key.", hint=f"e.g. {_listed(example)}")]
    if instances is not None and addr not in instances:
        return [Diagnostic.error("Invalid import address",
                                 f"{addr} is not an instance of the configuration: {block} has "
                                 f"{_listed([str(a) for a in instances]) if instances else 'no instances'}.",
                                 hint="import to one of them, or change count/for_each first")]
    return []


__all__ = ["UNSET_HINT", "check_directory", "check_file_argument", "check_parallelism", "check_paths",
           "check_plan_out", "state_hint",
           "check_plan_modes", "config_files", "empty_argument", "import_key",
           "no_configuration", "saved_plan_options", "unmatched_replace", "unmatched_targets"]
