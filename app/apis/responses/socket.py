"""The Responses API's WebSocket mode (OpenAI's, and the Open Responses specification's): one
socket on GET /v1/responses, each `response.create` message a turn.

A turn is a POST /v1/responses made through the app itself (`stream` forced on), so it has the
same key, limits, validation, logs and metrics as over HTTP, and is a ChatWait stream like any
other: its events, each sent as one message, resume over SSE on any worker. Turns run one
after the other, MAX_PENDING_TURNS at most waiting; turns that name a `stream_id` (a lane) run
in that lane's order, beside the others, and their events carry it (MAX_LANES a socket); a
`store: false` chain is kept in the socket (`Chains`); the socket lasts CONNECTION_SECONDS at most.
ChatWait's own `chatwait:response.resume` message reattaches a turn (one whose socket dropped, on
any worker or instance): its events after `starting_after`, as GET /v1/responses/{id}?stream=true
gives them, in the turn order of its lane.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
import orjson
from flask import Flask, Response, current_app, request
from werkzeug.exceptions import MethodNotAllowed

from ...errors import ApiError
from ...hub.scheduling import Inbox
from ...hub.websocket import UPGRADED, CloseCode, SocketClosed, WebSocket, asks_for_websocket
from ..request import client_key, correlation_id, services
from ..shapes import error_body
from .asides import error_event, in_lane, steer_failed
from .chains import Chains
from .socket_turn import PATH, RESUME, Turn

log = logging.getLogger("chatwait.responses")

CONNECTION_SECONDS = 3600.0  # the specification's connection limit
PING_SECONDS = 20.0  # a ping after this long without a word from the client
SILENT_SECONDS = 60.0  # a client that answers nothing for this long is gone
MAX_PENDING_TURNS = 4  # in each lane
MAX_LANES = 8  # named lanes (`stream_id`) a socket runs beside its default one
MAX_LANE_CHARS = 128
CREATE = "response.create"
STEER = "response.steer"  # OpenAI's beta: input queued into a running response, which no model here takes
STOP_POLL_SECONDS = 1.0  # how soon a socket between turns notices that its worker stops
MAX_CHAINS = 32  # `store: false` responses a socket remembers for previous_response_id
_OPEN: set[WebSocket] = set()  # this worker's sockets
_KEPT_HEADERS = (
    "HTTP_AUTHORIZATION",
    "HTTP_X_API_KEY",
    "HTTP_OPENAI_ORGANIZATION",
    "HTTP_USER_AGENT",
    "HTTP_TRACEPARENT",
    "HTTP_TRACESTATE",  # each turn's span joins the trace the upgrade named
    "HTTP_X_CHATWAIT_USER",
)  # and each turn is its end user's


def serve() -> Response:
    """GET /v1/responses upgraded to a WebSocket: the socket's whole life (405 where the
    connection cannot be taken: Flask's test client). Refused before the upgrade: 503 when half
    this worker's connections are sockets already (the rest stay HTTP's), 429 when the key has
    its max_sockets open."""
    environ = request.environ
    sock = environ.get("gunicorn.socket")
    if not asks_for_websocket(environ) or sock is None:
        raise MethodNotAllowed(valid_methods=["POST"])
    found, key = services(), client_key()
    settings, limits = found.settings, found.limits
    if len(_OPEN) >= settings.server.gunicorn_worker_connections // 2:
        raise ApiError("server_busy", "This worker has as many WebSockets open as it takes: try again shortly.")
    socket = WebSocket(sock, settings.requests.max_body_bytes)
    held = None if key is None else limits.open_socket(key)  # the last step that may refuse
    _OPEN.add(socket)
    found.metrics.websocket(1)
    try:
        headers = [(name[5:].replace("_", "-"), value) for name, value in environ.items() if name.startswith("HTTP_")]
        environ[UPGRADED] = True  # from here on the connection is the socket's, whatever happens
        if socket.accept(PATH, headers):
            Session(socket, current_app._get_current_object(), environ).run()
    finally:
        _OPEN.discard(socket)
        found.metrics.websocket(-1)
        limits.close_socket(held)
    return Response(status=101)


class Session:
    """The turns of one socket: a reader greenlet queues them, this greenlet runs them in order."""

    def __init__(self, socket: WebSocket, app: Flask, environ: dict[str, Any]) -> None:
        self.socket = socket
        self.app = app
        self.base = {key: environ[key] for key in _KEPT_HEADERS if key in environ}
        self.base.update({key: environ.get(key) for key in ("SERVER_NAME", "SERVER_PORT", "REMOTE_ADDR")})
        self.turns = Inbox(MAX_PENDING_TURNS)
        self.lanes: dict[str, tuple[Inbox, gevent.Greenlet]] = {}
        settings, key = services().settings, client_key()
        bounds = (settings.conversations.socket_chains_key_bytes, settings.conversations.socket_chains_worker_bytes)
        self.chains = Chains(MAX_CHAINS, settings.requests.max_body_bytes, "" if key is None else key.name, *bounds)
        self.correlation_id = correlation_id()
        self.waits = services().waits

    def run(self) -> None:
        reader = gevent.spawn(self._read)
        deadline = time.monotonic() + CONNECTION_SECONDS
        try:
            while True:
                if not self.waits.accepting:  # the worker stops: the client reconnects to another
                    self.socket.close(CloseCode.SERVICE_RESTART, "the server restarts: reconnect")
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    self.error(ApiError("websocket_connection_limit_reached", _LIMIT_DETAIL))
                    return
                try:
                    turn = self.turns.take(min(left, STOP_POLL_SECONDS))
                except TimeoutError:
                    continue
                Turn(self, turn).run()
                turn = None  # an idle socket keeps nothing of its last turn (an image, say)
        except (EOFError, SocketClosed):
            pass
        except Exception:
            log.exception("error_occurred", extra={"error_code": "internal_error", "mode": "websocket"})
            self.socket.close(CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            reader.kill()
            self.socket.close()
            for _, runner in self.lanes.values():
                runner.kill()
            self.chains.close()

    def _read(self) -> None:
        """Queue each `response.create`; answer what is not one with an error event; ping a quiet client."""
        try:
            while True:
                message = self.socket.receive(PING_SECONDS)
                if message is None:
                    if time.monotonic() - self.socket.heard > SILENT_SECONDS:
                        self.socket.close(CloseCode.INTERNAL_ERROR, "no answer to pings")
                        return
                    self.socket.ping()
                    continue
                self._take(message)
                message = None  # nor of its last message while it waits for the next
        except SocketClosed:
            pass
        finally:
            self.turns.close()
            for inbox, _ in self.lanes.values():
                inbox.close()

    def _take(self, message: str | bytes) -> None:
        try:
            event = orjson.loads(message)
        except orjson.JSONDecodeError:
            self.error(ApiError("invalid_json", "A WebSocket message must be one JSON object."))
            return
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == STEER:
            self.socket.send_text(steer_failed(event))
            return
        if kind not in (CREATE, RESUME):
            self.error(ApiError("unknown_client_event", f"Type {str(kind)[:80]!r} is not one this socket takes."))
            return
        lane = event.get("stream_id")
        inbox = self.turns if lane is None else self._lane(lane)
        if inbox is not None and not inbox.offer(event):
            detail = f"{MAX_PENDING_TURNS} turns are waiting in this lane already."
            self.error(ApiError("too_many_pending_turns", detail), lane=lane)

    def _lane(self, lane: Any) -> Inbox | None:
        """The inbox of lane `lane`, its runner started on its first turn; None (after an error
        event) for a lane that is not a short string, or one over MAX_LANES."""
        if type(lane) is not str or not 0 < len(lane) <= MAX_LANE_CHARS:
            detail = f"stream_id must be a string of 1 to {MAX_LANE_CHARS} characters."
            self.error(ApiError("validation_error", detail, fields={"stream_id": [detail]}))
            return None
        if lane not in self.lanes:
            if len(self.lanes) >= MAX_LANES:
                detail = f"A socket runs {MAX_LANES} stream_id lanes at most: send this turn on one of them."
                self.error(ApiError("too_many_pending_turns", detail), lane=lane)
                return None
            inbox = Inbox(MAX_PENDING_TURNS)
            self.lanes[lane] = inbox, gevent.spawn(self._run_lane, inbox)
        return self.lanes[lane][0]

    def _run_lane(self, inbox: Inbox) -> None:
        """Run a lane's turns in order until the socket ends."""
        try:
            while True:
                Turn(self, inbox.take(CONNECTION_SECONDS)).run()
        except (EOFError, TimeoutError, SocketClosed):
            pass
        except Exception:
            log.exception("error_occurred", extra={"error_code": "internal_error", "mode": "websocket"})
            self.socket.close(CloseCode.INTERNAL_ERROR, "internal error")

    def error(self, error: ApiError, previous: str | None = None, lane: Any = None) -> None:
        body = error_body(error, self.correlation_id, PATH)
        self.socket.send_text(in_lane(error_event(body, error.status, previous), lane))


_LIMIT_DETAIL = f"A socket lasts {CONNECTION_SECONDS / 60:g} minutes at most; open a new one to continue."
