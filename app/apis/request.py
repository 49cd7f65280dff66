"""What a view knows of the request it answers, over Flask's request context: the app's services,
the correlation id, the client's key (its digest and what it is), where its limits stand once a
generation is admitted (the after-request hook sends them as x-ratelimit-* headers), and tracing
the rest of the request with a stream. The Flask glue (`app.http`) fills it in its hooks."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from flask import Response, current_app, g, has_request_context, request

from ..accounts.account import Handoff, Origin
from ..accounts.billing import Charge
from ..accounts.payer import Payer
from ..logs import bind, stream_correlation_id_var, stream_id_var
from ..traces import end_request, parent_of
from .end_users import end_user

if TYPE_CHECKING:
    from ..config import ClientKey
    from ..generation.outcome import Outcome
    from ..limits import Verdict
    from ..service.admitting import Admission
    from ..service.services import Services

log = logging.getLogger("chatwait.http")

NOT_ADMITTED = object()  # the verdict of a request that admitted no generation (look at the counters)


def services() -> Services:
    """The services of the current app."""
    # The app object itself: an attribute looked up on the proxy first fails on the proxy.
    return current_app._get_current_object().extensions["chatwait"]


def correlation_id() -> str:
    """This request's correlation id (`app.http.request_log` sets it)."""
    return g._get_current_object().correlation_id


def client() -> str:
    """The digest of this request's key ("" when the API is open)."""
    return g._get_current_object().get("client", "")


def client_key() -> ClientKey | None:
    """This request's key: its name and limits (None when the API is open)."""
    return g._get_current_object().get("client_key")


def owns(started_by: str) -> bool:
    """Whether this request's key is the one that started a stream (always, when the API is open)."""
    return hmac.compare_digest(started_by, client())


def payer(options: Mapping[str, Any]) -> Payer:
    """Who this request asks to pay: its key, and its end user (the X-ChatWait-User header, else the
    family's field in its call's `options`: `end_users`), kept as logs show them for its completion
    line and its span. The service resolves it at admission (`ClientKeys.resolve`)."""
    state = g._get_current_object()
    found = Payer(state.get("client_key"), end_user(request.environ, options))
    if found.user is not None:
        state.end_user_shown = shown = found.shown
        _note(state, {"end_user": shown})
    return found


def origin(streamed: bool) -> Origin:
    """Where this request's generation comes from: its correlation id, its stream's new id (None:
    wait mode), a handoff for its completion line (`handoff`), and its Cache-Control header."""
    environ = request.environ
    cache_header = environ.get("HTTP_CACHE_CONTROL")  # the response cache's no-cache, no-store
    if cache_header is None and "HTTP_PRAGMA" in environ:  # HTTP/1.0's no-cache, where no Cache-Control says
        cache_header = environ["HTTP_PRAGMA"]
    return Origin(correlation_id(), services().store.new_id() if streamed else None, handoff(), cache_header)


def on_delivery() -> Charge | None:
    """How this request's payer is charged for chunks of a model's output that reach its client for
    the first time, where it pays for delivery: its generation's account's charge (`Account.delivery`),
    or (a resume, a stop) its key's. Taken while the request is current: a body outlives it."""
    state = g._get_current_object()
    account = state.get("account")
    if account is not None:
        return account.delivery()
    key = state.get("client_key")
    return None if key is None else services().billing.delivery(Payer(key))


COST_HEADER = "X-ChatWait-Cost-USD"  # on a whole (non-streamed) answer whose model has a price
CACHE_HEADER = "X-ChatWait-Cache"  # hit, miss or bypass: what the response cache made of the request
CACHE_ENTRY_HEADER = "X-ChatWait-Cache-Entry"  # the entry it looked for (DELETE /v1/admin/cache?entry=)
LOWERED_HEADER = "X-ChatWait-Max-Tokens-Lowered"  # the max_tokens a budget had left, below what was asked
ADAPTED_HEADER = "X-ChatWait-Adapted"  # each change ChatWait made to what the client asked, `; `-separated
MAX_ADAPTED = 16  # changes named on one request (a bounded header)


def adapted(change: str) -> None:
    """Say that ChatWait sends other than the client asked (`change`: what and why, as
    "temperature dropped (the model takes only its default)"): in ADAPTED_HEADER and on the
    request's completion line (a WebSocket turn is a request of its own: its line only). Outside
    a request it is logged alone."""
    if not has_request_context():
        log.info("request_adapted", extra={"adapted": [change]})
        return
    state = g._get_current_object()
    found = state.get("adapted")
    if found is None:
        state.adapted = found = []
    if change not in found and len(found) < MAX_ADAPTED:
        found.append(change)
        _note(state, {"adapted": found})


def costed(outcome: Outcome | None) -> None:
    """Keep what this request's generation cost (None: still running), for its answer's COST_HEADER."""
    if outcome is not None and outcome.cost_usd is not None:
        g._get_current_object().cost_usd = outcome.cost_usd


def cost_header(cost_usd: float) -> str:
    """COST_HEADER's value: USD as a plain decimal, to a billionth."""
    return f"{cost_usd:.9f}".rstrip("0").rstrip(".")


def admitted(admission: Admission) -> Admission:
    """Keep its generation's account (its delivery charge), where this request's key stands after
    its generation was admitted (and the max_tokens its budget lowered), and what the response
    cache made of it, for its answer."""
    state = g._get_current_object()
    state.account = admission.account
    for change in admission.adapted:
        adapted(change)
    if admission.limited:
        state.verdict = admission.verdict
        ticket = admission.account.ticket
        if ticket is not None and ticket.max_tokens is not None:  # the answer may end `length` for it
            state.lowered = ticket.max_tokens
            _note(state, {"max_tokens_lowered": ticket.max_tokens})
    lookup = admission.account.lookup
    if lookup is not None:
        state.cache = lookup.state, lookup.digest
        _note(state, {"cache": lookup.state})
    return admission


def counted() -> None:
    """Count this request against its key's rpm (a request that starts no generation: a
    conversation's change, a token count); rate_limited when the key is at its limit."""
    key = client_key()
    if key is not None and key.rpm is not None:
        g._get_current_object().verdict = services().limits.request(key)


def verdict() -> Verdict | object | None:
    """Where this request's key stood at its admission (None: the counters were out of reach),
    or NOT_ADMITTED."""
    return g._get_current_object().get("verdict", NOT_ADMITTED)


def trace_stream(stream_id: str, stream_correlation_id: str) -> None:
    """Trace the rest of this request with a stream: its lines keep this request's correlation id
    (one per request, from its first line to its last) and carry the stream's id, and the
    correlation id the stream was started with where that is another (a resume, a stop)."""
    state = g._get_current_object()
    stream_id_var.set(stream_id)
    if stream_correlation_id != state.correlation_id:
        state.stream_correlation_id = stream_correlation_id  # for the lines its body logs
        stream_correlation_id_var.set(stream_correlation_id)


def handoff() -> Handoff:
    """A handoff for the generation this request starts: while the request is open, its
    request_completed line carries the generation's completion fields (`generation.report`)."""
    state = g._get_current_object()
    span = state.get("span")
    state.handoff = made = Handoff(None if span is None else parent_of(span[0]))
    return made


def end_span(state: Any, status: int, stream_id: str | None = None) -> None:
    """End the request's span (a streamed response's once its body has ended), once."""
    started = state.get("span")
    if started is None:
        return
    state.span = None
    key = state.get("client_key")
    attributes = {"chatwait.correlation_id": state.get("correlation_id"), "chatwait.stream_id": stream_id}
    attributes["chatwait.client_name"] = None if key is None else key.name
    end_request(started[0], status, attributes | {"user.id": state.get("end_user_shown")})


def event_response(body: Iterator[bytes], stream_id: str, headers: dict[str, str]) -> Response:
    """A streamed (SSE) response whose body carries this request's ids on its log lines, and its
    request_completed line once the body has ended, however it ended (closed unread too)."""
    state = g._get_current_object()
    logged = state.get("logged", True)
    answer = Response(
        _traced(body, stream_id, state.correlation_id, state, logged),
        direct_passthrough=True,  # the server iterates the frames itself, without werkzeug's wrappers
        mimetype="text/event-stream",
        headers=headers,
    )
    if logged:  # a body closed before its first frame never ran its `finally`
        answer.call_on_close(lambda: _completed(state, stream_id))
    if state.get("span") is not None:
        answer.call_on_close(lambda: end_span(state, 200, stream_id))
    return answer


def completion(state: Any, status: int, streamed: bool = False) -> dict[str, Any]:
    """The request_completed line's fields: the generation's the request started, if it ended
    meanwhile (its own duration as `generation_ms`), the request's status and duration, its
    client key's name (never the key)."""
    found = state.get("handoff")
    fields = {} if found is None else dict(found.close())
    if "duration_ms" in fields:
        fields["generation_ms"] = fields.pop("duration_ms")
    fields["status"] = status
    fields["duration_ms"] = round((time.monotonic() - state.get("started", time.monotonic())) * 1000, 1)
    if streamed:
        fields["streamed"] = True
    key = state.get("client_key")
    if key is not None:
        fields["client_name"] = key.name
    noted = state.get("noted")
    if noted:
        fields.update(noted)
    return fields


def note(**fields: Any) -> None:
    """Fields for this request's completion line (the fields it carried that ChatWait does not
    know, where a resume started, that its client left): said there, not on lines of their own."""
    _note(g._get_current_object(), fields)


def _note(state: Any, fields: dict[str, Any]) -> None:
    noted = state.get("noted")
    if noted is None:
        state.noted = noted = {}
    noted.update(fields)


def _traced(body: Iterator[bytes], stream_id: str, correlation_id: str, state: Any, logged: bool) -> Iterator[bytes]:
    with bind(correlation_id, stream_id, state.get("stream_correlation_id")):
        try:
            yield from body
        except (GeneratorExit, OSError):  # the client left (or its socket broke) before the end reached it
            _note(state, {"client_left": True})
            raise
        finally:
            if logged:
                _completed(state, stream_id)
            end_span(state, 200, stream_id)


def _completed(state: Any, stream_id: str) -> None:
    """The request_completed line of a streamed response, once."""
    if state.get("completion_logged"):
        return
    state.completion_logged = True
    with bind(state.correlation_id, stream_id, state.get("stream_correlation_id")):
        log.info("request_completed", extra=completion(state, 200, streamed=True))
