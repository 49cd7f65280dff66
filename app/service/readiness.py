"""The checks behind GET /ready: the provider (the upstream answers with this service's
credentials, or the embedded model is loaded), the stream store (Redis answers), and, when a
client key has limits, where they are counted (and whether Redis answers for them).

The provider's check is a request to the upstream, so its result is kept READY_CACHE_SECONDS
and one check runs at a time (a probe storm waits for the check in flight). The store's check
is one Redis round trip (nothing with the memory store): it runs on every call, so that the
live stream count it brings is current.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import gevent

from ..providers.base import Provider
from ..streaming.store import StreamStore

log = logging.getLogger("chatwait.ready")

STOPPING = "This worker is stopping (a deploy or restart): it starts no new generation."


class Readiness:
    """What /ready answers: each check's result, and whether all passed."""

    def __init__(
        self,
        provider: Provider,
        store: StreamStore,
        cache_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        accepting: Callable[[], bool] = lambda: True,
        key_limits: Callable[[], dict[str, Any]] | None = None,
        notes: Callable[[], list[str]] = list,
    ) -> None:
        self.provider = provider
        self.notes = notes  # what the configuration does not do as it may seem to (keys change)
        self.key_limits = key_limits
        self.store = store
        self.accepting = accepting
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._checking: gevent.Greenlet | None = None
        self._cached: tuple[float, dict[str, Any]] | None = None

    def report(self) -> tuple[dict[str, Any], int, bool]:
        """Every check ({name: {ok, detail}}), the live streams the store counts, and whether all passed."""
        store_ok, store_detail, live = self.store.ready()
        checks = {
            self.provider.check_name: self._provider_check(),
            "store": {"ok": store_ok, "detail": store_detail},
            "worker": {"ok": True, "detail": "Accepting new generations."},
        }
        if not self.accepting():
            checks["worker"] = {"ok": False, "detail": STOPPING}
        if self.key_limits is not None:
            checks["key_limits"] = self.key_limits()
        return checks, live, all(check["ok"] for check in checks.values())

    def announce(self) -> gevent.Greenlet:
        """Check the provider once, in the background, and log what it found of each configured
        server: reached or not, its list of models, the configured models it does not list (a
        warning never stops the service; /ready's `servers` say the same)."""
        return gevent.spawn(self._announce)

    def _announce(self) -> None:
        self._provider_check()
        for server in self.provider.describe().get("servers", ()):
            fields = {
                "upstream_server": server["name"],
                "url": server["url"],
                "reached": server["ok"],
                "models_listed": server["listed"],
                "unlisted_models": server["unlisted"],
                "detail": server["detail"],
            }
            found_wrong = not server["ok"] or server["unlisted"]
            (log.warning if found_wrong else log.info)("upstream_checked", extra=fields)

    def _provider_check(self) -> dict[str, Any]:
        """The provider check's result: cached, or from the check in flight, or a new check."""
        if self._cached is not None and self.clock() - self._cached[0] < self.cache_seconds:
            return self._cached[1]
        if self._checking is None:
            self._checking = gevent.spawn(self._check)
        return self._checking.get()

    def _check(self) -> dict[str, Any]:
        try:
            ok, detail = self.provider.check()
        except Exception as exc:  # a bug in a check must not make /ready answer 500
            log.exception("ready_check_failed", extra={"error_type": type(exc).__name__})
            ok, detail = False, f"The check failed unexpectedly ({type(exc).__name__})."
        finally:
            self._checking = None
        self._cached = (self.clock(), {"ok": ok, "detail": detail})
        return self._cached[1]
