"""Model providers: where generated text comes from (see base.Provider)."""

from __future__ import annotations

from ..config import Settings
from ..metrics.catalogue import Metrics, NoMetrics
from .base import Provider


def build_provider(settings: Settings, metrics: Metrics | NoMetrics) -> Provider:
    """The provider selected by LLM_PROVIDER (already resolved from `auto` by the settings): the
    embedded model, or the pool of OpenAI-compatible servers (one server is a pool of one)."""
    if settings.upstream.llm_provider == "local":
        from .local.model import LocalProvider

        return LocalProvider(settings)
    from .pool import UpstreamPool
    from .pool.remembered import Remembered, SharedRemembered

    remembered = Remembered()
    shared = settings.streams.stream_store == "redis"
    if shared and len(settings.upstream.upstreams) > 1:  # where conversations ran, shared
        from ..connect.redis import Topology

        topology = Topology.configured(settings.redis)
        remembered = SharedRemembered(topology)
    return UpstreamPool(settings, metrics, remembered=remembered)
