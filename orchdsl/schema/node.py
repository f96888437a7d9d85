"""``node``: a Docker host orch places pods on, reached over SSH or a Docker socket."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from .base import (Block, Bool, Cpu, Memory, Port, Resource, Schema, Str, StrMap, all_known, is_unknown)


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
    # become and pod_cidr are planned (pod networking), not supported yet: configurations cannot set them.
    become: Annotated[Bool, Field(description="Run privileged commands (iptables, ip route) with sudo "
                                              "(planned, not supported yet).")] = False
    docker_host: Annotated[Str | None, Field(description="Docker endpoint, e.g. `unix:///var/run/docker.sock` "
                                                         "or `ssh://user@host`; default: the Docker socket "
                                                         "over the SSH connection.")] = None
    labels: Annotated[StrMap, Field(description="Labels matched by pods' `node_selector`, and topology keys "
                                                "for `spread_by`.")] = {}
    schedulable: Annotated[Bool, Field(description="Whether new pods may be placed on this node (false: "
                                                   "cordoned).")] = True
    pod_cidr: Annotated[Str | None, Field(description="The node's pod subnet (planned, not supported "
                                                      "yet).")] = None
    capacity: Annotated[Capacity | None, Block(), Field(description="Schedulable resources; at most one "
                                                                    "block.")] = None

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




def node_name(address) -> str:
    """The name pods use for a node (their ``node`` value): ``n1`` for ``node.n1``, ``n-2`` for ``node.n[2]``."""
    return address.name if address.key is None else f"{address.name}-{address.key}"


__all__ = ["Node", "Capacity", "is_unknown", "node_name"]
