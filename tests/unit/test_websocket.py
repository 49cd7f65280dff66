"""app.hub.websocket on a socket pair, driven by websockets' own client protocol: the handshake
(and its refusal), messages whole however they are framed or batched, pings answered, the
message bound (1009) and the client's mask (1002) enforced, a close answered; the Inbox; the
bound on a socket's `store: false` chains (app.apis.responses.socket)."""

from __future__ import annotations

import json
import socket

import gevent
import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from app.apis.responses.chains import CHAIN_BODIES, HELD, Chains
from app.hub.scheduling import Inbox
from app.hub.websocket import SocketClosed, WebSocket

BOUND = 1000


@pytest.fixture
def pair():
    """(server WebSocket, client protocol, client socket), the handshake done."""
    server_sock, client_sock = socket.socketpair()
    client_sock.settimeout(5)
    client = ClientProtocol(parse_uri("ws://chatwait/v1/responses"), max_size=None)
    request = client.connect()
    client.send_request(request)
    client.data_to_send()  # gunicorn read it: the server is handed the parsed head
    ws = WebSocket(server_sock, BOUND)
    assert ws.accept("/v1/responses", request.headers.raw_items())
    client.receive_data(client_sock.recv(65536))
    assert isinstance(client.events_received()[0], Response)
    yield ws, client, client_sock
    server_sock.close()
    client_sock.close()


def _send(client: ClientProtocol, sock: socket.socket, *frames: Frame) -> None:
    for frame in frames:
        client.send_frame(frame)
    sock.sendall(b"".join(client.data_to_send()))


def _received(client: ClientProtocol, sock: socket.socket) -> list[Frame]:
    client.receive_data(sock.recv(65536))
    return client.events_received()


def test_an_upgrade_without_a_key_is_refused_with_the_protocols_400() -> None:
    server_sock, client_sock = socket.socketpair()
    with server_sock, client_sock:
        headers = [("Host", "chatwait"), ("Upgrade", "websocket"), ("Connection", "Upgrade")]
        assert not WebSocket(server_sock, BOUND).accept("/v1/responses", headers)
        assert client_sock.recv(65536).startswith(b"HTTP/1.1 400")


def test_messages_come_whole_however_they_are_fragmented_or_batched(pair) -> None:
    ws, client, sock = pair
    _send(
        client,
        sock,
        Frame(Opcode.TEXT, b"he", fin=False),
        Frame(Opcode.PING, b"!"),  # a control frame may come between fragments
        Frame(Opcode.CONT, b"llo", fin=False),
        Frame(Opcode.CONT, b" world"),
        Frame(Opcode.TEXT, "naïve".encode()),
        Frame(Opcode.BINARY, b"\x00\x01"),
    )
    assert [ws.receive(2), ws.receive(2), ws.receive(2)] == ["hello world", "naïve", b"\x00\x01"]
    assert [(f.opcode, f.data) for f in _received(client, sock)] == [(Opcode.PONG, b"!")]
    assert ws.receive(0.05) is None, "nothing more: a timeout, not an error"


def test_text_goes_out_as_one_message_and_a_ping_is_sent_on_demand(pair) -> None:
    ws, client, sock = pair
    ws.send_text('{"type": "response.created"}')
    ws.ping()
    frames = _received(client, sock)
    assert [(f.opcode, f.data) for f in frames] == [(Opcode.TEXT, b'{"type": "response.created"}'), (Opcode.PING, b"")]


def test_a_message_over_the_bound_across_fragments_closes_with_1009(pair) -> None:
    ws, client, sock = pair
    _send(client, sock, Frame(Opcode.TEXT, b"x" * 600, fin=False), Frame(Opcode.CONT, b"x" * 600))
    with pytest.raises(SocketClosed):
        ws.receive(2)
    (close,) = _received(client, sock)
    assert close.opcode is Opcode.CLOSE and close.data[:2] == (1009).to_bytes(2, "big")
    with pytest.raises(SocketClosed):
        ws.send_text("too late")


def test_an_unmasked_frame_closes_with_1002(pair) -> None:
    ws, client, sock = pair
    sock.sendall(b"\x81\x02hi")
    with pytest.raises(SocketClosed):
        ws.receive(2)
    (close,) = _received(client, sock)
    assert close.data[:2] == (1002).to_bytes(2, "big")


@pytest.mark.parametrize("fragments", [[b"\xff\xfe"], [b"ok \xe2\x82", b"\x28"]])
def test_a_text_message_that_is_not_utf8_closes_with_1007(pair, fragments) -> None:
    ws, client, sock = pair
    frames = [
        Frame(Opcode.TEXT if n == 0 else Opcode.CONT, data, fin=n == len(fragments) - 1)
        for n, data in enumerate(fragments)
    ]
    _send(client, sock, *frames)
    with pytest.raises(SocketClosed):
        ws.receive(2)
    (close,) = _received(client, sock)
    assert close.opcode is Opcode.CLOSE and close.data[:2] == (1007).to_bytes(2, "big")


def test_a_close_is_answered_and_ends_the_socket(pair) -> None:
    ws, client, sock = pair
    client.send_close(1000, "bye")
    sock.sendall(b"".join(client.data_to_send()))
    with pytest.raises(SocketClosed):
        ws.receive(2)
    (close,) = _received(client, sock)
    assert close.opcode is Opcode.CLOSE and close.data[:2] == (1000).to_bytes(2, "big")


def test_a_connection_that_breaks_is_socket_closed(pair) -> None:
    ws, _, sock = pair
    sock.close()
    with pytest.raises(SocketClosed):
        ws.receive(2)


def test_the_inbox_is_bounded_and_its_end_always_gets_in() -> None:
    inbox = Inbox(2)
    assert inbox.offer("a") and inbox.offer("b") and not inbox.offer("c")
    inbox.close()
    assert inbox.take(1) == "a" and inbox.take(1) == "b"
    with pytest.raises(EOFError):
        inbox.take(1)
    with pytest.raises(EOFError):
        inbox.take(1)
    empty = Inbox(1)
    with pytest.raises(TimeoutError):
        empty.take(0.01)
    waiting = gevent.spawn(empty.take, 5)
    gevent.sleep(0)
    empty.offer("late")
    assert waiting.get(timeout=2) == "late"


def _completed(response_id: str, text: str) -> str:
    output = [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}]
    return json.dumps({"type": "response.completed", "response": {"id": response_id, "output": output}})


def test_a_sockets_store_false_chains_are_bounded_in_number_and_bytes() -> None:
    """The newest chains are kept: at most `bound` of them, within CHAIN_BODIES bodies' worth of
    JSON; a chain longer than one body is not kept (its continuation could not be sent)."""
    chains = Chains(bound=3, max_bytes=1000)
    for n in range(5):
        chains.remember(_completed(f"resp_{n}", "x" * 10), [{"role": "user", "content": "hi"}])
    assert list(chains.items) == ["resp_2", "resp_3", "resp_4"]
    body = {"input": "and?", "previous_response_id": "resp_4"}
    sent, chained = chains.expand(body)
    assert "previous_response_id" not in body and body["input"] == sent and sent[-1]["content"] == "and?"
    assert chained == "resp_4", "the chain it continues, for its echo and its eviction on failure"
    chains.forget("resp_4")
    assert "resp_4" not in chains.items and "resp_4" not in chains.sizes
    chains.remember(_completed("resp_big", "y" * 2000), [])
    assert "resp_big" not in chains.items
    wide = Chains(bound=100, max_bytes=1000)
    for n in range(20):
        wide.remember(_completed(f"resp_{n}", "z" * 800), [])
    assert sum(wide.sizes.values()) <= CHAIN_BODIES * 1000 and "resp_19" in wide.items
    assert len(wide.items) < 20
    chains.close()
    wide.close()


def test_every_sockets_chains_are_bounded_per_key_and_per_worker_and_go_with_the_socket() -> None:
    """The red team's finding: 30 sockets of one key x 4 turns with a 0.9 MB image grew a worker by
    170 MiB that stayed after they closed. A key's chains (and all of them) are bounded in bytes
    over every socket of the worker, the oldest dropped first; a closed socket's chains go."""
    start = HELD.total
    assert start == 0, "every socket's chains went with it"
    one, two = Chains(10, 10_000, "team", key_bytes=3_000, worker_bytes=4_000), Chains(10, 10_000, "team", 3_000, 4_000)
    other = Chains(10, 10_000, "other", key_bytes=3_000, worker_bytes=4_000)
    one.remember(_completed("r1", "a" * 1_000), [])
    two.remember(_completed("r2", "b" * 1_000), [])
    assert HELD.of("team") < 3_000 and list(one.items) == ["r1"]
    one.remember(_completed("r3", "c" * 1_000), [])  # the key passes 3,000 bytes: its oldest (r1) goes
    assert "r1" not in one.items and list(two.items) == ["r2"] and HELD.of("team") <= 3_000
    other.remember(_completed("o1", "d" * 1_000), [])
    other.remember(_completed("o2", "e" * 1_000), [])  # the worker passes 4,000: the oldest of all goes
    assert HELD.total - start <= 4_000 and "r2" not in two.items
    for chains in (one, two, other):
        chains.close()
    assert HELD.total == start and HELD.of("team") == HELD.of("other") == 0
