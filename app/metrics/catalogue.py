"""Every metric ChatWait exports, and the events that move them.

Label values are bounded: models come from ALLOWED_MODELS (requests naming another are refused
first), routes are Flask's URL rules (never raw paths), methods are HTTP's own (any other is
`other`), codes come from the error catalogue, servers from the configured pool (at most 32),
the names of unknown fields the first a process saw (at most MAX_FIELD_NAMES, then `other`).
Nothing here runs per token: a generation's tokens are added once, when it ends.

Under gunicorn, PROMETHEUS_MULTIPROC_DIR is set (gunicorn.conf.py) and each worker writes its
values to files there; a scrape of any worker sums them all. Live gauges (open streams,
followers, queue) count only workers that are still running. A worker that exits folds its
counters and histograms into the folder's archive files (a killed one's are folded by the next
scrape), so reloads do not grow the folder.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector

from ..ids import current_pid
from . import MULTIPROC_ENV, process_alive
from .folder import folder_lock, multiprocess_values, retire_worker
from .live import LiveGauges
from .series import (
    MAX_FIELD_NAMES,
    CacheSeries,
    GenerationSeries,
    KeySeries,
    RecoverySeries,
    ServerSeries,
    ServiceSeries,
)

log = logging.getLogger("chatwait.metrics")

SAMPLE_SECONDS = 1.0  # how often this worker's sampled gauges are refreshed
_WORKER_FILE = re.compile(r"_(\d+)\.db$")
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))

if os.environ.get(MULTIPROC_ENV):
    # Set once, at import, before any metric exists: two value classes would keep two maps of the
    # same files.
    values.ValueClass = multiprocess_values()


class Metrics:
    """The metrics of one process, in groups of series; its methods are the events that move them;
    `render` answers a scrape (all workers' values under gunicorn)."""

    enabled = True

    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = None if self.multiprocess else CollectorRegistry()
        self._sampler: gevent.Greenlet | None = None
        self._children: dict[tuple, Any] = {}  # (metric, label values) -> its child: labels() once each
        self._live = LiveGauges()
        self._field_names: set[str] = set()
        self.service = ServiceSeries(self.registry)
        self.generations = GenerationSeries(self.registry)
        self.recovery = RecoverySeries(self.registry)
        self.servers = ServerSeries(self.registry)
        self.keys = KeySeries(self.registry)
        self.cache = CacheSeries(self.registry)
        self._cache_held: Callable[[], tuple[int, int]] | None = None
        if self.multiprocess:
            self._forget_dead_workers()

    def _child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, looked up in a dict after the first time (a few per request)."""
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def request(self, route: str, method: str, status: int) -> None:
        self._child(self.service.requests, route, method if method in METHODS else "other", str(status)).inc()

    def generation_started(self, model: str, provider: str, mode: str) -> None:
        self._child(self.generations.started, model, provider, mode).inc()
        self._live.add(self._child(self.generations.open, mode), 1)

    def first_token_after(self, model: str, provider: str, seconds: float) -> None:
        self._child(self.generations.first_token, model, provider).observe(seconds)

    def generation_ended(
        self, model: str, provider: str, ending: str, failed: bool, seconds: float, tokens: tuple[int, int, str]
    ) -> None:
        """A generation ended: `ending` is its finish reason (or `cancelled`), or with `failed`
        its error code; `tokens` are (prompt, completion, source)."""
        if failed:
            self._child(self.generations.failed, model, ending).inc()
        elif ending == "cancelled":
            self._child(self.generations.cancelled, model).inc()
        else:
            self._child(self.generations.completed, model, provider, ending).inc()
        self._child(self.generations.duration, model, provider).observe(seconds)
        prompt, completion, source = tokens
        self._child(self.generations.tokens, model, "in", source).inc(prompt)
        self._child(self.generations.tokens, model, "out", source).inc(completion)

    def cost(self, model: str, usd: float) -> None:
        """A generation of `model` ended having cost `usd` (its model has a price)."""
        self._child(self.generations.cost, model).inc(usd)

    def delivery(self, model: str, new: int, again: int) -> None:
        """A consumer of a stream of `model` was written `new` chunks no client had before, and
        `again` that one had (a resume)."""
        if new:
            self._child(self.generations.ledger, model, "delivered").inc(new)
        if again:
            self._child(self.generations.ledger, model, "replayed").inc(again)

    def ledger(self, model: str, generated: int, resent: int) -> None:
        """A generation of `model` ended: what its attempts generated and sent again."""
        self._child(self.generations.ledger, model, "generated").inc(generated)
        if resent:
            self._child(self.generations.ledger, model, "resent").inc(resent)

    def prompt_cached(self, model: str, tokens: int) -> None:
        """The server said it read `tokens` of a generation's prompt from its cache."""
        self._child(self.generations.cached, model).inc(tokens)

    def generation_closed(self, mode: str) -> None:
        """A generation's greenlet is done with it, whatever happened (the open gauge)."""
        self._live.add(self._child(self.generations.open, mode), -1)

    def upstream_retry(self, error_code: str) -> None:
        self.service.retries.labels(error_code).inc()

    def upstream_rescue(self, cause: str, strategy: str) -> None:
        self._child(self.recovery.rescues, cause, strategy).inc()

    def upstream_fallback(self, error_code: str) -> None:
        self._child(self.recovery.fallbacks, error_code).inc()

    def upstream_error(self, error_code: str) -> None:
        self.service.upstream_errors.labels(error_code).inc()

    def server_known(self, server: str, kinds: tuple[str, ...]) -> None:
        """Every series of a pool's server, at zero: present before its first request or failure."""
        self.servers.requests.labels(server)
        for kind in kinds:
            self.servers.failures.labels(server, kind)
        self.servers.open.labels(server)
        self.servers.rested.labels(server).set(0)

    def server_request(self, server: str) -> None:
        self._child(self.servers.requests, server).inc()

    def server_failure(self, server: str, kind: str) -> None:
        self._child(self.servers.failures, server, kind).inc()

    def server_open_delta(self, server: str, delta: int) -> None:
        self._live.add(self._child(self.servers.open, server), delta)

    def server_resting(self, server: str, resting: bool) -> None:
        self.servers.rested.labels(server).set(1 if resting else 0)

    def key_refused(self, key: str, limit: str) -> None:
        self._child(self.keys.refusals, key, limit).inc()

    def key_generation(self, key: str, delta: int, prompt_tokens: int) -> None:
        """A generation of key `key` started (+1, with its prompt tokens) or ended (-1)."""
        self._live.add(self._child(self.keys.generations, key), delta)
        if prompt_tokens:
            self._child(self.keys.tokens, key, "in").inc(prompt_tokens)

    def key_tokens_out(self, key: str, tokens: int) -> None:
        self._child(self.keys.tokens, key, "out").inc(tokens)

    def budget_alert(self, outcome: str) -> None:
        """A budget alert was sent, failed or dropped."""
        self._child(self.keys.alerts, outcome).inc()

    def key_spend(self, key: str, usd: float) -> None:
        """A generation of key `key` settled having cost `usd`."""
        self._child(self.keys.spend, key).inc(usd)

    def unknown_field(self, api: str, name: str) -> None:
        """A request held a field ChatWait does not know (`api`: the family's name, a bounded set)."""
        if name not in self._field_names:
            if len(self._field_names) >= MAX_FIELD_NAMES:
                name = "other"
            else:
                self._field_names.add(name)
        self._child(self.service.unknown_fields, api, name).inc()

    def queue_waited(self, seconds: float) -> None:
        self.service.queue_wait.observe(seconds)

    def resumed(self, api: str) -> None:
        self._child(self.service.resumes, api).inc()

    def stopped(self, result: str) -> None:
        self._child(self.service.stops, result).inc()

    def response_cache(self, result: str) -> None:
        """The response cache made `result` (hit, miss, bypass) of a request."""
        self._child(self.cache.requests, result).inc()

    def response_cache_kept(self, size: int) -> None:
        self.cache.kept.inc(size)

    def watch_cache(self, held: Callable[[], tuple[int, int]]) -> None:
        """Sample the response cache's entries and bytes (`held()`) with the other gauges."""
        self._cache_held = held

    def follower(self, delta: int) -> None:
        self._live.add(self.generations.followers, delta)

    def websocket(self, delta: int) -> None:
        """A Responses WebSocket opened (+1) or closed (-1)."""
        self._live.add(self.service.websockets, delta)

    def watch(self, read: Callable[[], tuple[int, int]]) -> None:
        """Refresh the sampled gauges from `read()` -> (streams held, replies queued) every second."""

        def sample_forever() -> None:
            while True:
                self.sample(*read())
                gevent.sleep(SAMPLE_SECONDS)

        self._sampler = gevent.spawn(sample_forever)

    def sample(self, store_streams: int, queue_length: int) -> None:
        live = self._live
        live.put(self.service.store_streams, store_streams)
        live.put(self.service.queue_length, queue_length)
        if self._cache_held is not None:
            entries, size = self._cache_held()
            live.put(self.cache.entries, entries)
            live.put(self.cache.bytes, size)
        live.flush()

    def flush(self) -> None:
        """Write this process's open counts to their gauges now (`live`)."""
        self._live.flush()

    def render(self) -> tuple[bytes, str]:
        """The exposition text of every metric (every worker's, under gunicorn), and its type."""
        self._live.flush()
        if not self.multiprocess:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        self._forget_dead_workers()
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        with folder_lock(exclusive=False):  # no worker's files are being folded meanwhile
            return generate_latest(registry), CONTENT_TYPE_LATEST

    def close(self) -> None:
        """This worker stops: its live gauges stop counting, its counts go to the archive."""
        if self._sampler is not None:
            self._sampler.kill(block=False)
        if self.multiprocess:
            retire_worker(current_pid())

    @staticmethod
    def _forget_dead_workers() -> None:
        """Retire the files of workers that died without doing so (SIGKILL, a crash)."""
        folder = Path(os.environ[MULTIPROC_ENV])
        for pid in {int(m.group(1)) for f in folder.glob("*.db") if (m := _WORKER_FILE.search(f.name))}:
            if not process_alive(pid):
                retire_worker(pid)


class NoMetrics:
    """METRICS_ENABLED=false: every event is ignored and there is nothing to scrape."""

    enabled = False

    def __getattr__(self, name: str) -> Callable[..., None]:
        return _ignore


def _ignore(*_args: object, **_kwargs: object) -> None:
    return None
