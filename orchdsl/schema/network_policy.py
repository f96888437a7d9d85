"""``network_policy``: which traffic may reach (ingress) or leave (egress) the selected pods.

Kubernetes NetworkPolicy semantics: a pod selected by a policy denies, for
each direction the policy covers, every connection no rule of any policy
allows. A rule allows traffic from/to any of its peers (pods by labels, or a
CIDR) on any of its ports (all ports when none are listed).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from ..eval.types import DYNAMIC, STRING, ListType
from .base import (UNKNOWN_OK, Block, Hcl, Port, Protocol, Resource, Schema, Str, StrList, StrMap,
                   all_known)

_PORT_RE = re.compile(r"^\s*(\d+)(?:/(\w+))?\s*$")


def _port_shorthand(v: Any) -> Any:
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return {"port": v}
    if isinstance(v, str):
        m = _PORT_RE.match(v)
        if not m:
            raise ValueError(f'"{v}" is not a port; write 8080 or "53/udp"')
        out: dict[str, Any] = {"port": int(m.group(1))}
        if m.group(2):
            out["protocol"] = m.group(2)
        return out
    return v


class PolicyPort(Schema):
    port: Annotated[Port, Field(description="Destination port (the first of a range with `end_port`).")]
    protocol: Annotated[Protocol, Field(description="`tcp`, `udp` or `sctp`.")] = "tcp"
    end_port: Annotated[Port | None, Field(description="Last port of a range `port`..`end_port` (as "
                                                       "Kubernetes' endPort).")] = None

    @model_validator(mode="after")
    def _range(self) -> PolicyPort:
        if self.end_port is not None and all_known(self.end_port) and all_known(self.port) \
                and self.end_port < self.port:
            raise ValueError(f"end_port {self.end_port} is below port {self.port}")
        return self


PolicyPortItem = Annotated[PolicyPort, BeforeValidator(_port_shorthand), UNKNOWN_OK]


def _check_cidr(v: Any) -> Any:
    if isinstance(v, str):
        try:
            ipaddress.ip_network(v, strict=False)
        except ValueError as e:
            raise ValueError(f'"{v}" is not a CIDR block ({e})') from None
    return v


Cidr = Annotated[str, BeforeValidator(_check_cidr), UNKNOWN_OK, Hcl(STRING)]


class Peer(Schema):
    pod_selector: Annotated[StrMap | None, Field(description="Pods having all these labels ({} = every "
                                                             "pod).")] = None
    namespace: Annotated[Str | None, Field(description="With `pod_selector`: the pods of another namespace (another "
                                                       "configuration on the same nodes) instead of this "
                                                       "one's.")] = None
    cidr: Annotated[Cidr | None, Field(description="An IP block, e.g. `10.0.0.0/8`.")] = None
    except_: Annotated[list[Cidr], UNKNOWN_OK, Hcl(ListType(STRING)), Field(
        alias="except", description="Blocks inside `cidr` that are not allowed.")] = []

    @model_validator(mode="after")
    def _one_kind(self) -> Peer:
        if (self.pod_selector is None) == (self.cidr is None):
            raise ValueError("a peer needs exactly one of pod_selector or cidr")
        if self.except_ and self.cidr is None:
            raise ValueError('"except" applies to a cidr peer only')
        if self.namespace is not None and self.pod_selector is None:
            raise ValueError('"namespace" goes with pod_selector (pod_selector = {} for all its pods)')
        if isinstance(self.namespace, str) and all_known(self.namespace):
            from ..cluster.settings import namespace_problem

            problem = namespace_problem(self.namespace)
            if problem:
                raise ValueError(problem)
        return self


class IngressRule(Schema):
    from_: Annotated[list[Peer], Block(), Field(alias="from", description="Allowed sources (any of them); no "
                                                                         "block: from anywhere.")] = []
    ports: Annotated[list[PolicyPortItem], UNKNOWN_OK, Hcl(DYNAMIC), Field(
        description="Allowed destination ports: `8080`, `\"53/udp\"` or `{port, protocol}`; empty: all.")] = []


class EgressRule(Schema):
    to: Annotated[list[Peer], Block(), Field(description="Allowed destinations (any of them); no block: "
                                                         "anywhere.")] = []
    ports: Annotated[list[PolicyPortItem], UNKNOWN_OK, Hcl(DYNAMIC), Field(
        description="Allowed destination ports; empty: all.")] = []


Direction = Annotated[Literal["ingress", "egress"], UNKNOWN_OK, Hcl(STRING)]


class NetworkPolicy(Resource):
    type_name = "network_policy"
    summary = "Allowed traffic to and from the selected pods (Kubernetes NetworkPolicy semantics)."

    pod_selector: Annotated[StrMap, Field(description="The pods this policy applies to ({} = every pod).")]
    ingress: Annotated[list[IngressRule], Block(), Field(description="Rules for incoming traffic.")] = []
    egress: Annotated[list[EgressRule], Block(), Field(description="Rules for outgoing traffic.")] = []
    policy_types: Annotated[list[Direction] | None, UNKNOWN_OK, Hcl(ListType(STRING)), Field(
        description="Directions the policy isolates; default `[\"ingress\"]`, plus `\"egress\"` when there is "
                    "an egress block. An isolated direction with no rule denies everything.")] = None

    @field_validator("policy_types")
    @classmethod
    def _unique(cls, v: list | None) -> list | None:
        if v is not None and all_known(v) and len(set(v)) != len(v):
            raise ValueError("policy_types lists a direction twice")
        return v

    @model_validator(mode="after")
    def _default_policy_types(self) -> NetworkPolicy:
        if self.policy_types is None:
            self.policy_types = ["ingress"] + (["egress"] if self.egress else [])
        return self


__all__ = ["NetworkPolicy", "IngressRule", "EgressRule", "Peer", "PolicyPort", "StrList"]
