"""The per-app services (settings, provider, stream store, request schema, contract) in app.extensions."""

from __future__ import annotations

import dataclasses

from flask import current_app

from ..config import Settings
from ..providers import build_provider
from ..providers.base import Provider
from ..schemas import ChatRequestSchema
from ..streaming.store import MemoryStreamStore, StreamStore
from .contract import render_contract

SHUTDOWN_WAIT_SECONDS = 2.0  # for stopped generations to close their upstream requests


@dataclasses.dataclass(frozen=True)
class Services:
    """Everything a view needs, built once by create_app."""

    settings: Settings
    provider: Provider
    store: StreamStore
    chat_schema: ChatRequestSchema
    contract: bytes

    @classmethod
    def build(cls, settings: Settings) -> Services:
        """Services for these settings."""
        return cls(
            settings=settings,
            provider=build_provider(settings),
            store=MemoryStreamStore(settings.max_streams, settings.stream_ttl_seconds),
            chat_schema=ChatRequestSchema(
                max_message_chars=settings.max_message_chars,
                max_history_messages=settings.max_history_messages,
                max_tokens=settings.max_tokens,
                allowed_models=settings.allowed_models,
            ),
            contract=render_contract(settings),
        )

    def start(self) -> None:
        """Start background work (the store's expiry)."""
        self.store.start()

    def close(self) -> None:
        """Stop every live generation (closing its upstream request), then release the provider."""
        self.store.close(timeout=SHUTDOWN_WAIT_SECONDS)
        self.provider.close()


def services() -> Services:
    """The services of the current app."""
    return current_app.extensions["chatwait"]
