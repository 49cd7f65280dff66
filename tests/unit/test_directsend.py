"""Direct-send sockets (the worker's client sockets, plain upstream sockets): one direct send for
a small frame, gevent's sendall for the rest."""

from __future__ import annotations

import gevent
from gevent import socket

from app.server.directsend import DirectSendSocket, send_directly
from app.server.worker import ChatWaitHandler


def _pair() -> tuple[socket.socket, socket.socket]:
    sender, receiver = socket.socketpair()
    send_directly(sender)
    assert type(sender) is DirectSendSocket
    return sender, receiver


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        data += sock.recv(1 << 20)
    return data


def test_a_small_frame_is_sent_whole() -> None:
    sender, receiver = _pair()
    with sender, receiver:
        assert sender.sendall(b"7\r\nchunk\r\n\r\n") is None
        assert _read(receiver, 12) == b"7\r\nchunk\r\n\r\n"


def test_what_the_kernel_does_not_take_at_once_follows_in_order() -> None:
    """More than the socket buffers hold: the first send takes part, gevent's sendall waits
    until the reader makes room and sends the rest."""
    sender, receiver = _pair()
    payload = bytes(range(256)) * (64 * 1024)  # 16 MiB
    with sender, receiver:
        reader = gevent.spawn(_read, receiver, len(payload))
        sender.sendall(payload)
        assert reader.get(timeout=30) == payload


def test_a_peer_that_went_away_raises_as_before() -> None:
    sender, receiver = _pair()
    receiver.close()
    with sender:
        try:
            for _ in range(100):
                sender.sendall(b"x" * 65536)
        except OSError:
            return
    raise AssertionError("writing to a closed peer never failed")


def test_only_plain_gevent_sockets_are_changed() -> None:
    """A TLS socket (a subclass, with its own send) and a socket gevent did not make keep their class."""

    class Wrapped(socket.socket):
        pass

    for sock in (Wrapped(), socket.__socket__.socket()):  # __socket__: the standard library's module
        with sock:
            kind = type(sock)
            assert send_directly(sock) is sock
            assert type(sock) is kind


def test_the_worker_serves_each_plain_client_connection_through_a_direct_send_socket() -> None:
    client, peer = socket.socketpair()
    with client, peer:
        handler = ChatWaitHandler(client, ("127.0.0.1", 50000), server=None)
        assert handler.socket is client
        assert type(client) is DirectSendSocket
