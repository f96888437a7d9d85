"""``secret``: sensitive key/value data pods use in their environment."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .base import Resource, Sensitive, StrMap


class Secret(Resource):
    type_name = "secret"
    summary = "Sensitive data. Every value is hidden in plans and outputs; refer to `secret.NAME.data.KEY`."

    data: Annotated[StrMap, Sensitive(), Field(description="The secret values (sensitive).")]
    labels: Annotated[StrMap, Field(description="Labels (not secret).")] = {}
