"""One client connection: requests parsed by gunicorn's parser under deadlines, answered by the worker.

- Between requests a connection may stay idle for GUNICORN_KEEPALIVE seconds (the first
  request: REQUEST_READ_TIMEOUT_SECONDS), then it is closed without a word; also while the
  worker stops, so that a request already on its way gets an answer.
- Once a request's first byte is in, its head must arrive within REQUEST_READ_TIMEOUT_SECONDS
  (else 408), and its body within that time of the head (`request_body`).
- Every send must complete within CLIENT_WRITE_TIMEOUT_SECONDS: a client that stops reading
  is disconnected (a stream it followed stays resumable).
- What gunicorn's parser refuses is answered with the catalogue's JSON and the connection closes.
"""

from __future__ import annotations

import contextlib
import errno
import logging
from typing import Any

import gevent
from gevent import get_hub
from gunicorn import util
from gunicorn.http.errors import NoMoreData

from ..errors import ApiError, RequestBodyError
from ..ids import random_id
from .head_limit import HeadLimitSocket
from .parser import StrictRequestParser
from .protocol import error_response, refusal, request_path

log = logging.getLogger("chatwait.server")

_QUIET_ERRNOS = (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ECONNABORTED)
LINGER_SECONDS = 1.0


class _HeadTimeout(BaseException):
    """The request head did not arrive in time (a BaseException: no parser code may catch it)."""


class ClientConnection:
    """Serves the requests of one accepted connection through `worker.handle_request`."""

    def __init__(self, worker: Any, listener: Any, client: Any, addr: Any) -> None:
        self.worker = worker
        self.listener_name = listener.getsockname()
        self.client = client
        self.addr = addr
        self.reader = HeadLimitSocket(client, worker.max_head_bytes)
        self.parser = StrictRequestParser(worker.cfg, self.reader, addr)
        self._linger = False
        self._readable: Any = None  # the watcher that waits for a request's first byte

    def serve(self) -> None:
        """Read and serve requests until the connection must close; always closes the socket."""
        self.client.settimeout(self.worker.write_timeout)
        request = None
        try:
            first = True
            while True:
                request = None
                request = self._next_request(first)
                if request is None:
                    return
                if self.worker.handle_request(self.listener_name, request, self.client, self.addr) is False:
                    return  # the connection was taken over (a WebSocket), and has ended
                first = False
        except (StopIteration, NoMoreData, RequestBodyError):
            pass  # closed by either side; or a body the app did not read turned out bad: it has answered
        except OSError as exc:
            self._socket_error(exc)
        except Exception as exc:
            self.refuse(refusal(exc), request, exc)
        finally:
            self._close()

    def _close(self) -> None:
        """Close the socket; after a refusal or an unread body, first let the client read the answer
        (closing with unread input makes the kernel reset the connection, losing the answer)."""
        if self._readable is not None:
            self._readable.close()
        if self._linger:
            util.close_graceful(self.client, timeout=LINGER_SECONDS)
        else:
            util.close(self.client)

    def _next_request(self, first: bool) -> Any:
        """The next parsed request, or None when the connection should close quietly."""
        if not self.parser.finish_body():  # what the app left of the previous body, bounded by its deadline
            self._linger = True
            return None
        idle = self.worker.read_timeout if first else self.worker.cfg.keepalive
        buffered = self._buffered()
        if not buffered and not self._request_starts(idle):
            return None
        try:
            self.reader.reading_head(buffered)
            with gevent.Timeout(self.worker.read_timeout, _HeadTimeout):
                return next(self.parser)
        except _HeadTimeout:
            seconds = self.worker.read_timeout
            detail = f"The request head did not arrive within {seconds:g} s (REQUEST_READ_TIMEOUT_SECONDS)."
            self.refuse(ApiError("request_timeout", detail), None, None)
            return None
        finally:
            self.reader.done()

    def _request_starts(self, idle_seconds: float) -> bool:
        """Whether a request's first byte arrives within `idle_seconds` (none is buffered yet).

        A stopping worker keeps its idle connections for that time too: a request already on
        its way is answered (503 service_restarting for a new generation, `Connection: close`)
        rather than met by a closed socket.
        """
        pending = getattr(self.client, "pending", None)
        if pending is not None and pending():  # TLS: bytes already decrypted
            return True
        try:
            if self._readable is None:  # one watcher for the connection's waits, not one each
                self._readable = get_hub().loop.io(self.client.fileno(), 1)
            with gevent.Timeout(idle_seconds, False):
                get_hub().wait(self._readable)
                return True
        except OSError:
            pass
        return False

    def _buffered(self) -> bytes:
        """What the parser holds already of the next request (left in place)."""
        buffered = self.parser.unreader.take_buffered()
        if buffered:
            self.parser.unreader.unread(buffered)
        return buffered

    def refuse(self, error: ApiError, request: Any, exc: BaseException | None) -> None:
        """Answer `error` as JSON and log it (a traceback only for our own bugs); the connection closes."""
        correlation_id = random_id()
        fields = {"error_code": error.error_code, "status": error.status, "correlation_id": correlation_id}
        if error.error_code == "internal_error":
            log.error("error_occurred", exc_info=exc, extra=fields)
        else:
            log.info("request_rejected", extra={**fields, "detail": error.detail, "remote_addr": self._remote()})
        head_only = getattr(request, "method", None) == "HEAD"
        self._linger = True
        with contextlib.suppress(OSError):  # the client is gone or does not read: nothing more to tell it
            path = request_path(self.reader.start)
            self.client.sendall(error_response(error, correlation_id, body=not head_only, path=path))

    def _socket_error(self, exc: OSError) -> None:
        if isinstance(exc, TimeoutError):
            log.info("client_timeout", extra={"remote_addr": self._remote()})
        elif exc.errno not in _QUIET_ERRNOS:
            log.warning("client_socket_error", extra={"error_type": type(exc).__name__, "errno": exc.errno})

    def _remote(self) -> str | None:
        return self.addr[0] if isinstance(self.addr, tuple) and self.addr else None
