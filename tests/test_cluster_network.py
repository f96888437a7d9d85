"""The cluster layer's networking decisions, pure: pod subnets, service IPs, endpoints, node programs."""

from __future__ import annotations

import ipaddress

from orchdsl.addrs import ResourceAddress
from orchdsl.cluster.derive import Inputs
from orchdsl.cluster.ipam import IPAM, allocate_ips, allocate_subnets
from orchdsl.cluster.services import SERVICES, change_reason, ready
from orchdsl.cluster.settings import check_setting, namespace_from_directory, resolve
from orchdsl.eval.plain import UNKNOWN
from orchdsl.sdk.protocol import MemberStatus, ObjectStatus

CLUSTER = ipaddress.IPv4Network("198.19.128.0/17")
SVC_RANGE = ipaddress.IPv4Network("198.18.128.0/17")
SETTINGS = {"namespace": "shop", "pod_cidr": str(CLUSTER), "service_cidr": str(SVC_RANGE)}


def a(text: str) -> ResourceAddress:
    return ResourceAddress.parse(text)


def node(i: int, **kw) -> dict:
    return {"address": f"198.18.0.{10 + i}", **kw}


# ---- settings ---------------------------------------------------------------------------------------------

def test_namespace_defaults_to_the_directory_name(tmp_path):
    assert namespace_from_directory(tmp_path / "My App_2") == "my-app-2"
    assert namespace_from_directory(tmp_path / "2048") == "ns-2048"
    assert namespace_from_directory(tmp_path / ("x" * 60)).startswith("x")
    assert resolve({}, tmp_path / "web")["namespace"] == "web"
    assert resolve({"namespace": "shop"}, tmp_path / "web")["namespace"] == "shop"


def test_settings_are_checked():
    assert check_setting("namespace", "Shop")[0]
    assert check_setting("namespace", "shop")[0] is None
    assert "too small" in (check_setting("pod_cidr", "198.19.1.0/24")[0] or "")
    assert check_setting("pod_cidr", "198.19.0.0/16")[0] is None
    assert check_setting("service_cidr", "nope")[0]


# ---- pod subnets --------------------------------------------------------------------------------------------

def test_subnets_are_the_lowest_free_and_stable():
    got, errors = allocate_subnets({"n1": (None, None), "n2": (None, None), "n3": (None, None)}, CLUSTER)
    assert not errors and got == {"n1": "198.19.128.0/24", "n2": "198.19.129.0/24", "n3": "198.19.130.0/24"}
    # n1 leaves: the others keep theirs; a new node takes the freed subnet
    got, _ = allocate_subnets({"n2": (None, "198.19.129.0/24"), "n3": (None, "198.19.130.0/24"),
                               "n4": (None, None)}, CLUSTER)
    assert got == {"n2": "198.19.129.0/24", "n3": "198.19.130.0/24", "n4": "198.19.128.0/24"}


def test_a_users_subnet_wins_and_is_checked():
    got, errors = allocate_subnets({"n1": ("198.19.128.0/24", None), "n2": (None, "198.19.128.0/24")}, CLUSTER)
    assert got["n1"] == "198.19.128.0/24" and got["n2"] == "198.19.129.0/24" and not errors
    _, errors = allocate_subnets({"n1": ("198.18.64.0/24", None)}, CLUSTER)
    assert errors[0][1] == "pod_cidr outside the cluster's pod range"
    _, errors = allocate_subnets({"n1": ("198.19.128.0/24", None), "n2": ("198.19.128.0/25", None)}, CLUSTER)
    assert errors[0][1] == "Overlapping pod subnets"
    got, _ = allocate_subnets({"n1": (UNKNOWN, None)}, CLUSTER)
    assert got["n1"] is UNKNOWN


def test_the_pod_range_can_run_out():
    small = ipaddress.IPv4Network("198.19.128.0/23")
    _, errors = allocate_subnets({f"n{i}": (None, None) for i in range(3)}, small)
    assert [e[1] for e in errors] == ["No pod subnet left"]


# ---- service IPs --------------------------------------------------------------------------------------------

def test_service_ips_are_stable_hashed_and_distinct():
    svcs = {a(f"service.s{i}"): (None, None) for i in range(50)}
    got, errors = allocate_ips(svcs, SVC_RANGE, "shop")
    assert not errors and len(set(got.values())) == 50
    again, _ = allocate_ips(svcs, SVC_RANGE, "shop")
    assert again == got
    other, _ = allocate_ips(svcs, SVC_RANGE, "blog")  # another namespace picks elsewhere
    assert len(set(other.values()) & set(got.values())) < 3
    kept, _ = allocate_ips({a("service.s0"): (None, "198.18.128.9")}, SVC_RANGE, "shop")
    assert kept[a("service.s0")] == "198.18.128.9"


def test_a_users_cluster_ip_is_checked():
    got, errors = allocate_ips({a("service.web"): ("198.18.130.7", None)}, SVC_RANGE, "shop")
    assert got[a("service.web")] == "198.18.130.7" and not errors
    _, errors = allocate_ips({a("service.web"): ("198.18.0.7", None)}, SVC_RANGE, "shop")
    assert errors[0][1] == "cluster_ip outside the service range"
    _, errors = allocate_ips({a("service.a"): ("198.18.130.7", None), a("service.b"): ("198.18.130.7", None)},
                             SVC_RANGE, "shop")
    assert errors[0][1] == "Duplicate cluster_ip"


def test_ipam_derivation_writes_nodes_and_services():
    wanted = {a("node.n1"): node(1), a("node.n2"): node(2), a("node.far"): {"docker_host": "tcp://127.0.0.1:1"},
              a("service.web"): {"selector": {"app": "web"}, "port": 80, "node_port": 30080, "protocol": "tcp"},
              a("service.api"): {"selector": {"app": "api"}, "port": 80, "node_port": 30080, "protocol": "tcp"}}
    got = IPAM.derive(Inputs({}, wanted, {}, SETTINGS))
    n1 = got.instances[a("node.n1")].values
    assert n1["pod_cidr"] == "198.19.128.0/24" and n1["cluster_cidr"] == str(CLUSTER)
    assert n1["routes"] == [{"node": "n2", "subnet": "198.19.129.0/24", "via": "198.18.0.12"}]
    assert a("node.far") not in got.instances  # no SSH: no pod network
    assert got.instances[a("service.web")].values["cluster_ip"].startswith("198.18.")
    assert [d.summary for d in got.diagnostics] == ["Duplicate node port"]


def test_overlapping_ranges_are_an_error():
    got = IPAM.derive(Inputs({}, {a("node.n1"): node(1)}, {}, {**SETTINGS, "service_cidr": "198.19.200.0/24"}))
    assert [d.summary for d in got.diagnostics] == ["Overlapping address ranges"]


# ---- endpoints and node programs -----------------------------------------------------------------------------

def _world(pods: dict) -> dict:
    out = {a("node.n1"): {**node(1), "pod_cidr": "198.19.128.0/24", "cluster_cidr": str(CLUSTER)},
           a("node.n2"): {**node(2), "pod_cidr": "198.19.129.0/24", "cluster_cidr": str(CLUSTER)},
           a("service.web"): {"selector": {"app": "web"}, "port": 80, "target_port": 8080, "protocol": "tcp",
                              "cluster_ip": "198.18.130.7", "node_port": None}}
    out.update(pods)
    return out


def test_endpoints_are_the_ready_matching_replicas():
    pods = {a("pod.web[0]"): {"labels": {"app": "web"}, "ip": "198.19.128.2", "node": "n1"},
            a("pod.web[1]"): {"labels": {"app": "web"}, "ip": "198.19.129.2", "node": "n2"},
            a("pod.web[2]"): {"labels": {"app": "web"}, "ip": "198.19.129.3", "node": "n2"},
            a("pod.db[0]"): {"labels": {"app": "db"}, "ip": "198.19.128.3", "node": "n1"},
            a("pod.new[0]"): {"labels": {"app": "web"}, "ip": UNKNOWN, "node": "n1"}}
    unhealthy = ObjectStatus("degraded", members=(MemberStatus("c", "running", health="unhealthy"),))
    got = SERVICES.derive(Inputs(_world(pods), {}, {}, SETTINGS, {a("pod.web[2]"): unhealthy}))
    n1 = got.objects[a("node_services.n1")].values
    [svc] = n1["services"]
    assert [e["pod"] for e in svc["endpoints"]] == ["pod.new[0]", "pod.web[0]", "pod.web[1]"]
    assert svc["endpoints"][0]["ip"] is UNKNOWN  # a new replica's address is known after apply
    assert [p["pod"] for p in n1["pods"]] == ["pod.db[0]", "pod.new[0]", "pod.web[0]"]
    assert n1["namespace"] == "shop" and n1["pod_cidr"] == "198.19.128.0/24"
    deps = got.objects[a("node_services.n1")].depends_on
    assert a("node.n1") in deps and a("service.web") in deps and a("pod.web[1]") in deps
    assert a("pod.web[2]") not in deps and got.summary is not None and "198.18.130.7:80/tcp" in got.summary.text


def test_no_services_no_programs():
    got = SERVICES.derive(Inputs({a("node.n1"): node(1, pod_cidr="198.19.128.0/24")}, {}, {}, SETTINGS))
    assert not got.objects and got.summary is None


def test_readiness():
    assert ready(None)
    assert ready(ObjectStatus("running", members=(MemberStatus("c", "running", health="healthy"),)))
    assert not ready(ObjectStatus("running", members=(MemberStatus("c", "running", health="starting"),)))
    assert not ready(ObjectStatus("stopped"))
    assert not ready(ObjectStatus("unknown", reachable=False))


def test_the_reason_names_what_changes():
    before = {"services": [{"address": "service.web", "endpoints": [{"pod": "pod.web[0]"}]}], "pods": []}
    after = {"services": [{"address": "service.web", "endpoints": [{"pod": "pod.web[1]"}]},
                          {"address": "service.api", "endpoints": []}], "pods": []}
    why = change_reason(before, after)
    assert "service.api is added" in why and "service.web gains pod.web[1]" in why
    assert "service.web loses pod.web[0]" in why
    assert change_reason(None, after) == "because the node carries 2 services"
