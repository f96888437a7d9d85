"""CPU and memory use from Docker's stats API (pure: no I/O).

``GET /containers/ID/stats?stream=false`` returns one document in which the engine has sampled the container
twice (1–2 s apart): ``cpu_stats`` now and ``precpu_stats`` before, so one call gives the CPU use:

    cores = Δ cpu_stats.cpu_usage.total_usage / Δ system_cpu_usage × online_cpus

(``docker stats`` shows that × 100 as CPU%). ``online_cpus`` is missing on engines before API 1.27: the length
of ``percpu_usage`` (cgroup v1 only) stands in. With ``one-shot=true``, or for a container that is not
running, ``precpu_stats`` is empty: no CPU figure then.

Memory is ``memory_stats.usage`` without the page cache the kernel can reclaim: ``stats.cache`` (cgroup v1)
or ``stats.inactive_file`` (cgroup v2), when present.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Sample:
    """One container's use, from one stats document; ``why`` says what is missing (empty when nothing is)."""

    cpu: float | None
    memory: int | None
    why: str = ""


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _section(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    v = doc.get(key)
    return v if isinstance(v, Mapping) else {}


def _cpu_counts(section: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """(total_usage, system_cpu_usage) of a ``cpu_stats`` or ``precpu_stats`` section."""
    return _number(_section(section, "cpu_usage").get("total_usage")), _number(section.get("system_cpu_usage"))


def cpu_cores(doc: Mapping[str, Any]) -> float | None:
    """Cores used between the two samples of a ``stats?stream=false`` document (0.37: 37 % of one core); None
    when the document does not have two samples (empty or zero ``precpu_stats``), the system counter did not
    move, or the number of CPUs is unknown."""
    now, before = _section(doc, "cpu_stats"), _section(doc, "precpu_stats")
    total, system = _cpu_counts(now)
    pre_total, pre_system = _cpu_counts(before)
    if total is None or system is None or pre_total is None or not pre_system:
        return None
    d_system = system - pre_system
    d_total = total - pre_total
    if d_system <= 0 or d_total < 0:  # no time passed, or the counters were reset (a restart) in between
        return None
    cpus = _number(now.get("online_cpus"))
    if not cpus:
        per = _section(now, "cpu_usage").get("percpu_usage")
        cpus = float(len(per)) if isinstance(per, list) and per else None
    if cpus is None:
        return None
    return d_total / d_system * cpus


def memory_bytes(doc: Mapping[str, Any]) -> int | None:
    """Bytes used: ``memory_stats.usage`` minus the reclaimable page cache (``stats.cache`` on cgroup v1,
    ``stats.inactive_file`` on v2) when present and not larger; None without a usage (a stopped container)."""
    mem = _section(doc, "memory_stats")
    usage = _number(mem.get("usage"))
    if usage is None:
        return None
    detail = _section(mem, "stats")
    cache = _number(detail.get("cache")) if "cache" in detail else _number(detail.get("inactive_file"))
    if cache is not None and 0 <= cache <= usage:
        usage -= cache
    return int(usage)


def sample(doc: Mapping[str, Any]) -> Sample:
    """One container's CPU and memory use, with what is missing said."""
    cpu, memory = cpu_cores(doc), memory_bytes(doc)
    missing = [what for what, v in (("no CPU sample", cpu), ("no memory usage", memory)) if v is None]
    return Sample(cpu, memory, " and ".join(missing) + (" (not running?)" if missing else ""))


def total(samples: Iterable[Sample]) -> tuple[float | None, int | None]:
    """A pod's use, the sum over its containers: None for a figure any container lacks (a partial sum would
    understate it), and for no containers at all."""
    listed = list(samples)
    if not listed:
        return None, None
    cpus = [s.cpu for s in listed]
    mems = [s.memory for s in listed]
    cpu = None if any(c is None for c in cpus) else sum(c for c in cpus if c is not None)
    memory = None if any(m is None for m in mems) else sum(m for m in mems if m is not None)
    return cpu, memory
