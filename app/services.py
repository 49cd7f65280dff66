"""The per-app services (settings, provider, stream store, request schema, contract) in app.extensions."""

from __future__ import annotations

import dataclasses

from flask import current_app

from .config import Settings
from .contract import render_contract
from .providers.base import Provider
from .schemas import ChatRequestSchema
from .streams import StreamStore


@dataclasses.dataclass(frozen=True)
class Services:
    """Everything a view needs, built once by create_app."""

    settings: Settings
    provider: Provider
    store: StreamStore
    chat_schema: ChatRequestSchema
    contract: bytes

    @classmethod
    def build(cls, settings: Settings, provider: Provider) -> Services:
        """Services for these settings and provider."""
        return cls(
            settings=settings,
            provider=provider,
            store=StreamStore(settings.max_streams, settings.stream_ttl_seconds),
            chat_schema=ChatRequestSchema(
                max_message_chars=settings.max_message_chars,
                max_history_messages=settings.max_history_messages,
                max_tokens=settings.max_tokens,
                allowed_models=settings.allowed_models,
            ),
            contract=render_contract(settings),
        )


def services() -> Services:
    """The services of the current app."""
    return current_app.extensions["chatwait"]
