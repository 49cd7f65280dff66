"""A lean HTTP/1.1 transport for httpx, made for relaying long streamed responses cheaply.

httpx's default transport (httpcore + h11) costs about 100 µs of CPU for every body chunk:
each streamed token passes through h11's event machinery and several layers of wrappers. A
streamed chat completion is one small chunk per token, so on one gevent worker that cost
dominates everything ChatWait does. This transport speaks the same HTTP/1.1 straight over a
gevent socket: it writes the request in one send, parses the response head once, then
decodes `Transfer-Encoding: chunked` (or Content-Length, or read-until-close) with plain
bytes operations, yielding all of a recv's decoded data at once. The read timeout is one
restartable timer per connection rather than a socket timeout, which in gevent builds a
Timeout object and its watcher for every blocking recv.

It plugs in as an httpx transport, so the client keeps everything httpx and the SDK give it
(base URL, headers, auth, timeouts, redirects, error types), and respx still mocks requests
at the client (`respx.mock(using="httpx")`). It keeps idle connections per origin for
reuse and checks that an idle connection is still open before reusing it. When concurrent
requests to an origin have used up its idle connections, it opens one spare in the
background, so that the next concurrent request does not wait for a TCP (and TLS) handshake
before its request can leave; a client that sends one request at a time keeps its one
connection and never gets a spare. It never retries:
the relay is the one retry owner. Proxies are not handled here: when proxy environment
variables are set, the provider leaves httpx's own transport in place.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterator
from typing import Any

import gevent
import httpx
from gevent import get_hub, getcurrent, socket
from gevent.monkey import get_original

from ..directsend import is_plain, send_directly

DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_HEAD_BYTES = 64 * 1024
RECV_BYTES = 64 * 1024
Origin = tuple[str, str, int]

# The system call itself: gevent's select yields to every other greenlet even with a zero
# timeout, which would let the whole response set-up run before the upstream request is sent.
_poll_now = get_original("select", "select")


class _ConnectionClosed(Exception):
    """The peer closed the connection (recv returned no bytes)."""


class ReadDeadline:
    """Raises socket.timeout in the greenlet reading when a recv waits longer than `seconds`.

    One timer, restarted before each recv and stopped after it: a few C calls per recv.
    """

    __slots__ = ("_reader", "_timer", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._timer = get_hub().loop.timer(seconds, seconds, ref=False)
        self._reader = None

    def arm(self) -> None:
        self._reader = getcurrent()
        self._timer.again(self._expire)

    def disarm(self) -> None:
        self._timer.stop()
        self._reader = None

    def _expire(self) -> None:
        reader = self._reader
        self.disarm()
        if reader is not None:
            reader.throw(socket.timeout("timed out"))

    def close(self) -> None:
        self._timer.close()


class Connection:
    """One socket to an origin, its read deadline, and the bytes read but not consumed yet."""

    __slots__ = ("_plain", "_wait_first", "buffer", "deadline", "origin", "sock")

    def __init__(self, origin: Origin, sock: socket.socket) -> None:
        self.origin = origin
        self.sock = sock
        self.buffer = b""
        self.deadline: ReadDeadline | None = None
        self._plain = is_plain(sock)  # TLS may hold decrypted bytes the kernel does not show
        self._wait_first = self._plain

    def set_read_timeout(self, seconds: float | None) -> None:
        """Reads from now on fail with socket.timeout after `seconds` without data (None: never)."""
        if self.deadline is not None and self.deadline.seconds != seconds:
            self.deadline.close()
            self.deadline = None
        if seconds is not None and self.deadline is None:
            self.deadline = ReadDeadline(seconds)

    def fill(self) -> None:
        """Read more bytes into the buffer; _ConnectionClosed at end of stream.

        On a plain socket, after a request was sent or a read emptied the socket, it waits
        until the socket is readable before reading: gevent's recv would try first, and a
        streamed token would cost a failed recv and gevent's handling of it every time.
        """
        sock = self.sock
        deadline = self.deadline
        if deadline is not None:
            deadline.arm()
        try:
            if self._wait_first:
                sock._wait(sock._read_event)  # gevent's own wait, as its recv does after EAGAIN
            data = sock.recv(RECV_BYTES)
        finally:
            if deadline is not None:
                deadline.disarm()
        if not data:
            raise _ConnectionClosed()
        self._wait_first = self._plain and len(data) < RECV_BYTES
        self.buffer += data

    def is_dropped(self) -> bool:
        """Whether an idle connection was closed by the peer (or sent something unasked)."""
        try:
            readable, _, _ = _poll_now([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self) -> None:
        if self.deadline is not None:
            self.deadline.close()
        try:
            self.sock.close()
        except OSError:
            pass


class Http1Transport(httpx.BaseTransport):
    """HTTP/1.1 over plain or TLS sockets with a keep-alive pool; see the module docstring."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None, max_idle_per_origin: int = 256) -> None:
        self._ssl_context = ssl_context
        self._max_idle = max_idle_per_origin
        self._idle: dict[Origin, list[Connection]] = {}
        self._busy: dict[Origin, int] = {}  # connections handed to a request and not back yet
        self._opening_spare: set[Origin] = set()
        self._closed = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        url = request.url
        scheme = url.scheme
        if scheme not in DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"Unsupported URL scheme {scheme!r}.", request=request)
        origin = (scheme, url.host, url.port or DEFAULT_PORTS[scheme])
        message = _serialize(request)
        connection = self._checkout(origin) or self._connect(origin, request, timeouts)
        busy = self._busy[origin] = self._busy.get(origin, 0) + 1
        response = self._exchange(connection, request, message, timeouts)
        if busy > 1 and not self._idle.get(origin):  # opened once this request is on its way
            self._open_spare(origin, timeouts.get("connect"))
        return response

    def _exchange(
        self, connection: Connection, request: httpx.Request, message: bytes, timeouts: dict[str, Any]
    ) -> httpx.Response:
        """Send the request and read the response head; the body streams from the result."""
        sock = connection.sock
        try:
            sock.settimeout(timeouts.get("write"))
            sock.sendall(message)
            sock.settimeout(None)
            connection.set_read_timeout(timeouts.get("read"))
            status, reason, headers = _read_head(connection)
        except _ConnectionClosed:
            self.give_back(connection, reusable=False)
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ) from None
        except BaseException as exc:
            self.give_back(connection, reusable=False)
            raise _mapped(exc, request, reading=True) from None
        body = ResponseBody(self, connection, request, _framing(request.method, status, headers), _keep_alive(headers))
        return httpx.Response(
            status,
            headers=headers,
            stream=body,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )

    def _checkout(self, origin: Origin) -> Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if connection.is_dropped():
                connection.close()
                continue
            return connection
        return None

    def give_back(self, connection: Connection, reusable: bool) -> None:
        """A request is done with its connection: keep it for the next request if its response
        was read to the end on a keep-alive connection, else close it."""
        self._busy[connection.origin] -= 1
        if reusable:
            self._keep_idle(connection)
        else:
            connection.close()

    def _keep_idle(self, connection: Connection) -> None:
        idle = self._idle.setdefault(connection.origin, [])
        if len(idle) < self._max_idle and not self._closed:
            idle.append(connection)
        else:
            connection.close()

    def _open_spare(self, origin: Origin, connect_timeout: float | None) -> None:
        """Open one idle connection to `origin` in the background (one at a time per origin).
        A failure is left to the next request that needs a connection, which reports it."""
        if origin in self._opening_spare:
            return
        self._opening_spare.add(origin)

        def open_spare() -> None:
            try:
                connection = self._open(origin, connect_timeout)
            except Exception:
                return
            finally:
                self._opening_spare.discard(origin)
            self._keep_idle(connection)

        gevent.spawn(open_spare)

    def _connect(self, origin: Origin, request: httpx.Request, timeouts: dict[str, Any]) -> Connection:
        try:
            return self._open(origin, timeouts.get("connect"))
        except BaseException as exc:
            raise _mapped(exc, request, reading=False) from None

    def _open(self, origin: Origin, connect_timeout: float | None) -> Connection:
        scheme, host, port = origin
        sock = _open_socket(host, port, connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                sock = self._tls_context().wrap_socket(sock, server_hostname=host)
            else:
                send_directly(sock)
        except BaseException:
            sock.close()
            raise
        return Connection(origin, sock)

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()
            self._ssl_context.set_alpn_protocols(["http/1.1"])
        return self._ssl_context

    def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()


class ResponseBody(httpx.SyncByteStream):
    """A response body read from its connection as the caller iterates.

    Read to its end on a keep-alive connection, the connection goes back to the pool;
    closed before that, the connection is closed (which is how a stopped stream tells the
    upstream to stop generating).
    """

    def __init__(
        self, transport: Http1Transport, connection: Connection, request: httpx.Request, framing: int | None, keep: bool
    ) -> None:
        self._transport = transport
        self._connection: Connection | None = connection
        self._request = request
        self._framing = framing  # CHUNKED, a Content-Length, or None for until-close
        self._keep = keep

    def __iter__(self) -> Iterator[bytes]:
        connection = self._connection
        if connection is None:
            return
        try:
            if self._framing == CHUNKED:
                yield from self._chunked(connection)
            elif self._framing is None:
                yield from self._until_close(connection)
            else:
                yield from self._sized(connection, self._framing)
        except GeneratorExit:
            raise
        except BaseException as exc:
            self.close()
            raise _mapped(exc, self._request, reading=True) from None
        self._finish()

    def _sized(self, connection: Connection, remaining: int) -> Iterator[bytes]:
        while remaining:
            if not connection.buffer:
                connection.fill()
            data = connection.buffer[:remaining]
            connection.buffer = connection.buffer[len(data) :]
            remaining -= len(data)
            yield data

    def _until_close(self, connection: Connection) -> Iterator[bytes]:
        self._keep = False
        while True:
            if connection.buffer:
                yield connection.buffer
                connection.buffer = b""
            try:
                connection.fill()
            except _ConnectionClosed:
                return

    def _chunked(self, connection: Connection) -> Iterator[bytes]:
        """Decode chunks; each pass yields every chunk completed by the bytes read so far."""
        buffer = connection.buffer
        position = 0
        while True:
            decoded = []
            while True:
                line_end = buffer.find(b"\r\n", position)
                if line_end < 0:
                    break
                size = _chunk_size(buffer[position:line_end])
                if size == 0:
                    connection.buffer = buffer[position:]
                    if decoded:
                        yield b"".join(decoded)
                    _skip_trailers(connection)
                    return
                data_end = line_end + 2 + size
                if len(buffer) < data_end + 2:
                    break
                if buffer[data_end : data_end + 2] != b"\r\n":
                    raise httpx.RemoteProtocolError("Malformed chunked body.", request=self._request)
                decoded.append(buffer[line_end + 2 : data_end])
                position = data_end + 2
            if decoded:
                yield decoded[0] if len(decoded) == 1 else b"".join(decoded)
            if position:
                buffer = buffer[position:]
                position = 0
            if len(buffer) > MAX_HEAD_BYTES and buffer.find(b"\r\n") < 0:
                raise httpx.RemoteProtocolError("Malformed chunk size line.", request=self._request)
            connection.buffer = buffer
            connection.fill()
            buffer = connection.buffer

    def _finish(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        self._transport.give_back(connection, reusable=self._keep and not connection.buffer)

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._transport.give_back(connection, reusable=False)


CHUNKED = -1


def _open_socket(host: str, port: int, timeout: float | None) -> socket.socket:
    """A connected TCP socket. An IP address is connected to directly: gevent resolves every
    name, even a numeric one, on its thread pool, a thread hand-off for nothing."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return socket.create_connection((host, port), timeout=timeout)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _serialize(request: httpx.Request) -> bytes:
    """The request line, headers and body as one bytes object (one send, one packet).

    A line break inside the request line or a header is refused: the head must then hold
    exactly one CR and one LF per line, which two counts check at once.
    """
    lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), request.url.raw_path)]
    lines += [b"%s: %s" % header for header in request.headers.raw]
    lines.append(b"\r\n")
    head = b"\r\n".join(lines)
    breaks = len(lines)  # one CRLF after each line, two after the last
    if head.count(b"\n") != breaks or head.count(b"\r") != breaks:
        raise httpx.LocalProtocolError("A request header contains a line break.", request=request)
    return head + request.read()


def _read_head(connection: Connection) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """The status, reason and headers of the next final (non-1xx) response."""
    while True:
        end = connection.buffer.find(b"\r\n\r\n")
        while end < 0:
            if len(connection.buffer) > MAX_HEAD_BYTES:
                raise ValueError("response head too large")
            connection.fill()
            end = connection.buffer.find(b"\r\n\r\n")
        head, connection.buffer = connection.buffer[:end], connection.buffer[end + 4 :]
        status_line, *header_lines = head.split(b"\r\n")
        version, _, rest = status_line.partition(b" ")
        code, _, reason = rest.partition(b" ")
        if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise ValueError("malformed status line")
        headers = []
        for line in header_lines:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                raise ValueError("malformed header line")
            headers.append((name, value.strip()))
        status = int(code)
        if status >= 200:
            if version == b"HTTP/1.0":
                headers.append((b"connection", b"close"))
            return status, reason, headers


def _framing(method: str, status: int, headers: list[tuple[bytes, bytes]]) -> int | None:
    """How the body ends: CHUNKED, a byte count (0 for none), or None (at connection close)."""
    if method == "HEAD" or status in (204, 304):
        return 0
    length = None
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"transfer-encoding" and b"chunked" in value.lower():
            return CHUNKED
        if lowered == b"content-length":
            if not value.isdigit():
                raise httpx.RemoteProtocolError("Malformed Content-Length.")
            length = int(value)
    return length


def _keep_alive(headers: list[tuple[bytes, bytes]]) -> bool:
    return not any(name.lower() == b"connection" and b"close" in value.lower() for name, value in headers)


def _chunk_size(line: bytes) -> int:
    digits = line.split(b";", 1)[0].strip()
    try:
        size = int(digits, 16)
    except ValueError:
        raise ValueError("malformed chunk size") from None
    if size < 0 or not digits.isalnum():
        raise ValueError("malformed chunk size")
    return size


def _skip_trailers(connection: Connection) -> None:
    """Consume the last chunk's line and any trailer fields, up to the blank line that ends them."""
    while True:
        end = connection.buffer.find(b"\r\n\r\n")
        if end >= 0:
            connection.buffer = connection.buffer[end + 4 :]
            return
        if len(connection.buffer) > MAX_HEAD_BYTES:
            raise ValueError("trailers too large")
        connection.fill()


def _mapped(exc: BaseException, request: httpx.Request, reading: bool) -> BaseException:
    """The httpx exception for a socket-level failure; anything else passes through."""
    if isinstance(exc, httpx.HTTPError | GeneratorExit) or not isinstance(exc, Exception):
        return exc
    if isinstance(exc, TimeoutError):
        kind = httpx.ReadTimeout if reading else httpx.ConnectTimeout
        return kind("Timed out.", request=request)
    if isinstance(exc, _ConnectionClosed):
        return httpx.RemoteProtocolError(
            "Peer closed connection without sending complete message body.", request=request
        )
    if isinstance(exc, ValueError):
        return httpx.RemoteProtocolError(f"Malformed HTTP response: {exc}.", request=request)
    if isinstance(exc, OSError):
        kind = httpx.ReadError if reading else httpx.ConnectError
        return kind(f"{type(exc).__name__}.", request=request)
    return exc
