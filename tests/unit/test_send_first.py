"""A client socket's sendall with one send first: every byte arrives, in order, and the
socket's timeout still bounds a write the peer does not read."""

from __future__ import annotations

import gevent
import pytest
from gevent import socket

from app.server.send_first import SendFirst


def _read(sock: socket.socket, size: int) -> bytes:
    received = bytearray()
    while len(received) < size:
        data = sock.recv(65536)
        if not data:
            break
        received += data
    return bytes(received)


@pytest.mark.parametrize("size", [0, 1, 79, 4096, 2_000_000])
def test_a_write_of_any_size_arrives_whole_and_in_order(size: int) -> None:
    left, right = socket.socketpair()
    with left, right:
        left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        payload = bytes(i % 251 for i in range(size))
        reader = gevent.spawn(_read, right, size)
        SendFirst(left).sendall(payload)
        assert reader.get(timeout=10) == payload


def test_a_write_the_peer_does_not_read_times_out_as_the_socket_says() -> None:
    left, right = socket.socketpair()
    with left, right:
        left.settimeout(0.2)
        with pytest.raises(TimeoutError):
            SendFirst(left).sendall(b"x" * 20_000_000)


def test_everything_else_is_the_sockets_own() -> None:
    left, right = socket.socketpair()
    with left, right:
        wrapped = SendFirst(left)
        assert wrapped.fileno() == left.fileno()
        wrapped.settimeout(3.0)
        assert left.gettimeout() == 3.0
