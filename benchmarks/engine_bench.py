"""orch's own cost at scale: apply, no-change plan and destroy of N instances with the SDK's in-process provider.

The provider does almost nothing (one small JSON file per object), so what is timed is orch itself: loading,
expanding, scheduling, planning, the apply graph walk, and recording the state (its journal). Each phase is
the wall time of a whole `orch` process, as a user runs it. Cost per instance must stay flat: the issue's bar is
apply of 2,000 within 12x the time of 200, and a no-change plan of 10,000 instances (without refresh) <= 3 s.

    python benchmarks/engine_bench.py [--sizes 200 2000 10000] [--reps 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent / "out"

CONFIG = """
pod "web" {
  replicas = %d
  labels   = { app = "web" }
  container "httpd" {
    image   = "orch/busybox:test"
    command = ["httpd", "-f", "-p", "8080", "-h", "/"]
    resources {
      cpu    = 0.01
      memory = "16Mi"
    }
  }
}

output "first_ip" {
  value = pod.web[0].ip
}
"""


def timed(argv: list[str], env: dict[str, str], ok: tuple[int, ...] = (0,)) -> float:
    t = time.perf_counter()
    p = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=REPO)
    dt = time.perf_counter() - t
    if p.returncode not in ok:
        raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return dt


def run(n: int, work: Path) -> dict[str, float]:
    cfg = work / f"cfg-{n}"
    world = work / f"world-{n}"
    for d in (cfg, world):
        shutil.rmtree(d, ignore_errors=True)
    cfg.mkdir(parents=True)
    (cfg / "main.orch").write_text(CONFIG % n)
    env = {**os.environ, "ORCH_PROVIDER_MODULES": "orchdsl.sdk.testing.memory:MemoryProvider",
           "ORCH_MEMORY_WORLD": str(world), "PYTHONPATH": str(REPO)}
    orch = [sys.executable, "-m", "orchdsl.cli"]
    return {
        "apply": timed(orch + ["apply", "--auto-approve", "--parallelism", "10", str(cfg)], env),
        "plan_no_refresh": timed(orch + ["plan", "--detailed-exitcode", "--refresh=false", str(cfg)], env),
        "plan": timed(orch + ["plan", "--detailed-exitcode", str(cfg)], env),
        "destroy": timed(orch + ["destroy", "--auto-approve", "--parallelism", "10", str(cfg)], env),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[200, 2000, 10000])
    ap.add_argument("--reps", type=int, default=1)
    args = ap.parse_args()
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="orch-engine-bench-") as tmp:
        for n in args.sizes:
            reps = [run(n, Path(tmp)) for _ in range(args.reps)]
            results[n] = {k: statistics.median(r[k] for r in reps) for k in reps[0]}
            r = results[n]
            print(f"{n:>6} instances: apply {r['apply']:6.2f} s ({1000 * r['apply'] / n:5.2f} ms each)  "
                  f"plan {r['plan']:5.2f} s  plan --refresh=false {r['plan_no_refresh']:5.2f} s  "
                  f"destroy {r['destroy']:6.2f} s", flush=True)
    base = min(results)
    for n in sorted(results):
        if n != base:
            print(f"apply {n} / apply {base}: {results[n]['apply'] / results[base]['apply']:.1f}x "
                  f"for {n / base:.0f}x the instances")
    OUT.mkdir(exist_ok=True)
    (OUT / "engine_bench.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
