"""The metrics step: CPU and memory from Docker's stats documents (pure), and ``metrics()`` on fake engines."""

from __future__ import annotations

import threading

import pytest
from orch_provider_docker import stats
from orch_provider_docker.provider import DockerProvider

from orchdsl.sdk import ResourceAddress, StateObject, Usage

from docker_fakes import FakeCluster

A = ResourceAddress.parse
MiB = 1 << 20


def doc(total: int, pre_total: int | None, system: int, pre_system: int | None, online: int | None = 4,
        percpu: int = 0, memory: dict | None = None) -> dict:
    """A ``stats?stream=false`` document (the shape Docker returns on Linux)."""
    cpu: dict = {"cpu_usage": {"total_usage": total}, "system_cpu_usage": system}
    if online is not None:
        cpu["online_cpus"] = online
    if percpu:
        cpu["cpu_usage"]["percpu_usage"] = [total // percpu] * percpu
    pre: dict = {"cpu_usage": {}}
    if pre_total is not None:
        pre = {"cpu_usage": {"total_usage": pre_total}, "system_cpu_usage": pre_system}
        if online is not None:
            pre["online_cpus"] = online
    return {"read": "2024-05-01T10:00:02Z", "preread": "2024-05-01T10:00:01Z", "cpu_stats": cpu,
            "precpu_stats": pre, "memory_stats": memory if memory is not None else {}}


V1_MEMORY = {"usage": 50 * MiB, "limit": 1 << 30, "max_usage": 60 * MiB,
             "stats": {"cache": 20 * MiB, "rss": 28 * MiB, "inactive_file": 12 * MiB, "total_inactive_file": 12 * MiB}}
V2_MEMORY = {"usage": 50 * MiB, "limit": 1 << 30,
             "stats": {"anon": 30 * MiB, "file": 18 * MiB, "inactive_file": 15 * MiB, "active_file": 3 * MiB}}


# ---- the computation -----------------------------------------------------------------------------------

def test_cgroup_v1_document():
    d = doc(400_000_000, 300_000_000, 2_001_000_000_000, 2_000_000_000_000, online=4, percpu=4, memory=V1_MEMORY)
    assert stats.cpu_cores(d) == pytest.approx(0.4)  # 0.1 of the machine's 4 CPUs
    assert stats.memory_bytes(d) == 30 * MiB  # usage minus cache
    assert stats.sample(d) == stats.Sample(pytest.approx(0.4), 30 * MiB, "")


def test_cgroup_v1_without_online_cpus_counts_percpu_usage():
    d = doc(400_000_000, 300_000_000, 2_001_000_000_000, 2_000_000_000_000, online=None, percpu=2)
    assert stats.cpu_cores(d) == pytest.approx(0.2)
    assert stats.cpu_cores(doc(400_000_000, 300_000_000, 2_001_000_000_000, 2_000_000_000_000, online=None)) is None


def test_cgroup_v2_document():
    d = doc(1_500_000_000, 1_000_000_000, 10_002_000_000_000, 10_000_000_000_000, online=2, memory=V2_MEMORY)
    assert stats.cpu_cores(d) == pytest.approx(0.5)  # 0.5 s of CPU while the 2 CPUs counted 2 s: half a core
    assert stats.memory_bytes(d) == 35 * MiB  # usage minus inactive_file (v2 has no "cache")


def test_empty_precpu_one_shot_gives_no_cpu_but_memory():
    d = doc(400_000_000, None, 2_001_000_000_000, None, memory=V2_MEMORY)
    assert stats.cpu_cores(d) is None
    assert stats.memory_bytes(d) == 35 * MiB
    s = stats.sample(d)
    assert (s.cpu, s.memory) == (None, 35 * MiB) and "no CPU sample" in s.why
    # precpu present but zero (the engine's first sample of a container)
    assert stats.cpu_cores(doc(400_000_000, 0, 2_001_000_000_000, 0)) is None


def test_zero_deltas():
    # the system counter did not move: no figure, rather than a division by zero
    assert stats.cpu_cores(doc(400_000_000, 300_000_000, 2_000_000_000_000, 2_000_000_000_000)) is None
    # the container did not run: idle is measured, 0 cores
    assert stats.cpu_cores(doc(300_000_000, 300_000_000, 2_001_000_000_000, 2_000_000_000_000)) == 0.0
    # counters went backwards (restarted in between)
    assert stats.cpu_cores(doc(100, 300_000_000, 2_001_000_000_000, 2_000_000_000_000)) is None


def test_stopped_or_odd_documents_measure_nothing():
    stopped = {"cpu_stats": {"cpu_usage": {"total_usage": 0}}, "precpu_stats": {"cpu_usage": {"total_usage": 0}},
               "memory_stats": {}}
    for d in (stopped, {}, {"cpu_stats": None, "memory_stats": "x"}, {"memory_stats": {"usage": True}}):
        assert stats.sample(d).cpu is None and stats.sample(d).memory is None
    assert stats.sample(stopped).why == "no CPU sample and no memory usage (not running?)"
    # a cache larger than the usage is not subtracted
    assert stats.memory_bytes({"memory_stats": {"usage": 10, "stats": {"cache": 20}}}) == 10


def test_total():
    a, b = stats.Sample(0.25, 10 * MiB), stats.Sample(0.5, 5 * MiB)
    assert stats.total([a, b]) == (0.75, 15 * MiB)
    assert stats.total([a, stats.Sample(None, 5 * MiB, "no CPU sample")]) == (None, 15 * MiB)
    assert stats.total([]) == (None, None)


# ---- metrics() on fake engines ---------------------------------------------------------------------------

def _pod(cluster: FakeCluster, node: str, index: int, cpu: tuple[float, float], mem: tuple[int, int]
         ) -> StateObject:
    """pod.web[INDEX] on NODE: an infra container and two apps, their stats canned."""
    eng = cluster[node]
    labels = {"orch.lineage": "L", "orch.address": f"pod.web[{index}]"}
    infra = eng.add_raw(f"web-{index}-infra", labels)
    # the infra container's use must not count
    eng.stats_docs[f"web-{index}-infra"] = doc(10**12, 0, 2 * 10**12, 10**12, memory={"usage": 1 << 40})
    ids = {}
    for name, c, m in zip(("httpd", "sidecar"), cpu, mem):
        ids[name] = eng.add_raw(f"web-{index}-{name}", labels)
        eng.stats_docs[f"web-{index}-{name}"] = doc(int(c * 10**9), 0, 4 * 10**9 + 1, 1, online=4,
                                                    memory={"usage": m, "stats": {"inactive_file": 0}})
    return StateObject(A(f"pod.web[{index}]"), {"node": node, "container": []},
                       {"node": node, "infra": infra, "containers": ids})


def _setup() -> tuple[FakeCluster, DockerProvider, list[StateObject]]:
    cluster = FakeCluster("n1", "n2", unreachable=("n3",))
    nodes = [StateObject(A(f"node.n{i}"), {"address": f"198.18.0.1{i}"}) for i in (1, 2, 3)]
    pods = [_pod(cluster, "n1", 0, (0.25, 0.5), (10 * MiB, 20 * MiB)),
            _pod(cluster, "n2", 1, (1.0, 0.125), (30 * MiB, 1 * MiB)),
            StateObject(A("pod.web[2]"), {"node": "n3"}, {"node": "n3", "infra": "i" * 64,
                                                          "containers": {"httpd": "a" * 64, "sidecar": "b" * 64}})]
    p = DockerProvider(connect=cluster.connect)
    p.configure({}, "L")
    return cluster, p, nodes + pods


def test_metrics_sums_app_containers_and_reports_an_unreachable_node():
    cluster, p, objects = _setup()
    got = p.metrics(objects)
    assert set(got) == {A("pod.web[0]"), A("pod.web[1]"), A("pod.web[2]")}  # nodes are not measured
    assert got[A("pod.web[0]")] == Usage(pytest.approx(0.75), 30 * MiB, "")
    assert got[A("pod.web[1]")] == Usage(pytest.approx(1.125), 31 * MiB, "")
    down = got[A("pod.web[2]")]
    assert down.cpu is None and down.memory is None
    assert "node.n3 is not available: Cannot reach node" in down.detail and "Connection refused" in down.detail
    assert cluster.connects.count("n3") == 1  # tried once, not once per container
    for node in ("n1", "n2"):  # one stats call per app container, none for the infra container
        assert sorted(c[1] for c in cluster[node].calls if c[0] == "stats") == sorted(
            n for n in cluster[node].names() if not n.endswith("-infra"))


def test_metrics_samples_all_containers_at_once():
    cluster, p, objects = _setup()
    barrier = threading.Barrier(4, timeout=5)  # the four app containers of n1 and n2 wait for each other
    for eng in cluster.engines.values():
        def waiting(cid: str, _stats=eng.stats) -> dict:
            barrier.wait()
            return _stats(cid)
        eng.stats = waiting
    got = p.metrics(objects)
    assert got[A("pod.web[0]")].cpu == pytest.approx(0.75) and got[A("pod.web[1]")].memory == 31 * MiB


def test_metrics_container_gone_or_unmeasured():
    cluster, p, objects = _setup()
    cluster["n1"].remove(cluster["n1"].by_name("web-0-sidecar")["Id"])  # removed behind orch's back
    cluster["n2"].stats_docs["web-1-sidecar"] = doc(10, None, 20, None, memory={"usage": 4 * MiB})  # one-shot
    got = p.metrics(objects)
    gone = got[A("pod.web[0]")]
    assert (gone.cpu, gone.memory) == (None, None)
    assert "container sidecar" in gone.detail and "is gone from node n1" in gone.detail
    partial = got[A("pod.web[1]")]
    assert partial == Usage(None, 34 * MiB, "container sidecar: no CPU sample (not running?)")


def test_metrics_pods_it_cannot_place():
    cluster = FakeCluster("n1")
    p = DockerProvider(connect=cluster.connect)
    p.configure({}, "L")
    got = p.metrics([StateObject(A("pod.a"), {}, {}),
                     StateObject(A("pod.b"), {"node": "n9"}, {"containers": {"httpd": "c" * 64}}),
                     StateObject(A("pod.c"), {"node": "n1"}, {"infra": "d" * 64})])
    assert got[A("pod.a")] == Usage(None, None, "no node recorded")
    assert got[A("pod.b")].cpu is None and "Unknown node" in got[A("pod.b")].detail
    assert got[A("pod.c")] == Usage(None, None, "no app container recorded")
    assert p.metrics([]) == {}


CID = "ab" * 32


def test_cgroup_samples_parse() -> None:
    text = (f"t 1000000000\na {CID} 5000000000\nt 2000000000\nb {CID} 5500000000 1048576\n"
            f"a {'cd' * 32} 10\nb {'cd' * 32} 5 -\ngarbage\nb {'ef' * 32} 9 9\n")
    got = stats.parse_cgroup_samples(text)
    assert got == {CID: stats.Sample(0.5, 1048576)}  # counter went back (a restart) or never read first: skipped
    assert stats.parse_cgroup_samples(f"t 5\na {CID} 1\nb {CID} 2 3\n") == {}  # one time stamp only


@pytest.mark.parametrize("layout", ["v1", "v1-combined", "v2"])
def test_cgroup_script_reads_each_layout_twice(tmp_path, layout: str) -> None:
    import subprocess

    root = tmp_path / "cgroup"
    if layout == "v1":
        cpu = root / "cpuacct" / "docker" / CID
        cpu.mkdir(parents=True)
        (cpu / "cpuacct.usage").write_text("123000\n")
    elif layout == "v1-combined":
        cpu = root / "cpu,cpuacct" / "system.slice" / f"docker-{CID}.scope"
        cpu.mkdir(parents=True)
        (cpu / "cpuacct.usage").write_text("123000\n")
    else:
        cpu = root / "system.slice" / f"docker-{CID}.scope"
        cpu.mkdir(parents=True)
        (cpu / "cpu.stat").write_text("usage_usec 123\nuser_usec 100\n")
        (cpu / "memory.current").write_text("4096\n")
        (cpu / "memory.stat").write_text("anon 1\ninactive_file 1024\n")
    if layout.startswith("v1"):
        mem = root / "memory" / "docker" / CID
        mem.mkdir(parents=True)
        (mem / "memory.usage_in_bytes").write_text("4096\n")
        (mem / "memory.stat").write_text("cache 9\ntotal_inactive_file 1024\n")
    out = subprocess.run(["sh", "-c", stats.CGROUP_SCRIPT, "sh", "0.01", CID, "not-an-id", "cd" * 32],
                         capture_output=True, text=True, env={"ORCH_CGROUP_ROOT": str(root), "PATH": "/usr/bin:/bin"},
                         timeout=10)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [x.split()[0] for x in lines] == ["t", "a", "t", "b"], lines  # the unknown container is not printed
    assert lines[1] == f"a {CID} 123000" and lines[3] == f"b {CID} 123000 3072"
