"""``pod``: containers that share a network namespace, placed together on one node.

A pod's ``replicas`` argument works like ``count``: ``replicas = 3`` makes
the instances ``pod.web[0]`` .. ``pod.web[2]``, each one pod.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from ..eval.types import DYNAMIC, STRING
from .base import (UNKNOWN_OK, Block, Bool, Computed, Cpu, Duration, Hcl, Int, Memory, NonNegInt, Port,
                   Protocol, Resource, Schema, Str, StrList, StrMap, all_known)

_PORT_RE = re.compile(r"^\s*(?:(\d+):)?(\d+)(?:/(\w+))?\s*$")


def _port_shorthand(v: Any) -> Any:
    """``8080`` or ``"8080/udp"`` or ``"80:8080/tcp"`` (host:container) -> a port object."""
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return {"container_port": v}
    if isinstance(v, str):
        m = _PORT_RE.match(v)
        if not m:
            raise ValueError(f'"{v}" is not a port; write 8080, "8080/udp" or "80:8080" (host:container)')
        host, port, proto = m.groups()
        out: dict[str, Any] = {"container_port": int(port)}
        if host:
            out["host_port"] = int(host)
        if proto:
            out["protocol"] = proto
        return out
    return v


class ContainerPort(Schema):
    container_port: Annotated[Port, Field(description="Port the container listens on.")]
    host_port: Annotated[Port | None, Field(description="Publish on this port of the node.")] = None
    protocol: Annotated[Protocol, Field(description="`tcp`, `udp` or `sctp`.")] = "tcp"
    name: Annotated[Str | None, Field(description="A name for the port.")] = None


PortItem = Annotated[ContainerPort, BeforeValidator(_port_shorthand), UNKNOWN_OK]


class Mount(Schema):
    target: Annotated[Str, Field(description="Path inside the container.")]
    volume: Annotated[Str | None, Field(description="Name of a Docker named volume on the node (Docker "
                                                    "creates it on first use).")] = None
    host_path: Annotated[Str | None, Field(description="A path on the node (bind mount).")] = None
    tmpfs: Annotated[Bool, Field(description="A tmpfs mount.")] = False
    read_only: Annotated[Bool, Field(description="Mount read-only.")] = False

    @model_validator(mode="after")
    def _one_source(self) -> Mount:
        sources = [n for n in ("volume", "host_path") if getattr(self, n) is not None] + \
            (["tmpfs"] if self.tmpfs is True else [])
        if len(sources) != 1 and all_known(self.volume, self.host_path, self.tmpfs):
            raise ValueError(f'mount of "{self.target}" needs exactly one of volume, host_path or tmpfs = true'
                             + (f" (has {', '.join(sources)})" if sources else ""))
        return self


class Limits(Schema):
    cpu: Annotated[Cpu | None, Field(description="Hard CPU limit in cores (Docker `--cpus`).")] = None
    memory: Annotated[Memory | None, Field(description="Hard memory limit in bytes (Docker `--memory`); the "
                                                       "container is killed beyond it.")] = None


class Resources(Schema):
    cpu: Annotated[Cpu | None, Field(description="Cores requested: used to place the pod.")] = None
    memory: Annotated[Memory | None, Field(description="Memory requested in bytes: used to place the pod.")] \
        = None
    limits: Annotated[Limits | None, Block(), Field(description="Hard limits (default: the requests).")] = None

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> Resources:
        if self.limits is None:
            return self
        for dim in ("cpu", "memory"):
            req, lim = getattr(self, dim), getattr(self.limits, dim)
            if req is not None and lim is not None and all_known(req, lim) and lim < req:
                raise ValueError(f"the {dim} limit ({lim}) is below the {dim} request ({req})")
        return self


class Health(Schema):
    command: Annotated[StrList, Field(description="Command run in the container (argv); exit 0 is healthy.")]
    interval: Annotated[Duration, Field(description="Time between checks.")] = 10.0
    timeout: Annotated[Duration, Field(description="A check running longer fails.")] = 5.0
    retries: Annotated[NonNegInt, Field(description="Consecutive failures before unhealthy.")] = 3
    start_period: Annotated[Duration, Field(description="Failures during this time after start do not count.")] \
        = 0.0

    @field_validator("command")
    @classmethod
    def _not_empty(cls, v: list) -> list:
        if all_known(v) and not v:
            raise ValueError("the health command must not be empty")
        return v


class Container(Schema):
    name: Annotated[Str, Field(description="The block label.")]
    image: Annotated[Str, Field(description="Image reference, e.g. `orch/busybox:test`.")]
    command: Annotated[StrList | None, Field(description="Arguments (Docker CMD); default: the image's.")] = None
    entrypoint: Annotated[StrList | None, Field(description="Entrypoint (Docker ENTRYPOINT); default: the "
                                                            "image's.")] = None
    env: Annotated[StrMap, Field(description="Environment variables.")] = {}
    working_dir: Annotated[Str | None, Field(description="Working directory.")] = None
    user: Annotated[Str | None, Field(description="User (`name`, `uid` or `uid:gid`).")] = None
    ports: Annotated[list[PortItem], UNKNOWN_OK, Hcl(DYNAMIC), Field(
        description="Ports the container listens on: `8080`, `\"53/udp\"`, `\"80:8080\"` (host:container) or "
                    "objects `{container_port, host_port, protocol, name}`.")] = []
    mounts: Annotated[list[Annotated[Mount, UNKNOWN_OK]], UNKNOWN_OK, Field(
        description="Volumes and paths mounted: objects `{target, volume | host_path | tmpfs, read_only}`.")] = []
    labels: Annotated[StrMap, Field(description="Docker labels on the container.")] = {}
    init: Annotated[Bool, Field(description="Run an init process as PID 1 (Docker `--init`).")] = False
    pull: Annotated[Literal["missing", "always", "never"], UNKNOWN_OK, Hcl(STRING), Field(
        description="When to pull the image: `missing`, `always`, `never`.")] = "missing"
    read_only: Annotated[Bool, Field(description="Mount the root filesystem read-only.")] = False
    stop_timeout: Annotated[Duration | None, Field(description="Time to stop gracefully before SIGKILL.")] \
        = None
    resources: Annotated[Resources | None, Block(), Field(description="CPU and memory requests and limits.")] \
        = None
    health: Annotated[Health | None, Block(), Field(description="Health check (Docker HEALTHCHECK): "
                                                                "Docker reports the container healthy or "
                                                                "not.")] = None


class Strategy(Schema):
    type: Annotated[Literal["rolling", "recreate"], UNKNOWN_OK, Hcl(STRING), Field(
        description="`rolling`: replace replicas a few at a time, waiting for health; `recreate`: stop all, "
                    "then start all.")] = "rolling"
    max_surge: Annotated[NonNegInt, Field(description="Extra replicas allowed during a rolling update.")] = 1
    max_unavailable: Annotated[NonNegInt, Field(description="Replicas allowed to be down during a rolling "
                                                            "update.")] = 0

    @model_validator(mode="after")
    def _progress(self) -> Strategy:
        if all_known(self.max_surge, self.max_unavailable) and self.max_surge == 0 and self.max_unavailable == 0:
            raise ValueError("max_surge and max_unavailable cannot both be 0: the update could never progress")
        return self


class Autoscale(Schema):
    min_replicas: Annotated[Int, Field(ge=1, description="Fewest replicas.")] = 1
    max_replicas: Annotated[Int, Field(ge=1, description="Most replicas.")]
    target_cpu: Annotated[Int, Field(ge=1, le=100, description="Target average CPU use, percent of the "
                                                               "request.")] = 80

    @model_validator(mode="after")
    def _range(self) -> Autoscale:
        if all_known(self.min_replicas, self.max_replicas) and self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) is above max_replicas ({self.max_replicas})")
        return self


class Pod(Resource):
    type_name = "pod"
    count_attribute = "replicas"
    summary = ("Containers sharing one network namespace (an infra container holds it), placed together on "
               "a node. `replicas = N` makes N instances `pod.NAME[0..N-1]`, like `count`.")

    labels: Annotated[StrMap, Field(description="Labels of the pod, recorded in the state (services and "
                                                "network policies will select pods by them).")] = {}
    node_selector: Annotated[StrMap, Field(description="Place only on nodes having all these labels.")] = {}
    spread_by: Annotated[Str | None, Field(description="Spread replicas over the values of this node label "
                                                       "(e.g. `zone`); `node` spreads over nodes.")] = None
    placement: Annotated[Literal["spread", "binpack"] | None, UNKNOWN_OK, Hcl(STRING), Field(
        description="Scheduling strategy for this pod's replicas: `spread` (least allocated node) or `binpack` "
                    "(most allocated node that fits); default: the `scheduler` block's, else `spread`.")] = None
    anti_affinity: Annotated[Literal["soft", "hard"] | None, UNKNOWN_OK, Hcl(STRING), Field(
        description="`soft` (the default): replicas go to different nodes when possible; `hard`: never two "
                    "replicas on one node (extra replicas stay unplaced, a plan error).")] = None
    restart: Annotated[Literal["always", "on-failure", "unless-stopped", "no"], UNKNOWN_OK, Hcl(STRING), Field(
        description="Docker restart policy of the containers.")] = "always"
    hostname: Annotated[Str | None, Field(description="Host name inside the pod (default: the instance "
                                                      "name).")] = None
    container: Annotated[list[Container], Block(labels=("name",), min_items=1), Field(
        description="The pod's containers, one block each, labelled with the container's name.")]
    # strategy and autoscale are planned, not supported yet: configurations cannot set them (planned.py).
    strategy: Annotated[Strategy | None, Block(), Field(description="How replicas are replaced on change "
                                                                    "(planned, not supported yet).")] = None
    autoscale: Annotated[Autoscale | None, Block(), Field(description="Scale replicas on measured CPU "
                                                                      "(planned, not supported yet).")] = None
    ip: Annotated[Str | None, Computed(), Field(description="The pod's IP address (known after apply).")] = None
    node: Annotated[Str | None, Computed(), Field(description="Name of the node the pod is placed on.")] = None

    @field_validator("container")
    @classmethod
    def _unique_names(cls, containers: list[Container]) -> list[Container]:
        seen: set[str] = set()
        for c in containers:
            if all_known(c.name) and c.name in seen:
                raise ValueError(f'two containers are named "{c.name}"; container names must be unique in a pod')
            seen.add(c.name)
        return containers


__all__ = ["Pod", "Container", "ContainerPort", "Mount", "Resources", "Limits", "Health", "Strategy",
           "Autoscale", "Memory"]
