"""The state backends side by side: apply, no-change plan and destroy of N instances with the SDK's in-process
provider, the state in a local file vs in PostgreSQL (the test server of tests/pgserver.py, on this machine), and
the state lock's round trip (take + release) of each.

The provider does almost nothing, so what differs between the two columns is the state's cost: reading it,
recording every change durably (the journal: fsynced lines vs rows), writing the new version, the lock. The
pg server runs with fsync off (a test server): its numbers are a floor for a server on a real disk.

    python benchmarks/state_bench.py [--sizes 200 1000] [--reps 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.engine_bench import CONFIG, timed  # noqa: E402
from tests import pgserver  # noqa: E402


def phases(n: int, work: Path, backend: str, conn: str, reps: int) -> dict[str, float]:
    cfg, world = work / f"cfg-{backend}-{n}", work / f"world-{backend}-{n}"
    for d in (cfg, world):
        shutil.rmtree(d, ignore_errors=True)
    cfg.mkdir(parents=True)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    block = f'orch {{\n  namespace = "bench"\n  backend "pg" {{\n    schema_name = "{schema}"\n  }}\n}}\n' \
        if backend == "pg" else 'orch {\n  namespace = "bench"\n}\n'
    (cfg / "main.orch").write_text(CONFIG % n + block)
    env = {**os.environ, "ORCH_PROVIDER_MODULES": "orchdsl.sdk.testing.memory:MemoryProvider",
           "ORCH_MEMORY_WORLD": str(world), "ORCH_PG_CONN": conn}
    orch = [sys.executable, "-m", "orchdsl.cli"]
    out = {"apply": timed([*orch, "apply", "-auto-approve", str(cfg)], env)}
    out["plan"] = min(timed([*orch, "plan", "-detailed-exitcode", str(cfg)], env) for _ in range(reps))
    out["destroy"] = timed([*orch, "destroy", "-auto-approve", str(cfg)], env)
    if backend == "pg":
        import psycopg

        with psycopg.connect(conn, autocommit=True) as c:
            c.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return out


def lock_round_trip(backend: str, conn: str, work: Path, reps: int = 200) -> float:
    os.environ["ORCH_PG_CONN"] = conn
    from orchdsl.state import LocalBackend
    from orchdsl.state.pg import PgBackend, PgSettings

    b = PgBackend(PgSettings("", f"bench_{uuid.uuid4().hex[:8]}"), "bench", "default") if backend == "pg" \
        else LocalBackend(work / "lock.orchstate")
    with b.lock("bench"):
        pass  # connect, create the tables
    samples = []
    for _ in range(reps):
        t = time.perf_counter()
        with b.lock("bench"):
            pass
        samples.append(time.perf_counter() - t)
    if isinstance(b, PgBackend):
        import psycopg

        b.close()
        with psycopg.connect(conn, autocommit=True) as c:
            c.execute(f'DROP SCHEMA "{b.settings.schema_name}" CASCADE')
    return statistics.median(samples) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[200, 1000])
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    conn = pgserver.ensure()
    work = Path(tempfile.mkdtemp(prefix="orch-state-bench-"))
    try:
        print(f"{'N':>6} {'phase':<8} {'local':>8} {'pg':>8}")
        for n in args.sizes:
            local, pg = phases(n, work, "local", conn, args.reps), phases(n, work, "pg", conn, args.reps)
            for k in ("apply", "plan", "destroy"):
                print(f"{n:>6} {k:<8} {local[k]:>7.2f}s {pg[k]:>7.2f}s")
        print(f"lock take+release (median of 200): local {lock_round_trip('local', conn, work):.2f} ms, "
              f"pg {lock_round_trip('pg', conn, work):.2f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
