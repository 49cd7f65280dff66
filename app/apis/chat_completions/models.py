"""OpenAI's models API: the models a request may name (ALLOWED_MODELS, or the embedded model), each
with what ChatWait knows of it (as agentgateway and OpenRouter list theirs): its context window,
the most a reply may ask, what it reads, whether it calls tools and reasons, its price."""

from __future__ import annotations

from typing import Any

from ...errors import ApiError
from ..request import services
from ..schema import serialise
from .object_schemas import ModelListSchema, ModelSchema
from .views import bp


@bp.get("/v1/models")
def list_models() -> dict[str, Any]:
    """Every allowed model, in OpenAI's list shape."""
    models = [_model(name) for name in services().settings.upstream.allowed_models]
    return serialise(ModelListSchema, {"object": "list", "data": models})


@bp.get("/v1/models/<path:model_id>")
def get_model(model_id: str) -> dict[str, Any]:
    """One allowed model; 404 model_not_found for any other."""
    if model_id not in services().settings.upstream.allowed_models:
        raise ApiError("model_not_found", f"{model_id[:100]!r} is not one of the models this service allows.")
    return serialise(ModelSchema, _model(model_id))


def _model(name: str) -> dict[str, Any]:
    """OpenAI's fields, and what ChatWait knows of the model (its rules, its bound, its price)."""
    found = services()
    listed = {"id": name, "object": "model", "created": found.started, "owned_by": "chatwait"}
    return listed | found.settings.described(name)
