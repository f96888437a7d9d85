"""``service``: a stable virtual IP load-balancing over the pods its selector matches."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator

from .base import Port, Protocol, Resource, Str, StrMap, all_known


class Service(Resource):
    type_name = "service"
    summary = "A virtual IP and port that load-balance over the healthy pods matching `selector`."

    selector: Annotated[StrMap, Field(description="Labels a pod must all have to be an endpoint.")]
    port: Annotated[Port, Field(description="Port of the virtual IP.")]
    target_port: Annotated[Port | None, Field(description="Port on the pods (default: `port`).")] = None
    protocol: Annotated[Protocol, Field(description="`tcp`, `udp` or `sctp`.")] = "tcp"
    node_port: Annotated[Port | None, Field(description="Also expose the service on this port of every node "
                                                        "(30000-32767).")] = None
    cluster_ip: Annotated[Str | None, Field(description="The virtual IP, inside the orch block's service_cidr "
                                                        "(default: a free address orch picks and keeps).")] = None

    @field_validator("node_port")
    @classmethod
    def _node_port_range(cls, v: int | None) -> int | None:
        if v is not None and all_known(v) and not 30000 <= v <= 32767:
            raise ValueError(f"node_port {v} is outside the node port range 30000-32767")
        return v

    @field_validator("selector")
    @classmethod
    def _selector_not_empty(cls, v: dict) -> dict:
        if all_known(v) and not v:
            raise ValueError("selector must name at least one label (an empty selector would match every pod)")
        return v

    @model_validator(mode="after")
    def _target_port_defaults_to_port(self) -> Service:
        if self.target_port is None:
            self.target_port = self.port
        return self
