"""The worker's own answers, for requests it cannot hand to the app: JSON errors from the catalogue.

gunicorn's HTTP parser refuses what could desync a connection (Content-Length with chunked,
repeated or malformed Content-Length, bad chunk framing, bare LF, obsolete folding) and what
is over its limits. Each refusal becomes a catalogue error with a detail in our own words (the
client's bytes are never echoed back), written with `Connection: close`.
"""

from __future__ import annotations

import json
from http import HTTPStatus

from gunicorn.http import errors as parse_errors

from ..apis.shapes import error_body
from ..errors import ApiError

# Most specific first: (exception classes, error code, detail).
_REFUSALS: tuple[tuple[tuple[type[BaseException], ...], str, str], ...] = (
    (
        (parse_errors.InvalidResponseHeader, parse_errors.InvalidResponseHeaderName),
        "internal_error",
        "The response had an invalid header.",
    ),
    ((parse_errors.LimitRequestLine,), "request_line_too_long", "The request line is longer than the limit."),
    ((parse_errors.LimitRequestHeaders,), "headers_too_large", "The request headers exceed the count or size limit."),
    (
        (parse_errors.UnsupportedTransferCoding,),
        "unsupported_transfer_encoding",
        "Only chunked is accepted as a Transfer-Encoding.",
    ),
    ((parse_errors.ExpectationFailed,), "expectation_failed", "Only Expect: 100-continue is supported."),
    (
        (parse_errors.InvalidChunkSize, parse_errors.ChunkMissingTerminator, parse_errors.InvalidChunkExtension),
        "bad_http_request",
        "The chunked body is malformed.",
    ),
    ((parse_errors.ObsoleteFolding,), "bad_http_request", "A header is folded over several lines."),
    (
        (parse_errors.InvalidRequestLine, parse_errors.InvalidRequestMethod, parse_errors.InvalidHTTPVersion),
        "bad_http_request",
        "The request line is not METHOD /path HTTP/1.x.",
    ),
    ((parse_errors.ParseException,), "bad_http_request", "A header is malformed."),
)

_FRAMING_HEADERS = {
    "CONTENT-LENGTH": "Content-Length is malformed, repeated, or sent with Transfer-Encoding.",
    "TRANSFER-ENCODING": "Transfer-Encoding is malformed, repeated, not chunked last, or used with HTTP/1.0.",
}


def refusal(exc: BaseException) -> ApiError:
    """The catalogue error for an exception raised while reading or parsing a request."""
    if isinstance(exc, parse_errors.InvalidHeader) and getattr(exc, "hdr", None) in _FRAMING_HEADERS:
        return ApiError("bad_http_request", _FRAMING_HEADERS[exc.hdr])
    for classes, code, detail in _REFUSALS:
        if isinstance(exc, classes):
            return ApiError(code, detail)
    return ApiError("internal_error")


def request_path(start: bytes) -> str:
    """The path of a request from the first bytes of its head ("" when they do not show one)."""
    parts = start.split(b"\r\n", 1)[0].split(b"\n", 1)[0].split(b" ", 2)
    if len(parts) < 2 or not parts[1].startswith(b"/"):
        return ""
    return parts[1].split(b"?", 1)[0].decode("latin-1")


def error_response(error: ApiError, correlation_id: str, body: bool = True, path: str = "") -> bytes:
    """A complete HTTP/1.1 response carrying `error` as JSON in the shape of `path`'s family
    (as far as it was read), closing the connection.

    `body=False` (a HEAD request) sends the head with the same Content-Length and no body.
    """
    payload = json.dumps(error_body(error, correlation_id, path), separators=(",", ":")).encode()
    lines = [
        f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}",
        "Connection: close",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        f"X-Correlation-Id: {correlation_id}",
    ]
    retry_after = error.retry_after_header
    if retry_after is not None:
        lines.append(f"Retry-After: {retry_after}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    return head + payload if body else head
