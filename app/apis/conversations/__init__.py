"""OpenAI's Conversations API (`/v1/conversations`: a conversation and its items, kept per client
key, bounded and expiring; a response adds its turns to one), in OpenAI's error shape. `views`,
`schemas`; its items: `apis.items`."""

from __future__ import annotations

from ..family import Family
from ..openai import openai_error_shape
from .views import bp

FAMILY = Family(
    name="conversations",
    blueprint=bp,
    error_prefixes=("/v1/conversations",),
    error_shape=openai_error_shape("input"),
)
