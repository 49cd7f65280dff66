"""Model providers: where generated text comes from (see base.Provider)."""

from __future__ import annotations

from ..config import Settings
from .base import Provider


def build_provider(settings: Settings) -> Provider:
    """The provider selected by LLM_PROVIDER (already resolved from `auto` by the settings)."""
    if settings.llm_provider == "local":
        from .local.model import LocalProvider

        return LocalProvider(settings)
    from .openai.client import OpenAIProvider

    return OpenAIProvider(settings)
