"""A TCP proxy in front of ChatWait that can cut one streaming response part-way.

Armed with `cut_next_stream(after_bytes)`, it closes both sides of the next connection whose
response is an event stream, once that many bytes of it have gone back to the browser: to the
page this is a network drop in the middle of a reply.
"""

from __future__ import annotations

import contextlib
import socket
import threading

EVENT_STREAM = b"text/event-stream"


class CuttingProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._cut_after: int | None = None
        self._after_head = False
        self._marker = EVENT_STREAM
        self._lock = threading.Lock()
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_next_stream(self, after_bytes: int, after_head: bool = False, marker: bytes = EVENT_STREAM) -> None:
        """Cut the next response whose head holds `marker` (an event stream; a WebSocket's 101)
        after `after_bytes` of it (counted from the end of its head with `after_head`)."""
        with self._lock:
            self._cut_after, self._after_head, self._marker = after_bytes, after_head, marker

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _take_cut(self, data: bytes) -> int | None:
        with self._lock:
            limit, self._cut_after = self._cut_after, None
            if limit is not None and self._after_head:
                limit += data.index(b"\r\n\r\n") + 4
            return limit

    def _pipe(self, source: socket.socket, target: socket.socket, responses: bool) -> None:
        limit = None
        sent = 0
        try:
            while data := source.recv(65536):
                if responses and limit is None and self._marker in data:
                    limit = self._take_cut(data)
                    sent = 0
                if limit is not None and sent + len(data) >= limit:
                    target.sendall(data[: max(0, limit - sent)])
                    self.cuts += 1
                    break
                target.sendall(data)
                sent += len(data)
        except OSError:
            pass
        close_sockets(source, target)

    def close(self) -> None:
        self._listener.close()


def close_sockets(*sockets: socket.socket) -> None:
    """Shut down and close each socket, whatever state it is in."""
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
