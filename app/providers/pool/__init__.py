"""A pool of OpenAI-compatible model servers: routing (least outstanding, weighted), passive
health (a failing server rests, then one request tries it) and failover before the first token."""

from .pool import UpstreamPool

__all__ = ["UpstreamPool"]
