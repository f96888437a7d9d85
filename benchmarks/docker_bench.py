"""orch on the lab vs the peers of ../shared/bench, same workload, same run.

Workload (../shared/bench/peers/workload.py): busybox httpd containers, 32 MiB memory limit, image
orch/busybox:test (never pulled), spread round-robin over 3 lab nodes. Phases, each the wall time of
the whole tool process: deploy from empty, a no-change re-run (orch: `plan --detailed-exitcode`, which
refreshes every object), teardown. Medians of --reps repetitions, contenders interleaved.

orch runs pods, and a pod is an infra container holding the network namespace plus the app container:
so "orch-pods-N/2" runs N Docker containers (N/2 pods, the same number of containers as the peers) and
"orch-pods-N" runs N pods (2N containers: the same number of web servers as the peers).

    orch lab up --nodes 3                         # the lab (root)
    ../shared/bench/peers/setup_peers.sh          # optional: Ansible and pyinfra venvs in /tmp/peers
    python benchmarks/docker_bench.py --n 90 --reps 3 [--skip ansible] [--skip pyinfra]

Ansible and pyinfra run when their venvs exist (/tmp/peers or $PEERS_DIR); their inventories name the
sockets under /tmp/lab, so /tmp/lab is made a symlink to the lab's directory.
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

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PEERS = REPO.parent / "shared" / "bench" / "peers"
OUT = HERE / "out"


def orch_config(pods: int, nodes_file: Path, workdir: Path) -> Path:
    d = workdir / f"orch-{pods}"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    shutil.copy(nodes_file, d / "nodes.orch")
    (d / "main.orch").write_text(f"""
pod "web" {{
  replicas = {pods}
  labels   = {{ bench = "web" }}
  container "httpd" {{
    image   = "orch/busybox:test"
    pull    = "never"
    command = ["httpd", "-f", "-p", "8080", "-h", "/"]
    resources {{
      memory = "32Mi"
    }}
  }}
}}
""")
    return d


def timed(argv: list[str], env: dict, ok_codes=(0,)) -> float:
    t = time.perf_counter()
    p = subprocess.run(argv, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if p.returncode not in ok_codes:
        raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return dt


def orch_phases(cfg: Path, env: dict) -> dict[str, float]:
    orch = [sys.executable, "-m", "orchdsl.cli"]
    return {
        "deploy": timed(orch + ["apply", "--auto-approve", str(cfg)], env),
        "noop": timed(orch + ["plan", "--detailed-exitcode", str(cfg)], env),
        "teardown": timed(orch + ["destroy", "--auto-approve", str(cfg)], env),
    }


def peer_env(lab_dir: Path, home: Path) -> dict:
    """The limit peer authenticates like any SSH client: a HOME whose ~/.ssh holds the lab's key."""
    ssh = home / ".ssh"
    ssh.mkdir(parents=True, exist_ok=True)
    shutil.copy(lab_dir / "ssh" / "client", ssh / "id_ed25519")
    os.chmod(ssh / "id_ed25519", 0o600)
    shutil.copy(lab_dir / "known_hosts", ssh / "known_hosts")
    return {**os.environ, "HOME": str(home), "LAB": str(lab_dir),
            # OpenSSH (Ansible's transport) reads known_hosts from the passwd home, not $HOME
            "ANSIBLE_SSH_COMMON_ARGS": f"-o UserKnownHostsFile={ssh / 'known_hosts'}"}


def limit_phases(n: int, env: dict) -> dict[str, float]:
    script = [sys.executable, str(PEERS / "limit_sdk.py")]
    return {
        "deploy": timed(script + ["deploy", str(n)], env),
        "noop": timed(script + ["deploy", str(n)], env),
        "teardown": timed(script + ["teardown", str(n)], env),
    }


def script_phases(run_sh: Path, n: int, env: dict) -> dict[str, float]:
    """A peer of ../shared/bench/peers with `run.sh deploy|teardown N` (Ansible, pyinfra); the no-op is a
    second deploy, as in the peers' own bench."""
    timed(["bash", str(run_sh), "teardown", str(n)], env)  # leftovers of an earlier run, untimed
    return {
        "deploy": timed(["bash", str(run_sh), "deploy", str(n)], env),
        "noop": timed(["bash", str(run_sh), "deploy", str(n)], env),
        "teardown": timed(["bash", str(run_sh), "teardown", str(n)], env),
    }


def peers_lab_link(lab_dir: Path) -> None:
    """The peers' inventories name the sockets /tmp/lab/nI/docker.sock (../shared/bench/lab.sh's layout)."""
    link = Path("/tmp/lab")
    if not link.exists() and not link.is_symlink():
        link.symlink_to(lab_dir)
    elif link.resolve() != lab_dir.resolve():
        raise SystemExit(f"{link} exists and is not {lab_dir}: the peers would not reach this lab")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=90, help="containers of the peers' workload")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--lab", default=os.environ.get("ORCH_LAB_DIR", "/tmp/orch-lab"))
    ap.add_argument("--skip", action="append", default=[], help="contender to skip")
    args = ap.parse_args()
    lab_dir = Path(args.lab)
    work = Path(tempfile.mkdtemp(prefix="orch-bench-"))
    env = {**os.environ, "ORCH_PROVIDER_MODULES": ""}
    contenders = {
        f"orch-pods-{args.n // 2}": lambda: orch_phases(orch_config(args.n // 2, lab_dir / "nodes.orch", work), env),
        f"orch-pods-{args.n}": lambda: orch_phases(orch_config(args.n, lab_dir / "nodes.orch", work), env),
        "limit": lambda: limit_phases(args.n, peer_env(lab_dir, work / "home")),
    }
    venvs = Path(os.environ.get("PEERS_DIR", "/tmp/peers"))
    for name, tool in (("ansible", "ansible-playbook"), ("pyinfra", "pyinfra")):
        if name in args.skip:
            continue
        if not (venvs / f"venv-{name}" / "bin" / tool).exists():
            print(f"{name}: skipped, no {venvs}/venv-{name} (create it with ../shared/bench/peers/setup_peers.sh)",
                  file=sys.stderr)
            continue
        peers_lab_link(lab_dir)
        contenders[name] = (lambda run_sh: lambda: script_phases(run_sh, args.n, peer_env(lab_dir, work / "home"))
                            )(PEERS / name / "run.sh")
    samples: dict[str, list[dict]] = {k: [] for k in contenders if k not in args.skip}
    for rep in range(args.reps):
        for name in samples:
            s = contenders[name]()
            samples[name].append(s)
            print(json.dumps({"rep": rep, "contender": name, **{k: round(v, 2) for k, v in s.items()}}),
                  flush=True)
    OUT.mkdir(exist_ok=True)
    (OUT / "docker_bench.json").write_text(json.dumps(samples, indent=2))
    print(f"\n| contender | deploy | no-op | teardown |   (N={args.n}, median of {args.reps}, seconds)")
    print("|---|---|---|---|")
    for name, ss in samples.items():
        cells = []
        for phase in ("deploy", "noop", "teardown"):
            vals = [s[phase] for s in ss]
            cells.append(f"{statistics.median(vals):.2f} ({min(vals):.2f}-{max(vals):.2f})")
        print(f"| {name} | " + " | ".join(cells) + " |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
