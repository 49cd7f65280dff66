"""A hostile or broken OpenAI-compatible upstream: each request gets the script its message names
(`@hostile=NAME`), each one a way a real server, proxy or attacker can answer badly.

It runs in threads of the test process on a loopback port. Every script stops sending when the
client (ChatWait) closes the connection.
"""

from __future__ import annotations

import gzip
import json
import re
import socket
import threading
from collections.abc import Callable

FIRST = b'data: {"choices":[{"index":0,"delta":{"content":"ok "},"finish_reason":null}]}\n\n'
STOP = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
BROKEN_CHUNKS = 4  # malformed chunks in a row: more than a client may skip (a test holds it to the app's bound)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _flood(sock: socket.socket, block: bytes, total: int) -> None:
    sent = 0
    while sent < total:
        sock.sendall(block)
        sent += len(block)


def huge_chunk(sock: socket.socket) -> None:
    """A chunk announced as 10**12 bytes, then megabytes of it."""
    sock.sendall(CHUNKED_HEAD + _chunk(FIRST) + b"e8d4a51000\r\n")
    _flood(sock, b"x" * 65536, 50_000_000)


def long_line(sock: socket.socket) -> None:
    """50 MB of one line that never ends, in well-formed chunks."""
    sock.sendall(CHUNKED_HEAD + _chunk(FIRST) + _chunk(b"data: "))
    _flood(sock, _chunk(b"a" * 65536), 50_000_000)


def gzip_bomb(sock: socket.socket) -> None:
    """A 1 GB reply compressed to about 1 MB, sent as Content-Encoding: gzip."""
    body = _bomb()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n"
    sock.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)


def bad_gzip(sock: socket.socket) -> None:
    body = b"\x1f\x8b\x08\x00garbage that is not deflate" * 10
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n"
    sock.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)


def deep_json(sock: socket.socket) -> None:
    """Nesting too deep to parse, more times than a reply may skip a malformed chunk."""
    deep = _chunk(b"data: " + b"[" * 100_000 + b"\n\n") * BROKEN_CHUNKS
    sock.sendall(CHUNKED_HEAD + _chunk(FIRST) + deep + b"0\r\n\r\n")


def not_text(sock: socket.socket) -> None:
    bad = b'data: {"choices":[{"index":0,"delta":{"content":{"x":[1,2]}},"finish_reason":null}]}\n\n'
    sock.sendall(CHUNKED_HEAD + _chunk(FIRST) + _chunk(bad) * BROKEN_CHUNKS + b"0\r\n\r\n")


def redirect(sock: socket.socket) -> None:
    sock.sendall(b"HTTP/1.1 302 Found\r\nLocation: http://collector.invalid/steal\r\nContent-Length: 0\r\n\r\n")


def done_then_drop(sock: socket.socket) -> None:
    """A complete reply and [DONE], then the connection closes without the last chunk."""
    sock.sendall(CHUNKED_HEAD + _chunk(FIRST) + _chunk(STOP) + _chunk(b"data: [DONE]\n\n"))


def endless(sock: socket.socket) -> None:
    """Tokens for ever, whatever max_tokens says."""
    sock.sendall(CHUNKED_HEAD)
    _flood(sock, _chunk(FIRST * 64), 500_000_000)


def one_big_chunk(sock: socket.socket) -> None:
    """A legal reply of 50,000 small events in one HTTP chunk of 2.4 MB (a buffering proxy)."""
    events = b'data: {"choices":[{"delta":{"content":"x"}}]}\n\n' * 50_000 + STOP + b"data: [DONE]\n\n"
    sock.sendall(CHUNKED_HEAD + _chunk(events) + b"0\r\n\r\n")


def rate_limited_litellm(sock: socket.socket) -> None:
    """LiteLLM's 429: the provider's delay in llm_provider-retry-after, no Retry-After."""
    sock.sendall(b"HTTP/1.1 429 Too Many Requests\r\nllm_provider-retry-after: 7\r\nContent-Length: 0\r\n\r\n")


def rate_limited_silently(sock: socket.socket) -> None:
    """A 429 with no delay header at all (a proxy that drops it)."""
    sock.sendall(b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n")


SCRIPTS: dict[str, Callable[[socket.socket], None]] = {
    fn.__name__: fn
    for fn in (
        huge_chunk,
        long_line,
        gzip_bomb,
        bad_gzip,
        deep_json,
        not_text,
        redirect,
        done_then_drop,
        endless,
        one_big_chunk,
        rate_limited_litellm,
        rate_limited_silently,
    )
}

_BOMB: list[bytes] = []


def _bomb() -> bytes:
    if not _BOMB:
        packer = gzip.compress(b"\0" * 1_000_000, compresslevel=9)
        _BOMB.append(packer * 1000)  # concatenated gzip members: 1000 MB once inflated
    return _BOMB[0]


class HostileUpstream:
    """The server: one thread per connection, one request per connection."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.requests: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        with sock:
            try:
                name = self._read_request(sock)
                self.requests.append(name)
                SCRIPTS[name](sock)
            except (OSError, KeyError, ValueError):
                return  # the client closed, or a request this server does not script

    @staticmethod
    def _read_request(sock: socket.socket) -> str:
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536) or b"!"
            if data.endswith(b"!"):
                raise ValueError("closed")
        head, _, body = data.partition(b"\r\n\r\n")
        sized = re.search(rb"(?i)content-length:\s*(\d+)", head)
        if sized is None:  # a GET (the pool's probe of /models): no request this server scripts
            raise ValueError("no body")
        length = int(sized.group(1))
        while len(body) < length:
            body += sock.recv(65536)
        messages = json.loads(body)["messages"]
        return re.search(r"@hostile=(\w+)", messages[-1]["content"]).group(1)

    def close(self) -> None:
        self._listener.close()
