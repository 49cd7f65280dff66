"""The floor of the decided stack: ChatWait's gunicorn worker serving the least possible relay.

`bench.py --floor` runs the benchmark's streams through this worker beside ChatWait, to
measure what gunicorn's gevent worker (`FLOOR_APP=wsgi`) and gunicorn plus a Flask view
(`FLOOR_APP=flask`) add by themselves on this machine. The relay does only what any relay
must: read the JSON body, send a pre-formed request to the upstream (the fake, at
OPENAI_BASE_URL) on a kept-alive socket, and turn each upstream chunk into an SSE frame.
No validation, logging, stream store, resumption, retries, deadlines or token counting.

gunicorn imports this module in its master too, before gevent patches anything: Flask and the
relay's imports wait until the worker loads its app.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

from app.server.startup import freeze_start_up
from app.server.worker import ChatWaitWorker

END = None  # what the producer queues after the last frame


class FloorWorker(ChatWaitWorker):
    """ChatWait's worker, serving the floor app named by FLOOR_APP (`wsgi` or `flask`)."""

    def load_wsgi(self) -> None:
        upstream = urllib.parse.urlsplit(os.environ["OPENAI_BASE_URL"])
        relay = FloorRelay((upstream.hostname, upstream.port))
        self.wsgi = flask_app(relay) if os.environ.get("FLOOR_APP") == "flask" else wsgi_app(relay)
        freeze_start_up()  # as ChatWait's worker does


class FloorRelay:
    """Streams a chat completion from the upstream as SSE frames, on pooled connections."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.idle: list[Any] = []

    def start(self, body: dict) -> Iterator[bytes]:
        """Send the upstream request in a producer greenlet; the frames, as they come."""
        import gevent
        import gevent.queue
        import orjson

        payload = orjson.dumps(
            {
                "model": "fake-model",
                "messages": [{"role": "user", "content": body["message"]}],
                "max_tokens": body["max_tokens"],
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        )
        request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: upstream\r\nContent-Type: application/json\r\n"
        request += b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
        from app.hub.scheduling import run_first

        frames: gevent.queue.Queue = gevent.queue.Queue()
        run_first(gevent.spawn(self._produce, request, frames))  # the request leaves first, as in ChatWait
        return _follow(frames)

    def _produce(self, request: bytes, frames: Any) -> None:
        from gevent import socket

        sock = self.idle.pop() if self.idle else socket.create_connection(self.address)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(request)
            sequence = self._relay(sock, frames)
            self.idle.append(sock)
            frames.put(b"id: %d\nevent: done\ndata: {}\n\n" % (sequence + 1))
        except BaseException:
            sock.close()
            raise
        finally:
            frames.put(END)  # whatever happened, the follower ends (a failed stream has no `done`)

    @staticmethod
    def _relay(sock: Any, frames: Any) -> int:
        """Queue a frame per upstream token until the body ends; how many there were."""
        import orjson

        sequence, rest, tail, done = 0, b"", b"", False
        while not (done and tail.endswith(b"\r\n0\r\n\r\n")):  # [DONE], then the body's last chunk
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("the upstream closed the connection mid-reply")
            tail = (tail + data)[-16:]
            *lines, rest = (rest + data).split(b"\n")
            for line in lines:
                if line == b"data: [DONE]":
                    done = True
                elif line.startswith(b"data: "):
                    choices = orjson.loads(line[6:]).get("choices")
                    content = choices[0]["delta"].get("content") if choices else None
                    if content:
                        sequence += 1
                        event = orjson.dumps({"sequence": sequence, "content": content, "is_final": False})
                        frames.put(b"id: %d\nevent: chunk\ndata: %s\n\n" % (sequence, event))
        return sequence


def _follow(frames: Any) -> Iterator[bytes]:
    yield b"retry: 2000\n\nid: 0\nevent: stream\ndata: {}\n\n"
    while (frame := frames.get()) is not END:
        yield frame


def wsgi_app(relay: FloorRelay) -> Callable:
    """The relay as a bare WSGI callable (plus /health, which the benchmark waits for)."""
    import orjson

    def app(environ: dict, start_response: Callable) -> Iterator[bytes] | list[bytes]:
        if environ["PATH_INFO"] == "/health":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b"{}"]
        body = orjson.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
        frames = relay.start(body)
        start_response("200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])
        return frames

    return app


def flask_app(relay: FloorRelay) -> Any:
    """The relay as one Flask view (plus /health)."""
    from flask import Flask, Response, request

    app = Flask("floor")

    @app.get("/health")
    def health() -> dict:
        return {}

    @app.post("/v1/chat/streaming")
    def streaming() -> Response:
        frames = relay.start(request.get_json())
        return Response(frames, mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})

    return app
