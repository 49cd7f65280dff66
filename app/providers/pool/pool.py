"""The pool as a provider: routes each attempt to a server, fails over before the first token,
answers /ready for every server. One worker's view: each worker learns health on its own."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from gevent.pool import Pool

from ...config import Settings, UpstreamServer
from ...errors import ApiError
from ...metrics.catalogue import Metrics, NoMetrics
from ..anthropic.client import AnthropicProvider
from ..base import Attempt, Provider, UpstreamError
from ..call import ChatCall, Route
from ..deltas import ToolCall
from ..openai.client import OpenAIProvider
from .affinity import Ring, choose, key_of, reply_message
from .health import Health
from .refusals import PASSING, all_resting, inside, misconfigured, shed_here
from .remembered import Remembered
from .room import RoomQueue
from .routes import model_routes, unlisted, verdict
from .server import Server
from .throttle import Throttle

log = logging.getLogger("chatwait.pool")


def member(settings: Settings, config: UpstreamServer) -> Provider:
    """The client of one server, by the API it speaks."""
    return AnthropicProvider(settings, config) if config.kind == "anthropic" else OpenAIProvider(settings, config)


class UpstreamPool(Provider):
    """Model servers behind one provider (one server is a pool of one), named by the API they
    speak: `anthropic` where every one speaks the Messages API, else `openai`."""

    name = "openai"
    check_name = "upstream"

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics | NoMetrics,
        clock: Callable[[], float] = time.monotonic,
        connect: Callable[[Settings, UpstreamServer], Provider] | None = None,
        remembered: Remembered | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.remembered = remembered or Remembered(clock)
        configs = settings.upstream.upstreams
        if configs and all(config.kind == "anthropic" for config in configs):
            self.name = "anthropic"

        def health(config: UpstreamServer) -> Health:
            """Rested at once when others serve its models; after UPSTREAM_BREAKER_FAILURES
            failing requests when its models have fallbacks; else throttled, never rested."""
            models = config.models or settings.upstream.allowed_models
            alone = [model for model in models if sum(other.serves(model) for other in configs) == 1]
            rest, failures = settings.upstream.upstream_rest_seconds, settings.upstream.upstream_breaker_failures
            if not alone:
                return Health(rest, 1)
            if all(settings.fallbacks_of(model) for model in alone):
                return Health(rest, failures)
            return Health(rest, failures, Throttle(failures, clock))

        self.servers = [
            Server(config, (connect or member)(settings, config), health(config), metrics, clock, self._released)
            for config in configs
        ]
        self._by_name = {server.name: server for server in self.servers}
        self._rings: dict[str, Ring | None] = {}  # per allowed model (None: one server serves it)
        self._room = RoomQueue()  # requests waiting for a server with room, in turn across keys
        self._tokens = self.servers[0].provider

    def route(self, model: str, affinity: str | None = None) -> Route:
        server = self._choose(model, set(), key=affinity) or self._choose(model, set(), room=False, key=affinity)
        if server is None:
            raise self._told(model, all_resting(self.servers, model, self.clock()))
        shed = shed_here(server, model)
        if shed is not None:
            raise self._told(model, shed)
        # Busy, not resting: the request waits for room, and looks again each time some frees.
        return Route(server.name, affinity=affinity) if server.has_room() else Route(affinity=affinity)

    def affinity(self, call: ChatCall) -> str | None:
        """The conversation's key where its model has servers to choose from (UPSTREAM_AFFINITY)."""
        if not self.settings.upstream.upstream_affinity or self._ring(call.model) is None:
            return None
        return key_of(call)

    def falls_back_on_refusal(self, route: Route) -> bool:
        server = self._by_name.get(route.server or "")
        return server is not None and server.config.fallback_on_refusal

    def answered(self, call: ChatCall, route: Route, text: str, calls: Sequence[ToolCall]) -> None:
        """Remember the server that answered: the conversation's next turn goes back to it (a
        first turn's conversation is named by the key its next turn will have)."""
        if route.server is None or not self.settings.upstream.upstream_affinity or self._ring(call.model) is None:
            return
        key = key_of(call) or key_of(call, reply_message(text, calls))
        if key is not None:
            self.remembered.keep(call.model, key, route.server)

    def _ring(self, model: str) -> Ring | None:
        """The hash ring of `model`'s servers (None: it has one)."""
        if model not in self._rings:
            serving = [server for server in self.servers if server.serves(model)]
            self._rings[model] = Ring(serving) if len(serving) > 1 else None
        return self._rings[model]

    def takes(self, option: str, options: dict[str, Any]) -> bool:
        """What every server takes (a request may go to any of them)."""
        return all(server.provider.takes(option, options) for server in self.servers)

    def allowed_fields(self, model: str) -> frozenset[str]:
        """What any server of `model` allows (each server is sent only what it allows)."""
        return frozenset().union(*(s.config.allow_fields for s in self.servers if s.serves(model)))

    def adaptations(self, call: ChatCall) -> tuple[str, ...]:
        """What any server of `call`'s model changes of it (said before the server is chosen)."""
        found = (change for s in self.servers if s.serves(call.model) for change in s.provider.adaptations(call))
        return tuple(dict.fromkeys(found))

    def can_fail_over(self, model: str, route: Route) -> bool:
        return bool(self._usable(model, route.tried))

    def can_continue(self, model: str, route: Route) -> bool:
        return bool(self._usable(model, {route.server} if route.server is not None else set(), room=False))

    def chunk_tokens(self, route: Route) -> bool:
        server = self._by_name.get(route.server or "")
        return server is not None and server.provider.chunk_tokens(route)

    def continuation(self, model: str, route: Route) -> str:
        """A usable server other than the one that failed, else any of the model's (a resting
        one too: a rest keeps new requests away, and a continuation is tried at most
        UPSTREAM_RESCUES times), least busy first."""
        failed = {route.server} if route.server is not None else set()
        server = self._choose(model, failed, key=route.affinity)
        if server is not None and not server.has_room():  # no cache to wait for: one with room
            server = self._choose(model, failed) or server
        if server is None:
            serving = [s for s in self.servers if s.serves(model)]
            others = [s for s in serving if s.name not in failed] or serving
            server = min(others, key=Server.load, default=None)
        if server is None:
            return "none"
        route.server, route.pinned = server.name, True
        return server.continuation

    def prefill_refused(self, route: Route) -> None:
        server = self._by_name.get(route.server or "")
        if server is not None and server.continuation == "prefill":
            server.continuation = "message"
            log.warning("upstream_prefill_refused", extra={"upstream_server": server.name})

    def open(self, call: ChatCall, slot: Any = None, route: Route | None = None) -> Attempt:
        """Open on the route's server, or the best other one after a failure."""
        route = route if route is not None else Route()
        try:
            return self._open(call, route)
        except UpstreamError as failure:
            wrong = self.misconfigured(call.model) if failure.error_code in PASSING else None
            if wrong is None:
                raise
            raise wrong from None

    def misconfigured(self, model: str) -> UpstreamError | None:
        """The failure to tell when every server of `model` has never answered (`refusals`)."""
        return misconfigured(self.servers, model, self.settings.upstream.upstream_misconfigured_seconds, self.clock())

    def _told(self, model: str, error: ApiError) -> ApiError:
        wrong = self.misconfigured(model)
        return error if wrong is None else ApiError(wrong.error_code, wrong.detail)

    def _open(self, call: ChatCall, route: Route) -> Attempt:
        server = self._by_name.get(route.server or "")
        pinned, route.pinned = route.pinned, False
        if server is None or (not pinned and (route.server in route.tried or not server.health.usable(self.clock()))):
            server = self._waited(lambda: self._choose(call.model, route.tried, room=False, key=route.affinity), route)
        else:
            server = self._waited(lambda: server, route)
        if server is None:  # no retry helps within the rest: a fallback may
            raise inside(all_resting(self.servers, call.model, self.clock()), call)
        if server.name in route.tried and not pinned and (shed := shed_here(server, call.model)) is not None:
            raise inside(shed, call)  # a retry on a lone server that sheds load is shed too
        route.server = server.name
        route.tried.add(server.name)
        return server.open(call, route.request)

    def _usable(self, model: str, tried: set[str], room: bool = True) -> list[Server]:
        """The servers of `model` a request may go to now (with `room`: that take one more now),
        not yet tried by this generation."""
        now = self.clock()
        return [
            s
            for s in self.servers
            if s.serves(model) and s.name not in tried and s.health.usable(now) and (s.has_room() or not room)
        ]

    def _untried_first(self, model: str, tried: set[str], room: bool = True) -> list[Server]:
        """The usable servers not `tried`, else all the usable ones (a retry may go back)."""
        return self._usable(model, tried, room) or self._usable(model, set(), room)

    def _choose(self, model: str, tried: set[str], room: bool = True, key: str | None = None) -> Server | None:
        """Among the usable servers, untried first: the one holding the `key`'s cache while it is
        not too busy (`affinity`; it may be full: the caller waits for its room), else the least
        outstanding (weighted) with room, ties at random; without `room`, the best of them even
        when full (the caller waits for room)."""
        ring = None if key is None else self._ring(model)
        if ring is not None and key is not None:
            last = self._by_name.get(self.remembered.find(model, key) or "")  # where its latest turn ran
            usable = self._untried_first(model, tried, room=False)
            kept = choose(ring, key, usable, self.settings.upstream.upstream_affinity, last)
            if kept is not None:
                return kept
        candidates = self._untried_first(model, tried)
        if not candidates and not room:
            candidates = self._untried_first(model, tried, room=False)
        if not candidates:
            return None
        best = min(server.load() for server in candidates)
        return random.choice([server for server in candidates if server.load() == best])

    def _waited(self, pick: Callable[[], Server | None], route: Route) -> Server | None:
        """The server `pick` gives once it has room (a server with slots takes the next request
        when one of its own ends, in turn across keys: `room`); the wait is bounded by the
        caller's first-token deadline."""
        arrival = self._room.arrival()
        while True:
            server = pick()
            if server is None or server.has_room():
                self._room.served(route.owner)
                return server
            with self._room.waiting(route.owner, arrival) as waiter:
                server.waiting += 1
                try:
                    waiter.wait()
                finally:
                    server.waiting -= 1

    def _released(self) -> None:
        """A generation ended on some server: the waiting requests look again, in turn."""
        self._room.wake()

    def check(self) -> tuple[bool, str]:
        """Every server's check at once (GET /models), then each allowed model's route (`routes`):
        ready while the default model has one and every configured model is on its servers' lists."""
        checking = Pool(len(self.servers))
        for server, result in zip(self.servers, checking.imap(lambda s: s.provider.check(), self.servers), strict=True):
            server.checked = result
            server.reached(result[0])
        default = self.settings.default_model
        ok, detail = verdict(model_routes(self.servers, self.settings, self.clock()), default)
        if len(self.servers) == 1:  # its own words first: what failed, and the setting to check
            passed, said = self.servers[0].checked
            return ok, f"{said} {detail}" if passed else said
        failed = [s.checked[1] for s in self.servers if s.serves(default) and not s.checked[0]]
        return ok, " ".join((detail, *failed)) if not ok else detail

    def describe(self) -> dict[str, Any]:
        now, wrong = self.clock(), unlisted(self.servers, self.settings)
        servers = [s.report(now, [m for m, names in wrong.items() if s.name in names]) for s in self.servers]
        return {
            "provider": self.name,
            "model": self.settings.default_model,
            "allowed_models": list(self.settings.upstream.allowed_models),
            "upstream": servers[0]["url"],
            "servers": servers,
            "routes": [route.report() for route in model_routes(self.servers, self.settings, now)],
        }

    def message_costs(self, messages: Sequence[dict[str, str]]) -> list[int]:
        return self._tokens.message_costs(messages)

    def prompt_tokens(self, messages: Sequence[dict[str, str]]) -> int:
        return self._tokens.prompt_tokens(messages)

    def prompt_tokens_bound(self, messages: Sequence[dict[str, str]]) -> int | None:
        return self._tokens.prompt_tokens_bound(messages)

    def completion_tokens(self, text: str) -> int:
        return self._tokens.completion_tokens(text)

    def close(self) -> None:
        for server in self.servers:
            server.provider.close()
        self.remembered.close()
