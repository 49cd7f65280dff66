"""A lean HTTP/1.1 transport for httpx, made for relaying long streamed responses cheaply.

httpx's default transport (httpcore + h11) passes every body chunk through h11's event
machinery and several layers of wrappers; a streamed chat completion is one small chunk per
token, so on one gevent worker that cost dominated everything ChatWait did. This transport
speaks the same HTTP/1.1 straight over a gevent socket: it writes the request in one send,
parses the response head once, then decodes `Transfer-Encoding: chunked` (or Content-Length,
or read-until-close) with plain bytes operations, yielding all of a recv's decoded data at
once. docs/performance.md has the measurements against httpx's own transport and
geventhttpclient.

It plugs in as an httpx transport, so the client keeps everything httpx and the SDK give it
(base URL, headers, auth, timeouts, error types), and respx still mocks requests at the
client. It never retries (the relay is the one retry owner) and does not handle proxies:
with proxy environment variables set, the provider keeps httpx's own transport.

- `transport`: the keep-alive pool and the request/response exchange;
- `connection`: one socket, its read deadline and its read buffer;
- `framing`: the request bytes and the response head, framing and chunk-size parsing;
- `body`: a response body read as the caller iterates.
"""

from .framing import MalformedResponse
from .transport import Http1Transport

__all__ = ["Http1Transport", "MalformedResponse"]
