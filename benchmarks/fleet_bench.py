"""A fleet on the lab: 150 pods on 3 nodes and on 15 nodes, the same workload, the same lab.

Workload: one pod resource of 150 busybox httpd replicas (8Mi memory and 0.01 cpu requested each, so the
scheduler spreads them evenly: 50 per node on 3 nodes, 10 per node on 15) and a service over them (so every
node also gets a service program that refresh reads back). Phases, each the wall time of a whole ``orch``
process (interpreter start-up included): ``apply`` from empty, ``plan --detailed-exitcode`` with nothing to
change (it refreshes every pod, node and node program; ``--reps`` times: min and median), ``destroy``. For
each no-change plan it also records the CPU time of the orch process and of the nodes' sshd (each node's
SSH logins and the commands run in them: the lab's sshds are this machine's processes).

The lab is brought to the largest node count asked for (``orch lab up --nodes N``); a run on fewer nodes uses
nodes n1..nK of its nodes file, so every run sees the same machine (the idle dockerds of the other nodes
included). At the end the lab is brought back to 3 nodes, what the lab tests expect, also after a failure.
While it runs it holds the lab tests' lock (tests/conftest.py), so a lab test waits instead of meeting a
15-node lab.

``--shells plain,rc`` times the no-change plans twice: with the lab as ``orch lab up`` makes it (``plain``: its
sshd sets ``SHLVL=1``, so bash skips root's .bashrc, as a host's plain shell start-up would), and the way the lab
ran before (``rc``: every command sshd runs starts root's login shell, bash, which on this machine sources a
/root/.bashrc running ``pyenv init``, ~0.13 s of CPU per command). An experiment on the lab's files; the final
``orch lab up`` puts its own sshd configuration back.

    .venv/bin/python benchmarks/fleet_bench.py [--nodes 3,15] [--reps 5] [--rounds 1] [--shells plain]

Prints a table and writes benchmarks/out/fleet_bench.json. About 3.5 minutes with the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "out"
LAB_NODES_AFTER = 3  # what tests/lab/conftest.py and the other benchmarks expect
SHELLS = ("rc", "plain")

sys.path.insert(0, str(REPO))
# the lab tests' lock (they run one at a time under it) and the fleet's workload, shared with its lab test
from tests.conftest import lab_exclusive  # noqa: E402
from tests.lab.workloads import FLEET  # noqa: E402



@dataclass
class Plan:
    seconds: float
    orch_cpu: float  # the orch process, user + system
    sshd_cpu: float  # every node's sshd with its sessions and the commands run in them
    rss_mb: float  # the orch process's peak memory


@dataclass
class Round:
    nodes: int
    apply: float = 0.0
    destroy: float = 0.0
    apply_rss_mb: float = 0.0
    destroy_rss_mb: float = 0.0
    plans: dict[str, list[Plan]] = field(default_factory=dict)  # shell -> no-change plans


def orch_cmd() -> list[str]:
    return [sys.executable, "-m", "orchdsl.cli"]


def lab_up(n: int, lab_dir: Path) -> None:
    p = subprocess.run(orch_cmd() + ["lab", "up", "--nodes", str(n), "--dir", str(lab_dir), "-q"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"orch lab up --nodes {n} failed:\n{p.stdout}{p.stderr}")


def node_dirs(lab_dir: Path) -> list[Path]:
    """The directories of the lab's nodes n1..nN (lab.json: N), each with its sshd's config and pid file."""
    n = int(json.loads((lab_dir / "lab.json").read_text())["nodes"])
    return [lab_dir / f"n{i}" for i in range(1, n + 1)]


def set_shell(lab_dir: Path, shell: str) -> None:
    """``plain``: the nodes' sshd pass SHLVL=1 to every session (bash then skips root's .bashrc), as ``orch lab
    up`` writes them; ``rc``: without it. sshd re-reads its configuration on SIGHUP, executing itself again
    (same pid; its pid file is written anew)."""
    for d in node_dirs(lab_dir):
        cfg = d / "sshd_config"
        text = re.sub(r"^(SetEnv .*?)( SHLVL=1)?$", lambda m: m.group(1) + (" SHLVL=1" if shell == "plain" else ""),
                      cfg.read_text(), flags=re.M)
        cfg.write_text(text)
        os.kill(int((d / "sshd.pid").read_text()), signal.SIGHUP)
    deadline = time.monotonic() + 10
    while not all((d / "sshd.pid").exists() for d in node_dirs(lab_dir)):
        if time.monotonic() > deadline:
            raise SystemExit("the lab's sshds did not come back after SIGHUP: run `orch lab up`")
        time.sleep(0.05)
    time.sleep(0.5)


def node_blocks(nodes_file: Path, count: int) -> str:
    """The first ``count`` node blocks of the lab's nodes file (n1..nK), as written by ``orch lab up``."""
    found = re.finditer(r'^node "n(\d+)" \{\n.*?^\}\n', nodes_file.read_text(), flags=re.M | re.S)
    chosen = [m.group(0) for m in found if int(m.group(1)) <= count]
    if len(chosen) != count:
        raise SystemExit(f"{nodes_file} has {len(chosen)} of the nodes n1..n{count}")
    return "\n".join(chosen)


def config_dir(work: Path, nodes: int, pods: int, nodes_file: Path) -> Path:
    d = work / f"fleet-{nodes}"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    (d / "nodes.orch").write_text(node_blocks(nodes_file, nodes))
    (d / "main.orch").write_text(FLEET % {"pods": pods})
    return d


def sshd_cpu(lab_dir: Path) -> float:
    """CPU seconds of the nodes' sshds' finished children (each connection, its sessions, their commands)."""
    total = 0
    for d in node_dirs(lab_dir):
        fields = Path(f"/proc/{int((d / 'sshd.pid').read_text())}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[13]) + int(fields[14])  # cutime, cstime
    return total / os.sysconf("SC_CLK_TCK")


@dataclass
class Ran:
    seconds: float  # wall time
    cpu: float  # the process's user + system time
    rss_mb: float  # its peak resident memory
    stdout: str


def run(argv: list[str], env: dict[str, str], ok_codes: tuple[int, ...] = (0,)) -> Ran:
    """Run one orch command; its own resource usage comes from wait4 (not the sum over all children)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        p = subprocess.Popen(argv, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if p.returncode not in ok_codes:
        raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    return Ran(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, stdout)


def no_change_plan(cfg: Path, env: dict[str, str], lab_dir: Path) -> Plan:
    s0 = sshd_cpu(lab_dir)
    ran = run(orch_cmd() + ["plan", "--detailed-exitcode", "--no-color", str(cfg)], env)
    if "No changes." not in ran.stdout:
        raise RuntimeError(f"the plan after apply is not a no-change plan:\n{ran.stdout[-3000:]}")
    time.sleep(0.2)  # the connections' sshd processes end after orch does
    return Plan(ran.seconds, ran.cpu, sshd_cpu(lab_dir) - s0, ran.rss_mb)


def one_round(n: int, cfg: Path, reps: int, shells: list[str], env: dict[str, str], lab_dir: Path) -> Round:
    orch = orch_cmd()
    r = Round(n, plans={s: [] for s in shells})
    ran = run(orch + ["apply", "--auto-approve", "--no-color", str(cfg)], env)
    r.apply, r.apply_rss_mb = ran.seconds, ran.rss_mb
    try:
        for _ in range(reps):
            for shell in shells:  # interleaved, so that both see the same moments of the machine
                set_shell(lab_dir, shell)
                r.plans[shell].append(no_change_plan(cfg, env, lab_dir))
    finally:
        try:
            set_shell(lab_dir, "plain")  # the lab's own
        finally:  # whatever happened: the pods go, before the state that records them does
            ran = run(orch + ["destroy", "--auto-approve", "--no-color", str(cfg)], env)
            r.destroy, r.destroy_rss_mb = ran.seconds, ran.rss_mb
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--nodes", default="3,15", help="node counts to compare, comma-separated (default 3,15)")
    ap.add_argument("--reps", type=int, default=5, help="no-change plans per round and shell (default 5)")
    ap.add_argument("--rounds", type=int, default=1, help="apply/plan/destroy rounds per node count (default 1)")
    ap.add_argument("--shells", default="plain",
                    help="plain, rc or plain,rc: the nodes' shell start-up for the plans (default: plain, the lab's)")
    ap.add_argument("--pods", type=int, default=150)
    ap.add_argument("--lab", default=os.environ.get("ORCH_LAB_DIR", "/tmp/orch-lab"))
    args = ap.parse_args()
    counts = [int(x) for x in args.nodes.split(",") if x.strip()]
    shells = [s for s in args.shells.split(",") if s.strip()]
    if not counts or args.reps < 1 or args.rounds < 1 or not shells or set(shells) - set(SHELLS):
        raise SystemExit("--nodes needs a count, --reps and --rounds at least 1, --shells plain and/or rc")
    lab_dir = Path(args.lab)
    env = {**os.environ, "ORCH_PROVIDER_MODULES": "", "ORCH_LAB_DIR": str(lab_dir)}
    env.pop("ORCH_STATE_PASSPHRASE", None)
    work = Path(tempfile.mkdtemp(prefix="orch-fleet-"))
    rounds: list[Round] = []
    done = False
    with lab_exclusive():
        try:
            t = time.perf_counter()
            lab_up(max(counts), lab_dir)
            print(f"lab up with {max(counts)} nodes in {time.perf_counter() - t:.1f} s", file=sys.stderr)
            for i in range(args.rounds):
                for n in counts:
                    r = one_round(n, config_dir(work, n, args.pods, lab_dir / "nodes.orch"), args.reps, shells, env,
                                  lab_dir)
                    rounds.append(r)
                    print(json.dumps({"round": i, "nodes": n, "apply": round(r.apply, 2),
                                      "destroy": round(r.destroy, 2),
                                      **{f"plan_{s}": [round(p.seconds, 2) for p in ps] for s, ps in r.plans.items()}}),
                          flush=True)
            done = True
        finally:
            lab_up(LAB_NODES_AFTER, lab_dir)
            if done:
                shutil.rmtree(work, ignore_errors=True)
            else:  # its states: `orch destroy` them if a failure left pods behind
                print(f"configurations and their states kept in {work}", file=sys.stderr)
    OUT.mkdir(exist_ok=True)
    (OUT / "fleet_bench.json").write_text(json.dumps({"pods": args.pods, "rounds": [asdict(r) for r in rounds]},
                                                     indent=2))
    report(rounds, counts, shells, args)


def report(rounds: list[Round], counts: list[int], shells: list[str], args: argparse.Namespace) -> None:
    base = counts[0]

    def of(n: int) -> list[Round]:
        return [r for r in rounds if r.nodes == n]

    def ratio(v: float, b: float, n: int) -> str:
        return f"{v:.2f}" + (f" ({v / b:.2f}×)" if n != base else "")

    print(f"\n{args.pods} pods; seconds, orch CLI wall time; (ratio to {base} nodes); {args.rounds} round(s)")
    print("| nodes | apply | destroy | peak memory of orch: apply, destroy |")
    print("|---:|---:|---:|---:|")
    for n in counts:
        a = statistics.median(r.apply for r in of(n))
        d = statistics.median(r.destroy for r in of(n))
        a0 = statistics.median(r.apply for r in of(base))
        d0 = statistics.median(r.destroy for r in of(base))
        rss = f"{max(r.apply_rss_mb for r in of(n)):.0f} MB, {max(r.destroy_rss_mb for r in of(n)):.0f} MB"
        print(f"| {n} | {ratio(a, a0, n)} | {ratio(d, d0, n)} | {rss} |")
    for shell in shells:
        print(f"\nno-change plan, nodes' shell start-up: {shell}; {args.reps} × {args.rounds} runs; "
              "CPU: medians, seconds")
        print("| nodes | min | median | orch CPU | nodes' sshd CPU | orch peak memory |")
        print("|---:|---:|---:|---:|---:|---:|")
        ps0 = [p for r in of(base) for p in r.plans[shell]]
        for n in counts:
            ps = [p for r in of(n) for p in r.plans[shell]]
            lo, med = min(p.seconds for p in ps), statistics.median(p.seconds for p in ps)
            lo0, med0 = min(p.seconds for p in ps0), statistics.median(p.seconds for p in ps0)
            orch, sshd = statistics.median(p.orch_cpu for p in ps), statistics.median(p.sshd_cpu for p in ps)
            rss = max(p.rss_mb for p in ps)
            print(f"| {n} | {ratio(lo, lo0, n)} | {ratio(med, med0, n)} | {orch:.2f} | {sshd:.2f} | {rss:.0f} MB |")


if __name__ == "__main__":
    main()
