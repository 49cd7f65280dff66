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


def test_send_now_never_waits_and_says_how_much_went() -> None:
    left, right = socket.socketpair()
    with left, right:
        left.settimeout(30.0)  # a wait would be this long: send_now must not wait at all
        wrapped = SendFirst(left)
        sent = [wrapped.send_now(b"x" * 65536) for _ in range(200)]
        assert sent[0] > 0 and sent[-1] == 0, "a full socket takes nothing, at once"


class _Response:
    """What ClientWriter reads of gunicorn's response: its framing, and the bytes it counts."""

    def __init__(self, chunked: bool) -> None:
        self.chunked = chunked
        self.sent = 0


@pytest.mark.parametrize("chunked", [True, False])
def test_the_client_writer_frames_as_gunicorn_does_and_hands_back_what_the_socket_left(chunked: bool) -> None:
    from app.server.client_writer import ClientWriter

    left, right = socket.socketpair()
    with left, right:
        left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        response = _Response(chunked)
        writer = ClientWriter(response, SendFirst(left))  # type: ignore[arg-type]
        frames = [bytes([65 + i % 26]) * 3000 for i in range(300)]  # more than the buffers hold
        rests = [writer.write_now(frame) for frame in frames]
        assert any(rests), "the socket filled up: some bytes were handed back"
        expected = b"".join(b"%X\r\n%s\r\n" % (len(f), f) if chunked else f for f in frames)
        reader = gevent.spawn(_read, right, len(expected))
        gevent.idle()
        # What a parked follower does with what was handed back: write it, in order, before anything else.
        received_before = len(expected) - sum(map(len, rests))
        for rest in rests:
            if rest:
                writer.write_rest(rest)
        assert response.sent == 3000 * 300
        assert received_before > 0
        assert reader.get(timeout=10) == expected, "what went at once, then what was handed back, in order"
