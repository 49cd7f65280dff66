"""HTTP/1.1 on the wire: the request's bytes, the response head, how the body is framed.

Parsing is strict where leniency could desync a connection (RFC 9112): a status line with a
three-digit code, header lines with a name and a colon, a Content-Length of digits only, a
chunk size of hex digits only, and a bound on every head, size line and trailer block.
"""

from __future__ import annotations

import re
import ssl

import httpx

from .connection import Connection, ConnectionClosed

MAX_HEAD_BYTES = 64 * 1024
MAX_INTERIM_RESPONSES = 8
CHUNKED = -1
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
# Size lines seen (without extensions) and their sizes: a stream of tokens repeats a few dozen.
CHUNK_SIZES: dict[bytes, int] = {}
MAX_CACHED_SIZES = 4096


class MalformedResponse(httpx.RemoteProtocolError):
    """The upstream's answer breaks HTTP/1.1 framing or a size limit (not a connection that broke)."""


def serialize(request: httpx.Request) -> bytes:
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


def read_head(connection: Connection) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """The status, reason and headers of the next final (non-1xx) response (after at most
    MAX_INTERIM_RESPONSES informational ones)."""
    for _ in range(MAX_INTERIM_RESPONSES + 1):
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
    raise ValueError("too many informational responses")


def framing(method: str, status: int, headers: list[tuple[bytes, bytes]]) -> int | None:
    """How the body ends: CHUNKED, a byte count (0 for none), or None (at connection close).

    Transfer-Encoding must be exactly `chunked` (the request asks for no compression); several
    Content-Length values must agree (RFC 9112 section 6.3).
    """
    if method == "HEAD" or status in (204, 304):
        return 0
    lengths = set()
    chunked = False
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"transfer-encoding":
            if value.strip().lower() != b"chunked":
                raise MalformedResponse("Unsupported Transfer-Encoding.")
            chunked = True
        elif lowered == b"content-length":
            if not value.isdigit() or len(value) > 18:
                raise MalformedResponse("Malformed Content-Length.")
            lengths.add(int(value))
    if chunked:
        return CHUNKED
    if len(lengths) > 1:
        raise MalformedResponse("Conflicting Content-Length values.")
    return lengths.pop() if lengths else None


def keep_alive(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the connection may carry another request after this response."""
    return not any(name.lower() == b"connection" and b"close" in value.lower() for name, value in headers)


def chunk_size(line: bytes) -> int:
    """The size of a chunk from its size line: hex digits only, then optional extensions.

    RFC 9112: chunk-size = 1*HEXDIG, then `;` extensions (with optional whitespace before
    the `;`). "0x1a", "+1a", " 1a", "1_a" are malformed.
    """
    digits, semicolon, _ = line.partition(b";")
    if semicolon:
        digits = digits.rstrip(b" \t")
    if not _CHUNK_SIZE.fullmatch(digits):
        raise ValueError("malformed chunk size")
    size = int(digits, 16)
    if not semicolon and len(CHUNK_SIZES) < MAX_CACHED_SIZES:
        CHUNK_SIZES[line] = size
    return size


def skip_trailers(connection: Connection) -> None:
    """Consume the last chunk's line and any trailer fields, up to the blank line that ends them."""
    while True:
        end = connection.buffer.find(b"\r\n\r\n")
        if end >= 0:
            connection.buffer = connection.buffer[end + 4 :]
            return
        if len(connection.buffer) > MAX_HEAD_BYTES:
            raise ValueError("trailers too large")
        connection.fill()


def mapped(exc: BaseException, request: httpx.Request, reading: bool) -> BaseException:
    """The httpx exception for a socket-level failure; anything else passes through."""
    if isinstance(exc, httpx.HTTPError | GeneratorExit) or not isinstance(exc, Exception):
        return exc
    if isinstance(exc, TimeoutError):
        kind = httpx.ReadTimeout if reading else httpx.ConnectTimeout
        return kind("Timed out.", request=request)
    if isinstance(exc, ConnectionClosed):
        return httpx.RemoteProtocolError(
            "Peer closed connection without sending complete message body.", request=request
        )
    if isinstance(exc, ssl.SSLError):  # before ValueError: a refused certificate is both
        kind = httpx.ReadError if reading else httpx.ConnectError
        return kind(f"TLS: {exc.reason}.", request=request)
    if isinstance(exc, ValueError):
        return MalformedResponse(f"Malformed HTTP response: {exc}.", request=request)
    if isinstance(exc, OSError):
        kind = httpx.ReadError if reading else httpx.ConnectError
        return kind(f"{type(exc).__name__}.", request=request)
    return exc
