"""Network policies, pure (orchdsl.cluster.policy): Kubernetes NetworkPolicy semantics, case by case in the
style of Kubernetes' e2e network policy tests, then reachability, its diff and the per-node program."""

from __future__ import annotations

import random
from typing import Any

import pytest

from orchdsl.addrs import ModuleStep, ResourceAddress
from orchdsl.cluster.policy import (ALLOWED, ANY, DENIED, PARTIAL, PodInfo, Policy, PolicyIndex, decide, index_for,
                                    node_policy_program, parse_label, pods_from_values, policies_from_values,
                                    program_rule_count, reach_diff, reachability, set_name)
from orchdsl.eval.plain import UNKNOWN
from orchdsl.schema import normalize


# ---- builders -------------------------------------------------------------------------------------------

def pod(address: str, labels: Any, ip: Any = None, node: Any = "n1",
        ports: tuple[Any, ...] = ()) -> tuple[str, dict[str, Any]]:
    """A pod replica's planned values; ports: 8080 or (8080, "udp")."""
    cports = [{"container_port": p, "protocol": "tcp"} if isinstance(p, int)
              else {"container_port": p[0], "protocol": p[1]} for p in ports]
    return address, {"labels": labels, "ip": ip, "node": node, "container": [{"name": "app", "ports": cports}]}


def pods(*items: tuple[str, dict[str, Any]]) -> list[PodInfo]:
    return pods_from_values(dict(items))


def policy(name: str, **data: Any) -> tuple[str, dict[str, Any]]:
    values, errors = normalize("network_policy", data)
    assert not errors, errors
    assert values is not None
    return f"network_policy.{name}", values


def policies(*items: tuple[str, dict[str, Any]]) -> list[Policy]:
    return policies_from_values(dict(items))


def by(ps: list[PodInfo], address: str) -> PodInfo:
    return next(p for p in ps if p.address == address)


def allowed(src: str, dst: str, port: int, pols: list[Policy], ps: list[PodInfo], proto: str = "tcp") -> bool:
    return decide(src, dst, proto, port, pols, ps).allowed


# The e2e cast: a server (app=server) and two clients, on three nodes.
CAST = pods(pod("pod.server[0]", {"app": "server"}, "198.19.128.10", "n1", (80, 81)),
            pod("pod.server[1]", {"app": "server"}, "198.19.129.10", "n2", (80, 81)),
            pod("pod.client-a[0]", {"app": "client-a"}, "198.19.128.20", "n1"),
            pod("pod.client-b[0]", {"app": "client-b", "role": "blue"}, "198.19.130.30", "n3"))
SERVER = {"app": "server"}


# ---- reading values ---------------------------------------------------------------------------------------

def test_pods_from_values_reads_replicas_groups_and_declared_ports() -> None:
    values: dict[ResourceAddress | str, dict[str, Any]] = {
        ResourceAddress("pod", "web", 2): {"labels": {"app": "web"}, "ip": "198.19.128.4", "node": "n1",
                                           "container": [{"ports": [{"container_port": 8080, "protocol": "tcp"}]},
                                                         {"ports": [{"container_port": 53, "protocol": "UDP"}]}]},
        ResourceAddress("pod", "web", 10): {"labels": {"app": "web"}, "ip": UNKNOWN, "node": UNKNOWN},
        "pod.solo": {"labels": {}, "ip": "198.19.128.9"},
        ResourceAddress("pod", "db", "eu", (ModuleStep("shop", None),)): {"labels": {"app": "db"}},
        "service.web": {"selector": {"app": "web"}},
        "network_policy.x": {"pod_selector": {}},
    }
    ps = pods_from_values(values)
    assert [p.address for p in ps] == ['module.shop.pod.db["eu"]', "pod.solo", "pod.web[2]", "pod.web[10]"]
    web2, web10 = ps[2], ps[3]
    assert web2.group == web10.group == "pod.web" and ps[0].group == "module.shop.pod.db"
    assert web2.ports == (("tcp", 8080), ("udp", 53)) and web10.ports == ()
    assert web10.ip is None and web10.node is None and web2.node == "n1"


def test_policies_from_values_reads_the_normalised_schema() -> None:
    [p] = policies(policy("db", pod_selector={"app": "db"},
                          ingress=[{"from": [{"pod_selector": {"app": "api"}},
                                             {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}],
                                    "ports": [5432, "53/udp", {"port": 8000, "end_port": 8080}]}],
                          egress=[{}]))
    assert p.address == "network_policy.db" and p.selector == {"app": "db"}
    assert p.types == {"ingress", "egress"}  # defaulted: egress because of the egress block
    [rule] = p.ingress
    assert rule.index == 1 and [x.label for x in rule.ports] == ["5432/tcp", "53/udp", "8000-8080/tcp"]
    assert rule.peers[0].selector == {"app": "api"} and rule.peers[1].except_ == ("10.1.0.0/16",)
    assert p.egress[0].peers == () and p.egress[0].ports == ()


# ---- Kubernetes semantics, one case each ------------------------------------------------------------------

def test_deny_all_ingress_isolates_every_pod() -> None:
    pols = policies(policy("deny-all", pod_selector={}, policy_types=["ingress"]))
    for src in ("pod.client-a[0]", "pod.client-b[0]", "pod.server[1]", "203.0.113.7"):
        assert not allowed(src, "pod.server[0]", 80, pols, CAST)
    assert not allowed("pod.server[0]", "pod.client-a[0]", 1234, pols, CAST)
    # egress is not isolated: a pod may still connect out of the cluster
    assert allowed("pod.client-a[0]", "203.0.113.7", 443, pols, CAST)


def test_allow_from_a_label() -> None:
    pols = policies(policy("allow-a", pod_selector=SERVER, ingress=[{"from": [{"pod_selector": {"app": "client-a"}}]}]))
    assert allowed("pod.client-a[0]", "pod.server[0]", 80, pols, CAST)
    assert allowed("pod.client-a[0]", "pod.server[1]", 81, pols, CAST)
    assert not allowed("pod.client-b[0]", "pod.server[0]", 80, pols, CAST)
    assert not allowed("pod.server[1]", "pod.server[0]", 80, pols, CAST)  # replicas of the server too
    assert not allowed("203.0.113.7", "pod.server[0]", 80, pols, CAST)  # a pod selector never matches an address


def test_allow_all_pods_with_an_empty_selector_but_not_the_outside() -> None:
    pols = policies(policy("pods", pod_selector=SERVER, ingress=[{"from": [{"pod_selector": {}}]}]))
    assert allowed("pod.client-b[0]", "pod.server[0]", 80, pols, CAST)
    assert not allowed("203.0.113.7", "pod.server[0]", 80, pols, CAST)


def test_allow_a_port_only() -> None:
    pols = policies(policy("port-80", pod_selector=SERVER, ingress=[{"ports": [80]}]))
    assert allowed("pod.client-b[0]", "pod.server[0]", 80, pols, CAST)
    assert allowed("203.0.113.7", "pod.server[0]", 80, pols, CAST)  # no from: anyone
    assert not allowed("pod.client-b[0]", "pod.server[0]", 81, pols, CAST)
    assert not allowed("pod.client-b[0]", "pod.server[0]", 80, pols, CAST, proto="udp")


def test_allow_a_port_range() -> None:
    pols = policies(policy("range", pod_selector=SERVER,
                           ingress=[{"ports": [{"port": 8000, "end_port": 8080}, "53/udp"]}]))
    for port in (8000, 8042, 8080):
        assert allowed("pod.client-a[0]", "pod.server[0]", port, pols, CAST)
    for port in (7999, 8081):
        assert not allowed("pod.client-a[0]", "pod.server[0]", port, pols, CAST)
    assert allowed("pod.client-a[0]", "pod.server[0]", 53, pols, CAST, proto="udp")
    assert not allowed("pod.client-a[0]", "pod.server[0]", 8000, pols, CAST, proto="udp")
    d = decide("pod.client-a[0]", "pod.server[0]", "tcp", 8042, pols, CAST)
    assert "ingress rule 1 (from anywhere, ports 8000-8080/tcp)" in d.reasons[1]


def test_egress_allow_list() -> None:
    pols = policies(policy("client-out", pod_selector={"app": "client-a"},
                           egress=[{"to": [{"pod_selector": SERVER}], "ports": [80]},
                                   {"ports": ["53/udp"]}]))
    assert pols[0].types == {"ingress", "egress"}  # the default: ingress (isolated, nothing allowed) and egress
    assert allowed("pod.client-a[0]", "pod.server[1]", 80, pols, CAST)
    assert not allowed("pod.client-a[0]", "pod.server[1]", 81, pols, CAST)
    assert not allowed("pod.client-a[0]", "pod.client-b[0]", 80, pols, CAST)
    assert allowed("pod.client-a[0]", "8.8.8.8", 53, pols, CAST, proto="udp")
    assert not allowed("pod.client-a[0]", "8.8.8.8", 443, pols, CAST)
    assert not allowed("pod.client-b[0]", "pod.client-a[0]", 80, pols, CAST)  # its ingress is isolated too


def test_egress_deny_all() -> None:
    pols = policies(policy("no-out", pod_selector={}, policy_types=["egress"]))
    assert not allowed("pod.client-a[0]", "pod.server[0]", 80, pols, CAST)
    assert not allowed("pod.server[0]", "1.1.1.1", 443, pols, CAST)
    assert allowed("203.0.113.7", "pod.server[0]", 80, pols, CAST)  # ingress stays open


def test_cidr_with_except_for_an_outside_source() -> None:
    pols = policies(policy("office", pod_selector=SERVER,
                           ingress=[{"from": [{"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}]}]))
    assert allowed("10.2.3.4", "pod.server[0]", 80, pols, CAST)
    assert not allowed("10.1.2.3", "pod.server[0]", 80, pols, CAST)
    assert not allowed("192.168.1.1", "pod.server[0]", 80, pols, CAST)
    assert not allowed("pod.client-a[0]", "pod.server[0]", 80, pols, CAST)


def test_cidr_with_except_for_pod_addresses() -> None:
    pols = policies(policy("node1-pods", pod_selector=SERVER,
                           ingress=[{"from": [{"cidr": "198.19.128.0/24", "except": ["198.19.128.20/32"]}]}]))
    assert allowed("pod.server[0]", "pod.server[1]", 80, pols, CAST)  # 198.19.128.10: in the block
    assert not allowed("pod.client-a[0]", "pod.server[1]", 80, pols, CAST)  # 198.19.128.20: excepted
    assert not allowed("pod.client-b[0]", "pod.server[1]", 80, pols, CAST)  # 198.19.130.30: outside
    # a string that is a pod's IP is that pod
    assert decide("198.19.128.10", "pod.server[1]", "tcp", 80, pols, CAST).allowed


def test_union_of_two_policies() -> None:
    pols = policies(policy("a", pod_selector=SERVER, ingress=[{"from": [{"pod_selector": {"app": "client-a"}}],
                                                             "ports": [80]}]),
                    policy("b", pod_selector=SERVER, ingress=[{"from": [{"pod_selector": {"role": "blue"}}],
                                                             "ports": [81]}]))
    assert allowed("pod.client-a[0]", "pod.server[0]", 80, pols, CAST)
    assert allowed("pod.client-b[0]", "pod.server[0]", 81, pols, CAST)
    assert not allowed("pod.client-a[0]", "pod.server[0]", 81, pols, CAST)
    assert not allowed("pod.client-b[0]", "pod.server[0]", 80, pols, CAST)
    d = decide("pod.client-b[0]", "pod.server[0]", "tcp", 81, pols, CAST)
    assert d.policies == ("network_policy.b",)
    assert "isolated for ingress by network_policy.a, network_policy.b" in d.reasons[1]


def test_a_pod_no_policy_selects_stays_open() -> None:
    pols = policies(policy("server", pod_selector=SERVER, ingress=[]))
    assert allowed("pod.server[0]", "pod.client-a[0]", 9999, pols, CAST)
    assert allowed("203.0.113.7", "pod.client-b[0]", 22, pols, CAST)
    assert not allowed("pod.client-a[0]", "pod.server[0]", 80, pols, CAST)


def test_isolation_is_per_direction() -> None:
    out_only = policies(policy("out", pod_selector=SERVER, policy_types=["egress"], egress=[{"ports": [53]}]))
    assert allowed("pod.client-a[0]", "pod.server[0]", 80, out_only, CAST)  # ingress not isolated
    assert not allowed("pod.server[0]", "pod.client-a[0]", 80, out_only, CAST)
    assert allowed("pod.server[0]", "pod.client-a[0]", 53, out_only, CAST)
    # egress rules of a policy whose policy_types leave egress out are ignored (as in Kubernetes)
    in_only = policies(policy("in", pod_selector=SERVER, policy_types=["ingress"], egress=[{"ports": [53]}],
                              ingress=[{"ports": [80]}]))
    assert allowed("pod.server[0]", "pod.client-a[0]", 443, in_only, CAST)
    assert not allowed("pod.client-a[0]", "pod.server[0]", 443, in_only, CAST)


def test_a_pod_talking_to_itself_is_never_filtered() -> None:
    pols = policies(policy("deny", pod_selector={}, policy_types=["ingress", "egress"]))
    d = decide("pod.server[0]", "pod.server[0]", "tcp", 80, pols, CAST)
    assert d.allowed and "loopback" in d.reasons[0]
    assert not allowed("pod.server[1]", "pod.server[0]", 80, pols, CAST)


def test_decide_reasons() -> None:
    pols = policies(policy("db-only-api", pod_selector=SERVER,
                           ingress=[{"from": [{"pod_selector": {"app": "client-a"}}], "ports": [80]}]),
                    policy("deny-all", pod_selector={}, policy_types=["egress"]))
    d = decide(by(CAST, "pod.client-a[0]"), by(CAST, "pod.server[0]"), "TCP", 80, pols, CAST)
    assert not d.allowed
    assert d.reasons[:2] == (
        "pod.client-a[0] is isolated for egress by network_policy.deny-all; no rule of network_policy.deny-all "
        "allows it",
        "pod.server[0] is isolated for ingress by network_policy.db-only-api; allowed by network_policy.db-only-api "
        "ingress rule 1 (from pods {app=client-a}, port 80/tcp)")
    assert d.policies == ("network_policy.deny-all",)
    ok = decide("203.0.113.7", "pod.client-b[0]", "udp", 53, pols, CAST)
    assert ok.allowed and ok.policies == ()
    assert ok.reasons == ("203.0.113.7 is outside the cluster: no egress policy applies to it",
                          "pod.client-b[0] is not isolated for ingress")
    cidr = policies(policy("c", pod_selector=SERVER, ingress=[{"from": [{"cidr": "10.0.0.0/8",
                                                                          "except": ["10.1.0.0/16"]}]}]))
    assert decide("10.9.9.9", "pod.server[0]", "tcp", 1, cidr, CAST).reasons[1].endswith(
        "allowed by network_policy.c ingress rule 1 (from 10.0.0.0/8 except 10.1.0.0/16, any port)")


# ---- unknown values ----------------------------------------------------------------------------------------

def test_unknown_labels_match_only_what_is_surely_matched() -> None:
    ps = pods(pod("pod.new[0]", UNKNOWN, None, "n1"), pod("pod.half[0]", {"app": "half", "v": UNKNOWN}, "198.19.128.8"),
              *[(p.address, {"labels": dict(p.labels), "ip": p.ip, "node": p.node}) for p in CAST])
    new, half = by(ps, "pod.new[0]"), by(ps, "pod.half[0]")
    assert new.unknown_labels and new.labels == {} and half.labels == {"app": "half"} and half.unknown_labels
    pols = policies(policy("half", pod_selector={"app": "half"}, ingress=[]),
                    policy("v", pod_selector={"v": "1"}, ingress=[]),
                    policy("srv", pod_selector=SERVER, ingress=[{"from": [{"pod_selector": {"v": "1"}}]}]))
    assert not allowed("pod.client-a[0]", "pod.half[0]", 80, pols, ps)  # selected by what its known labels say
    assert allowed("pod.client-a[0]", "pod.new[0]", 80, pols, ps)  # no selector matches unknown labels
    assert not allowed("pod.half[0]", "pod.server[0]", 80, pols, ps)  # v unknown: not {v=1}
    d = decide("pod.new[0]", "pod.server[0]", "tcp", 80, pols, ps)
    assert any("pod.new[0]: labels known after apply" in r for r in d.reasons)
    # {} selects every pod, known labels or not
    deny = policies(policy("all", pod_selector={}, ingress=[]))
    assert not allowed("pod.client-a[0]", "pod.new[0]", 80, deny, ps)
    reach = reachability(ps, pols)
    assert any("labels known after apply" in n for n in reach.notes)


def test_unknown_selector_peer_and_port_match_nothing() -> None:
    [p] = policies_from_values({"network_policy.u": {
        "pod_selector": UNKNOWN, "policy_types": ["ingress"], "ingress": [], "egress": []}})
    assert not p.selector_known and any("pod_selector is known after apply" in n for n in p.notes)
    assert allowed("pod.client-a[0]", "pod.server[0]", 80, [p], CAST)  # selects no pod yet
    pols = policies_from_values({"network_policy.s": {
        "pod_selector": SERVER, "policy_types": ["ingress"],
        "ingress": [{"from": [{"pod_selector": {"app": UNKNOWN}, "cidr": None, "except": []}], "ports": []},
                    {"from": [], "ports": [{"port": UNKNOWN, "protocol": "tcp"}]},
                    {"from": [{"pod_selector": None, "cidr": UNKNOWN, "except": []}], "ports": []},
                    {"from": [], "ports": [{"port": 81, "protocol": "tcp"}, UNKNOWN]}]}})
    assert not allowed("pod.client-a[0]", "pod.server[0]", 80, pols, CAST)
    assert allowed("pod.client-a[0]", "pod.server[0]", 81, pols, CAST)  # the known entry of rule 4
    assert len([n for n in pols[0].notes if "known after apply" in n]) == 4
    prog = node_policy_program("n1", CAST, pols)
    assert [r["rule"] for r in prog["pods"][0]["ingress"]] == [4]  # rules allowing nothing are left out
    assert prog["sets"] == {}


def test_a_pod_without_an_address_matches_no_cidr_and_is_in_no_set() -> None:
    ps = pods(pod("pod.a[0]", {"app": "a"}, None, "n1"), pod("pod.a[1]", {"app": "a"}, "198.19.128.3", "n1"),
              pod("pod.s[0]", {"app": "s"}, "198.19.128.4", "n1"))
    pols = policies(policy("s", pod_selector={"app": "s"}, ingress=[{"from": [{"cidr": "198.19.128.0/24"}]},
                                                                    {"from": [{"pod_selector": {"app": "a"}}],
                                                                     "ports": [9]}]))
    assert not allowed("pod.a[0]", "pod.s[0]", 80, pols, ps)
    assert allowed("pod.a[1]", "pod.s[0]", 80, pols, ps)
    reach = reachability(ps, pols)
    assert reach[("pod.a", "pod.s")] == {"9/tcp": ALLOWED}
    assert any("pod.a[0]: address known after apply" in n for n in reach.notes)
    prog = node_policy_program("n1", ps, pols)
    assert prog["sets"] == {set_name({"app": "a"}): ["198.19.128.3"]}


# ---- reachability ------------------------------------------------------------------------------------------

def web_db(replicas: int = 3, canary: int | None = None, db_replicas: int = 2) -> list[PodInfo]:
    items = []
    for i in range(replicas):
        labels = {"app": "web", **({"track": "canary"} if i == canary else {})}
        items.append(pod(f"pod.web[{i}]", labels, f"198.19.{128 + i % 2}.{10 + i}", f"n{1 + i % 2}", (8080,)))
    for i in range(db_replicas):
        items.append(pod(f"pod.db[{i}]", {"app": "db"}, f"198.19.128.{100 + i}", "n1", (5432,)))
    items.append(pod("pod.cache[0]", {"app": "cache"}, "198.19.129.200", "n2"))
    return pods(*items)


DB_FROM_WEB = policy("db", pod_selector={"app": "db"},
                     ingress=[{"from": [{"pod_selector": {"app": "web"}}], "ports": [5432]}])


def test_reachability_groups_replicas_and_labels_ports() -> None:
    ps = web_db()
    reach = reachability(ps, policies(DB_FROM_WEB))
    assert reach[("pod.web", "pod.db")] == {"5432/tcp": ALLOWED}
    assert reach[("pod.cache", "pod.db")] == {"5432/tcp": DENIED}
    assert reach[("pod.db", "pod.db")] == {"5432/tcp": DENIED}  # replicas of one group are paired
    assert reach[("pod.web", "pod.web")] == {"8080/tcp": ALLOWED}
    assert reach[("pod.db", "pod.cache")] == {ANY: ALLOWED}  # cache declares no port, no policy names one
    assert ("pod.cache", "pod.cache") not in reach  # one replica: never paired with itself
    assert reach.policies[("pod.cache", "pod.db", "5432/tcp")] == ("network_policy.db",)
    assert reach.policies[("pod.web", "pod.db", "5432/tcp")] == ("network_policy.db",)
    assert reach.policies[("pod.web", "pod.cache", ANY)] == ()
    assert len(reach) == 3 * 3 - 1


def test_reachability_is_partial_when_replicas_differ() -> None:
    ps = web_db(replicas=4, canary=3)
    pols = policies(policy("db", pod_selector={"app": "db"},
                           ingress=[{"from": [{"pod_selector": {"app": "web", "track": "canary"}}]}]))
    reach = reachability(ps, pols)
    assert reach[("pod.web", "pod.db")] == {"5432/tcp": PARTIAL}
    # and on the destination side: only the canary replica is isolated
    pols = policies(policy("canary", pod_selector={"track": "canary"}, ingress=[]))
    reach = reachability(ps, pols)
    assert reach[("pod.db", "pod.web")] == {"8080/tcp": PARTIAL}
    assert reach[("pod.web", "pod.web")] == {"8080/tcp": PARTIAL}
    assert reach.policies[("pod.db", "pod.web", "8080/tcp")] == ("network_policy.canary",)


def test_reachability_is_partial_when_a_cidr_covers_some_replicas() -> None:
    ps = web_db(replicas=4)  # web replicas alternate between 198.19.128.x and 198.19.129.x
    pols = policies(policy("db", pod_selector={"app": "db"}, ingress=[{"from": [{"cidr": "198.19.128.0/24"}]}]))
    reach = reachability(ps, pols)
    assert reach[("pod.web", "pod.db")] == {"5432/tcp": PARTIAL}
    assert reach[("pod.cache", "pod.db")] == {"5432/tcp": DENIED}
    assert reach[("pod.db", "pod.db")] == {"5432/tcp": ALLOWED}


def test_reachability_labels_ports_policies_name_and_ranges() -> None:
    ps = web_db()
    pols = policies(policy("db", pod_selector={"app": "db"}, ingress=[{"ports": [{"port": 8000, "end_port": 8080}]}]),
                    policy("web-out", pod_selector={"app": "web"},
                           egress=[{"to": [{"pod_selector": {"app": "db"}}],
                                    "ports": [{"port": 8050, "end_port": 8100}]},
                                   {"to": [{"pod_selector": {"app": "cache"}}], "ports": ["6379"]}]))
    reach = reachability(ps, pols)
    assert reach[("pod.web", "pod.db")] == {"5432/tcp": DENIED, "8000-8080/tcp": PARTIAL, "8050-8100/tcp": PARTIAL}
    assert reach[("pod.cache", "pod.db")] == {"5432/tcp": DENIED, "8000-8080/tcp": ALLOWED,
                                              "8050-8100/tcp": PARTIAL}
    assert reach[("pod.web", "pod.cache")] == {"6379/tcp": ALLOWED}
    assert reach[("pod.db", "pod.cache")] == {"6379/tcp": ALLOWED}
    assert reach.policies[("pod.web", "pod.db", "8050-8100/tcp")] == ("network_policy.db", "network_policy.web-out")
    assert parse_label("any") is not None and parse_label("8000-8080/tcp") == (("tcp", 8000, 8080),)


def test_reachability_agrees_with_decide_replica_by_replica() -> None:
    rng = random.Random(7)
    for _ in range(25):
        items: list[tuple[str, dict[str, Any]]] = []
        for g in range(4):
            for i in range(rng.randint(1, 3)):
                labels = {"app": f"g{g}", **({"tier": rng.choice("ab")} if rng.random() < 0.5 else {})}
                items.append(pod(f"pod.g{g}[{i}]", labels, f"198.19.{128 + rng.randint(0, 1)}.{len(items) + 1}",
                                 "n1", (rng.choice((80, 443)),)))
        ps = pods(*items)

        def peers() -> list[dict[str, Any]]:
            return rng.choice([[], [{"pod_selector": {}}], [{"pod_selector": {"app": f"g{rng.randint(0, 3)}"}}],
                               [{"pod_selector": {"tier": rng.choice("ab")}}], [{"cidr": "198.19.128.0/24"}],
                               [{"cidr": "198.19.128.0/23", "except": ["198.19.129.0/24"]}]])

        def ports() -> list[Any]:
            return rng.choice([[], [80], [443], [80, 443]])

        pol_items = []
        for k in range(rng.randint(1, 4)):
            sel = rng.choice([{}, {"app": f"g{rng.randint(0, 3)}"}, {"tier": rng.choice("ab")}])
            types = rng.choice([["ingress"], ["egress"], ["ingress", "egress"]])
            pol_items.append(policy(f"p{k}", pod_selector=sel, policy_types=types,
                                    ingress=[{"from": peers(), "ports": ports()} for _ in range(rng.randint(0, 2))],
                                    egress=[{"to": peers(), "ports": ports()} for _ in range(rng.randint(0, 2))]))
        pols = policies(*pol_items)
        reach = reachability(ps, pols)
        for (gs, gd), row in reach.items():
            for label, state in row.items():
                ivs = parse_label(label)
                assert ivs is not None and len(ivs) == 1 and ivs[0][1] == ivs[0][2]
                proto, port, _ = ivs[0]
                results = {decide(s, d, proto, port, pols, ps).allowed for s in ps for d in ps
                           if s.group == gs and d.group == gd and s.address != d.address}
                expect = ALLOWED if results == {True} else DENIED if results == {False} else PARTIAL
                assert state == expect, (gs, gd, label, pols)


# ---- reach_diff ---------------------------------------------------------------------------------------------

def test_reach_diff_when_a_policy_is_added() -> None:
    ps = web_db()
    changes = reach_diff(reachability(ps, []), reachability(ps, policies(DB_FROM_WEB)))
    assert [(c.src_group, c.dst_group, c.port_label, c.before_state, c.after_state, c.policies) for c in changes] == [
        ("pod.cache", "pod.db", "5432/tcp", ALLOWED, DENIED, ("network_policy.db",)),
        ("pod.db", "pod.db", "5432/tcp", ALLOWED, DENIED, ("network_policy.db",))]
    # and removed: the same changes back
    back = reach_diff(reachability(ps, policies(DB_FROM_WEB)), reachability(ps, []))
    assert [(c.src_group, c.dst_group, c.before_state, c.after_state) for c in back] == [
        ("pod.cache", "pod.db", DENIED, ALLOWED), ("pod.db", "pod.db", DENIED, ALLOWED)]


def test_reach_diff_when_a_label_changes() -> None:
    pols = policies(DB_FROM_WEB)
    before = web_db()
    relabelled = [p if p.group != "pod.cache" else PodInfo(p.address, p.group, {"app": "web"}, p.ip, p.node, p.ports)
                  for p in before]
    changes = reach_diff(reachability(before, pols), reachability(relabelled, pols))
    assert [(c.src_group, c.dst_group, c.before_state, c.after_state) for c in changes] == [
        ("pod.cache", "pod.db", DENIED, ALLOWED)]
    assert changes[0].policies == ("network_policy.db",)


def test_reach_diff_when_replicas_change() -> None:
    pols = policies(DB_FROM_WEB)
    # a new replica of a denied group: still denied, nothing changes but the group's new pairing with itself
    one = pods(*[(p.address, {"labels": dict(p.labels), "ip": p.ip, "node": p.node}) for p in web_db()])
    two = one + pods(pod("pod.cache[1]", {"app": "cache"}, "198.19.129.201", "n2"))
    changes = reach_diff(reachability(one, pols), reachability(two, pols))
    assert [(c.src_group, c.dst_group, c.port_label, c.before_state, c.after_state) for c in changes] == [
        ("pod.cache", "pod.cache", ANY, None, ALLOWED)]
    # a new replica whose labels differ: the group becomes partial
    odd = one + pods(pod("pod.cache[1]", {"app": "cache", "x": "1"}, "198.19.129.201", "n2"))
    pols2 = policies(DB_FROM_WEB, policy("x", pod_selector={"app": "db"},
                                         ingress=[{"from": [{"pod_selector": {"x": "1"}}]}]))
    changes = reach_diff(reachability(one, pols2), reachability(odd, pols2))
    assert ("pod.cache", "pod.db", "5432/tcp", DENIED, PARTIAL) in [
        (c.src_group, c.dst_group, c.port_label, c.before_state, c.after_state) for c in changes]
    # fewer replicas: pairs that disappear are no change
    assert reach_diff(reachability(two, pols), reachability(one, pols)) == []


def test_reach_diff_evaluates_a_label_that_goes_away() -> None:
    ps = web_db()
    named = policies(policy("db", pod_selector={"app": "db"}, ingress=[{"ports": [9000]}]))
    changes = reach_diff(reachability(ps, named), reachability(ps, []))
    got = {(c.src_group, c.port_label, c.before_state, c.after_state) for c in changes if c.dst_group == "pod.db"}
    assert ("pod.web", "9000/tcp", ALLOWED, ALLOWED) not in got
    assert ("pod.web", "5432/tcp", DENIED, ALLOWED) in got
    assert not any(c.port_label == "9000/tcp" for c in changes)  # allowed before, allowed after
    assert changes == sorted(changes, key=lambda c: (c.src_group, c.dst_group, c.port_label))


# ---- node programs ------------------------------------------------------------------------------------------

def test_node_policy_program_shape_and_shared_sets() -> None:
    ps = web_db(replicas=3) + pods(pod("pod.db[9]", {"app": "db"}, None, "n1"))
    pols = policies(
        policy("db", pod_selector={"app": "db"},
               ingress=[{"from": [{"pod_selector": {"app": "web"}}], "ports": [5432]},
                        {"from": [{"cidr": "198.18.0.0/24", "except": ["198.18.0.1/32"]},
                                  {"pod_selector": {"app": "web"}}], "ports": [{"port": 9100, "end_port": 9102}]}]),
        policy("db-out", pod_selector={"app": "db"}, policy_types=["egress"], egress=[{}]),
        policy("web", pod_selector={"app": "web"}, egress=[{"to": [{"pod_selector": {"app": "db"}}]}]))
    prog = node_policy_program("n1", ps, pols)
    web_set, db_set = set_name({"app": "web"}), set_name({"app": "db"})
    assert web_set.startswith("peer-") and len(web_set) == 17 and web_set != db_set
    assert set(prog["sets"]) == {web_set, db_set}  # one set per selector, however many rules use it
    assert prog["sets"][web_set] == ["198.19.128.10", "198.19.128.12", "198.19.129.11"]  # every node's web pods
    assert prog["sets"][db_set] == ["198.19.128.100", "198.19.128.101"]  # known addresses only
    assert [p["pod"] for p in prog["pods"]] == ["pod.db[0]", "pod.db[1]", "pod.db[9]", "pod.web[0]", "pod.web[2]"]
    db0 = prog["pods"][0]
    assert db0 == {"pod": "pod.db[0]", "ip": "198.19.128.100", "ingress": [
        {"policy": "network_policy.db", "rule": 1, "peers": [{"set": web_set}],
         "ports": [{"protocol": "tcp", "port": 5432, "end_port": None}]},
        {"policy": "network_policy.db", "rule": 2,
         "peers": [{"cidr": "198.18.0.0/24", "except": ["198.18.0.1/32"]}, {"set": web_set}],
         "ports": [{"protocol": "tcp", "port": 9100, "end_port": 9102}]}],
        "egress": [{"policy": "network_policy.db-out", "rule": 1, "peers": None, "ports": []}]}
    assert prog["pods"][2]["ip"] is None
    web0 = prog["pods"][3]
    assert web0["ingress"] == []  # isolated (the default policy_types), nothing allowed
    assert web0["egress"] == [{"policy": "network_policy.web", "rule": 1, "peers": [{"set": db_set}], "ports": []}]
    # one rule per (rule x peer x port entry): db x3 (1 + 2 + 1), web x2 (0 + 1)
    assert program_rule_count(prog) == 3 * 4 + 2 * 1
    n2 = node_policy_program("n2", ps, pols)
    assert [p["pod"] for p in n2["pods"]] == ["pod.web[1]"] and list(n2["sets"]) == [db_set]
    assert node_policy_program("n9", ps, pols) == {"pods": [], "sets": {}}
    assert node_policy_program("n1", ps, pols, index=PolicyIndex(ps, pols)) == prog


def test_node_policy_program_omits_pods_that_are_not_isolated() -> None:
    pols = policies(policy("srv", pod_selector=SERVER, ingress=[{"from": [{"pod_selector": {"app": "client-a"}}]},
                                                                {"from": [{"pod_selector": {"app": "client-a"}}],
                                                                 "ports": [81]}]))
    prog = node_policy_program("n1", CAST, pols)
    assert [p["pod"] for p in prog["pods"]] == ["pod.server[0]"]
    rules = prog["pods"][0]["ingress"]
    assert rules[0]["peers"] == rules[1]["peers"] and len(prog["sets"]) == 1  # one selector, one set
    assert prog["pods"][0]["egress"] is None


@pytest.mark.parametrize("n", [10, 40])
def test_node_rules_grow_with_local_pods_not_the_cluster(n: int) -> None:
    items = [pod(f"pod.g{g}[{i}]", {"app": f"g{g}"}, f"198.19.{128 + i}.{g + 1}", f"n{i}")
             for g in range(n) for i in range(4)]
    ps = pods(*items)
    pols = policies(*[policy(f"p{g}", pod_selector={"app": f"g{g}"},
                             ingress=[{"from": [{"pod_selector": {"app": f"g{(g + 1) % n}"}}], "ports": [80]}])
                      for g in range(n)])
    prog = node_policy_program("n0", ps, pols)
    assert program_rule_count(prog) == n  # one isolated pod per group on n0, one rule each
    assert sum(len(v) for v in prog["sets"].values()) == 4 * n  # each selected group's 4 replicas, once


def test_the_index_is_reused_for_the_same_lists_only() -> None:
    pols = policies(policy("srv", pod_selector=SERVER, ingress=[]))
    ps = list(CAST)
    first = node_policy_program("n1", ps, pols)
    assert index_for(ps, pols) is index_for(ps, pols)
    assert [p["pod"] for p in first["pods"]] == ["pod.server[0]"]
    moved = [p if p.address != "pod.server[1]" else PodInfo(p.address, p.group, p.labels, p.ip, "n1", p.ports)
             for p in ps]
    assert [p["pod"] for p in node_policy_program("n1", moved, pols)["pods"]] == ["pod.server[0]", "pod.server[1]"]
    assert [p["pod"] for p in node_policy_program("n1", ps, pols)["pods"]] == ["pod.server[0]"]


def test_a_peer_in_another_namespace_matches_none_of_ours():
    from orchdsl.addrs import ResourceAddress as A
    from orchdsl.schema import normalize

    raw, errors = normalize("network_policy", {"pod_selector": {"app": "db"}, "ingress": [
        {"from": [{"pod_selector": {"app": "api"}, "namespace": "blog"}], "ports": [5432]}]})
    assert not errors
    pods = pods_from_values({A.parse("pod.db"): {"labels": {"app": "db"}, "ip": "198.19.128.2", "node": "n1"},
                             A.parse("pod.api"): {"labels": {"app": "api"}, "ip": "198.19.128.3", "node": "n1"}})
    db, api = sorted(pods, key=lambda p: p.address, reverse=True)
    policies = policies_from_values({A.parse("network_policy.db"): raw}, "shop")
    assert not decide(api, db, "tcp", 5432, policies, pods).allowed  # our api is not blog's
    [entry] = node_policy_program("n1", pods, policies)["pods"]
    assert entry["ingress"][0]["peers"] == [{"namespace": "blog", "pod_selector": {"app": "api"}}]
    # naming our own namespace is the same as naming none
    ours = policies_from_values({A.parse("network_policy.db"): raw}, "blog")
    assert decide(api, db, "tcp", 5432, ours, pods).allowed


def test_cidr_peers_reach_the_nodes_as_networks():
    """A block written with host bits (198.18.0.1/24) matches as 198.18.0.0/24, and the node program carries
    the network form (what nftables accepts: it refused the other at apply, a traceback then)."""
    from orchdsl.addrs import ResourceAddress as A
    from orchdsl.schema import normalize

    raw, errors = normalize("network_policy", {"pod_selector": {"app": "db"}, "ingress": [
        {"from": [{"cidr": "198.18.0.1/24", "except": ["198.18.0.9/31"]}]}]})
    assert not errors
    pods = pods_from_values({A.parse("pod.db"): {"labels": {"app": "db"}, "ip": "198.19.128.2", "node": "n1"}})
    [entry] = node_policy_program("n1", pods, policies_from_values({A.parse("network_policy.db"): raw}))["pods"]
    assert entry["ingress"][0]["peers"] == [{"cidr": "198.18.0.0/24", "except": ["198.18.0.8/31"]}]
