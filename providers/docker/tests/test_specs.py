"""Pod values -> Docker Engine API bodies: the infra container, app containers, labels, names."""

from __future__ import annotations

import json

from orch_provider_docker import naming, pods
from orch_provider_docker.transport import Endpoint, NodeSettings

from orchdsl.addrs import ResourceAddress

from docker_helpers import pod_values

FULL = """
pod "web" {
  replicas = 2
  labels   = { app = "web" }
  hostname = "www"
  restart  = "on-failure"
  container "httpd" {
    image       = "orch/busybox:test"
    command     = ["httpd", "-f", "-p", "8080"]
    entrypoint  = ["/bin/busybox"]
    env         = { GREETING = "hi", A = "1" }
    working_dir = "/www"
    user        = "1000:1000"
    init        = true
    read_only   = true
    stop_timeout = "7s"
    ports       = [8080, "80:8081/udp"]
    labels      = { team = "web" }
    mounts      = [{ target = "/data", host_path = "/srv/data" },
                   { target = "/etc/x", host_path = "/srv/x", read_only = true },
                   { target = "/tmp", tmpfs = true }]
    resources {
      cpu    = 0.5
      memory = "64Mi"
      limits {
        cpu    = 1
        memory = "128Mi"
      }
    }
    health {
      command      = ["nc", "-z", "127.0.0.1", "8080"]
      interval     = "5s"
      timeout      = "2s"
      retries      = 4
      start_period = "1s"
    }
  }
  container "side" {
    image = "orch/busybox:test"
    command = ["sleep", "1000"]
    ports = [9090]
  }
}
"""

ADDR = ResourceAddress.parse("pod.web[1]")


def _ident(attrs: dict) -> pods.Identity:
    return pods.Identity("L-1", ADDR, "n2", pods.config_hash(attrs))


def test_infra_container_holds_network_ports_and_hostname(tmp_path):
    attrs = pod_values(FULL, tmp_path, "pod.web[1]")
    body = pods.infra_config(attrs, _ident(attrs))
    assert body["Image"] == "orch/busybox:test"  # the first container's image
    assert body["Entrypoint"] == ["sleep"] and body["Cmd"] == ["2147483647"]
    assert body["Hostname"] == "www"
    assert body["ExposedPorts"] == {"8080/tcp": {}, "8081/udp": {}, "9090/tcp": {}}
    assert body["HostConfig"]["PortBindings"] == {"8081/udp": [{"HostIp": "", "HostPort": "80"}]}
    assert body["HostConfig"]["Init"] is True
    assert body["HostConfig"]["IpcMode"] == "shareable"
    lb = body["Labels"]
    assert lb[naming.LINEAGE] == "L-1" and lb[naming.ADDRESS] == "pod.web[1]" and lb[naming.ROLE] == "infra"
    assert lb[naming.NODE] == "n2" and lb[naming.CONFIG_HASH].startswith("v1:")
    spec = json.loads(lb[naming.SPEC])
    assert spec["container"][0]["env"] == {"A": "1", "GREETING": "hi"} and "id" not in spec


def test_app_container_joins_infra_with_all_attributes(tmp_path):
    attrs = pod_values(FULL, tmp_path, "pod.web[1]")
    httpd = attrs["container"][0]
    body = pods.app_config(attrs, httpd, "INFRA", _ident(attrs))
    assert body["Image"] == "orch/busybox:test"
    assert body["Cmd"] == ["httpd", "-f", "-p", "8080"]
    assert body["Entrypoint"] == ["/bin/busybox"]
    assert body["Env"] == ["A=1", "GREETING=hi"]
    assert body["WorkingDir"] == "/www" and body["User"] == "1000:1000"
    assert body["StopTimeout"] == 7
    assert body["Labels"]["team"] == "web" and body["Labels"][naming.ROLE] == "app"
    assert body["Labels"][naming.CONTAINER] == "httpd"
    assert "ExposedPorts" not in body  # published on the infra container
    hc = body["HostConfig"]
    assert hc["NetworkMode"] == "container:INFRA" and hc["IpcMode"] == "container:INFRA"
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 0}
    assert hc["Init"] is True and hc["ReadonlyRootfs"] is True
    # limits are hard, requests become reservation and shares
    assert hc["NanoCpus"] == 1_000_000_000 and hc["CpuShares"] == 512
    assert hc["Memory"] == hc["MemorySwap"] == 128 << 20 and hc["MemoryReservation"] == 64 << 20
    assert hc["Mounts"] == [
        {"Type": "bind", "Source": "/srv/data", "Target": "/data", "ReadOnly": False},
        {"Type": "bind", "Source": "/srv/x", "Target": "/etc/x", "ReadOnly": True},
        {"Type": "tmpfs", "Target": "/tmp", "ReadOnly": False}]
    assert body["Healthcheck"] == {"Test": ["CMD", "nc", "-z", "127.0.0.1", "8080"], "Interval": 5_000_000_000,
                                   "Timeout": 2_000_000_000, "Retries": 4, "StartPeriod": 1_000_000_000}
    # named volumes (the volume resource type is planned; the schema refuses them until then)
    assert pods.mounts({"mounts": [{"target": "/v", "volume": "v"}]}) == [
        {"Type": "volume", "Source": "v", "Target": "/v", "ReadOnly": False}]


def test_minimal_container_leaves_image_defaults(tmp_path):
    attrs = pod_values('pod "a" {\n container "c" {\n image = "busybox"\n }\n}\n', tmp_path, "pod.a")
    body = pods.app_config(attrs, attrs["container"][0], "I", _ident(attrs))
    for key in ("Cmd", "Entrypoint", "WorkingDir", "User", "Healthcheck", "StopTimeout"):
        assert key not in body
    assert body["HostConfig"]["RestartPolicy"] == {"Name": "always"}
    assert "Memory" not in body["HostConfig"] and "NanoCpus" not in body["HostConfig"]
    assert pods.hostname_for(ResourceAddress.parse("pod.a"), attrs) == "a"


def test_requests_only_become_limits(tmp_path):
    assert pods.resource_limits({"cpu": 0.25, "memory": 33554432}) == {
        "NanoCpus": 250_000_000, "CpuShares": 256, "Memory": 33554432, "MemorySwap": 33554432,
        "MemoryReservation": 33554432}
    assert pods.resource_limits({"limits": {"memory": 1000}}) == {"Memory": 1000, "MemorySwap": 1000}
    assert pods.resource_limits(None) == {}


def test_update_body_has_only_in_place_fields(tmp_path):
    attrs = pod_values(FULL, tmp_path, "pod.web[0]")
    body = pods.update_body(attrs, attrs["container"][0])
    assert set(body) == {"RestartPolicy", "NanoCpus", "CpuShares", "Memory", "MemorySwap", "MemoryReservation"}


SHELLY = ["$(touch /tmp/pwned)", "`id`", "'; rm -rf / #", '"quoted"', "a\nb", "x && y | z > /tmp/f", "${HOME}"]


def test_shell_metacharacters_travel_verbatim_as_json(tmp_path):
    """Values go to the Engine API as JSON strings: no shell ever sees them."""
    env = {f"V{i}": v for i, v in enumerate(SHELLY)}
    attrs = {"name": "web-0", "restart": "always",
             "container": [{"name": "c", "image": "orch/busybox:test", "command": SHELLY, "env": env,
                            "labels": {"note": SHELLY[2], "k$(x)": SHELLY[0]}}]}
    body = pods.app_config(attrs, attrs["container"][0], "I", _ident(attrs))
    assert body["Cmd"] == SHELLY
    assert body["Env"] == [f"V{i}={v}" for i, v in sorted(enumerate(SHELLY), key=lambda kv: f"V{kv[0]}")]
    assert body["Labels"]["note"] == SHELLY[2] and body["Labels"]["k$(x)"] == SHELLY[0]
    json.dumps(body)  # plain JSON


def test_names_are_docker_safe_and_distinct():
    assert naming.base_name(ResourceAddress.parse("pod.web[0]")) == "web-0"
    assert naming.infra_name("web-0") == "web-0-infra"
    assert naming.app_name("web-0", "httpd") == "web-0-httpd"
    odd = ResourceAddress.parse('pod.web["a b; rm -rf /"]')
    name = naming.base_name(odd)
    assert all(ch.isalnum() or ch in "_.-" for ch in name) and name[0].isalnum()
    other = ResourceAddress.parse('pod.web["a b; rm -rf //"]')
    assert naming.base_name(other) != name  # cleaned names keep a hash of the address
    mod_a = ResourceAddress.parse("module.a.pod.web[0]")
    mod_b = ResourceAddress.parse("module.b.pod.web[0]")
    assert naming.base_name(mod_a) != naming.base_name(mod_b) != "web-0"
    assert naming.app_name("web-0", "$(x)") == "web-0-x"


def test_hostname_from_odd_instance_name():
    addr = ResourceAddress.parse('pod.web["A_b c"]')
    assert pods.hostname_for(addr, {"name": "web-A_b c"}) == "web-a-b-c"


def test_remote_socket_is_quoted_in_the_dial_command():
    ep = NodeSettings("n1", address="h", docker_host="unix:///run/x'; touch /tmp/pwned #.sock").endpoint()
    assert ep.kind == "ssh"
    cmd = ep.dial_command()
    assert cmd == "docker -H 'unix:///run/x'\"'\"'; touch /tmp/pwned #.sock' system dial-stdio"
    assert Endpoint("ssh", host="h", port=22, user="root").dial_command() == "docker system dial-stdio"


def test_endpoints_from_node_settings():
    assert NodeSettings("n", address="h").endpoint().kind == "ssh"
    assert NodeSettings("n", docker_host="unix:///tmp/d.sock").endpoint() == Endpoint("unix", path="/tmp/d.sock")
    e = NodeSettings("n", docker_host="ssh://bob@host:2222").endpoint()
    assert (e.kind, e.user, e.host, e.port) == ("ssh", "bob", "host", 2222)
    e = NodeSettings("n", docker_host="tcp://127.0.0.1:2375").endpoint()
    assert (e.kind, e.host, e.port) == ("tcp", "127.0.0.1", 2375)


def test_config_hash_ignores_in_place_attributes_and_number_forms(tmp_path):
    attrs = pod_values(FULL, tmp_path, "pod.web[0]")
    h = pods.config_hash(attrs)
    changed = json.loads(json.dumps(attrs))
    changed["restart"] = "always"
    changed["labels"] = {"app": "other"}
    changed["container"][0]["resources"]["memory"] = 1
    changed["container"][0]["pull"] = "always"
    assert pods.config_hash(changed) == h
    changed["container"][0]["health"]["interval"] = 5  # 5.0 in the state, 5 after a JSON round trip
    assert pods.config_hash(changed) == h
    changed["container"][0]["env"]["A"] = "2"
    assert pods.config_hash(changed) != h
