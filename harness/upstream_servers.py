"""Model servers that misbehave on purpose, for the pool's tests: a TCP server whose mode says how
each new connection is served — passed on to a real upstream, answered with a canned HTTP error
(503, or 429 with Retry-After), or accepted and never answered."""

from __future__ import annotations

import socket
import threading

from .proxy import close_sockets

MAX_HEAD_BYTES = 65536


class SwitchServer:
    """`mode`: `pass` (to `target_port`), `status:CODE[:RETRY_AFTER]`, or `silent`. A new mode
    applies to new connections; `answered` counts the requests answered with an error,
    `silenced` the requests left unanswered (`checks` the GET /models). Closing it closes every connection it holds."""

    def __init__(self, mode: str, target_port: int | None = None) -> None:
        self.mode = mode
        self.target_port = target_port
        self.answered = 0
        self.silenced = 0
        self.checks = 0  # checks (GET /models) left unanswered
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client, self.mode), daemon=True).start()

    def _serve(self, client: socket.socket, mode: str) -> None:
        if mode == "pass":
            assert self.target_port is not None
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._held += [client, upstream]  # closed with the server, whatever the pipes do
            threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
            _pipe(client, upstream)
        elif mode == "silent":
            with self._lock:
                self._held.append(client)  # closed with the server, never answered
            head = _head(client)
            with self._lock:  # a check (GET /models: a worker's first, or /ready's) is not a request
                if head.startswith(b"GET "):
                    self.checks += 1
                else:
                    self.silenced += 1
        else:
            self._answer(client, mode)

    def _answer(self, client: socket.socket, mode: str) -> None:
        """Read one request (head and body) and answer the mode's status, closing the connection."""
        _, code, *retry_after = mode.split(":")
        try:
            data = b""
            while b"\r\n\r\n" not in data and len(data) < MAX_HEAD_BYTES:
                chunk = client.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            while len(body) < length and (chunk := client.recv(65536)):
                body += chunk
            extra = f"Retry-After: {retry_after[0]}\r\n" if retry_after else ""
            payload = b'{"error": {"message": "busy", "type": "server_error"}}'
            client.sendall(
                f"HTTP/1.1 {code} Busy\r\nContent-Type: application/json\r\n{extra}"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            with self._lock:
                self.answered += 1
        except OSError:
            pass
        finally:
            close_sockets(client)

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for held in self._held:
                close_sockets(held)


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    close_sockets(source, target)


def _head(client: socket.socket) -> bytes:
    """What a connection sent up to the end of its request's head (or MAX_HEAD_BYTES, or its close)."""
    data = b""
    try:
        while b"\r\n\r\n" not in data and len(data) < MAX_HEAD_BYTES and (chunk := client.recv(65536)):
            data += chunk
    except OSError:
        pass
    return data
