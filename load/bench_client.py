"""The benchmark's client: raw-socket gevent streams that time each token's arrival."""

from __future__ import annotations

import json
import socket
import time

import gevent

# What marks one token in each kind of response body (ChatWait's OpenAI-compatible stream: a
# text chunk's delta; its first chunk's delta starts with the role, so it is not counted).
MARKERS = {
    "direct": b'"content":"',
    "chatwait": b"event: chunk\n",
    "openai": b'"delta":{"content":',
    "tools": b'"arguments":',  # a tool call's start, then each piece of its arguments
    "responses": b"event: response.output_text.delta\n",
    "messages": b"event: content_block_delta\n",
}
# Where a dropped stream is stopped, by the API family that started it.
STOP_PATHS = {
    "chatwait": "/v1/chat/streaming/{}",
    "openai": "/v1/chat/completions/{}/stream",
    "tools": "/v1/chat/completions/{}/stream",
    "responses": "/v1/responses/{}",
    "messages": "/v1/messages/streams/{}",
}


def post_request(path: str, body: dict, headers: dict[str, str] | None = None) -> bytes:
    """The raw bytes of a JSON POST that asks the server to close the connection afterwards."""
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
    )
    head += "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    return (head + "Connection: close\r\n\r\n").encode() + payload


def one_stream(
    port: int,
    request: bytes,
    marker: bytes,
    deadline: float,
    read_seconds: float | None = None,
    after: float = 0.0,
    stop_path: str = STOP_PATHS["chatwait"],
) -> dict:
    """Send one request `after` seconds from now; the arrival time of each token event
    (seconds after the send). Stops reading after `read_seconds` (None: to the end), and then
    stops a ChatWait stream at once with DELETE, as a client that drops a stream should (the
    direct arm's upstream stops when its connection closes).
    """
    if after:
        gevent.sleep(after)
    arrivals: list[float] = []
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=deadline) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            started = time.perf_counter()
            sock.sendall(request)
            head, dropped = _read(sock, marker, started, arrivals, read_seconds)
        status = int(head.split(b" ", 2)[1]) if head else None
        stream_id = _header(head, b"x-stream-id")
        if dropped and stream_id:
            stop_stream(port, stop_path.format(stream_id))
        return {"ok": status == 200, "arrivals": arrivals, "total": time.perf_counter() - started}
    except OSError:
        return {"ok": False, "arrivals": arrivals, "total": None}


def _read(
    sock: socket.socket, marker: bytes, started: float, arrivals: list[float], read_seconds: float | None
) -> tuple[bytes, bool]:
    """Read the response, appending each token's arrival; its head, and whether it was dropped."""
    tail = head = b""
    in_body = False
    while True:
        data = sock.recv(262144)
        now = time.perf_counter() - started
        if not data:
            return head, False
        if not in_body:
            head += data
            if b"\r\n\r\n" not in head:
                continue
            in_body, data = True, head
            head = head.split(b"\r\n\r\n", 1)[0]
        window = tail + data
        arrivals.extend([now] * window.count(marker))
        tail = window[-(len(marker) - 1) :]
        if read_seconds is not None and now > read_seconds:
            return head, True


def _header(head: bytes, name: bytes) -> str | None:
    for line in head.split(b"\r\n"):
        if line.lower().startswith(name + b":"):
            return line.split(b":", 1)[1].strip().decode()
    return None


def stop_stream(port: int, path: str) -> None:
    """DELETE a stream the client stopped reading. An overloaded worker may not answer in time:
    the stream then ends on its own, and the benchmark waits for the worker to settle."""
    request = f"DELETE {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(request.encode())
            while sock.recv(65536):
                pass
    except OSError:
        pass
