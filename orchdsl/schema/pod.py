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

# What Docker refuses when the container is created (checked here, so that `orch validate` refuses it too).
DOCKER_MIN_MEMORY = 6 << 20  # "Minimum memory limit allowed is 6MB" (limit and reservation)
DOCKER_MIN_CPU = 0.01  # "Range of CPUs is from 0.01 to N"
DOCKER_MIN_HEALTH_DURATION = 0.001  # health durations: 0 (Docker's default) or at least 1ms
RESERVED_LABEL_PREFIX = "orch."  # labels orch puts on the containers it makes
# An image reference, as Docker's distribution/reference grammar: [domain[:port]/]path[:tag][@digest], the
# path in lowercase.
_ALNUM = r"[a-z0-9]+"
_PATH_COMPONENT = rf"{_ALNUM}(?:(?:[._]|__|-+){_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_IMAGE_RE = re.compile(rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*(?::[\w][\w.-]{{0,127}})?"
                       r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?")
_MAX_IMAGE = 1024
_HOSTNAME_RE = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*")
_MAX_HOSTNAME = 63  # the kernel's limit is 64 bytes with the NUL


def _absolute(what: str, path: Any) -> None:
    if isinstance(path, str) and not path.startswith("/"):
        raise ValueError(f'{what} "{path}" must be an absolute path (starting with /): Docker refuses relative '
                         "paths")


def _no_reserved_labels(labels: Any) -> None:
    if isinstance(labels, dict):
        bad = sorted(k for k in labels if isinstance(k, str) and k.startswith(RESERVED_LABEL_PREFIX))
        if bad:
            raise ValueError(f'label{"s" if len(bad) > 1 else ""} {", ".join(repr(b) for b in bad)}: labels '
                             f'starting with "{RESERVED_LABEL_PREFIX}" are orch\'s own')


def _no_nul(value: Any, what: str) -> None:
    """NUL cannot be passed to a process (argv, environment) nor stored by Docker."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{what} contains a NUL character, which no process can receive")
    elif isinstance(value, dict):
        for k, v in value.items():
            _no_nul(k, what)
            _no_nul(v, what)
    elif isinstance(value, list):
        for v in value:
            _no_nul(v, what)


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
    volume: Annotated[Str | None, Field(description="A volume a `volume` block declares: `volume.NAME.name`.")] \
        = None
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

    @field_validator("target")
    @classmethod
    def _target_absolute(cls, v: Any) -> Any:
        _absolute("mount target", v)
        return v

    @field_validator("host_path")
    @classmethod
    def _host_path_absolute(cls, v: Any) -> Any:
        _absolute("host_path", v)
        return v


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
        lim_cpu = self.limits.cpu if self.limits is not None and self.limits.cpu is not None else self.cpu
        lim_mem = self.limits.memory if self.limits is not None and self.limits.memory is not None else self.memory
        for what, v in (("memory request", self.memory), ("memory limit", lim_mem)):
            if isinstance(v, int) and 0 < v < DOCKER_MIN_MEMORY:
                raise ValueError(f"the {what} ({v} bytes) is below Docker's minimum of 6Mi (6291456 bytes)")
        if isinstance(lim_cpu, (int, float)) and 0 < lim_cpu < DOCKER_MIN_CPU:
            raise ValueError(f"the cpu limit ({lim_cpu} cores; the request when no limit is set) is below "
                             f"Docker's minimum of {DOCKER_MIN_CPU} cores (10m)")
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
        _no_nul(v, "the health command")
        return v

    @field_validator("interval", "timeout", "start_period")
    @classmethod
    def _docker_minimum(cls, v: Any) -> Any:
        if isinstance(v, (int, float)) and 0 < v < DOCKER_MIN_HEALTH_DURATION:
            raise ValueError(f"{v} seconds is below Docker's minimum of 1ms (0 means Docker's default)")
        return v


_OCTAL_MODE = re.compile(r"0?[0-7]{3,4}")


def _repeated(values: Any) -> Any:
    """The first known value that comes twice, else None."""
    seen: set[Any] = set()
    for v in values:
        if all_known(v) and v in seen:
            return v
        seen.add(v)
    return None


class ContainerFile(Schema):
    path: Annotated[Str, Field(description="The block label: the file's absolute path in the container.")]
    content: Annotated[Str, Field(description="The file's content: any string expression, e.g. templatefile() or "
                                              "jinjafile(); a sensitive one is delivered on a tmpfs.")]
    mode: Annotated[Str | None, Field(description="Octal permissions, e.g. \"0644\"; default \"0644\", or "
                                                  "\"0400\" when the content is sensitive.")] = None

    @field_validator("path")
    @classmethod
    def _path(cls, v: Any) -> Any:
        if isinstance(v, str):
            if not v.startswith("/") or v.endswith("/") or "\x00" in v:
                raise ValueError(f'"{v[:100]}" is not an absolute file path (e.g. /etc/nginx/nginx.conf)')
            if any(part in (".", "..") for part in v.split("/")):
                raise ValueError(f'"{v[:100]}": a file path must not contain . or .. components')
        return v

    @field_validator("mode")
    @classmethod
    def _mode(cls, v: Any) -> Any:
        if isinstance(v, str) and not _OCTAL_MODE.fullmatch(v):
            raise ValueError(f'"{v[:20]}" is not an octal file mode (e.g. "0644", "0400")')
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
    file: Annotated[list[ContainerFile], Block(labels=("path",)), Field(
        description="Files put into the container before its process starts, one block each, labelled with "
                    "the file's path.")] = []

    @field_validator("image")
    @classmethod
    def _image_reference(cls, v: Any) -> Any:
        if not isinstance(v, str):
            return v
        if not v:
            raise ValueError("the image must not be empty; e.g. busybox:1.36")
        if len(v) > _MAX_IMAGE or not _IMAGE_RE.fullmatch(v):
            lower = v.lower()
            if lower != v and len(lower) <= _MAX_IMAGE and _IMAGE_RE.fullmatch(lower):
                raise ValueError(f'"{v}" is not a valid image reference: the repository name must be lowercase')
            raise ValueError(f'"{v[:100]}" is not a valid image reference (e.g. busybox, busybox:1.36, '
                             "registry.example.com:5000/team/app:1.2@sha256:...)")
        return v

    @field_validator("env")
    @classmethod
    def _env_names(cls, v: Any) -> Any:
        if isinstance(v, dict):
            for k in v:
                if isinstance(k, str) and (not k or "=" in k or "\x00" in k):
                    raise ValueError(f"{k!r} is not a valid environment variable name: names must be non-empty "
                                     "and contain no = or NUL")
            _no_nul(v, "an environment variable")
        return v

    @field_validator("working_dir")
    @classmethod
    def _working_dir(cls, v: Any) -> Any:
        _absolute("working_dir", v)
        _no_nul(v, "working_dir")
        return v

    @field_validator("command", "entrypoint", "user")
    @classmethod
    def _argv(cls, v: Any, info: Any) -> Any:
        _no_nul(v, info.field_name)
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: Any) -> Any:
        _no_reserved_labels(v)
        _no_nul(v, "a label")
        return v

    @field_validator("file")
    @classmethod
    def _unique_files(cls, files: list[ContainerFile]) -> list[ContainerFile]:
        twice = _repeated(f.path for f in files)
        if twice is not None:
            raise ValueError(f'two file blocks are for "{twice}"; one file block per path')
        return files


class Strategy(Schema):
    type: Annotated[Literal["rolling", "recreate"], UNKNOWN_OK, Hcl(STRING), Field(
        description="`rolling`: replace replicas a few at a time, waiting for health; `recreate`: stop all, "
                    "then start all.")] = "rolling"
    max_surge: Annotated[NonNegInt, Field(description="Extra replicas allowed during a rolling update.")] = 1
    max_unavailable: Annotated[NonNegInt, Field(description="Replicas allowed to be down during a rolling "
                                                            "update.")] = 0
    healthy_deadline: Annotated[Duration, Field(description="A new replica not healthy within this time stops "
                                                            "the rollout.")] = 300.0
    on_failure: Annotated[Literal["rollback", "pause"], UNKNOWN_OK, Hcl(STRING), Field(
        description="When a new replica is not healthy in time: `rollback` (every replaced replica returns to "
                    "the previous version) or `pause` (the replicas already replaced stay new).")] = "rollback"
    drain_timeout: Annotated[Duration, Field(description="Time an old replica keeps serving in-flight requests "
                                                         "after it left the service endpoints, before it is "
                                                         "stopped.")] = 2.0

    @model_validator(mode="after")
    def _progress(self) -> Strategy:
        if all_known(self.max_surge, self.max_unavailable) and self.max_surge == 0 and self.max_unavailable == 0:
            raise ValueError("max_surge and max_unavailable cannot both be 0: the update could never progress")
        return self


class Autoscale(Schema):
    min_replicas: Annotated[Int, Field(ge=1, description="Fewest replicas.")] = 1
    max_replicas: Annotated[Int, Field(ge=1, description="Most replicas.")]
    target_cpu: Annotated[Int, Field(ge=1, le=1000, description="Target average CPU use, percent of the "
                                                                "request.")] = 80
    scale_down_window: Annotated[Duration, Field(description="Scale down only to the highest recommendation of "
                                                             "this window (Kubernetes' stabilization "
                                                             "window).")] = 300.0

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
    strategy: Annotated[Strategy | None, Block(), Field(description="How replicas are replaced on change: "
                                                                    "rolling updates gated by health.")] = None
    autoscale: Annotated[Autoscale | None, Block(), Field(description="Scale replicas on measured CPU "
                                                                      "(orch reconcile).")] = None
    ip: Annotated[Str | None, Computed(), Field(description="The pod's IP address (known after apply).")] = None
    node: Annotated[Str | None, Computed(), Field(description="Name of the node the pod is placed on.")] = None

    @field_validator("container")
    @classmethod
    def _unique_names(cls, containers: list[Container]) -> list[Container]:
        twice = _repeated(c.name for c in containers)
        if twice is not None:
            raise ValueError(f'two containers are named "{twice}"; container names must be unique in a pod')
        # The containers share one network namespace: a host port (per protocol) can be published once.
        published: dict[str, str] = {}
        for c in containers:
            for p in c.ports if isinstance(c.ports, list) else []:
                if not isinstance(p, ContainerPort) or not isinstance(p.host_port, int) or \
                        not isinstance(p.protocol, str):
                    continue
                key = f"{p.host_port}/{p.protocol}"
                if key in published:
                    raise ValueError(f'host port {key} is published twice in the pod (containers "{published[key]}" '
                                     f'and "{c.name}"); the containers share one network namespace')
                published[key] = c.name
        return containers

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, v: Any) -> Any:
        if isinstance(v, str) and (len(v) > _MAX_HOSTNAME or not _HOSTNAME_RE.fullmatch(v)):
            raise ValueError(f'"{v[:100]}" is not a valid host name: letters, digits, "-" and "." (not at either '
                             f"end), at most {_MAX_HOSTNAME} characters")
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: Any) -> Any:
        _no_reserved_labels(v)
        return v


__all__ = ["Pod", "Container", "ContainerFile", "ContainerPort", "Mount", "Resources", "Limits", "Health", "Strategy",
           "Autoscale", "Memory"]
