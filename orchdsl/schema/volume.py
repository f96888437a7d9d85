"""``volume``: a named Docker volume pods mount."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .base import Resource, Str, StrMap


class Volume(Resource):
    type_name = "volume"
    summary = "A Docker volume, created on the nodes where pods mount it."

    driver: Annotated[Str, Field(description="Docker volume driver.")] = "local"
    driver_opts: Annotated[StrMap, Field(description="Options passed to the driver.")] = {}
    labels: Annotated[StrMap, Field(description="Labels set on the Docker volume.")] = {}
