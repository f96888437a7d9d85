"""``node``: a Docker host orch places pods on, reached over SSH or a Docker socket."""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from ..eval.types import DYNAMIC
from .base import (
    UNKNOWN_OK, Block, Bool, Computed, Hcl, Cpu, Memory, Port, Resource, Schema, Str, StrMap, all_known, is_unknown)


# The endpoints the Docker provider's transport reaches (providers/docker/orch_provider_docker/transport.py):
# unix:// (a socket: local, or on the node over SSH when address is set), ssh://, tcp:// and http:// (plain
# HTTP, for loopback test engines).
DOCKER_HOST_SCHEMES = ("unix", "ssh", "tcp", "http")
_HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?"
_HOST_RE = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?")


def _host_ok(v: str) -> bool:
    if len(v) <= 253 and _HOST_RE.fullmatch(v):
        return True
    try:
        ipaddress.ip_address(v[1:-1] if v.startswith("[") and v.endswith("]") else v)
    except ValueError:
        return False
    return True


class Capacity(Schema):
    cpu: Annotated[Cpu | None, Field(description="Cores pods may request on this node (default: what the "
                                                  "host reports).")] = None
    memory: Annotated[Memory | None, Field(description="Bytes of memory pods may request on this node "
                                                       "(default: what the host reports).")] = None


class Node(Resource):
    type_name = "node"
    summary = "A Docker host. orch connects over SSH (paramiko) or to a Docker socket."

    address: Annotated[Str | None, Field(description="Host name or IP address to reach the node over SSH.")] \
        = None
    port: Annotated[Port, Field(description="SSH port.")] = 22
    user: Annotated[Str, Field(description="SSH user.")] = "root"
    identity_file: Annotated[Str | None, Field(description="Private key file for SSH (default: the SSH agent "
                                                           "and ~/.ssh keys).")] = None
    known_hosts: Annotated[Str | None, Field(description="known_hosts file used to verify the host key "
                                                         "(default: ~/.ssh/known_hosts).")] = None
    become: Annotated[Bool, Field(description="Run the node's privileged commands (ip, nft, iptables-restore, "
                                              "writing pods' hosts files) with `sudo -n` (passwordless sudo "
                                              "for a non-root `user`).")] = False
    docker_host: Annotated[Str | None, Field(description="Docker endpoint, e.g. `unix:///var/run/docker.sock` "
                                                         "or `ssh://user@host`; default: the Docker socket "
                                                         "over the SSH connection.")] = None
    labels: Annotated[StrMap, Field(description="Labels matched by pods' `node_selector`, and topology keys "
                                                "for `spread_by`.")] = {}
    schedulable: Annotated[Bool, Field(description="Whether new pods may be placed on this node (false: "
                                                   "cordoned).")] = True
    pod_cidr: Annotated[Str | None, Field(description="The node's pod subnet, inside the cluster's pod range "
                                                      "(default: a free /24 orch picks and keeps).")] = None
    cluster_cidr: Annotated[Str | None, Computed(), Field(description="The cluster's pod range (the orch "
                                                                      "block's pod_cidr).")] = None
    routes: Annotated[Any, UNKNOWN_OK, Hcl(DYNAMIC), Computed(), Field(
        description="Routes to the other nodes' pod subnets: objects with node, subnet and via.")] = None
    capacity: Annotated[Capacity | None, Block(), Field(description="Schedulable resources; at most one "
                                                                    "block.")] = None

    @field_validator("address")
    @classmethod
    def _address(cls, v: Any) -> Any:
        if not isinstance(v, str):
            return v
        if "@" in v:
            raise ValueError(f'address "{v}" holds a user: set user = "{v.partition("@")[0]}" and address = '
                             f'"{v.partition("@")[2]}"')
        if not _host_ok(v):
            raise ValueError(f'address "{v[:100]}" is not a host name or an IP address')
        return v

    @field_validator("docker_host")
    @classmethod
    def _docker_host(cls, v: Any) -> Any:
        if not isinstance(v, str):
            return v
        u = urllib.parse.urlsplit(v)
        if u.scheme not in DOCKER_HOST_SCHEMES:
            raise ValueError(f'docker_host "{v[:100]}": orch reaches Docker through unix://, ssh:// or tcp:// '
                             "endpoints")
        if u.scheme != "unix" and not u.hostname:
            raise ValueError(f'docker_host "{v}" names no host (write {u.scheme}://'
                             f'{"USER@" if u.scheme == "ssh" else ""}HOST[:PORT])')
        try:
            _ = u.port
        except ValueError:
            raise ValueError(f'docker_host "{v}" has an invalid port') from None
        return v

    @model_validator(mode="after")
    def _reachable(self) -> Node:
        if self.address is None and self.docker_host is None:
            raise ValueError('a node needs "address" (SSH) or "docker_host"')
        if all_known(self.pod_cidr) and self.pod_cidr is not None:
            import ipaddress
            try:
                ipaddress.ip_network(self.pod_cidr)
            except ValueError as e:
                raise ValueError(f'pod_cidr: {e}') from None
        return self




def engine_key(values: dict) -> tuple | None:
    """Which Docker engine a node's values reach (None: not known yet), so that two node resources of one
    engine are caught: the scheduler would count that host's capacity twice. Same rules as the Docker
    provider's transport: no docker_host is the default socket over SSH to address:port; unix:// is a local
    socket, or that socket on the node with an address; ssh:// and tcp:// name their host."""
    address, port, dh = values.get("address"), values.get("port"), values.get("docker_host")
    if not all(isinstance(x, (str, int, type(None))) for x in (address, port, dh)):
        return None
    port = port if isinstance(port, int) and not isinstance(port, bool) else 22
    default_socket = "/var/run/docker.sock"

    def host(h: str) -> str:
        return h.strip().lower().rstrip(".").strip("[]")

    if dh is None:
        return ("ssh", host(address), port, default_socket) if isinstance(address, str) else None
    u = urllib.parse.urlsplit(dh)
    try:
        url_port = u.port
    except ValueError:
        return None
    if u.scheme == "unix":
        path = (u.netloc + u.path) or default_socket
        return ("unix", path) if address is None else ("ssh", host(address), port, path)
    if u.scheme == "ssh" and u.hostname:
        return ("ssh", host(u.hostname), url_port or port, default_socket)
    if u.scheme in ("tcp", "http") and u.hostname:
        return ("tcp", host(u.hostname), url_port or 2375)
    return None


def describe_engine(key: tuple) -> str:
    if key[0] == "unix":
        return f"unix://{key[1]}"
    if key[0] == "tcp":
        return f"tcp://{key[1]}:{key[2]}"
    return f"ssh://{key[1]}:{key[2]}" + ("" if key[3] == "/var/run/docker.sock" else f" ({key[3]})")


def node_name(address) -> str:
    """The name pods use for a node (their ``node`` value): ``n1`` for ``node.n1``, ``n-2`` for ``node.n[2]``."""
    return address.name if address.key is None else f"{address.name}-{address.key}"


__all__ = ["Node", "Capacity", "describe_engine", "engine_key", "is_unknown", "node_name"]
