"""Services data plane on the lab: loading a node's service rules, and what they cost a connection.

Two questions, on lab node n3 only, with namespaces of its own ("bench", "bench-5k": tables
``ip orch-ns-bench`` and ``ip orch-ns-bench-5k``, which no configuration of the lab uses), everything
removed at the end whatever happens:

(a) Per-node sync. A node's whole service program, S services x 10 endpoints (S = 1,000 and 5,000), as orch
    loads it: ``netrules.render_table(values)`` ("generate", in this process) then ``nft -f -`` over the
    node's SSH connection ("load": SSH exec request, transfer, nft's parse and kernel commit), once as a new
    table and once replacing the same table (what a repair does). Then a change of one endpoint of one
    service: ``netrules.render_delta(prior, values)`` and its load. Medians of 5 runs (3 with --quick), each
    delta a real change (the endpoint flips to another address, then back by ``nft -f`` run on the node
    directly, timed too: the node's own share); next to each delta an SSH round trip of ``true``, the floor
    under any load over SSH.

(b) Connection set-up. A busybox httpd in a container on n3 (Docker's default bridge), and a client in n3's
    root network namespace (``ip netns exec n3``: the nat OUTPUT hook applies) timing connect() (SYN to
    SYN-ACK; the SYN goes through the first-packet NAT lookup) to
      - the container's IP directly (none of our rules active),
      - the virtual IP 198.18.250.1:80 with orch's table holding 10 services, and 5,000 services,
      - the same virtual IP through kube-proxy's iptables layout: chains BENCH-KUBE-10 and BENCH-KUBE in table
        nat (iptables-nft here), jumped to first from OUTPUT, one ``-d VIP -p tcp --dport PORT -j DNAT`` rule
        per service, the tested one last: 10 and 5,000 services.
    The other services have made-up virtual IPs in 198.18.200.0/21 (ports 80, 81, 82) and endpoints in
    198.19.200.0/24 that never receive traffic. All four rule sets are loaded once; exactly one is active
    at a time (the other orch table dormant, the other chains not jumped to), so switching costs two small
    commands and the scenarios can be interleaved finely: 30 rounds (12 with --quick), each scenario a block
    of 100 timed connects (50) after 20 untimed, in a rotating order, as the lab shares the machine with
    whatever else runs. The client is pinned to one core at SCHED_FIFO priority (``taskset``/``chrt``): other
    processes do not preempt it between SYN and SYN-ACK, and it paces connects 1 ms apart (mostly asleep;
    httpd's short accept queue never overflows). If n3's dockerd is restarted meanwhile (the lab's own tests
    do that), the container is started again and the connect phase repeated.

    orch lab up --nodes 3                         # the lab (root)
    .venv/bin/python benchmarks/net_bench.py [--quick]

Prints tables and writes benchmarks/out/net_bench.json (raw samples in seconds / microseconds in the order
measured, summaries, the load average before and after).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "out"
sys.path.insert(0, str(REPO / "providers" / "docker"))  # a checkout without the provider installed

NODE = "n3"
NAMESPACE, NAMESPACE_5K = "bench", "bench-5k"
CONTAINER = "bench-backend"
IMAGE = "orch/busybox:test"
VIP, VIP_PORT, POD_PORT = "198.18.250.1", 80, 8080
KUBE_CHAINS = {10: "BENCH-KUBE-10", 5000: "BENCH-KUBE"}
PER = 10  # endpoints per service
CLIENT_CPU = str((os.cpu_count() or 1) - 1)
PIN = ["taskset", "-c", CLIENT_CPU, "chrt", "-f", "50"]

# Runs in n3's network namespace. stdin: {"blocks": [[scenario, host, port, [on argv...], [off argv...]], ...],
# "n": timed connects per block, "warm": untimed ones first}. stdout: {scenario: [microseconds...]}.
CLIENT = r"""
import json, socket, struct, subprocess, sys, time
plan = json.load(sys.stdin)
linger = struct.pack("ii", 1, 0)  # close() sends RST: no TIME_WAIT pile-up over thousands of connects
out = {}
for name, host, port, on, off in plan["blocks"]:
    for argv in on:
        subprocess.run(argv, check=True)
    samples = out.setdefault(name, [])
    for i in range(plan["warm"] + plan["n"]):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        s.settimeout(5)
        t = time.perf_counter_ns()
        s.connect((host, port))
        dt = time.perf_counter_ns() - t
        s.close()
        if i >= plan["warm"]:
            samples.append(dt / 1000)
        time.sleep(plan["pace"])
    for argv in off:
        subprocess.run(argv, check=True)
print(json.dumps(out))
"""


def die(msg: str) -> None:
    raise SystemExit(f"net_bench: {msg}")


# -- the lab ------------------------------------------------------------------------------------------------


def lab_node(lab_dir: Path) -> dict[str, str]:
    """Node n3's connection attributes from the lab's nodes file, after checking the lab is up."""
    if os.geteuid() != 0:
        die("needs root (ip netns exec, the lab's sockets)")
    nodes = lab_dir / "nodes.orch"
    if not nodes.is_file():
        die(f"no {nodes}: the lab is not up (run `orch lab up --nodes 3` as root)")
    m = re.search(r'node\s+"n3"\s*\{(.*?)\}', nodes.read_text(), re.S)
    if not m:
        die(f"{nodes} has no node n3: bring the lab up with at least 3 nodes")
    attrs = dict(re.findall(r'(\w+)\s*=\s*"([^"]*)"', m.group(1)))
    for tool in ("ip", "docker", "taskset", "chrt"):
        if not shutil.which(tool):
            die(f"{tool} is not installed")
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    if not re.search(rf"^{NODE}\b", netns, re.M):
        die(f"no network namespace {NODE}: the lab is not up (run `orch lab up --nodes 3` as root)")
    sock = attrs.get("docker_host", "").removeprefix("unix://")
    if not sock or not Path(sock).exists():
        die(f"{NODE}'s Docker socket {sock or '?'} is missing: the lab is not up")
    return attrs


def docker(attrs: dict[str, str], *args: str, check: bool = True) -> str:
    p = subprocess.run(["docker", "-H", attrs["docker_host"], *args], capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {p.stderr.strip()}")
    return p.stdout.strip()


def run_client(plan: dict[str, Any]) -> dict[str, list[float]]:
    p = subprocess.run([*PIN, "ip", "netns", "exec", NODE, sys.executable, "-c", CLIENT],
                       input=json.dumps(plan), capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"client failed: {p.stderr.strip()[-500:]}")
    return json.loads(p.stdout)


def answers(ip: str, port: int) -> bool:
    try:
        run_client({"blocks": [["probe", ip, port, [], []]], "n": 1, "warm": 0, "pace": 0})
        return True
    except RuntimeError:
        return False


class Backend:
    """The container the virtual IP leads to. The lab's own tests may restart n3's dockerd meanwhile, which
    stops it: :meth:`revive` starts it again (its address may change)."""

    def __init__(self, attrs: dict[str, str]):
        self.attrs = attrs
        self.revivals = 0
        docker(attrs, "rm", "-f", CONTAINER, check=False)  # a leftover of an interrupted run
        if not docker(attrs, "images", "-q", IMAGE):
            die(f"image {IMAGE} is not on {NODE} (the lab loads it; images are never pulled)")
        docker(attrs, "run", "-d", "--pull", "never", "--name", CONTAINER, "--network", "bridge", IMAGE,
               "httpd", "-f", "-p", str(POD_PORT))
        self.ip = self._listening()

    def _listening(self, within: float = 20) -> str:
        ip = docker(self.attrs, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", CONTAINER)
        deadline = time.monotonic() + within
        while not (ip and answers(ip, POD_PORT)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{CONTAINER} does not answer on {ip or '(no address)'}:{POD_PORT}")
            time.sleep(0.2)
        return ip

    def revive(self) -> bool:
        """Start the container again if it stopped; False if it still answers (the failure was elsewhere)."""
        deadline = time.monotonic() + 60
        while True:
            try:
                if docker(self.attrs, "inspect", "-f", "{{.State.Status}}", CONTAINER) == "running":
                    if answers(self.ip, POD_PORT):
                        return False
                else:
                    docker(self.attrs, "start", CONTAINER)
                self.ip = self._listening()
                self.revivals += 1
                return True
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)


# -- programs -----------------------------------------------------------------------------------------------


def dummy_vip(i: int) -> tuple[str, int]:
    """Service i's made-up virtual IP (198.18.200.0/21) and port (80, 81, 82...)."""
    k = i % 2048
    return f"198.18.{200 + k // 256}.{k % 256}", 80 + i // 2048


def dummy_endpoint(i: int, j: int) -> str:
    return f"198.19.200.{(i * PER + j) % 254 + 1}"


def program(n: int, target_ip: str | None = None, namespace: str = NAMESPACE) -> dict[str, Any]:
    """Node n3's values: n services x 10 endpoints, the last one the tested virtual IP (one endpoint, the
    container) when ``target_ip`` is given; 100 local pods (the hairpin set)."""
    services = []
    for i in range(n - (1 if target_ip else 0)):
        vip, port = dummy_vip(i)
        services.append({"name": f"s{i:05d}", "address": f"service.s{i:05d}", "cluster_ip": vip, "port": port,
                         "protocol": "tcp", "target_port": POD_PORT, "node_port": None,
                         "endpoints": [{"pod": f"pod.s{i:05d}[{j}]", "ip": dummy_endpoint(i, j), "node": "n1"}
                                       for j in range(PER)]})
    if target_ip:
        services.append({"name": "target", "address": "service.target", "cluster_ip": VIP, "port": VIP_PORT,
                         "protocol": "tcp", "target_port": POD_PORT, "node_port": None,
                         "endpoints": [{"pod": "pod.backend[0]", "ip": target_ip, "node": NODE}]})
    return {"node": NODE, "namespace": namespace, "pod_cidr": "198.19.200.0/24", "cluster_cidr": "198.19.128.0/17",
            "services": services, "pods": [{"pod": f"pod.p[{k}]", "ip": f"198.19.200.{k + 1}"} for k in range(100)]}


def kube_restore(target_ip: str) -> str:
    """kube-proxy's iptables layout, for ``iptables-restore --noflush``: per chain one rule per service, the
    tested virtual IP last (declaring a chain flushes it)."""
    lines = ["*nat"]
    for n, chain in KUBE_CHAINS.items():
        lines.append(f":{chain} - [0:0]")
        for i in range(n - 1):
            vip, port = dummy_vip(i)
            lines.append(f"-A {chain} -d {vip}/32 -p tcp -m tcp --dport {port} "
                         f"-j DNAT --to-destination {dummy_endpoint(i, 0)}:{POD_PORT}")
        lines.append(f"-A {chain} -d {VIP}/32 -p tcp -m tcp --dport {VIP_PORT} "
                     f"-j DNAT --to-destination {target_ip}:{POD_PORT}")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


# -- measurements -------------------------------------------------------------------------------------------


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t, result


def sync_bench(host: Any, nr: Any, sizes: list[int], reps: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    results["ssh_true"] = []  # an SSH exec round trip that does nothing, next to each delta: the floor of a load
    for n in sizes:
        values = program(n)
        full_gen, full_load, full_replace = [], [], []
        for _ in range(reps):
            host.run(["nft", "-f", "-"], stdin=nr.render_delete(NAMESPACE).encode())
            dt, text = timed(nr.render_table, values)
            full_gen.append(dt)
            full_load.append(timed(host.run, ["nft", "-f", "-"], stdin=text.encode(), timeout=120)[0])
            full_replace.append(timed(host.run, ["nft", "-f", "-"], stdin=text.encode(), timeout=120)[0])
        changed = copy.deepcopy(values)
        changed["services"][n // 2]["endpoints"][3]["ip"] = "198.19.201.99"
        delta_gen, delta_load, delta_local = [], [], []
        back = nr.render_delta(changed, values)
        for _ in range(reps):
            dt, script = timed(nr.render_delta, values, changed)
            if not script or not back:
                raise RuntimeError(f"render_delta gave {script!r} for a one-endpoint change")
            delta_gen.append(dt)
            results["ssh_true"].append(timed(host.run, ["true"])[0])
            delta_load.append(timed(host.run, ["nft", "-f", "-"], stdin=script.encode())[0])
            # the same kind of change back, by nft alone on the node (no SSH): what the load costs the node
            delta_local.append(timed(subprocess.run, ["ip", "netns", "exec", NODE, "nft", "-f", "-"],
                                     input=back.encode(), check=True)[0])
        results[str(n)] = {"services": n, "endpoints": n * PER, "table_bytes": len(text.encode()),
                           "delta_bytes": len(script.encode()), "delta_script": script,
                           "full_generate": full_gen, "full_load": full_load, "full_replace": full_replace,
                           "delta_generate": delta_gen, "delta_load": delta_load,
                           "delta_nft_local": delta_local}
    host.run(["nft", "-f", "-"], stdin=nr.render_delete(NAMESPACE).encode())
    return results


def dormant(table: str) -> list[str]:
    return ["nft", "add", "table", "ip", table, "{ flags dormant; }"]


def hook(chain: str, verb: str) -> list[str]:
    return ["iptables", "-t", "nat", verb, "OUTPUT", *(["1"] if verb == "-I" else []), "-j", chain]


def connect_bench(host: Any, nr: Any, backend: Backend, rounds: int, per_block: int) -> dict[str, list[float]]:
    """Loads the four rule sets (all inactive), then has the client measure every scenario in turn."""
    t10, t5k = nr.table_name(NAMESPACE), nr.table_name(NAMESPACE_5K)
    scenarios = [("direct", None, POD_PORT, [], []),
                 ("orch_10", VIP, VIP_PORT, [["nft", "add", "table", "ip", t10]], [dormant(t10)]),
                 ("orch_5000", VIP, VIP_PORT, [["nft", "add", "table", "ip", t5k]], [dormant(t5k)]),
                 ("iptables_10", VIP, VIP_PORT, [hook(KUBE_CHAINS[10], "-I")], [hook(KUBE_CHAINS[10], "-D")]),
                 ("iptables_5000", VIP, VIP_PORT, [hook(KUBE_CHAINS[5000], "-I")], [hook(KUBE_CHAINS[5000], "-D")])]
    while True:
        ip = backend.ip
        for n, ns in ((10, NAMESPACE), (5000, NAMESPACE_5K)):
            table = nr.table_name(ns)
            host.run(["nft", "-f", "-"], stdin=nr.render_table(program(n, ip, ns)).encode(), timeout=120)
            host.run(dormant(table))
        host.run(["iptables-restore", "--noflush"], stdin=kube_restore(ip).encode(), timeout=120)
        time.sleep(1)  # the kernel frees what a big commit replaced after it returns
        blocks = []
        for r in range(rounds):  # rotate the order: each scenario comes after each other one as often
            order = scenarios[r % len(scenarios):] + scenarios[:r % len(scenarios)]
            blocks += [[name, dest or ip, port, on, off] for name, dest, port, on, off in order]
        try:
            return run_client({"blocks": blocks, "n": per_block, "warm": 20, "pace": 0.001})
        except RuntimeError:
            host.run(["sh", "-c", CLEAN_SCRIPT], check=False)  # the client may have stopped with a set active
            if backend.revivals >= 3 or not backend.revive():
                raise
            print(f"net_bench: {CONTAINER} had stopped (dockerd restarted?), started again at {backend.ip}; "
                  "measuring the connects again", file=sys.stderr)


_CHAINS = " ".join(KUBE_CHAINS.values())
CLEAN_SCRIPT = f"""rc=0
for t in orch-ns-{NAMESPACE} orch-ns-{NAMESPACE_5K}; do
  if nft list table ip $t >/dev/null 2>&1; then nft delete table ip $t || rc=1; fi
done
for c in {_CHAINS}; do
  while iptables -t nat -C OUTPUT -j $c 2>/dev/null; do iptables -t nat -D OUTPUT -j $c || {{ rc=1; break; }}; done
  if iptables -t nat -S $c >/dev/null 2>&1; then iptables -t nat -F $c && iptables -t nat -X $c || rc=1; fi
done
exit $rc
"""


def cleanup(host: Any, attrs: dict[str, str]) -> list[str]:
    problems = []
    try:
        if host is not None:
            host.run(["sh", "-c", CLEAN_SCRIPT])
    except Exception as e:  # noqa: BLE001 - clean up the rest, then say what stayed
        problems.append(f"rules: {e}")
    for attempt in range(20):  # dockerd may be restarting (the lab's tests restart it): wait up to ~30 s
        try:
            docker(attrs, "rm", "-f", CONTAINER)
            break
        except Exception as e:  # noqa: BLE001
            if attempt == 19:
                problems.append(f"container {CONTAINER}: {e}")
            time.sleep(1.5)
    return problems


# -- report -------------------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 runs, 600 connects per scenario (~40 s)")
    ap.add_argument("--lab", default=os.environ.get("ORCH_LAB_DIR", "/tmp/orch-lab"))
    args = ap.parse_args()
    reps, rounds, per_block = (3, 12, 50) if args.quick else (5, 30, 100)
    attrs = lab_node(Path(args.lab))

    from orch_provider_docker import netrules as nr
    from orch_provider_docker.transport import NodeSettings, connect

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally below
    load_before = os.getloadavg()
    started = time.perf_counter()
    engine = host = None
    try:
        engine = connect(NodeSettings(name=NODE, address=attrs.get("address"), user=attrs.get("user", "root"),
                                      identity_file=attrs.get("identity_file"), known_hosts=attrs.get("known_hosts"),
                                      docker_host=attrs.get("docker_host")))
        host = engine.host(False)
        if host is None:
            die(f"{NODE} is not reached over SSH")
        host.run(["sh", "-c", CLEAN_SCRIPT])  # leftovers of an interrupted run
        backend = Backend(attrs)
        sync = sync_bench(host, nr, [1000, 5000], reps)
        conn = connect_bench(host, nr, backend, rounds, per_block)
    finally:
        problems = cleanup(host, attrs)
        if engine is not None:
            engine.close()
        if problems:
            print("net_bench: cleanup left something behind:\n  " + "\n  ".join(problems), file=sys.stderr)
    load_after = os.getloadavg()
    runtime = time.perf_counter() - started

    med = statistics.median
    summary: dict[str, Any] = {"sync": {}, "connect": {}}
    print(f"\nPer-node sync on {NODE} (median of {reps} runs, seconds; SSH round trip of `true`: "
          f"{med(sync['ssh_true']):.3f} s)")
    print("| services x endpoints | table | generate | load (nft -f over SSH), new table | total | load, replacing "
          "the table | one-endpoint delta: generate | load | total |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key in ("1000", "5000"):
        s = sync[key]
        row = {k: med(s[k]) for k in ("full_generate", "full_load", "full_replace", "delta_generate", "delta_load")}
        row["full_total"] = row["full_generate"] + row["full_load"]
        row["delta_total"] = row["delta_generate"] + row["delta_load"]
        row["delta_nft_local"] = med(s["delta_nft_local"])
        summary["sync"][key] = {**row, "table_bytes": s["table_bytes"], "delta_bytes": s["delta_bytes"]}
        print(f"| {s['services']:,} x {PER} | {s['table_bytes'] / 1e6:.1f} MB | {row['full_generate']:.3f} | "
              f"{row['full_load']:.3f} | {row['full_total']:.3f} | {row['full_replace']:.3f} | "
              f"{row['delta_generate']:.3f} | {row['delta_load']:.3f} | {row['delta_total']:.3f} |")
    print("the delta's `nft -f` alone, on the node without SSH: "
          + ", ".join(f"{k} x {PER}: {summary['sync'][k]['delta_nft_local']:.3f} s" for k in ("1000", "5000")))
    print(f"\nconnect() from {NODE}'s root namespace ({len(conn['direct'])} per scenario in {rounds} interleaved "
          f"blocks, microseconds)")
    print("| path | median | p90 | median / direct |")
    print("|---|---:|---:|---:|")
    direct = med(conn["direct"])
    labels = {"direct": "pod IP directly", "orch_10": "VIP, orch (nft verdict map), 10 services",
              "orch_5000": "VIP, orch, 5,000 services", "iptables_10": "VIP, iptables layout, 10 services",
              "iptables_5000": "VIP, iptables layout, 5,000 services"}
    for name in labels:
        vals = conn[name]
        m, p90 = med(vals), pct(vals, 0.9)
        summary["connect"][name] = {"median_us": m, "p90_us": p90, "ratio_to_direct": m / direct, "n": len(vals)}
        print(f"| {labels[name]} | {m:.1f} | {p90:.1f} | {m / direct:.2f} |")
    c = summary["connect"]
    summary["ratios"] = {
        "orch_5000_over_orch_10": c["orch_5000"]["median_us"] / c["orch_10"]["median_us"],
        "orch_5000_over_direct": c["orch_5000"]["median_us"] / direct,
        "iptables_5000_over_iptables_10": c["iptables_5000"]["median_us"] / c["iptables_10"]["median_us"],
        "iptables_5000_extra_us": c["iptables_5000"]["median_us"] - c["iptables_10"]["median_us"],
    }
    print("\n" + ", ".join(f"{k} = {v:.2f}" for k, v in summary["ratios"].items()))
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}; {os.cpu_count()} cores; "
          f"ran {runtime:.0f} s")
    OUT.mkdir(exist_ok=True)
    (OUT / "net_bench.json").write_text(json.dumps({
        "node": NODE, "quick": args.quick, "reps": reps, "rounds": rounds, "per_block": per_block,
        "date": time.strftime("%Y-%m-%d"), "python": sys.version.split()[0], "kernel": os.uname().release,
        "cores": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": load_after, "runtime_s": runtime,
        "summary": summary, "sync": sync, "connect_us": conn}, indent=1))


if __name__ == "__main__":
    main()
