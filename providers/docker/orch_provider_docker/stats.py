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


# ---- the fast path: the node's cgroups, read over SSH -------------------------------------------------------
# Docker's stats call samples for 1-2 s per container, and a node's SSH connection carries a few channels at
# once: 90 containers took 11 s. The kernel keeps the same counters in the containers' cgroups; one command per
# node reads them twice, INTERVAL seconds apart, for every container at once.
#
# Fixed; ``sh -c CGROUP_SCRIPT sh INTERVAL ID...`` (IDs: 64 hex digits, anything else is skipped). Prints
# ``t NANOSECONDS`` then per container ``a ID CPU_NS`` (first reading), and after the interval ``t ...`` again
# and ``b ID CPU_NS MEMORY_BYTES``. cgroup v1 (cgroupfs or systemd driver) and v2 are looked up in turn; a
# container found in none is not printed (the caller falls back to the stats API for it).
CGROUP_SCRIPT = r"""iv=$1; shift
R=${ORCH_CGROUP_ROOT:-/sys/fs/cgroup}  # another root only in tests
now() {
  d=$(date +%s%N 2>/dev/null)
  case $d in *[!0-9]*|'') read u _ < /proc/uptime; d=${u%.*}${u#*.}0000000;; esac
  echo "t $d"
}
cpu() {
  for f in $R/cpuacct/docker/$1/cpuacct.usage $R/cpu,cpuacct/docker/$1/cpuacct.usage \
           $R/cpuacct/system.slice/docker-$1.scope/cpuacct.usage \
           $R/cpu,cpuacct/system.slice/docker-$1.scope/cpuacct.usage; do
    if [ -r "$f" ]; then read v < "$f"; echo "$v"; return 0; fi
  done
  for d in $R/system.slice/docker-$1.scope $R/docker/$1; do
    if [ -r "$d/cpu.stat" ]; then
      while read k v; do [ "$k" = usage_usec ] && { echo "${v}000"; return 0; }; done < "$d/cpu.stat"
    fi
  done
  return 1
}
mem() {
  for d in $R/memory/docker/$1 $R/memory/system.slice/docker-$1.scope; do
    if [ -r "$d/memory.usage_in_bytes" ]; then
      read u < "$d/memory.usage_in_bytes"; c=0
      while read k v; do [ "$k" = total_inactive_file ] && c=$v; done < "$d/memory.stat"
      echo $((u - c)); return 0
    fi
  done
  for d in $R/system.slice/docker-$1.scope $R/docker/$1; do
    if [ -r "$d/memory.current" ]; then
      read u < "$d/memory.current"; c=0
      while read k v; do [ "$k" = inactive_file ] && c=$v; done < "$d/memory.stat"
      echo $((u - c)); return 0
    fi
  done
  echo -
}
ids=
for id in "$@"; do case $id in *[!0-9a-f]*) ;; *) [ ${#id} -eq 64 ] && ids="$ids $id";; esac; done
now
for id in $ids; do v=$(cpu "$id") && echo "a $id $v"; done
sleep "$iv"
now
for id in $ids; do v=$(cpu "$id") && echo "b $id $v $(mem "$id")"; done
exit 0
"""


def parse_cgroup_samples(text: str) -> dict[str, Sample]:
    """CGROUP_SCRIPT's output -> each container's use over the interval (by full id)."""
    times: list[int] = []
    first: dict[str, int] = {}
    out: dict[str, Sample] = {}
    second: dict[str, tuple[int, int | None]] = {}
    for line in text.splitlines():
        parts = line.split()
        try:
            if parts[:1] == ["t"] and len(parts) == 2:
                times.append(int(parts[1]))
            elif parts[:1] == ["a"] and len(parts) == 3:
                first[parts[1]] = int(parts[2])
            elif parts[:1] == ["b"] and len(parts) == 4:
                second[parts[1]] = (int(parts[2]), int(parts[3]) if parts[3].lstrip("-").isdigit() else None)
        except ValueError:
            continue
    if len(times) != 2 or times[1] <= times[0]:
        return out
    elapsed = times[1] - times[0]
    for cid, (usage, memory) in second.items():
        before = first.get(cid)
        if before is None or usage < before:
            continue
        out[cid] = Sample((usage - before) / elapsed, memory if memory is not None and memory >= 0 else None)
    return out
