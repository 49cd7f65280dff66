"""geventhttpclient's HTTPClient (llhttp's C parser, a gevent connection pool) behind httpx's
transport interface: the candidate bench.py compares with ChatWait's own HTTP/1.1 transport
(`bench.py --variant geventhttpclient`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
from geventhttpclient import HTTPClient


class GeventHttpClientTransport(httpx.BaseTransport):
    """One HTTPClient (and its pool) per origin; the body is read with its public `readline`."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str, int], HTTPClient] = {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        key = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        client = self._clients.get(key)
        if client is None:
            timeout = request.extensions.get("timeout", {})
            client = self._clients[key] = HTTPClient(
                url.host,
                port=key[2],
                ssl=url.scheme == "https",
                concurrency=10_000,
                connection_timeout=timeout.get("connect") or 10,
                network_timeout=timeout.get("read") or 30,
            )
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw]
        response = client.request(request.method, url.raw_path.decode("ascii"), body=request.read(), headers=headers)
        return httpx.Response(response.status_code, headers=list(response.items()), stream=_Lines(response))

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


class _Lines(httpx.SyncByteStream):
    """The response body one line at a time, as an SSE reader consumes it."""

    def __init__(self, response: Any) -> None:
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        while line := self._response.readline(b"\n"):
            yield line

    def close(self) -> None:
        response = self._response
        if not response.message_complete and response._sock is not None:  # unread: not reusable
            response._pool.release_socket(response._sock)
            response._sock = None
        response.release()
