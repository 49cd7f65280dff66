"""The answer to a stream request that waits for a slot (ADMISSION_WAIT_SECONDS): sent at once,
it tells the client its place (the wire's `queued` notice, and keepalives between), then carries
the stream once it opens; past the wait, the stream's own shape ends it: its priming event and a
terminal error server_busy (nothing is kept: there is nothing to resume)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from flask import Response, request

from ..errors import ApiError
from ..generation.outcome import Outcome
from ..hub.disconnect import client_socket, on_client_gone
from ..providers.call import Usage
from ..service.admission import ClientLeft
from ..streaming import consumer
from ..streaming.direct import client_writer
from ..streaming.wire import Wire
from ..streaming.wire.sse import KEEPALIVE_FRAME, Position
from .request import correlation_id, event_response, on_delivery, services

if TYPE_CHECKING:
    from ..service.admission import Pending


def response(pending: Pending, wire: Wire, model: str, headers: dict[str, str]) -> Response:
    """The SSE response of a stream waiting for its slot."""
    found = services()
    settings, metrics, clock = found.settings, found.metrics, found.store.clock
    environ = request._get_current_object().environ
    writer, sock, delivered = client_writer(environ), client_socket(environ), on_delivery()
    ending = wire.writer(pending.stream_id, correlation_id(), model, time.time())
    opened: list[bool] = []

    def body() -> Iterator[bytes]:
        try:
            with on_client_gone(sock, pending.hang_up):  # a hang-up gives the place up at once
                while True:
                    try:
                        ahead = next(pending.positions)
                    except StopIteration as done:
                        stream = done.value
                        opened.append(True)
                        break
                    yield KEEPALIVE_FRAME if ahead is None else ending.queued(ahead)
        except ClientLeft:
            pending.never_opened()
            return
        except ApiError as busy:
            pending.never_opened()
            yield ending.priming() + ending.terminal(0, 0, Outcome("", 0, Usage(0, 0), 0.0, None, error=busy))
            return
        except BaseException:  # the client left while it waited
            pending.positions.close()
            pending.never_opened()
            raise
        keepalive = settings.streams.keepalive_seconds
        yield from consumer.consume(stream, Position(None), keepalive, clock, metrics, writer, delivered)

    answer = event_response(body(), pending.stream_id, headers)
    answer.call_on_close(lambda: None if opened else pending.never_opened())  # even if never iterated
    return answer
