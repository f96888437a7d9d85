"""Availability on the lab: what a reconcile cycle costs, how fast an unhealthy replica is replaced, and what
a rolling update costs the clients of a service.

(a) Reconcile cycle time, 90 pods on 3 nodes (30 per node, a service over them): ``Reconciler.cycle()`` in
    this process (no interpreter start-up), steady state (nothing to do), median of N cycles — once for pods
    without autoscale (refresh with status, two plans, no stats) and once for the same pods autoscaled
    (min = max = 90 replicas, so nothing changes; every cycle samples Docker's stats of all 90 containers in
    parallel).
(b) Unhealthy -> replacement serving: 3 health-checked replicas behind a service (check every 1 s, 2
    retries), ``orch reconcile --watch --interval 2s`` running, a client pod requesting through the service
    name without pause; the time from removing the file the check tests in one replica to the first answer
    from its replacement, and the failed requests meanwhile (the sick replica keeps answering HTTP until it is
    out of the endpoints: a failed health check is not a failed request).
(c) Rolling update of 4 health-checked replicas behind a service, client as in (b): duration and failed
    requests, for max_surge = 1 / max_unavailable = 0 and max_surge = 0 / max_unavailable = 1.

    orch lab up --nodes 3
    .venv/bin/python benchmarks/availability_bench.py [--cycles 10] [--reps 2]

Prints a table and writes benchmarks/out/availability_bench.json.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "out"
sys.path.insert(0, str(REPO))

from orchdsl.cli import main  # noqa: E402
from orchdsl.reconcile.loop import Reconciler, Settings  # noqa: E402
from tests.lab.workloads import CLIENT_AND_SERVICE, request_loop  # noqa: E402


LAB = Path("/tmp/orch-lab")

MANY = """
pod "svc" {
  %(count)s
  labels = { app = "svc" }
  container "httpd" {
    image   = "orch/busybox:test"
    pull    = "never"
    init    = true
    command = ["httpd", "-f", "-p", "8080"]
    resources {
      cpu    = 0.01
      memory = "8Mi"
    }
  }
}
service "svc" {
  selector    = { app = "svc" }
  port        = 80
  target_port = 8080
}
"""

WEB = """
variable "release" {
  default = "v1"
}
pod "web" {
  replicas = %(replicas)d
  labels   = { app = "web" }
  container "httpd" {
    image   = "orch/busybox:test"
    pull    = "never"
    init    = true
    env     = { RELEASE = var.release }
    command = ["sh", "-c", join(" && ", ["mkdir -p /tmp/w", "cat /proc/sys/kernel/random/uuid > /tmp/w/index.html",
                                         "touch /tmp/ok", "exec httpd -f -p 8080 -h /tmp/w"])]
    health {
      command  = ["sh", "-c", "test -f /tmp/ok && nc -w 1 127.0.0.1 8080 </dev/null"]
      interval = "1s"
      timeout  = "1s"
      retries  = 2
    }
  }
  %(strategy)s
}"""

TOKEN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
LOOP = request_loop(3)


def quiet(*argv: str) -> int:
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return main(list(argv))


def workdir(name: str, text: str) -> Path:
    d = Path("/tmp") / f"bench-{name}-{secrets.token_hex(2)}"  # its name is the namespace: one of its own
    d.mkdir()
    shutil.copy(LAB / "nodes.orch", d / "nodes.orch")
    (d / "main.orch").write_text(text)
    return d


def app(directory: Path, address: str) -> Any:
    from types import SimpleNamespace

    from tests.lab.conftest import app_container

    return app_container([SimpleNamespace(socket_path=f"{LAB}/n{n}/docker.sock") for n in (1, 2, 3)], directory,
                         address)


def client_log(directory: Path) -> list[str]:
    out = app(directory, "pod.client").exec_run(["sh", "-c", "cat /tmp/log 2>/dev/null"])[1].decode(errors="replace")
    return [line for line in out.splitlines() if line.strip()]


def cycles(count: str, n: int) -> list[float]:
    d = workdir("cyc", MANY % {"count": count})
    try:
        assert quiet("apply", "--auto-approve", str(d)) == 0, "apply failed"
        rec = Reconciler(d, Settings(interval=1), lambda e: None)
        rec.cycle()  # warm: imports, first connections
        times = []
        for _ in range(n):
            t = time.perf_counter()
            result = rec.cycle()
            times.append(time.perf_counter() - t)
            assert result.ok and not [e for e in result.events if e.kind not in ("pending",)], result.events
        return times
    finally:
        quiet("destroy", "--auto-approve", str(d))
        shutil.rmtree(d, ignore_errors=True)


def heal() -> dict[str, Any]:
    d = workdir("heal", WEB % {"replicas": 3, "strategy": ""} + CLIENT_AND_SERVICE)
    watch = None
    try:
        assert quiet("apply", "--auto-approve", str(d)) == 0
        app(d, "pod.client").exec_run(["sh", "-c", LOOP], detach=True)
        time.sleep(2)
        before = set(TOKEN.findall(" ".join(client_log(d))))
        watch = subprocess.Popen([str(Path(sys.executable).with_name("orch")), "reconcile", "--watch", "--interval",
                                  "2s", str(d)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(3)
        mark = len(client_log(d))
        t0 = time.monotonic()
        app(d, "pod.web[0]").exec_run(["rm", "/tmp/ok"])
        while time.monotonic() - t0 < 120:
            seen = set(TOKEN.findall(" ".join(client_log(d)[mark:])))
            if seen - before:
                break
            time.sleep(0.1)
        took = time.monotonic() - t0
        time.sleep(2)
        lines = client_log(d)[mark:]
        return {"seconds": round(took, 2), "requests": len(lines), "failed": sum(1 for x in lines if "FAIL" in x)}
    finally:
        if watch is not None:
            watch.send_signal(signal.SIGTERM)
            watch.wait(30)
        quiet("destroy", "--auto-approve", str(d))
        shutil.rmtree(d, ignore_errors=True)


def rollout(surge: int, unavailable: int) -> dict[str, Any]:
    strategy = (f"strategy {{\n    max_surge = {surge}\n    max_unavailable = {unavailable}\n"
                f"    drain_timeout = \"1s\"\n  }}")
    d = workdir("roll", WEB % {"replicas": 4, "strategy": strategy} + CLIENT_AND_SERVICE)
    try:
        assert quiet("apply", "--auto-approve", str(d)) == 0
        app(d, "pod.client").exec_run(["sh", "-c", LOOP], detach=True)
        time.sleep(2)
        mark = len(client_log(d))
        t = time.monotonic()
        assert quiet("apply", "--auto-approve", "--var", "release=v2", str(d)) == 0
        took = time.monotonic() - t
        time.sleep(1)
        lines = client_log(d)[mark:]
        return {"surge": surge, "unavailable": unavailable, "seconds": round(took, 1), "requests": len(lines),
                "failed": sum(1 for x in lines if "FAIL" in x)}
    finally:
        quiet("destroy", "--auto-approve", str(d))
        shutil.rmtree(d, ignore_errors=True)


def main_() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=10)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--parts", default="cycles,heal,rollouts", help="which measurements, comma-separated")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    out: dict[str, Any] = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if "cycles" in parts:
        plain = cycles("replicas = 90", args.cycles)
        stats = cycles("autoscale {\n    min_replicas = 90\n    max_replicas = 90\n  }", args.cycles)
        out["cycle_90_pods"] = {"no_stats": plain, "stats": stats}
        print(f"reconcile cycle, 90 pods on 3 nodes: {statistics.median(plain):.2f} s without stats, "
              f"{statistics.median(stats):.2f} s with stats (medians of {args.cycles})")
    if "heal" in parts:
        out["heal"] = [heal() for _ in range(args.reps)]
        for h in out["heal"]:
            print(f"unhealthy -> replacement serving: {h['seconds']:.1f} s, {h['failed']} of {h['requests']} "
                  "requests failed")
    if "rollouts" in parts:
        out["rollouts"] = [rollout(s, u) for _ in range(args.reps) for s, u in ((1, 0), (0, 1))]
        for r in out["rollouts"]:
            print(f"rolling update of 4, surge {r['surge']} unavailable {r['unavailable']}: {r['seconds']:.1f} s, "
                  f"{r['failed']} of {r['requests']} requests failed")
    OUT.mkdir(exist_ok=True)
    name = "availability_bench.json" if parts >= {"cycles", "heal", "rollouts"} else \
        f"availability_bench.{'-'.join(sorted(parts))}.json"
    (OUT / name).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main_()
