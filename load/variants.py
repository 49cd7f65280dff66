"""ChatWait with one of its micro-optimisations (or its metrics) switched off, or another upstream
transport, so that bench.py can measure what each is worth (`bench.py --variant NAME`).

gunicorn loads `VariantWorker` (by `--worker-class`); in the worker process, after gevent has
patched and before the app is built, it applies the changes named in $CHATWAIT_VARIANT
(comma-separated). Nothing here is used by ChatWait itself. gunicorn imports this module in
its master, before gevent patches: it imports the app's modules only inside the functions.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

from app.server.worker import ChatWaitWorker


def _no_fed_wakeup() -> None:
    """Followers are woken the way a gevent Event wakes its waiters (a loop callback)."""
    from app.hub import scheduling

    scheduling._feeds_events = lambda loop: False


def _no_run_first() -> None:
    """The producer greenlet starts when the loop gets to it, like any spawned greenlet."""
    from app.streaming import producer

    producer.run_first = lambda greenlet: None


def _client_send() -> None:
    """Each upstream request goes through httpx's Client.send, not straight to its transport."""
    from app.providers.httpapi import client

    client.HttpProvider._send = lambda self, request: self._http.send(request, stream=True)


def _transport(factory: Callable[[], Any]) -> Callable[[], None]:
    def use() -> None:
        from app.providers.httpapi import client

        client.Http1Transport = factory

    return use


def _httpx_transport() -> Any:
    import httpx

    return httpx.HTTPTransport(limits=httpx.Limits(max_connections=None, max_keepalive_connections=256))


def _geventhttpclient_transport() -> Any:
    from load.geventhttpclient_transport import GeventHttpClientTransport

    return GeventHttpClientTransport()


def _settings(**changes: Any) -> None:
    """The worker's app is built with these settings changed (flat names; the master validated the
    rest)."""
    import dataclasses

    from app.server import master

    running = master.running_settings

    def changed() -> Any:
        found = running()
        but = getattr(found, "but", None)  # grouped settings (since issue 79); a flat tree's replace
        return but(**changes) if but is not None else dataclasses.replace(found, **changes)

    master.running_settings = changed


def _inline_logs() -> None:
    """Each log line formatted and written when it is logged, not queued for the 2 ms timer."""
    from app.logs.handler import DeferredStreamHandler

    DeferredStreamHandler._defers = lambda self: False


def _metrics_off() -> None:
    """No Prometheus metrics (METRICS_ENABLED=false): what counting costs."""
    _settings(metrics_enabled=False)


def _no_direct_writes() -> None:
    """Every frame goes through gunicorn's write, from the follower's greenlet (no ClientWriter)."""
    from app.server import worker

    worker.with_client_writer = lambda app: app


def _quiet() -> None:
    """Only warnings are logged (LOG_LEVEL=WARNING): what the INFO lines cost."""
    _settings(log_level="WARNING")


def _limits() -> None:
    """Every API request comes from a key with limits it never reaches (max_streams, rpm, tpm), so
    each generation is admitted, counted and released (in Redis on the Redis store): what the
    limits cost, without the cost of checking a key."""
    from app.config import ClientKey

    _keyed(ClientKey("", "bench", max_streams=1_000_000, rpm=1_000_000_000, tpm=1_000_000_000))


def _budgets(pays: str = "generated") -> None:
    """As `limits`, the key with a day's and a month's budget too and the model priced: each
    generation reserves what it may cost and settles what it cost (`delivered`: the key pays for
    delivery, so each consumer session charges what it delivered too)."""
    from app.config import ClientKey, Settings
    from app.config.prices import Price

    Settings.price_of = lambda self, model: Price(0.15, 0.6, 0.075)  # type: ignore[method-assign]
    big = 1_000_000.0
    _keyed(ClientKey("", "bench", max_streams=1_000_000, rpm=1_000_000_000, tpm=1_000_000_000, budget_day=big,
                     budget_month=big, pays=pays))  # fmt: skip


def _traced() -> None:
    """Traces exported over OTLP to the receiver the bench started ($OTEL_EXPORTER_OTLP_ENDPOINT,
    which `Bench.add_server` sets for this variant): what a span per request and attempt costs."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        raise RuntimeError("the traced variant needs OTEL_EXPORTER_OTLP_ENDPOINT (Bench.add_server sets it)")


def _keyed(key: Any) -> None:
    """Every API request comes from `key` (its limits counted in Redis on the Redis store)."""
    from app.http import auth
    from app.limits import Limits
    from app.limits.shared import RedisCounters

    try:
        from app.service import building as where  # the limits' builder, since issue 79
    except ImportError:  # an older tree, measured as a baseline
        from app.service import services as where
    name = "limits" if hasattr(where, "limits") else "_build_limits"
    topology = getattr(where, "topology", None) or where._topology

    checked = auth._check

    def check() -> None:
        checked()
        auth.g._get_current_object().client_key = key

    def build_limits(settings: Any, metrics: Any, *args: Any, **kwargs: Any) -> Limits:
        if settings.streams.stream_store == "redis":
            return Limits(RedisCounters(topology(settings)), metrics)
        if "counting" in inspect.signature(built).parameters:  # the key is limited, whatever config says
            return built(settings, metrics, counting=True)
        return built(settings, metrics, *args, **kwargs)

    built = getattr(where, name)
    auth._check = check
    setattr(where, name, build_limits)


def _profile() -> None:
    """cProfile over the worker's life after its app is built, written to $CHATWAIT_PROFILE_OUT
    (a pstats file) when the worker exits: where a request's CPU goes, by function."""
    import atexit
    import cProfile
    import time

    profiler = cProfile.Profile(time.process_time)  # CPU, not the waits between requests
    atexit.register(lambda: (profiler.disable(), profiler.dump_stats(os.environ["CHATWAIT_PROFILE_OUT"])))
    _AFTER_BUILD.append(profiler.enable)


_AFTER_BUILD: list[Callable[[], Any]] = []

VARIANTS: dict[str, Callable[[], None]] = {
    "limits": _limits,
    "budgets": _budgets,
    "delivered": lambda: _budgets("delivered"),
    "traced": _traced,
    "profile": _profile,
    "metrics_off": _metrics_off,
    "quiet": _quiet,
    "inline_logs": _inline_logs,
    "no_direct_writes": _no_direct_writes,
    "no_fed_wakeup": _no_fed_wakeup,
    "no_run_first": _no_run_first,
    "client_send": _client_send,
    "httpx_transport": _transport(_httpx_transport),
    "geventhttpclient": _transport(_geventhttpclient_transport),
}


WORKER_CLASS = "load.variants.VariantWorker"


def gunicorn_args(variant: str | None, worker_class: str | None = None) -> tuple[str, ...]:
    """The `--worker-class` of a server arm: VariantWorker for a variant (the worker that applies
    it), else `worker_class` (a floor relay's), else none (ChatWait's own)."""
    chosen = WORKER_CLASS if variant else worker_class
    return ("--worker-class", chosen) if chosen else ()


class VariantWorker(ChatWaitWorker):
    """ChatWait's worker with the variants named in $CHATWAIT_VARIANT applied."""

    def load_wsgi(self) -> None:
        for name in filter(None, os.environ.get("CHATWAIT_VARIANT", "").split(",")):
            VARIANTS[name]()
        super().load_wsgi()
        for then in _AFTER_BUILD:
            then()
