"""A request body read under a deadline, failing with errors the app can answer in its own words.

gunicorn's body reader waits as long as the client takes and raises its parser's exceptions
for a malformed chunked body. Wrapped, every read must finish by the request's deadline
(REQUEST_READ_TIMEOUT_SECONDS after its head arrived), and both failures become a
`RequestBodyError` carrying the catalogue error. Raised inside gunicorn's reader, it marks the
body as failed, so the connection is closed after the response instead of reused.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent
from gunicorn.http.errors import ParseException

from ..errors import ApiError, RequestBodyError, RequestReadTimeout
from .protocol import refusal


class DeadlineBody:
    """gunicorn's request body (`wsgi.input`), each read bounded by one deadline for the whole body.

    `on_failure` is called when a read fails: the response then says `Connection: close`.
    """

    def __init__(self, body: Any, seconds: float, on_failure: Callable[[], None]) -> None:
        self._body = body
        self._seconds = seconds
        self._deadline = time.monotonic() + seconds
        self._on_failure = on_failure
        self._expired = RequestReadTimeout(seconds)  # what a read past the deadline raises
        self._ended = False  # a read came back short: the body is all read

    @property
    def failed(self) -> bool:
        """Whether a read failed: gunicorn then closes the connection rather than reuse it."""
        return bool(getattr(self._body, "failed", False))

    def _bounded(self, method: Any, *args: Any) -> Any:
        """Call `method` under the deadline. Past it, a read that needs no wait (the rest of the
        body is buffered, or there is none: a request answered long after its head) still
        succeeds; one that would wait fails at once."""
        try:
            remaining = max(0.0, self._deadline - time.monotonic())
            with gevent.Timeout(remaining, self._expired):
                return method(*args)
        except ParseException as exc:
            self._on_failure()
            raise RequestBodyError(refusal(exc)) from None
        except RequestBodyError:
            self._on_failure()
            raise
        except TimeoutError:  # the socket's own (write) timeout, shorter than the deadline
            self._on_failure()
            raise RequestReadTimeout(self._seconds) from None
        except OSError:  # reset, or closed mid-body (gunicorn's NoMoreData)
            self._on_failure()
            raise RequestBodyError(
                ApiError("bad_http_request", "The connection closed before the whole body arrived.")
            ) from None

    def read(self, size: int | None = None) -> bytes:
        """gunicorn's read under the deadline; after a short read (gunicorn's reads only stop
        short at the body's end) what follows is b"" without a timer: gunicorn's drain after
        the response reads again."""
        if self._ended:
            return b""
        data = self._bounded(self._body.read, size)
        if size is None or size < 0 or len(data) < size:
            self._ended = True
        return data

    def readline(self, size: int | None = None) -> bytes:
        return self._bounded(self._body.readline, size)

    def readlines(self, size: int | None = None) -> list[bytes]:
        return self._bounded(self._body.readlines, size)

    def __iter__(self) -> DeadlineBody:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line
