"""One turn of a Responses WebSocket: a `response.create` made as a POST /v1/responses through the
app itself (`stream` forced on), or ChatWait's `chatwait:response.resume` made as a GET of the
turn's events; the answer's events sent as messages, in the turn's lane."""

from __future__ import annotations

import io
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import orjson
from flask import Flask

from ...errors import ApiError
from ...hub.websocket import TURN, WebSocket
from .asides import error_event, in_lane, sse_data
from .chains import Chains
from .intake import CHAINED

PATH = "/v1/responses"
RESUME = "chatwait:response.resume"  # ChatWait's extension, prefixed as Open Responses asks
MAX_ID_CHARS = 200


class Host(Protocol):
    """The socket a turn runs on (`socket.Session`)."""

    socket: WebSocket
    app: Flask
    base: dict[str, Any]
    chains: Chains

    def error(self, error: ApiError, previous: str | None = None, lane: Any = None) -> None: ...


class Turn:
    """One `response.create` (or `chatwait:response.resume`): its request through the app, its
    events sent as messages."""

    def __init__(self, session: Host, event: dict[str, Any]) -> None:
        self.session = session
        self.body = {key: value for key, value in event.items() if key not in ("type", "stream_id")}
        self.previous = self.body.get("previous_response_id")
        self.lane = event.get("stream_id")
        self.resumes = event.get("type") == RESUME

    def run(self) -> None:
        if self.resumes:
            self._resume()
            return
        if self.body.pop("background", False):
            error = ApiError("validation_error", "Background mode is not available over a WebSocket.")
            self.session.error(error, lane=self.lane)
            return
        self.body["stream"] = True
        chains = self.session.chains
        sent, chained = chains.expand(self.body)
        seen = (lambda data: chains.remember(data, sent)) if self.body.get("store") is False else None
        extra = {CHAINED: chained} if chained else {}
        if not self._relay(*self._dispatch("POST", PATH, "", orjson.dumps(self.body), extra), seen) and chained:
            chains.forget(chained)  # a failed continuation evicts its chain: the client sends it whole

    def _resume(self) -> None:
        """A turn's events after `starting_after` (all of them without it), as a resume over SSE
        gets them; where the client has the last one (the SSE resume's 204), a `nothing_to_resume`
        error event, so that a client waiting for an ending gets one."""
        response_id, after = self.body.get("response_id"), self.body.get("starting_after")
        problem = _resume_problem(response_id, after)
        if problem is not None:
            self.session.error(problem, lane=self.lane)
            return
        query = urlencode({"stream": "true", **({} if after is None else {"starting_after": after})})
        self._relay(*self._dispatch("GET", f"{PATH}/{quote(response_id, safe='')}", query, b""))

    def _relay(self, status: int, body: Any, seen: Any = None) -> bool:
        """Send an answer's events as messages in this lane (`seen` is given each), or its error as
        an event (a resume's 204, nothing after the last event, as `nothing_to_resume`); False
        when the turn failed (an error, or a response that ended `failed`)."""
        try:
            if status == 200:
                failed = False
                for data in sse_data(body):
                    self.session.socket.send_text(in_lane(data, self.lane))
                    failed = failed or _failed(data)
                    if seen is not None:
                        seen(data)
                return not failed
            if status == 204:
                self.session.error(ApiError("nothing_to_resume"), lane=self.lane)
            else:
                self.session.socket.send_text(in_lane(error_event(_error_body(body), status, self.previous), self.lane))
            return False
        finally:
            getattr(body, "close", lambda: None)()

    def _dispatch(
        self, method: str, path: str, query: str, content: bytes, extra: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        """Make the turn's request through the app in a fresh app context (its own `g`), `extra`
        in its environ; the status and body."""
        environ = {
            **self.session.base,
            **(extra or {}),
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(content)),
            "wsgi.input": io.BytesIO(content),
            "wsgi.url_scheme": "http",
            "wsgi.errors": io.StringIO(),
            "wsgi.version": (1, 0),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            TURN: True,
        }
        answered: list[int] = []

        def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            answered.append(int(status[:3]))
            return lambda _: None

        with self.session.app.app_context():
            body = self.session.app.wsgi_app(environ, start_response)
        return answered[0], body


def _failed(data: str) -> bool:
    """Whether an event (its JSON) says its response failed: `response.failed`, or an `error`."""
    head = data[:64]
    return '"response.failed"' in head or '"type":"error"' in head


def _resume_problem(response_id: Any, after: Any) -> ApiError | None:
    """What is wrong with a resume message's fields, or None."""
    if type(response_id) is not str or not 0 < len(response_id) <= MAX_ID_CHARS:
        field, detail = "response_id", f"response_id must be a response's id (1 to {MAX_ID_CHARS} characters)."
    elif after is not None and (type(after) is not int or after < 0):
        field, detail = "starting_after", "starting_after must be the last sequence_number received (0 or more)."
    else:
        return None
    return ApiError("validation_error", detail, fields={field: [detail]})


def _error_body(body: Any) -> dict[str, Any]:
    """The JSON error an answer carries (every error of the app is one)."""
    try:
        found = orjson.loads(b"".join(body))
    except orjson.JSONDecodeError:
        found = None
    return found if isinstance(found, dict) else {"error": {"code": "internal_error", "message": "No error body."}}
