"""netrules: a node's service program as nftables input, its read-back, the forward filter and hosts lines.

Pure functions, checked without hosts. Where the tools exist and we are root, the rendered text is also
given to ``nft -c`` / ``iptables-restore --test``, which check it against the kernel without changing
anything (in this sandbox nft's check does not validate hooks and chain types, only syntax, names,
references and element existence).
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from orch_provider_docker import netrules as nr

# In CI (root, the lab's packages installed) these checks must run: there a missing nft is a failure, not a skip.
IN_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")
CAN_NFT = IN_CI or (bool(shutil.which("nft")) and os.geteuid() == 0)
CAN_IPTABLES = IN_CI or (bool(shutil.which("iptables-restore")) and os.geteuid() == 0)


def endpoint(ip: str, node: str = "n1", pod: str = "pod.web[0]") -> dict[str, Any]:
    return {"pod": pod, "ip": ip, "node": node}


def service(name: str, ip: str, *, port: int = 80, protocol: str = "tcp", target_port: int = 8080,
            node_port: int | None = None, endpoints: list[dict[str, Any]] | None = None,
            address: str | None = None) -> dict[str, Any]:
    return {"name": name, "address": address or f"service.{name}", "cluster_ip": ip, "port": port,
            "protocol": protocol, "target_port": target_port, "node_port": node_port,
            "endpoints": endpoints or []}


def program(*services: dict[str, Any], namespace: str = "shop",
            pods: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"node": "n1", "namespace": namespace, "pod_cidr": "198.19.128.0/24",
            "cluster_cidr": "198.19.128.0/17", "services": sorted(services, key=lambda s: s["name"]),
            "pods": pods if pods is not None else [{"pod": "pod.web[0]", "ip": "198.19.128.2"}]}


WEB = service("web", "198.18.130.7", node_port=30080,
              endpoints=[endpoint("198.19.128.2"), endpoint("198.19.129.2", "n2", "pod.web[1]")])
DNS = service("dns", "198.18.130.53", port=53, protocol="udp", target_port=53,
              endpoints=[endpoint("198.19.129.5", "n2", "pod.dns[0]")])
EMPTY_TCP = service("Empty_Svc", "198.18.130.9", node_port=30081, address="module.a.service.Empty_Svc")
EMPTY_UDP = service("quiet", "198.18.130.10", port=514, protocol="udp", target_port=514)
SHOP = program(WEB, DNS, EMPTY_TCP, EMPTY_UDP)


def big_program(n: int = 1000, per: int = 10) -> dict[str, Any]:
    return program(*(service(f"s{i:04d}", f"198.18.{i // 250}.{i % 250 + 1}", node_port=30000 + i,
                             endpoints=[endpoint(f"198.19.{128 + j}.{i % 250 + 2}", f"n{j}", f"pod.s{i}[{j}]")
                                        for j in range(per)])
                     for i in range(n)))


def chain_block(text: str, name: str) -> list[str]:
    m = re.search(rf"^\tchain {re.escape(name)} {{\n(.*?)^\t}}", text, re.M | re.S)
    assert m, f"no chain {name}"
    return [line.strip() for line in m.group(1).splitlines()]


def chain_of(text: str, vip: str, port: int, proto: str) -> str:
    m = re.search(rf"{re.escape(vip)} \. {proto} \. {port} : goto (\S+?)[,\s]", text)
    assert m, f"no map element for {vip}:{port}/{proto}"
    return m.group(1)


def nft_check(tmp_path: Path, text: str) -> None:
    path = tmp_path / "rules.nft"
    path.write_text(text)
    done = subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + "\n" + text[:3000]


# -- rendering ----------------------------------------------------------------------------------------------


def test_table_name_and_namespace_validation() -> None:
    assert nr.table_name("shop") == "orch-ns-shop"
    for bad in ("", "Shop", "1shop", "shop_x", "a" * 41, "shop;flush ruleset", "shop\n"):
        with pytest.raises(ValueError):
            nr.table_name(bad)
    assert nr.render_delete("shop") == "table ip orch-ns-shop\ndelete table ip orch-ns-shop\n"


def test_render_table_layout() -> None:
    text = nr.render_table(SHOP)
    assert text.startswith("table ip orch-ns-shop\ndelete table ip orch-ns-shop\ntable ip orch-ns-shop {\n")
    assert text.endswith("}\n")
    assert chain_block(text, "prerouting")[0] == "type nat hook prerouting priority -105; policy accept;"
    assert chain_block(text, "output")[0] == "type nat hook output priority -105; policy accept;"
    assert chain_block(text, "postrouting")[0] == "type nat hook postrouting priority 95; policy accept;"
    assert "ip daddr . meta l4proto . th dport vmap @services" in chain_block(text, "services")[0]
    assert "fib daddr type local meta l4proto . th dport vmap @nodeports" in chain_block(text, "services")[1]
    assert "198.19.128.2 . 198.19.128.2" in text  # hairpin of the pod on this node
    # every rule carries orch:<hash>; rules of one chain share their chain's hash
    for name in re.findall(r"^\tchain (\S+) \{", text, re.M):
        rules = [line for line in chain_block(text, name) if not line.startswith("type ")]
        assert rules and all(re.search(r' comment "orch:[0-9a-f]{12}"$', rule) for rule in rules), name
        assert len({rule.rsplit(" comment ", 1)[1] for rule in rules}) == 1


def test_service_chains_pick_endpoints_or_refuse() -> None:
    text = nr.render_table(SHOP)
    web = chain_block(text, chain_of(text, "198.18.130.7", 80, "tcp"))
    assert web[0].startswith("meta l4proto tcp numgen random mod 2 == 0 dnat to 198.19.128.2:8080 comment")
    assert web[1].startswith("meta l4proto tcp dnat to 198.19.129.2:8080 comment")
    dns = chain_block(text, chain_of(text, "198.18.130.53", 53, "udp"))
    assert dns[0].startswith("meta l4proto udp dnat to 198.19.129.5:53 comment")
    empty = chain_block(text, chain_of(text, "198.18.130.9", 80, "tcp"))
    assert empty[0].startswith("meta l4proto tcp reject with tcp reset comment")
    quiet = chain_block(text, chain_of(text, "198.18.130.10", 514, "udp"))
    assert quiet[0].startswith("reject comment")
    # node ports: mark for masquerade, then the service's chain
    np = re.search(r"tcp \. 30080 : goto (np-[0-9a-f]+)", text)
    assert np
    svc = chain_of(text, "198.18.130.7", 80, "tcp")
    assert chain_block(text, np.group(1))[0].startswith(f"meta mark set mark | 0x4000 goto {svc} comment")


def test_no_user_strings_in_nft_text_and_deterministic() -> None:
    odd = service("We_b-Ü", "198.18.1.1", address='module.x["a b"].service.We_b-Ü',
                  endpoints=[endpoint("198.19.128.9")])
    text = nr.render_table(program(odd, WEB))
    assert "We_b" not in text and "module" not in text and "Ü" not in text
    shuffled = program(EMPTY_UDP, DNS, WEB, EMPTY_TCP)
    shuffled["services"] = [EMPTY_UDP, DNS, WEB, EMPTY_TCP]
    for svc in shuffled["services"]:
        svc["endpoints"] = list(reversed(svc["endpoints"]))
    assert nr.render_table(shuffled) == nr.render_table(SHOP)


def test_empty_program_omits_elements() -> None:
    text = nr.render_table(program(pods=[]))
    assert "elements" not in text
    assert "map services {" in text and "map nodeports {" in text and "set hairpin {" in text


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update(protocol="sctp"), "protocol"),
    (lambda s: s.update(cluster_ip="198.18.130.300"), "cluster_ip"),
    (lambda s: s.update(cluster_ip="198.18.130.7; flush ruleset"), "cluster_ip"),
    (lambda s: s.update(port=0), "port"),
    (lambda s: s.update(port="80"), "port"),
    (lambda s: s.update(target_port=70000), "target_port"),
    (lambda s: s.update(node_port=True), "node_port"),
    (lambda s: s["endpoints"].append(endpoint("2001:db8::1")), "endpoint"),
])
def test_invalid_service_is_refused(change: Any, message: str) -> None:
    svc = copy.deepcopy(WEB)
    change(svc)
    with pytest.raises(ValueError, match=message):
        nr.render_table(program(svc))


def test_conflicting_services_are_refused() -> None:
    with pytest.raises(ValueError, match="already"):
        nr.render_table(program(WEB, service("web2", "198.18.130.7")))
    with pytest.raises(ValueError, match="node port 30080/tcp"):
        nr.render_table(program(WEB, service("web2", "198.18.130.8", node_port=30080)))
    # same node port number on the other protocol is fine
    nr.render_table(program(WEB, service("web2", "198.18.130.8", protocol="udp", node_port=30080)))


def test_render_big_program_is_fast() -> None:
    big = big_program()
    started = time.perf_counter()
    text = nr.render_table(big)
    elapsed = time.perf_counter() - started
    assert text.count("numgen random mod 10 == 0 dnat to") == 1000
    assert elapsed < 0.5, elapsed  # ~0.04 s on the lab machine


# -- deltas -------------------------------------------------------------------------------------------------


def test_delta_not_possible() -> None:
    assert nr.render_delta(None, SHOP) is None
    assert nr.render_delta(program(WEB, namespace="other"), SHOP) is None
    assert nr.render_delta({"namespace": "BAD"}, SHOP) is None
    assert nr.render_delta(program(), big_program(100, 1)) is None  # all new: the full table is as good
    assert nr.render_delta(SHOP, copy.deepcopy(SHOP)) == ""


def test_delta_one_endpoint_on_a_big_program() -> None:
    big = big_program()
    after = copy.deepcopy(big)
    after["services"][500]["endpoints"].pop()
    started = time.perf_counter()
    delta = nr.render_delta(big, after)
    elapsed = time.perf_counter() - started
    assert delta is not None
    lines = delta.splitlines()
    assert len(lines) == 10 and len(delta) < 2000  # flush the chain, refill it with its 9 endpoints
    svc = chain_of(nr.render_table(big), "198.18.2.1", 80, "tcp")
    assert lines[0] == f"flush chain ip orch-ns-shop {svc}"
    assert lines[1].startswith(f"add rule ip orch-ns-shop {svc} meta l4proto tcp numgen random mod 9 == 0 ")
    assert elapsed < 0.5, elapsed
    # the refilled chain equals the one the full table has
    assert [line.split(f"{svc} ", 1)[1] for line in lines[1:]] == chain_block(nr.render_table(after), svc)


def test_delta_add_and_remove_services() -> None:
    before = program(WEB, DNS, EMPTY_TCP)
    after = program(WEB, DNS, service("api", "198.18.130.20", node_port=30090,
                                      endpoints=[endpoint("198.19.128.7")]),
                    pods=[{"pod": "pod.api[0]", "ip": "198.19.128.7"}])
    delta = nr.render_delta(before, after)
    assert delta is not None
    lines = delta.splitlines()
    old_text, new_text = nr.render_table(before), nr.render_table(after)
    api = chain_of(new_text, "198.18.130.20", 80, "tcp")
    gone = chain_of(old_text, "198.18.130.9", 80, "tcp")
    gone_np = gone.replace("svc-", "np-")
    assert f"add chain ip orch-ns-shop {api}" in lines
    assert "add element ip orch-ns-shop services { 198.18.130.20 . tcp . 80 : goto " + api + " }" in lines
    assert "delete element ip orch-ns-shop services { 198.18.130.9 . tcp . 80 }" in lines
    assert "delete element ip orch-ns-shop nodeports { tcp . 30081 }" in lines
    assert "delete element ip orch-ns-shop hairpin { 198.19.128.2 . 198.19.128.2 }" in lines
    assert "add element ip orch-ns-shop hairpin { 198.19.128.7 . 198.19.128.7 }" in lines
    # the map elements go before their chains; the node-port chain is emptied before either is deleted
    assert lines.index(f"flush chain ip orch-ns-shop {gone_np}") < lines.index(f"delete chain ip orch-ns-shop {gone}")
    assert lines.index("delete element ip orch-ns-shop services { 198.18.130.9 . tcp . 80 }") \
        < lines.index(f"delete chain ip orch-ns-shop {gone}")
    assert lines.index(f"add chain ip orch-ns-shop {api}") \
        < lines.index("add element ip orch-ns-shop services { 198.18.130.20 . tcp . 80 : goto " + api + " }")
    # unchanged services are not touched
    web = chain_of(old_text, "198.18.130.7", 80, "tcp")
    assert web not in delta


def test_delta_moves_a_key_to_another_chain() -> None:
    before = program(WEB)
    moved = copy.deepcopy(WEB)
    moved["address"] = "module.m.service.web"
    delta = nr.render_delta(before, program(moved))
    assert delta is not None
    assert "delete element ip orch-ns-shop services { 198.18.130.7 . tcp . 80 }" in delta
    assert "delete element ip orch-ns-shop nodeports { tcp . 30080 }" in delta


DELTA_CASES = [
    (SHOP, program(WEB, DNS, EMPTY_UDP)),
    (SHOP, program(WEB, DNS, EMPTY_TCP, EMPTY_UDP, service("new", "198.18.130.99", node_port=30099))),
    (SHOP, program(dict(WEB, endpoints=[endpoint("198.19.128.2")]), DNS, EMPTY_TCP, EMPTY_UDP)),
    (SHOP, program(dict(WEB, endpoints=[]), DNS, EMPTY_TCP, EMPTY_UDP, pods=[])),
    (SHOP, program(dict(WEB, node_port=None), DNS, dict(EMPTY_TCP, node_port=30080), EMPTY_UDP)),
    (program(WEB), program(dict(WEB, address="module.m.service.web"))),
]


@pytest.mark.skipif(not CAN_NFT, reason="needs nft and root (nft -c only: nothing is changed)")
@pytest.mark.parametrize("values", [SHOP, program(), program(EMPTY_UDP, pods=[]), big_program(200, 3)])
def test_nft_accepts_the_table(tmp_path: Path, values: dict[str, Any]) -> None:
    nft_check(tmp_path, nr.render_table(values))
    nft_check(tmp_path, nr.render_table(values) + nr.render_delete(values["namespace"]))


@pytest.mark.skipif(not CAN_NFT, reason="needs nft and root (nft -c only: nothing is changed)")
@pytest.mark.parametrize("before, after", DELTA_CASES)
def test_nft_accepts_the_delta(tmp_path: Path, before: dict[str, Any], after: dict[str, Any]) -> None:
    delta = nr.render_delta(before, after)
    assert delta
    # one transaction: the prior table, then the delta (nft checks references and elements' existence)
    nft_check(tmp_path, nr.render_table(before) + delta)


@pytest.mark.skipif(not CAN_NFT, reason="needs nft and root (nft -c only: nothing is changed)")
def test_nft_refuses_a_delta_against_another_table(tmp_path: Path) -> None:
    delta = nr.render_delta(*DELTA_CASES[0])
    assert delta
    path = tmp_path / "rules.nft"
    path.write_text(nr.render_table(program(namespace="shop")) + delta)
    assert subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True).returncode != 0


# -- drift --------------------------------------------------------------------------------------------------


def listing_of(text: str) -> dict[str, Any]:
    """What ``nft -j list table`` prints once ``text`` (a render_table output) is loaded, built by hand in
    nft 1.0.6's shapes. Rule expressions are abbreviated (drift does not read them)."""
    table = re.search(r"^table ip (\S+) \{$", text, re.M)
    assert table
    t = table.group(1)
    objects: list[dict[str, Any]] = [
        {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
        {"table": {"family": "ip", "name": t, "handle": 7}}]
    handle = 1
    rules: list[dict[str, Any]] = []
    body = text[table.end():]
    for m in re.finditer(r"^\t(map|set|chain) (\S+) \{\n(.*?)^\t\}", body, re.M | re.S):
        kind, name, inner = m.groups()
        handle += 1
        lines = [line.strip() for line in inner.splitlines()]
        if kind in ("map", "set"):
            obj: dict[str, Any] = {"family": "ip", "name": name, "table": t, "handle": handle}
            type_line = lines[0].removeprefix("type ")
            key_type, _, value_type = type_line.partition(" : ")
            types = key_type.split(" . ")
            obj["type"] = types if len(types) > 1 else types[0]  # nft lists a lone type bare
            if value_type:
                obj["map"] = value_type
            elements = re.search(r"elements = \{ (.*) \}", inner, re.S)
            if elements:
                elems: list[Any] = []
                for item in re.split(r",\s*", elements.group(1).strip()):
                    key, _, verdict = item.partition(" : ")
                    parts: list[Any] = [int(p) if p.isdigit() else p for p in key.split(" . ")]
                    value: Any = {"concat": parts} if len(parts) > 1 else parts[0]
                    if verdict:
                        goto, target = verdict.split()
                        elems.append([value, {goto: {"target": target}}])
                    else:
                        elems.append(value)
                obj["elem"] = elems
            objects.append({kind: obj})
            continue
        chain: dict[str, Any] = {"family": "ip", "table": t, "name": name, "handle": handle}
        if lines and lines[0].startswith("type "):
            hook = re.match(r"type (\w+) hook (\w+) priority (-?\d+); policy (\w+);", lines.pop(0))
            assert hook
            chain.update(type=hook.group(1), hook=hook.group(2), prio=int(hook.group(3)), policy=hook.group(4))
        objects.append({"chain": chain})
        for line in lines:
            handle += 1
            rule_text, comment = line.rsplit(' comment "', 1)
            rules.append({"rule": {"family": "ip", "table": t, "chain": name, "handle": handle,
                                   "comment": comment.rstrip('"'), "expr": [{"text": rule_text}]}})
    return {"nftables": objects + rules}


def objects_named(listing: dict[str, Any], kind: str, name: str) -> list[dict[str, Any]]:
    return [obj[kind] for obj in listing["nftables"] if kind in obj and obj[kind].get("name") == name]


def test_drift_of_an_intact_table_is_empty() -> None:
    for values in (SHOP, program(), big_program(50, 2)):
        assert nr.drift(values, listing_of(nr.render_table(values))) == []


def test_drift_real_listing_shapes() -> None:
    """Shapes nft prints: a lone element bare, elements wrapped with options, protocol numbers, a map or set
    without elements has no "elem" key, priorities as names."""
    values = program(WEB, pods=[{"pod": "pod.web[0]", "ip": "198.19.128.2"}])
    listing = listing_of(nr.render_table(values))
    services = objects_named(listing, "map", "services")[0]
    services["elem"] = services["elem"][0]  # bare: [key, verdict]
    nodeports = objects_named(listing, "map", "nodeports")[0]
    key, verdict = nodeports["elem"][0]
    nodeports["elem"] = [[{"elem": {"val": {"concat": [6, "30080"]}, "comment": "x"}}, verdict]]
    hairpin = objects_named(listing, "set", "hairpin")[0]
    hairpin["elem"] = hairpin["elem"][0]  # bare
    objects_named(listing, "chain", "prerouting")[0]["prio"] = "dstnat - 5"
    assert nr.drift(values, listing) == []
    del hairpin["elem"]
    assert nr.drift(values, listing) == ["hairpin set: 198.19.128.2 is missing"]
    assert nr.drift(program(pods=[]), listing_of(nr.render_table(program(pods=[])))) == []


def test_drift_flushed_chain_names_the_service() -> None:
    listing = listing_of(nr.render_table(SHOP))
    chain = chain_of(nr.render_table(SHOP), "198.18.130.9", 80, "tcp")
    listing["nftables"] = [obj for obj in listing["nftables"]
                           if not ("rule" in obj and obj["rule"]["chain"] == chain)]
    assert nr.drift(SHOP, listing) == [f"chain {chain} (module.a.service.Empty_Svc) was flushed or edited"]


def test_drift_edited_chain_and_fixed_chains() -> None:
    listing = listing_of(nr.render_table(SHOP))
    listing["nftables"].append({"rule": {"family": "ip", "table": "orch-ns-shop", "chain": "services",
                                         "handle": 999, "expr": [{"accept": None}]}})
    web = chain_of(nr.render_table(SHOP), "198.18.130.7", 80, "tcp")
    for obj in listing["nftables"]:
        if "rule" in obj and obj["rule"]["chain"] == web:
            obj["rule"]["comment"] = "edited"
    assert nr.drift(SHOP, listing) == ["chain services was flushed or edited",
                                       f"chain {web} (service.web) was flushed or edited"]


def test_drift_missing_and_unexpected_elements() -> None:
    listing = listing_of(nr.render_table(SHOP))
    services = objects_named(listing, "map", "services")[0]
    services["elem"] = [e for e in services["elem"] if e[0]["concat"][0] != "198.18.130.7"]
    services["elem"].append([{"concat": ["198.18.99.1", "tcp", 443]}, {"goto": {"target": "svc-gone"}}])
    nodeports = objects_named(listing, "map", "nodeports")[0]
    nodeports["elem"] = [e for e in nodeports["elem"] if e[0]["concat"][1] != 30080]
    hairpin = objects_named(listing, "set", "hairpin")[0]
    hairpin["elem"].append({"concat": ["198.19.128.66", "198.19.128.66"]})
    reasons = nr.drift(SHOP, listing)
    assert reasons == ["service map: 198.18.130.7:80/tcp is missing",
                       "service map: 198.18.99.1:443/tcp is unexpected",
                       "node port 30080/tcp is missing",
                       "hairpin set: 198.19.128.66 is unexpected"]


def test_drift_wrong_target_and_unexpected_objects() -> None:
    listing = listing_of(nr.render_table(SHOP))
    services = objects_named(listing, "map", "services")[0]
    services["elem"][0][1] = {"jump": {"target": "elsewhere"}}
    listing["nftables"].append({"chain": {"family": "ip", "table": "orch-ns-shop", "name": "foo", "handle": 99}})
    listing["nftables"].append({"set": {"family": "ip", "table": "orch-ns-shop", "name": "bar", "handle": 98,
                                        "type": "ipv4_addr"}})
    key = services["elem"][0][0]["concat"]
    reasons = nr.drift(SHOP, listing)
    assert reasons[0] == "unexpected chain foo"
    assert reasons[1].startswith(f"service map: {key[0]}:{key[2]}/{key[1]} leads to jump elsewhere instead of "
                                 "goto svc-")
    assert reasons[2:] == ["unexpected set bar"]


def test_drift_hooks() -> None:
    listing = listing_of(nr.render_table(SHOP))
    listing["nftables"] = [obj for obj in listing["nftables"]
                           if not ("chain" in obj and obj["chain"]["name"] == "prerouting")
                           and not ("rule" in obj and obj["rule"]["chain"] == "prerouting")]
    objects_named(listing, "chain", "postrouting")[0]["prio"] = 100
    objects_named(listing, "chain", "output")[0]["policy"] = "drop"
    assert nr.drift(SHOP, listing) == ["the prerouting hook is missing",
                                       "the output hook has policy drop instead of accept",
                                       "the postrouting hook has priority 100 instead of 95"]


def test_drift_missing_table() -> None:
    assert nr.drift(SHOP, None) == ["table orch-ns-shop is missing"]
    assert nr.drift(SHOP, {"nftables": [{"metainfo": {"version": "1.0.6"}}]}) == ["table orch-ns-shop is missing"]
    other = listing_of(nr.render_table(program(WEB, namespace="other")))
    assert nr.drift(SHOP, other) == ["table orch-ns-shop is missing"]
    missing_map = listing_of(nr.render_table(SHOP))
    missing_map["nftables"] = [obj for obj in missing_map["nftables"] if "map" not in obj]
    assert nr.drift(SHOP, missing_map) == ["the service map is missing", "the node port map is missing"]


def test_drift_after_a_program_change_lists_the_difference() -> None:
    listing = listing_of(nr.render_table(SHOP))
    changed = program(dict(WEB, endpoints=[endpoint("198.19.128.2")]), DNS, EMPTY_TCP, EMPTY_UDP)
    web = chain_of(nr.render_table(SHOP), "198.18.130.7", 80, "tcp")
    assert nr.drift(changed, listing) == [f"chain {web} (service.web) was flushed or edited"]
    many = big_program(60, 1)
    reasons = nr.drift(many, listing_of(nr.render_table(program())))
    assert "service map: 40 more differences" in reasons


# -- network policies -----------------------------------------------------------------------------------------

PEER_WEB = "peer-0123456789ab"
PEER_NONE = "peer-ffffffffffff"


def rule(policy: str = "network_policy.db", number: int = 1, peers: list[dict[str, Any]] | None = None,
         ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"policy": policy, "rule": number, "peers": peers, "ports": ports or []}


def tcp(port: int, end_port: int | None = None, protocol: str = "tcp") -> dict[str, Any]:
    return {"protocol": protocol, "port": port, "end_port": end_port}


DB_INGRESS = [rule(peers=[{"set": PEER_WEB}], ports=[tcp(5432)])]
DB_EGRESS = [rule(peers=[{"cidr": "198.18.0.0/24", "except": ["198.18.0.1/32"]}], ports=[tcp(53, protocol="udp")]),
             rule(number=2, peers=[{"set": PEER_WEB}], ports=[tcp(8000, 8080)])]


def policy_program(*, ingress: Any = DB_INGRESS, egress: Any = DB_EGRESS, web_ingress: Any = None,
                   sets: dict[str, list[str]] | None = None, services: tuple[dict[str, Any], ...] = (WEB,),
                   ) -> dict[str, Any]:
    values = program(*services, pods=[{"pod": "pod.web[0]", "ip": "198.19.128.2"},
                                      {"pod": "pod.db[0]", "ip": "198.19.128.5"}])
    pods = [{"pod": "pod.db[0]", "ip": "198.19.128.5", "ingress": copy.deepcopy(ingress),
             "egress": copy.deepcopy(egress)}]
    if web_ingress is not None:
        pods.insert(0, {"pod": "pod.web[0]", "ip": "198.19.128.2", "ingress": web_ingress, "egress": None})
    values["policy"] = {"pods": pods, "sets": copy.deepcopy(sets) if sets is not None else {
        PEER_WEB: ["198.19.128.2", "198.19.129.2"], PEER_NONE: []}}
    return values


def pod_chain(text: str, ip: str, direction: str) -> str:
    m = re.search(rf"map {direction}_pods \{{\n[^}}]*?{re.escape(ip)} : jump ((?:in|out)-[0-9a-f]{{12}})", text)
    assert m, f"no {direction} map element for {ip}"
    return m.group(1)


def rules_of(text: str, chain: str) -> list[str]:
    return [line.rsplit(" comment ", 1)[0] for line in chain_block(text, chain)]


REFUSE = ["meta l4proto tcp reject with tcp reset", "reject"]
WEB_SHOP = ('table ip orch-ns-shop\ndelete table ip orch-ns-shop\ntable ip orch-ns-shop {\n\tmap services {\n'
            '\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n'
            '\t\telements = { 198.18.130.7 . tcp . 80 : goto svc-68d2c0ddb6e6 }\n\t}\n\tmap nodeports {\n'
            '\t\ttype inet_proto . inet_service : verdict\n\t\telements = { tcp . 30080 : goto np-68d2c0ddb6e6 }\n'
            '\t}\n\tset hairpin {\n\t\ttype ipv4_addr . ipv4_addr\n\t\telements = { 198.19.128.2 . 198.19.128.2 }\n'
            '\t}\n\tchain prerouting {\n\t\ttype nat hook prerouting priority -105; policy accept;\n'
            '\t\tjump services comment "orch:9ec3cc5e04e1"\n\t}\n\tchain output {\n'
            '\t\ttype nat hook output priority -105; policy accept;\n\t\tjump services comment "orch:74ef44d18a4e"\n'
            '\t}\n\tchain postrouting {\n\t\ttype nat hook postrouting priority 95; policy accept;\n'
            '\t\tmeta mark & 0x4000 == 0x4000 masquerade comment "orch:801562621151"\n'
            '\t\tip saddr . ip daddr @hairpin masquerade comment "orch:801562621151"\n\t}\n\tchain services {\n'
            '\t\tip daddr . meta l4proto . th dport vmap @services comment "orch:335f00e3bf76"\n'
            '\t\tfib daddr type local meta l4proto . th dport vmap @nodeports comment "orch:335f00e3bf76"\n\t}\n'
            '\tchain svc-68d2c0ddb6e6 {\n'
            '\t\tmeta l4proto tcp numgen random mod 2 == 0 dnat to 198.19.128.2:8080 comment "orch:2d78e1b254f9"\n'
            '\t\tmeta l4proto tcp dnat to 198.19.129.2:8080 comment "orch:2d78e1b254f9"\n\t}\n'
            '\tchain np-68d2c0ddb6e6 {\n'
            '\t\tmeta mark set mark | 0x4000 goto svc-68d2c0ddb6e6 comment "orch:f1a19bf3c91e"\n\t}\n}\n')


def test_without_policy_the_table_is_as_before() -> None:
    assert nr.render_table(program(WEB)) == WEB_SHOP  # the text before policies existed, byte for byte
    assert nr.render_table(dict(program(WEB), policy=None)) == WEB_SHOP
    for word in ("forward", "pending", "_pods", "peer-", "filter"):
        assert word not in nr.render_table(SHOP)


def test_policy_table_layout() -> None:
    text = nr.render_table(policy_program())
    assert text.startswith(WEB_SHOP.split("\tset hairpin")[0])  # the service part comes first, unchanged
    assert text.index("set hairpin {") < text.index(f"set {PEER_WEB} {{") < text.index("chain prerouting {") \
        < text.index("chain forward {")
    assert chain_block(text, "forward")[0] == "type filter hook forward priority -5; policy accept;"
    assert rules_of(text, "forward")[1:] == ["ct state established,related accept", "ip saddr vmap @egress_pods",
                                             "ip daddr vmap @ingress_pods"]
    assert chain_block(text, "pending")[0] == "type filter hook forward priority -6; policy accept;"
    assert rules_of(text, "pending")[1:] == [
        "ip daddr @pending_in meta l4proto tcp reject with tcp reset", "ip daddr @pending_in reject",
        "ip saddr @pending_out meta l4proto tcp reject with tcp reset", "ip saddr @pending_out reject"]
    assert (f"\tset {PEER_WEB} {{\n\t\ttype ipv4_addr\n"
            "\t\telements = { 198.19.128.2,\n\t\t\t     198.19.129.2 }\n\t}") in text
    assert f"\tset {PEER_NONE} {{\n\t\ttype ipv4_addr\n\t}}" in text  # empty: no elements line
    for name in ("pending_in", "pending_out"):  # always empty in a full load
        assert f"\tset {name} {{\n\t\ttype ipv4_addr\n\t}}" in text
    out, inn = pod_chain(text, "198.19.128.5", "egress"), pod_chain(text, "198.19.128.5", "ingress")
    assert out.startswith("out-") and inn.startswith("in-") and out[4:] == inn[3:]  # one hash per pod
    assert "map egress_pods {\n\t\ttype ipv4_addr : verdict\n" in text
    # every rule commented with its chain's hash, as the service chains
    for name in ("forward", "pending", out, inn):
        comments = {line.rsplit(" comment ", 1)[1] for line in chain_block(text, name) if not line.startswith("type ")}
        assert len(comments) == 1 and re.fullmatch(r'"orch:[0-9a-f]{12}"', comments.pop()), name
    assert "network_policy" not in text and "pod.db" not in text  # no user strings in nft text


def test_policy_rule_kinds() -> None:
    text = nr.render_table(policy_program())
    out, inn = pod_chain(text, "198.19.128.5", "egress"), pod_chain(text, "198.19.128.5", "ingress")
    # egress: allowed -> return (the destination's ingress check follows); cidr with except; port range
    assert rules_of(text, out) == [
        "ip daddr 198.18.0.0/24 ip daddr != { 198.18.0.1/32 } udp dport 53 return",
        f"ip daddr @{PEER_WEB} tcp dport 8000-8080 return", *REFUSE]
    # ingress: allowed -> accept
    assert rules_of(text, inn) == [f"ip saddr @{PEER_WEB} tcp dport 5432 accept", *REFUSE]


@pytest.mark.parametrize("rules, expected", [
    ([], []),  # isolated, nothing allowed
    ([rule()], ["accept"]),  # any source, any port
    ([rule(ports=[tcp(80), tcp(53, protocol="udp")])], ["tcp dport 80 accept", "udp dport 53 accept"]),
    ([rule(ports=[{"protocol": "udp", "port": None, "end_port": None}])], ["meta l4proto udp accept"]),
    ([rule(ports=[tcp(80, 80)])], ["tcp dport 80 accept"]),
    ([rule(peers=[{"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}])], ["ip saddr != { 10.0.0.0/8 } accept"]),
    ([rule(peers=[{"cidr": "0.0.0.0/0"}])], ["accept"]),
    ([rule(peers=[{"cidr": "198.18.0.0/16", "except": ["198.18.1.0/24", "198.18.0.0/24", "198.18.1.128/25"]}])],
     ["ip saddr 198.18.0.0/16 ip saddr != { 198.18.0.0/23 } accept"]),  # collapsed: no overlapping intervals
    ([rule(peers=[])], []),  # a rule listing no peer allows nothing
    ([rule(peers=[{"set": PEER_WEB}, {"set": PEER_NONE}], ports=[tcp(80), tcp(443)])],
     [f"ip saddr @{PEER_WEB} tcp dport 80 accept", f"ip saddr @{PEER_WEB} tcp dport 443 accept",
      f"ip saddr @{PEER_NONE} tcp dport 80 accept", f"ip saddr @{PEER_NONE} tcp dport 443 accept"]),
    # sorted by (policy, rule); the same allowance from two policies once
    ([rule("network_policy.b", 2, ports=[tcp(2)]), rule("network_policy.a", 1, ports=[tcp(1)]),
      rule("network_policy.b", 1, ports=[tcp(1)])], ["tcp dport 1 accept", "tcp dport 2 accept"]),
])
def test_policy_ingress_rules(rules: list[dict[str, Any]], expected: list[str]) -> None:
    text = nr.render_table(policy_program(ingress=rules, egress=None))
    assert rules_of(text, pod_chain(text, "198.19.128.5", "ingress")) == [*expected, *REFUSE]
    assert "map egress_pods {\n\t\ttype ipv4_addr : verdict\n\t}" in text  # not isolated for egress


def test_policy_pods_skipped_sorted_and_deterministic() -> None:
    values = policy_program(web_ingress=[])
    values["policy"]["pods"].append({"pod": "pod.new[0]", "ip": None, "ingress": [], "egress": None})
    values["policy"]["pods"].append({"pod": "pod.free[0]", "ip": "198.19.128.9", "ingress": None, "egress": None})
    text = nr.render_table(values)
    assert re.search(r"map ingress_pods \{\n\t\ttype ipv4_addr : verdict\n"
                     r"\t\telements = \{ 198\.19\.128\.2 : jump in-\w+,\n\t+ +198\.19\.128\.5 : jump in-\w+ \}", text)
    assert "198.19.128.9" not in text
    assert rules_of(text, pod_chain(text, "198.19.128.2", "ingress")) == REFUSE
    shuffled = copy.deepcopy(values)
    shuffled["policy"]["pods"].reverse()
    shuffled["policy"]["sets"][PEER_WEB].reverse()
    db = next(pod for pod in shuffled["policy"]["pods"] if pod["pod"] == "pod.db[0]")
    db["egress"] = list(reversed(db["egress"]))
    assert nr.render_table(shuffled) == text


@pytest.mark.parametrize("change, message", [
    (lambda p: p["pods"][0]["ingress"][0]["peers"].append({"set": "peer-999999999999"}), "peer set"),
    (lambda p: p["pods"][0]["ingress"][0]["peers"].append({"cidr": "198.18.0.1/24"}), "cidr"),
    (lambda p: p["pods"][0]["ingress"][0]["peers"].append({"cidr": "198.18.0.0/24", "except": ["x"]}), "except"),
    (lambda p: p["pods"][0]["ingress"][0]["ports"].append(tcp(90, 80)), "end_port 80 is below"),
    (lambda p: p["pods"][0]["ingress"][0]["ports"].append(tcp(90, protocol="sctp")), "protocol"),
    (lambda p: p["pods"][0]["ingress"][0]["ports"].append(tcp(0)), "port"),
    (lambda p: p["sets"].update({"services": []}), "policy set"),
    (lambda p: p["sets"].update({PEER_NONE: ["198.19.128.2; flush ruleset"]}), "policy set"),
    (lambda p: p["pods"].append(dict(p["pods"][0], pod="pod.db[1]")), "already pod.db"),
    (lambda p: p["pods"][0].update(ip="2001:db8::1"), "ip"),
])
def test_invalid_policy_is_refused(change: Any, message: str) -> None:
    values = policy_program()
    change(values["policy"])
    with pytest.raises(ValueError, match=message):
        nr.render_table(values)


def test_render_pending() -> None:
    text = nr.render_pending("shop", "198.19.128.7", True, False)
    pending_rules = [f"add rule ip orch-ns-shop pending {line}" for line in chain_block(
        nr.render_table(policy_program()), "pending")[1:]]
    assert text.splitlines() == [
        "add table ip orch-ns-shop",
        "add set ip orch-ns-shop pending_in { type ipv4_addr; }",
        "add set ip orch-ns-shop pending_out { type ipv4_addr; }",
        "add chain ip orch-ns-shop pending { type filter hook forward priority -6; policy accept; }",
        "flush chain ip orch-ns-shop pending",  # running it twice never duplicates the rules
        *pending_rules,  # the same rules (and comments) as the full table's: no drift after it
        "add element ip orch-ns-shop pending_in { 198.19.128.7 }"]
    both = nr.render_pending("shop", "198.19.128.7", True, True)
    assert both == text + "add element ip orch-ns-shop pending_out { 198.19.128.7 }\n"
    assert nr.render_pending("shop", "198.19.128.7", False, True) == text.replace(
        "pending_in { 198.19.128.7 }", "pending_out { 198.19.128.7 }")
    assert nr.render_pending("shop", "198.19.128.7", False, False) == ""
    for bad in (("Shop", "198.19.128.7"), ("shop", "198.19.128.7 }; flush ruleset; {")):
        with pytest.raises(ValueError):
            nr.render_pending(*bad, True, True)


def test_policy_delta() -> None:
    values = policy_program()
    assert nr.render_delta(program(WEB), values) is None  # policies appear: full load
    assert nr.render_delta(values, program(WEB)) is None  # policies go away
    changed = copy.deepcopy(values)
    changed["policy"]["sets"][PEER_WEB].append("198.19.130.2")
    assert nr.render_delta(values, changed) is None  # any policy change: full load
    assert nr.render_delta(values, copy.deepcopy(values)) == ""
    # a service change keeps its delta, which ends the pending isolations as a full load does
    services = policy_program(services=(WEB, DNS))
    delta = nr.render_delta(values, services)
    assert delta is not None
    assert delta.splitlines()[-2:] == ["flush set ip orch-ns-shop pending_in", "flush set ip orch-ns-shop pending_out"]
    assert "add element ip orch-ns-shop services { 198.18.130.53 . udp . 53 : goto " in delta


@pytest.mark.skipif(not CAN_NFT, reason="needs nft and root (nft -c only: nothing is changed)")
@pytest.mark.parametrize("values", [
    policy_program(), policy_program(web_ingress=[rule()], sets={PEER_WEB: []}),
    policy_program(ingress=[], egress=[]), policy_program(ingress=None),
    policy_program(ingress=[rule(peers=[{"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "198.18.0.0/15"]},
                                        {"cidr": "198.19.0.0/16"}],
                                 ports=[{"protocol": "udp", "port": None, "end_port": None}, tcp(1, 65535)])]),
])
def test_nft_accepts_the_policy_table(tmp_path: Path, values: dict[str, Any]) -> None:
    table = nr.render_table(values)
    pending = nr.render_pending("shop", "198.19.128.7", True, True)
    nft_check(tmp_path, table)
    nft_check(tmp_path, pending)  # no table yet
    nft_check(tmp_path, pending + pending)  # twice
    nft_check(tmp_path, table + pending + nr.render_pending("shop", "198.19.128.8", False, True) + table)
    nft_check(tmp_path, pending + table + nr.render_delete("shop"))


@pytest.mark.skipif(not CAN_NFT, reason="needs nft and root (nft -c only: nothing is changed)")
def test_nft_accepts_the_policy_delta(tmp_path: Path) -> None:
    delta = nr.render_delta(policy_program(), policy_program(services=(WEB, DNS)))
    assert delta
    nft_check(tmp_path, nr.render_table(policy_program()) + nr.render_pending("shop", "198.19.128.7", True, True)
              + delta)


def without_rules_of(listing: dict[str, Any], chain: str) -> None:
    listing["nftables"] = [obj for obj in listing["nftables"] if not ("rule" in obj and obj["rule"]["chain"] == chain)]


def test_drift_of_an_intact_policy_table_is_empty() -> None:
    for values in (policy_program(), policy_program(web_ingress=[], sets={PEER_WEB: [], PEER_NONE: []})):
        assert nr.drift(values, listing_of(nr.render_table(values))) == []


def test_drift_flushed_pod_chain_names_the_pod() -> None:
    values = policy_program()
    text = nr.render_table(values)
    listing = listing_of(text)
    without_rules_of(listing, pod_chain(text, "198.19.128.5", "ingress"))
    assert nr.drift(values, listing) == ["ingress policy chain of pod.db[0] was flushed or edited"]
    listing = listing_of(text)
    out = pod_chain(text, "198.19.128.5", "egress")
    listing["nftables"] = [obj for obj in listing["nftables"] if obj.get("chain", {}).get("name") != out]
    without_rules_of(listing, out)
    without_rules_of(listing, "forward")
    assert nr.drift(values, listing) == ["chain forward was flushed or edited",
                                         "egress policy chain of pod.db[0] is missing"]


def test_drift_policy_maps_and_sets() -> None:
    values = policy_program()
    listing = listing_of(nr.render_table(values))
    egress = objects_named(listing, "map", "egress_pods")[0]
    del egress["elem"]
    ingress = objects_named(listing, "map", "ingress_pods")[0]
    ingress["elem"][0][1] = {"goto": {"target": "elsewhere"}}
    ingress["elem"].append(["198.19.128.66", {"jump": {"target": "in-000000000000"}}])
    peers = objects_named(listing, "set", PEER_WEB)[0]
    peers["elem"] = ["198.19.128.2", "198.19.130.2"]
    objects_named(listing, "set", PEER_NONE)[0]["elem"] = "198.19.128.2"  # a lone element, bare
    in_chain = pod_chain(nr.render_table(values), "198.19.128.5", "ingress")
    out_chain = pod_chain(nr.render_table(values), "198.19.128.5", "egress")
    assert nr.drift(values, listing) == [
        "egress pod map: pod.db[0] (198.19.128.5) is missing",
        f"ingress pod map: pod.db[0] (198.19.128.5) leads to goto elsewhere instead of jump {in_chain}",
        "ingress pod map: 198.19.128.66 is unexpected",
        f"peer set {PEER_WEB}: 198.19.129.2 is missing",
        f"peer set {PEER_WEB}: 198.19.130.2 is unexpected",
        f"peer set {PEER_NONE}: 198.19.128.2 is unexpected"]
    listing["nftables"] = [obj for obj in listing["nftables"]
                           if not ({"map", "set"} & obj.keys() and next(iter(obj.values()))["name"] in
                                   ("ingress_pods", "egress_pods", PEER_WEB, "pending_out"))]
    assert nr.drift(values, listing) == [
        "the egress pod map is missing", "the ingress pod map is missing", f"peer set {PEER_WEB} is missing",
        f"peer set {PEER_NONE}: 198.19.128.2 is unexpected", "the pending egress set is missing"]
    assert out_chain not in " ".join(nr.drift(values, listing))


def test_drift_pending() -> None:
    values = policy_program()
    listing = listing_of(nr.render_table(values))
    # a new pod's pending isolation (an address the values do not know yet): transient, not drift
    objects_named(listing, "set", "pending_in")[0]["elem"] = ["198.19.128.7"]
    objects_named(listing, "set", "pending_out")[0]["elem"] = "198.19.128.7"
    assert nr.drift(values, listing) == []
    # a known pod still pending: a leftover that refuses what its policies allow
    objects_named(listing, "set", "pending_in")[0]["elem"] = ["198.19.128.7", "198.19.128.5", "198.19.128.2"]
    assert nr.drift(values, listing) == ["pod.web[0] (198.19.128.2) is still in pending ingress isolation",
                                         "pod.db[0] (198.19.128.5) is still in pending ingress isolation"]
    # the pending chain flushed, unhooked, reprioritised
    listing = listing_of(nr.render_table(values))
    without_rules_of(listing, "pending")
    assert nr.drift(values, listing) == ["chain pending was flushed or edited"]
    objects_named(listing, "chain", "pending")[0]["prio"] = "filter"
    objects_named(listing, "chain", "forward")[0]["policy"] = "drop"
    assert nr.drift(values, listing) == ["the forward hook has policy drop instead of accept",
                                         "the forward hook of chain pending has priority filter instead of -6",
                                         "chain pending was flushed or edited"]
    listing["nftables"] = [obj for obj in listing["nftables"] if obj.get("chain", {}).get("name") != "pending"]
    assert nr.drift(values, listing) == ["the forward hook has policy drop instead of accept",
                                         "the forward hook of chain pending is missing"]


def test_drift_policy_objects_without_a_policy_section() -> None:
    """Policy objects in a table whose program has none (any more; or left by render_pending): drift."""
    with_policy = policy_program()
    text = nr.render_table(with_policy)
    values = {key: value for key, value in with_policy.items() if key != "policy"}
    assert nr.drift(values, listing_of(text)) == [
        "unexpected chain forward", f"unexpected chain {pod_chain(text, '198.19.128.5', 'ingress')}",
        f"unexpected chain {pod_chain(text, '198.19.128.5', 'egress')}", "unexpected chain pending",
        "unexpected map egress_pods", "unexpected map ingress_pods", f"unexpected set {PEER_WEB}",
        f"unexpected set {PEER_NONE}", "unexpected set pending_in", "unexpected set pending_out"]


# -- forward filter -----------------------------------------------------------------------------------------

CLUSTER = "198.19.128.0/17"
ORCH_FORWARD_S = """-N ORCH-FORWARD
-A ORCH-FORWARD -s 198.19.128.0/17 -d 198.19.128.0/17 -j ACCEPT
-A ORCH-FORWARD -d 198.19.128.0/17 -m conntrack --ctstate DNAT -j ACCEPT
"""


def test_forward_restore() -> None:
    text = nr.forward_restore(CLUSTER, False, 0)
    assert text == ("*filter\n:ORCH-FORWARD - [0:0]\n"
                    "-A ORCH-FORWARD -s 198.19.128.0/17 -d 198.19.128.0/17 -j ACCEPT\n"
                    "-A ORCH-FORWARD -d 198.19.128.0/17 -m conntrack --ctstate DNAT -j ACCEPT\n"
                    "-I DOCKER-USER 1 -j ORCH-FORWARD\nCOMMIT\n")
    assert "DOCKER-USER" not in nr.forward_restore(CLUSTER, True, 0)
    # misplaced copies: every copy goes (-D takes the first match), one comes back on top
    assert nr.forward_restore(CLUSTER, False, 2).count("-D DOCKER-USER -j ORCH-FORWARD\n") == 2
    moved = nr.forward_restore(CLUSTER, True, 1)
    assert moved.count("-D DOCKER-USER -j ORCH-FORWARD\n") == 2
    assert moved.index("-D DOCKER-USER") < moved.index("-I DOCKER-USER 1 -j ORCH-FORWARD")
    with pytest.raises(ValueError):
        nr.forward_restore("198.19.128.1/17", False, 0)
    with pytest.raises(ValueError):
        nr.forward_restore("198.19.128.0/17 -j DROP", False, 0)


def test_parse_docker_user_and_forward_drift() -> None:
    first = "-N DOCKER-USER\n-A DOCKER-USER -j ORCH-FORWARD\n-A DOCKER-USER -j RETURN\n"
    moved = "-N DOCKER-USER\n-A DOCKER-USER -d 198.19.128.5/32 -j POL-x\n-A DOCKER-USER -j ORCH-FORWARD\n"
    twice = first + "-A DOCKER-USER -j ORCH-FORWARD\n"
    assert nr.parse_docker_user(first) == (True, 0)
    assert nr.parse_docker_user(moved) == (False, 1)
    assert nr.parse_docker_user(twice) == (True, 1)
    assert nr.parse_docker_user("-N DOCKER-USER\n-A DOCKER-USER -j RETURN\n") == (False, 0)
    assert nr.parse_docker_user("") == (False, 0)
    assert nr.forward_drift(CLUSTER, first, ORCH_FORWARD_S) == []
    assert nr.forward_drift(CLUSTER, moved, ORCH_FORWARD_S) == [
        "ORCH-FORWARD is not first in DOCKER-USER (a dockerd restart or another tool moved it)"]
    assert nr.forward_drift(CLUSTER, twice, "-N ORCH-FORWARD\n") == [
        "DOCKER-USER jumps to ORCH-FORWARD 1 more time(s) further down",
        "chain ORCH-FORWARD is missing or was flushed"]
    assert nr.forward_drift(CLUSTER, "", "") == ["ORCH-FORWARD is not hooked into DOCKER-USER",
                                                "chain ORCH-FORWARD is missing or was flushed"]
    assert nr.forward_drift("198.19.0.0/16", first, ORCH_FORWARD_S) == ["chain ORCH-FORWARD was edited"]


def test_forward_delete() -> None:
    assert nr.forward_delete(2) == ("*filter\n-D DOCKER-USER -j ORCH-FORWARD\n-D DOCKER-USER -j ORCH-FORWARD\n"
                                    "-F ORCH-FORWARD\n-X ORCH-FORWARD\nCOMMIT\n")
    assert nr.forward_delete(0, chain_present=False) == "*filter\nCOMMIT\n"


@pytest.mark.skipif(not CAN_IPTABLES, reason="needs iptables-restore and root (--test only: nothing is changed)")
def test_iptables_restore_parses_the_forward_filter() -> None:
    docker_user = "*filter\n:DOCKER-USER - [0:0]\n"  # --test: declared to exist, never committed
    for text in (nr.forward_restore(CLUSTER, False, 0), nr.forward_delete(0)):
        stdin = docker_user + text.removeprefix("*filter\n")
        done = subprocess.run(["iptables-restore", "--test", "--noflush"], input=stdin, capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stderr


# -- names --------------------------------------------------------------------------------------------------


def test_hosts_section() -> None:
    services = [service("web", "198.18.130.7"), service("API", "198.18.130.8"),
                service("my_svc", "198.18.130.9"), service("api", "198.18.130.10", address="module.m.service.api"),
                service("x-", "198.18.130.11")]
    assert nr.hosts_section("shop", services) == (
        "# orch services begin (namespace shop)\n"
        "198.18.130.8 api api.shop api.shop.svc.orch\n"
        "198.18.130.7 web web.shop web.shop.svc.orch\n"
        "# orch services end\n")
    assert nr.hosts_section("shop-", [service("web", "198.18.130.7")]).splitlines()[1] == "198.18.130.7 web"
    assert nr.hosts_section("shop", []) == "# orch services begin (namespace shop)\n# orch services end\n"
    with pytest.raises(ValueError):
        nr.hosts_section("shop", [service("web", "not-an-ip")])


SHELLS = sorted({os.path.realpath(sh) for sh in ("/bin/sh", shutil.which("dash"), shutil.which("bash"),
                                                   shutil.which("busybox")) if sh and os.path.exists(sh)})


def run_script(shell: str, script: str, args: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    argv = [shell, "sh", "-c", script] if shell.endswith("busybox") else [shell, "-c", script]
    return subprocess.run([*argv, "sh", *args], input=stdin, capture_output=True, text=True, timeout=10)


DOCKER_HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n198.19.128.2\tweb-0\n"


@pytest.mark.parametrize("shell", SHELLS)
def test_hosts_update_script(tmp_path: Path, shell: str) -> None:
    one, two, gone = tmp_path / "one", tmp_path / "two", tmp_path / "gone" / "hosts"
    one.write_text(DOCKER_HOSTS)
    other_ns = nr.hosts_section("other", [service("db", "198.18.131.1")])
    two.write_text(DOCKER_HOSTS + other_ns + "10.0.0.1 no-newline-at-end")
    inodes = (one.stat().st_ino, two.stat().st_ino)
    section = nr.hosts_section("shop", [service("web", "198.18.130.7")])

    done = run_script(shell, nr.HOSTS_UPDATE_SCRIPT, ["shop", str(one), str(gone), str(two)], section)
    assert done.returncode == 0, done.stderr
    assert one.read_text() == DOCKER_HOSTS + section
    assert two.read_text() == DOCKER_HOSTS + other_ns + "10.0.0.1 no-newline-at-end\n" + section
    assert (one.stat().st_ino, two.stat().st_ino) == inodes
    assert not gone.exists()

    # idempotent, and a file already right is not written at all (a reader never sees it change); a changed
    # section replaces the old one (duplicates too), in place, also when the file gets shorter
    before = two.read_text()
    os.utime(two, ns=(0, 0))
    assert run_script(shell, nr.HOSTS_UPDATE_SCRIPT, ["shop", str(two)], section).returncode == 0
    assert two.read_text() == before and two.stat().st_mtime_ns == 0
    two.write_text(two.read_text() + section)  # a stray duplicate
    new = nr.hosts_section("shop", [service("web", "198.18.130.7"), service("api", "198.18.130.8")])
    assert run_script(shell, nr.HOSTS_UPDATE_SCRIPT, ["shop", str(two)], new).returncode == 0
    assert two.read_text() == DOCKER_HOSTS + other_ns + "10.0.0.1 no-newline-at-end\n" + new
    assert two.stat().st_ino == inodes[1]

    # reading back
    out = run_script(shell, nr.HOSTS_READ_SCRIPT, ["shop", str(one), str(gone), str(two)])
    assert out.returncode == 0, out.stderr
    assert nr.parse_hosts_read(out.stdout) == {str(one): section, str(two): new}
    out = run_script(shell, nr.HOSTS_READ_SCRIPT, ["third", str(one), str(two)])
    assert nr.parse_hosts_read(out.stdout) == {str(one): "", str(two): ""}

    # empty stdin removes the section (the file shrinks); the other namespace's stays
    assert run_script(shell, nr.HOSTS_UPDATE_SCRIPT, ["shop", str(two)], "").returncode == 0
    assert two.read_text() == DOCKER_HOSTS + other_ns + "10.0.0.1 no-newline-at-end\n"
    assert two.stat().st_ino == inodes[1]


@pytest.mark.parametrize("shell", SHELLS)
def test_hosts_scripts_refuse_a_bad_namespace(tmp_path: Path, shell: str) -> None:
    f = tmp_path / "hosts"
    f.write_text(DOCKER_HOSTS)
    for script in (nr.HOSTS_UPDATE_SCRIPT, nr.HOSTS_READ_SCRIPT):
        for bad in ("", "a b", "$(touch x)", "shop)\n"):
            assert run_script(shell, script, [bad, str(f)], "x\n").returncode == 2
    assert f.read_text() == DOCKER_HOSTS


def test_parse_hosts_read() -> None:
    out = "=/a/hosts\n># orch services begin (namespace shop)\n>1.2.3.4 web\n># orch services end\n!/b/hosts\n=/c\n"
    assert nr.parse_hosts_read(out) == {
        "/a/hosts": "# orch services begin (namespace shop)\n1.2.3.4 web\n# orch services end\n", "/c": ""}


def test_gone_endpoints_are_those_the_new_program_lacks() -> None:
    def program(*ips: str) -> dict:
        return {"services": [{"name": "web", "endpoints": [{"pod": f"pod.web[{i}]", "ip": ip}
                                                           for i, ip in enumerate(ips)]}]}

    assert nr.gone_endpoints(program("198.19.128.2", "198.19.129.2"), program("198.19.128.2")) == ["198.19.129.2"]
    assert nr.gone_endpoints(None, program("198.19.128.2")) == []
    assert nr.gone_endpoints(program("198.19.128.2"), program("198.19.128.2", "198.19.130.2")) == []


@pytest.mark.parametrize("shell", SHELLS)
def test_conntrack_script_forgets_unanswered_attempts_only(tmp_path: Path, shell: str) -> None:
    """Only SYN_SENT tcp entries (a new SYN on a reused port would follow them to a gone replica) and udp flows;
    established connections drain. Anything that is not an IPv4 address is never passed on."""
    log = tmp_path / "calls"
    fake = tmp_path / "conntrack"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexit 1\n')  # exit 1: nothing deleted, not an error
    fake.chmod(0o755)
    script = f"PATH={tmp_path}:$PATH\n" + nr.CONNTRACK_SCRIPT
    done = run_script(shell, script, ["198.19.129.2", "-D;x", ""])
    assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines() == ["-D -p tcp --state SYN_SENT --reply-src 198.19.129.2",
                                            "-D -p udp --reply-src 198.19.129.2"]
