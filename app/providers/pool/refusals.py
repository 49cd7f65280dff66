"""What a request is told when its model's servers cannot take it now: every one resting (503,
Retry-After the soonest rest's end), a lone server shedding load (503, or 429 while it asks to
wait), or a misconfiguration: every server of the model has refused every attempt since the
worker started, for UPSTREAM_MISCONFIGURED_SECONDS (tell the operator, not "try again")."""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import ApiError
from ..base import UpstreamError
from ..call import ChatCall
from .server import Server

ALL_RESTING = "Every model server for {model} is resting after failures; ChatWait tries one again when its rest ends."
SHEDDING = (
    "The only model server for {model} has been failing: ChatWait sends it part of the requests until it "
    "recovers ({share}% refused now, in proportion to its recent failures)."
)
MISCONFIGURED = (
    "Every attempt to reach the model server of {model} has failed, for {seconds} s, since this service started."
)
PASSING = frozenset(("upstream_unavailable", "upstream_timeout"))  # what a misconfiguration looks like


def all_resting(servers: Sequence[Server], model: str, now: float) -> ApiError:
    """503 until the first rest of `model`'s servers ends."""
    ends = [s.health.rest_until - now for s in servers if s.serves(model)]
    soonest = max(1.0, min(ends, default=1.0))
    return ApiError("upstream_unavailable", ALL_RESTING.format(model=model), retry_after=soonest)


def shed_here(server: Server, model: str) -> ApiError | None:
    """The refusal of this request here if `server`, the only route to `model`, sheds it (its
    share of recent failures): 429 while the server asks to wait (Retry-After), else 503."""
    shed = server.admit()
    if shed is None:
        return None
    seconds, limited = shed
    if limited:
        detail = f"The model server for {model} is rate limiting this service (it asked to wait {seconds:.0f} s)."
        return ApiError("upstream_rate_limited", detail, retry_after=seconds)
    share = 0.0 if server.health.throttle is None else server.health.throttle.shed_ratio()
    detail = SHEDDING.format(model=model, share=round(100 * share))
    return ApiError("upstream_unavailable", detail, retry_after=seconds)


def inside(refusal: ApiError, call: ChatCall) -> UpstreamError:
    """A refusal met by an attempt: an upstream failure that says no retry on this model helps
    now (`all_resting`; a fallback may)."""
    said = {"retry_after": refusal.retry_after, "log_fields": {"all_resting": call.model}}
    return UpstreamError(refusal.error_code, refusal.detail, **said)


def misconfigured(servers: Sequence[Server], model: str, after: float, now: float) -> UpstreamError | None:
    """The failure to tell when every server of `model` has refused every attempt for `after`
    seconds since this worker started (None: it may be passing)."""
    own = [s for s in servers if s.serves(model)]
    if not own or not all(s.misconfigured(now, after) for s in own):
        return None
    seconds = round(max(now - (s.refusing_since or now) for s in own))
    detail = MISCONFIGURED.format(model=model, seconds=seconds)
    return UpstreamError("upstream_misconfigured", detail, log_fields={"upstream_server": own[0].name})
