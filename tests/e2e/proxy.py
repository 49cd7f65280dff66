"""A TCP proxy in front of ChatWait that can cut one streaming response part-way.

Armed with `cut_next_stream(after_bytes)`, it closes both sides of the next connection that
carries a `POST /v1/chat/streaming`, once that many response bytes have gone back to the
browser: to the page this is a network drop in the middle of a reply.
"""

from __future__ import annotations

import socket
import threading


class CuttingProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._cut_after: int | None = None
        self._lock = threading.Lock()
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_next_stream(self, after_bytes: int) -> None:
        with self._lock:
            self._cut_after = after_bytes

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            state = {"cut_after": None, "sent": 0}
            threading.Thread(target=self._to_server, args=(client, upstream, state), daemon=True).start()
            threading.Thread(target=self._to_client, args=(upstream, client, state), daemon=True).start()

    def _to_server(self, client: socket.socket, upstream: socket.socket, state: dict) -> None:
        try:
            while data := client.recv(65536):
                if b"POST /v1/chat/streaming" in data:
                    with self._lock:
                        if self._cut_after is not None:
                            state["cut_after"], state["sent"] = self._cut_after, 0
                            self._cut_after = None
                upstream.sendall(data)
        except OSError:
            pass
        _close(client, upstream)

    def _to_client(self, upstream: socket.socket, client: socket.socket, state: dict) -> None:
        try:
            while data := upstream.recv(65536):
                limit = state["cut_after"]
                if limit is not None and state["sent"] + len(data) >= limit:
                    client.sendall(data[: max(0, limit - state["sent"])])
                    self.cuts += 1
                    break
                client.sendall(data)
                state["sent"] += len(data)
        except OSError:
            pass
        _close(client, upstream)

    def close(self) -> None:
        self._listener.close()


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
