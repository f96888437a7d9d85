"""Resource schemas: quantities, shorthands, defaults, unknown values, errors with paths."""

from __future__ import annotations

import pytest

from orchdsl.eval.types import NUMBER, STRING, ListType, MapType
from orchdsl.plan import UNKNOWN
from orchdsl.schema import (RESOURCE_TYPES, Pod, describe, exported_attributes, format_memory, normalize,
                            parse_cpu, parse_duration, parse_memory)


@pytest.mark.parametrize("text,expected", [
    ("64Mi", 64 * 2**20), ("1Gi", 2**30), ("512M", 512_000_000), ("1k", 1000), ("1K", 1000), ("2Ki", 2048),
    ("1.5Gi", 3 * 2**29), ("512MB", 512_000_000), ("1GiB", 2**30), ("100", 100), (1024, 1024), ("1e3", 1000),
    (" 2Ti ", 2 * 2**40), ("0", 0),
])
def test_memory(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text,message", [
    ("64Mx", 'unknown memory unit "Mx"'), ("lots", "is not a memory size"), ("-1Mi", "is not a memory size"),
    ("0.5", "not a whole number of bytes"), (True, "not True"), ([1], "not [1]"),
])
def test_memory_errors(text, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_memory(text)


@pytest.mark.parametrize("text,expected", [
    (0.25, 0.25), ("250m", 0.25), ("2", 2.0), (1, 1.0), ("0.5", 0.5), ("1500m", 1.5),
])
def test_cpu(text, expected):
    assert parse_cpu(text) == expected


@pytest.mark.parametrize("text", ["abc", "0.0001", "-1", "1.5m"])
def test_cpu_errors(text):
    with pytest.raises(ValueError):
        parse_cpu(text)


@pytest.mark.parametrize("text,expected", [
    ("5s", 5.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0), ("2", 2.0), (10, 10.0), ("1.5s", 1.5), ("0", 0.0),
    ("100us", 0.0001),
])
def test_duration(text, expected):
    assert parse_duration(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["5 s", "5x", "", "s", "-5s", "inf"])
def test_duration_errors(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_memory():
    assert format_memory(64 * 2**20) == "64Mi" and format_memory(1000) == "1000"


def test_every_resource_type_is_described():
    assert set(RESOURCE_TYPES) == {"node", "pod", "service", "network_policy", "volume", "secret"}
    pod = describe(Pod)
    assert pod.attributes["labels"].type == MapType(STRING)
    assert pod.attributes["ip"].computed and not pod.attributes["labels"].required
    container = pod.blocks["container"]
    assert container.labels == ("name",) and container.nesting == "list" and container.min_items == 1
    assert container.spec.attributes["command"].type == ListType(STRING)
    assert container.spec.blocks["resources"].nesting == "single"
    assert describe(RESOURCE_TYPES["service"]).attributes["port"].type == NUMBER
    assert "ip" in exported_attributes("pod") and "container" in exported_attributes("pod")
    assert describe(RESOURCE_TYPES["secret"]).attributes["data"].sensitive


def _pod(**container):
    return {"container": [{"name": "c", "image": "x", **container}]}


def test_pod_normalisation_and_defaults():
    values, errors = normalize("pod", _pod(resources={"cpu": "250m", "memory": "64Mi",
                                                      "limits": {"cpu": 1, "memory": "1Gi"}},
                                           ports=[80, "53/udp", "8080:80",
                                                  {"container_port": 9000, "name": "metrics"}],
                                           health={"command": ["true"], "interval": "5s"},
                                           mounts=[{"target": "/d", "host_path": "/srv/data"}]))
    assert not errors
    c = values["container"][0]
    assert c["resources"] == {"cpu": 0.25, "memory": 64 * 2**20, "limits": {"cpu": 1.0, "memory": 2**30}}
    assert [(p["container_port"], p["host_port"], p["protocol"]) for p in c["ports"]] == [
        (80, None, "tcp"), (53, None, "udp"), (80, 8080, "tcp"), (9000, None, "tcp")]
    assert c["health"] == {"command": ["true"], "interval": 5.0, "timeout": 5.0, "retries": 3, "start_period": 0.0}
    assert c["mounts"][0] == {"target": "/d", "volume": None, "host_path": "/srv/data", "tmpfs": False,
                              "read_only": False}
    assert c["pull"] == "missing" and c["env"] == {} and values["restart"] == "always"


def test_normalised_values_validate_again():
    values, _ = normalize("pod", _pod(resources={"cpu": "250m", "memory": "64Mi"}, ports=["53/udp"]))
    again, errors = normalize("pod", {k: v for k, v in values.items() if k not in ("name", "ip", "node")})
    assert not errors and again == values


def test_null_means_unset():
    values, errors = normalize("pod", _pod(pull=None, env=None))
    assert not errors and values["container"][0]["pull"] == "missing"


def test_unknown_values_pass():
    values, errors = normalize("pod", {"labels": {"app": UNKNOWN},
                                       "container": [{"name": "c", "image": UNKNOWN,
                                                      "resources": {"memory": UNKNOWN},
                                                      "ports": UNKNOWN, "mounts": [UNKNOWN]}]})
    assert not errors
    c = values["container"][0]
    assert c["image"] is UNKNOWN and c["resources"]["memory"] is UNKNOWN and c["ports"] is UNKNOWN
    assert values["labels"] == {"app": UNKNOWN}
    values, errors = normalize("service", {"selector": {"a": "b"}, "port": UNKNOWN})
    assert not errors and values["target_port"] is UNKNOWN


@pytest.mark.parametrize("data,loc,message", [
    (_pod(resources={"memory": "64Mx"}), ("container", 0, "resources", "memory"), 'unknown memory unit "Mx"'),
    (_pod(resources={"cpu": 2, "limits": {"cpu": 1}}), ("container", 0, "resources"), "cpu limit (1.0) is below"),
    (_pod(ports=[70000]), ("container", 0, "ports", 0, "container_port"), "less than or equal to 65535"),
    (_pod(ports=["http"]), ("container", 0, "ports", 0), '"http" is not a port'),
    (_pod(mounts=[{"target": "/x"}]), ("container", 0, "mounts", 0), "needs exactly one of volume"),
    (_pod(pull="sometimes"), ("container", 0, "pull"), "'missing', 'always' or 'never'"),
    (_pod(health={"command": []}), ("container", 0, "health", "command"), "must not be empty"),
    ({"container": [{"name": "c", "image": "x"}, {"name": "c", "image": "y"}]}, ("container",), "two containers"),
    ({**_pod(), "strategy": {"max_surge": 0, "max_unavailable": 0}}, ("strategy",), "could never progress"),
    ({**_pod(), "autoscale": {"min_replicas": 3, "max_replicas": 2}}, ("autoscale",), "above max_replicas"),
])
def test_pod_errors(data, loc, message):
    values, errors = normalize("pod", data)
    assert values is None
    assert any(e_loc == loc and message in msg for e_loc, msg in errors), errors


def test_node_service_policy_volume_secret():
    node, errors = normalize("node", {"address": "198.18.0.11", "capacity": {"cpu": "1500m", "memory": "4Gi"}})
    assert not errors and node["port"] == 22 and node["user"] == "root" and node["capacity"]["memory"] == 4 * 2**30
    assert normalize("node", {"labels": {}})[1] == [((), 'a node needs "address" (SSH) or "docker_host"')]
    assert normalize("node", {"address": "h", "pod_cidr": "10.0.0.0/33"})[1]
    svc, errors = normalize("service", {"selector": {"app": "web"}, "port": 80, "protocol": "UDP"})
    assert not errors and svc["target_port"] == 80 and svc["protocol"] == "udp"
    assert normalize("service", {"selector": {"a": "b"}, "port": 80, "node_port": 80})[1][0][0] == ("node_port",)
    assert normalize("service", {"selector": {}, "port": 80})[1][0][0] == ("selector",)
    pol, errors = normalize("network_policy", {
        "pod_selector": {"app": "db"},
        "ingress": [{"from": [{"pod_selector": {"app": "web"}}], "ports": [5432, "53/udp"]}],
        "egress": [{"to": [{"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}]}]})
    assert not errors
    assert pol["policy_types"] == ["ingress", "egress"]
    assert pol["ingress"][0]["ports"] == [{"port": 5432, "protocol": "tcp", "end_port": None},
                                          {"port": 53, "protocol": "udp", "end_port": None}]
    assert pol["egress"][0]["to"][0]["except"] == ["10.0.0.0/8"]
    _, errors = normalize("network_policy", {"pod_selector": {}, "ingress": [{"from": [{"cidr": "10.0.0.0"}, {}]}]})
    assert [loc for loc, _ in errors] == [("ingress", 0, "from", 1)]
    _, errors = normalize("network_policy", {"pod_selector": {}, "ingress": [{"from": [{"cidr": "nope"}]}]})
    assert "is not a CIDR block" in errors[0][1]
    vol, errors = normalize("volume", {})
    assert not errors and vol["driver"] == "local"
    _, errors = normalize("secret", {})
    assert errors == [(("data",), "Field required")]
