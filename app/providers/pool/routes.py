"""What /ready says of each allowed model: the routes that answer it now (its own servers, else a
fallback model's), and whether a server is configured for a model its own list does not hold.

The service is ready while the default model has a route: a load balancer that dropped every
instance while the fallbacks cover would fail the requests they serve. A model no server lists
is a mistake in the configuration: not ready, so that a deploy carrying it goes no further.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from ...config import Settings
from ..httpapi.models import is_listed
from .server import Server

STATES = ("serving", "degraded", "down", "unlisted")


@dataclasses.dataclass(frozen=True)
class ModelRoute:
    """How one allowed model is answered now."""

    model: str
    state: str  # `STATES`
    servers: tuple[str, ...]  # its servers that answer now
    fallback: str | None  # the fallback model that answers while none of its own servers does
    detail: str

    def report(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"servers": list(self.servers)}


def configured(server: Server, settings: Settings) -> tuple[str, ...]:
    """The models requests may take to `server`: its own list, else every allowed and fallback model."""
    if server.config.models:
        return server.config.models
    fallbacks = [m for model in settings.upstream.allowed_models for m in settings.fallbacks_of(model)]
    return tuple(dict.fromkeys((*settings.upstream.allowed_models, *fallbacks)))


def unlisted(servers: Sequence[Server], settings: Settings) -> dict[str, list[str]]:
    """Each model a server is configured for and its own list does not hold: the servers."""
    found: dict[str, list[str]] = {}
    for server in servers if settings.upstream.ready_check_models else ():
        listed = server.provider.listed_models()
        for model in configured(server, settings) if listed is not None else ():
            if not is_listed(model, listed):
                found.setdefault(model, []).append(server.name)
    return found


def model_routes(servers: Sequence[Server], settings: Settings, now: float) -> list[ModelRoute]:
    """Every allowed model's route, from the servers' last checks and their health now."""
    wrong = unlisted(servers, settings)
    up = [s for s in servers if s.checked[0] and (s.health.state == "healthy" or s.health.usable(now))]

    def answering(model: str) -> tuple[str, ...]:
        return tuple(s.name for s in up if s.serves(model) and s.name not in wrong.get(model, ()))

    routes = []
    for model in settings.upstream.allowed_models:
        own, all_own = answering(model), [s.name for s in servers if s.serves(model)]
        if model in wrong:
            names = ", ".join(wrong[model])
            detail = f"{model!r} is not in the models listed by {names} (GET /models): check the name."
            routes.append(ModelRoute(model, "unlisted", own, None, detail))
        elif len(own) == len(all_own):
            routes.append(ModelRoute(model, "serving", own, None, f"Every server of {model} answers."))
        elif own:
            missing = [name for name in all_own if name not in own]
            detail = f"Of {model}'s servers, {', '.join(missing)} {'does' if len(missing) == 1 else 'do'} not answer."
            routes.append(ModelRoute(model, "degraded", own, None, detail))
        else:
            routes.append(_without_servers(model, settings, answering))
    return routes


def _without_servers(model: str, settings: Settings, answering: Callable[[str], tuple[str, ...]]) -> ModelRoute:
    """The route of a model none of whose servers answers: a fallback model's, or none."""
    for fallback in settings.fallbacks_of(model):
        servers = answering(fallback)
        if servers:
            detail = f"No server of {model} answers: its fallback {fallback} answers its requests."
            return ModelRoute(model, "degraded", servers, fallback, detail)
    detail = f"No server of {model} answers, nor one of a fallback model: its requests fail."
    return ModelRoute(model, "down", (), None, detail)


def verdict(routes: Sequence[ModelRoute], default: str) -> tuple[bool, str]:
    """Ready or not, and why, in a line: the default model's route, and every model not served whole."""
    wrong = [route for route in routes if route.state == "unlisted"]
    if wrong:
        return False, " ".join(route.detail for route in wrong)
    first = next(route for route in routes if route.model == default)
    others = [route for route in routes if route.state != "serving"]
    if first.state == "down":
        return False, f"No route answers the default model: {first.detail} See `routes` and `servers`."
    if not others:
        return True, "Every allowed model has a server that answers."
    named = "; ".join(f"{route.model}: {route.state}" for route in others)
    return True, f"Ready, degraded ({named}): see `routes`."
