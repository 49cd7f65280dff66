"""The lean HTTP/1.1 transport against a scripted socket server: framing, reuse, failures.

The transport uses gevent sockets, so the server here is gevent too (greenlets, no threads).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import gevent
import httpx
import pytest
from gevent import socket
from gevent.event import Event
from gevent.server import StreamServer

from app.providers.http1 import Http1Transport, MalformedResponse
from app.providers.http1.framing import chunk_size

Script = Callable[[socket.socket, bytes], None]


class ScriptedServer:
    """Answers each request on a connection with the next script; records what it received."""

    def __init__(self, *scripts: Script) -> None:
        self.scripts = list(scripts)
        self.requests: list[bytes] = []
        self.request_connections: list[int] = []  # which connection (1, 2, ...) each request came on
        self.connections = 0
        self.peer_closed = Event()
        self._server = StreamServer(("127.0.0.1", 0), self._serve)
        self._server.start()
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"

    def _serve(self, conn: socket.socket, _: object) -> None:
        self.connections += 1
        number = self.connections
        with conn:
            buffer = b""
            while self.scripts:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        self.peer_closed.set()
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                body, buffer = buffer[:length], buffer[length:]
                self.requests.append(head + b"\r\n\r\n" + body)
                self.request_connections.append(number)
                self.scripts.pop(0)(conn, body)
            if not conn.recv(65536):
                self.peer_closed.set()

    def close(self) -> None:
        self._server.stop(timeout=1)


@pytest.fixture
def client_for():
    made: list[tuple[httpx.Client, ScriptedServer]] = []

    def make(*scripts: Script, read_timeout: float = 5.0, **options: int) -> tuple[httpx.Client, ScriptedServer]:
        server = ScriptedServer(*scripts)
        client = httpx.Client(transport=Http1Transport(**options), timeout=httpx.Timeout(5.0, read=read_timeout))
        made.append((client, server))
        return client, server

    yield make
    for client, server in made:
        client.close()
        server.close()


def chunked(*pieces: bytes, trailer: bytes = b"") -> bytes:
    body = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in pieces)
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body + b"0\r\n" + trailer + b"\r\n"


def send_in_random_pieces(payload: bytes, seed: int) -> Script:
    def script(conn: socket.socket, _: bytes) -> None:
        rng = random.Random(seed)
        position = 0
        while position < len(payload):
            step = rng.randint(1, 7)
            conn.sendall(payload[position : position + step])
            position += step
            gevent.sleep(0.0005)

    return script


def reply(raw: bytes) -> Script:
    return lambda conn, _: conn.sendall(raw)


def reply_and_close(raw: bytes) -> Script:
    def script(conn: socket.socket, _: bytes) -> None:
        conn.sendall(raw)
        conn.shutdown(socket.SHUT_WR)

    return script


@pytest.mark.parametrize("seed", range(5))
def test_chunked_body_split_anywhere_decodes_exactly_and_the_connection_is_reused(client_for, seed) -> None:
    pieces = [f'data: {{"n": {i}}}\n\n'.encode() for i in range(40)]
    raw = chunked(*pieces, trailer=b"X-Trailer: yes\r\n")
    client, server = client_for(send_in_random_pieces(raw, seed), reply(chunked(b"second")))
    with client.stream("POST", server.url + "/v1/chat/completions", content=b'{"a":1}') as response:
        assert response.status_code == 200
        assert b"".join(response.iter_bytes()) == b"".join(pieces)
    assert client.post(server.url + "/again").content == b"second"
    assert server.connections == 1


def test_request_bytes_on_the_wire(client_for) -> None:
    client, server = client_for(reply(b"HTTP/1.1 204 No Content\r\n\r\n"))
    response = client.post(server.url + "/v1/x?q=1", content=b"hello", headers={"Authorization": "Bearer k"})
    assert response.status_code == 204 and response.content == b""
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/x?q=1 HTTP/1.1"
    assert b"Host: 127.0.0.1:%d" % server.port in lines
    assert b"Content-Length: 5" in lines and b"Authorization: Bearer k" in lines
    assert body == b"hello"


def test_content_length_body_and_informational_responses(client_for) -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-Request-Id: r1\r\n\r\nhello world"
    client, server = client_for(reply(raw), reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    response = client.get(server.url + "/")
    assert response.content == b"hello world" and response.headers["x-request-id"] == "r1"
    assert response.reason_phrase == "OK"
    assert client.get(server.url + "/").content == b"ok"
    assert server.connections == 1


def test_body_until_close_is_read_whole_and_the_connection_is_not_reused(client_for) -> None:
    def until_close(conn: socket.socket, _: bytes) -> None:
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\npart one, ")
        conn.sendall(b"part two")
        conn.shutdown(socket.SHUT_WR)

    client, server = client_for(until_close, reply(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"))
    assert client.get(server.url + "/").content == b"part one, part two"
    assert client.get(server.url + "/").content == b"x"
    assert server.connections == 2


def test_closing_a_response_early_closes_its_connection(client_for) -> None:
    def endless(conn: socket.socket, _: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        conn.sendall(b"5\r\nfirst\r\n")

    client, server = client_for(endless)
    with client.stream("GET", server.url + "/") as response:
        assert next(response.iter_bytes()) == b"first"
    assert server.peer_closed.wait(2)


def test_an_idle_connection_closed_by_the_server_is_not_reused(client_for) -> None:
    def answer_then_close(conn: socket.socket, _: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
        gevent.sleep(0.05)
        conn.shutdown(socket.SHUT_RDWR)

    client, server = client_for(answer_then_close, reply(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"))
    assert client.get(server.url + "/").content == b"a"
    gevent.sleep(0.2)
    assert client.get(server.url + "/").content == b"b"
    assert server.connections == 2


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc",  # closed mid-chunk
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n",  # bad chunk size
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n",  # not hex digits only
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY1\r\nz\r\n0\r\n\r\n",  # no CRLF after data
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",  # closed before Content-Length
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\ne8d4a51000\r\n" + b"x" * 70_000,  # 10**12 announced
    ],
)
def test_broken_bodies_raise_protocol_errors(client_for, raw) -> None:
    client, server = client_for(reply_and_close(raw))
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(server.url + "/")


@pytest.mark.parametrize("seed", [None, 0, 1, 2])
def test_the_data_before_a_broken_chunk_end_is_delivered_however_it_arrives(client_for, seed) -> None:
    """Whole in one read (each chunk decoded in one step) or split anywhere (byte by byte): the
    same bytes come before the error, the broken chunk's data included."""
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndefXY\r\n0\r\n\r\n"
    script = reply_and_close(raw) if seed is None else send_in_random_pieces(raw, seed)
    client, server = client_for(script)
    got = b""
    with pytest.raises(httpx.RemoteProtocolError), client.stream("GET", server.url + "/") as response:
        for data in response.iter_raw():
            got += data
    assert got == b"abcdef"


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",  # a coding not asked for
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",  # lengths that disagree
        b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc",
        b"".join(b"HTTP/1.1 100 Continue\r\n\r\n" for _ in range(20)) + b"HTTP/1.1 200 OK\r\n\r\n",
    ],
)
def test_framing_over_the_limits_or_ambiguous_is_a_malformed_response(client_for, raw) -> None:
    client, server = client_for(reply_and_close(raw))
    with pytest.raises(MalformedResponse), client.stream("GET", server.url + "/") as response:
        response.read()


def test_a_chunk_of_any_size_is_read(client_for) -> None:
    client, server = client_for(reply(chunked(b"y" * 3_000_000)))
    assert client.get(server.url + "/").content == b"y" * 3_000_000


@pytest.mark.parametrize("line", [b"1a", b"1A", b"0", b"00000000000000ff", b"1a;name=value", b"1a \t;ext"])
def test_a_chunk_size_is_hex_digits_then_optional_extensions(line) -> None:
    assert chunk_size(line) == int(line.split(b";")[0], 16)


@pytest.mark.parametrize("line", [b"", b"0x1a", b"+1a", b"-0", b" 1a", b"1a ", b"1_a", b"1a\t", b"1" * 17, b"\xd9\xa1"])
def test_anything_else_is_a_malformed_chunk_size(line) -> None:
    with pytest.raises(ValueError):
        chunk_size(line)


@pytest.mark.parametrize(
    "raw", [b"", b"garbage\r\n\r\n", b"HTTP/1.1 2x0 OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n"]
)
def test_missing_or_malformed_heads_raise_protocol_errors(client_for, raw) -> None:
    client, server = client_for(reply_and_close(raw))
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(server.url + "/")


def test_read_timeout_between_chunks(client_for) -> None:
    stalled = Event()

    def stall(conn: socket.socket, _: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n")
        stalled.wait(5)

    client, server = client_for(stall, read_timeout=0.2)
    with client.stream("GET", server.url + "/") as response:
        pieces = response.iter_bytes()
        assert next(pieces) == b"a"
        with pytest.raises(httpx.ReadTimeout):
            next(pieces)
    stalled.set()


def test_the_read_timeout_restarts_with_each_recv(client_for) -> None:
    def slow(conn: socket.socket, _: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(6):
            gevent.sleep(0.1)
            conn.sendall(b"1\r\nx\r\n")
        conn.sendall(b"0\r\n\r\n")

    client, server = client_for(slow, read_timeout=0.3)
    assert client.get(server.url + "/").content == b"xxxxxx"


def test_connect_error_and_unsupported_scheme() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with httpx.Client(transport=Http1Transport()) as client:
        with pytest.raises(httpx.ConnectError):
            client.get(f"http://127.0.0.1:{port}/")
        with pytest.raises(httpx.UnsupportedProtocol):
            client.get("ftp://127.0.0.1/")


@pytest.mark.parametrize(
    "headers",
    [{"X-Evil": "a\r\nInjected: yes"}, {"X-Evil": "a\nb"}, {"X-Evil": "a\rb"}, {"X-Evil\n": "a"}, {"X-\rEvil": "a"}],
)
def test_a_header_with_a_line_break_is_refused(client_for, headers) -> None:
    client, server = client_for()
    with pytest.raises(httpx.LocalProtocolError):
        client.get(server.url + "/", headers=headers)
    assert server.requests == []


def test_a_host_name_is_resolved_and_an_ip_address_connected_to_directly(client_for) -> None:
    client, server = client_for(reply(chunked(b"by name")), reply(chunked(b"by address")))
    assert client.get(f"http://localhost:{server.port}/").content == b"by name"
    assert client.get(f"http://127.0.0.1:{server.port}/").content == b"by address"


def test_a_request_bigger_than_the_socket_buffers_arrives_whole(client_for) -> None:
    payload = bytes(range(256)) * (16 * 1024)  # 4 MiB
    client, server = client_for(reply(b"HTTP/1.1 204 No Content\r\n\r\n"))
    assert client.post(server.url + "/big", content=payload).status_code == 204
    assert server.requests[0].endswith(b"\r\n\r\n" + payload)


def test_reusing_a_connection_does_not_yield_before_the_request_is_sent(client_for) -> None:
    """Checking an idle connection must not let other greenlets run (they would go first)."""
    client, server = client_for(reply(chunked(b"one")), reply(chunked(b"two")))
    assert client.get(server.url + "/").content == b"one"
    transport = client._transport
    connection = transport._idle[("http", "127.0.0.1", server.port)][-1]
    ran: list[bool] = []
    gevent.spawn(ran.append, True)
    assert not connection.is_dropped()
    assert ran == [], "another greenlet ran during the check"
    assert client.get(server.url + "/").content == b"two"
    assert server.connections == 1


def test_concurrent_requests_keep_a_spare_connection_for_the_next_one(client_for) -> None:
    """When concurrent requests have used up the idle connections, one spare is opened in the
    background, and the next concurrent request is sent on it without a handshake first."""
    release = Event()

    def held(conn: socket.socket, _: bytes) -> None:  # the head and a chunk now, the end on release
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n")
        release.wait()
        conn.sendall(b"0\r\n\r\n")

    client, server = client_for(held, held, held, reply(chunked(b"after")))
    first = client.send(client.build_request("GET", server.url + "/"), stream=True)
    gevent.sleep(0.05)
    assert server.connections == 1, "one request at a time needs no spare"
    second = client.send(client.build_request("GET", server.url + "/"), stream=True)
    gevent.sleep(0.05)
    assert server.connections == 3, "the second request connected, and a spare followed it"
    third = client.send(client.build_request("GET", server.url + "/"), stream=True)
    gevent.sleep(0.05)
    assert server.request_connections == [1, 2, 3], "the third request went out on the spare"
    assert server.connections == 4, "and a new spare replaced it"
    release.set()
    for response in (first, second, third):
        assert response.read() == b"hi"
        response.close()
    assert client.get(server.url + "/").content == b"after"
    assert server.connections == 4


def test_a_spare_that_cannot_connect_leaves_the_error_to_the_next_request(client_for) -> None:
    release = Event()

    def held(conn: socket.socket, _: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
        release.wait()
        conn.sendall(b"ok")

    def held_then_stop_listening(conn: socket.socket, body: bytes) -> None:
        server._server.close()  # connections made so far stay open; new ones are refused
        held(conn, body)

    client, server = client_for(held, held_then_stop_listening)
    first = client.send(client.build_request("GET", server.url + "/"), stream=True)
    second = client.send(client.build_request("GET", server.url + "/"), stream=True)
    gevent.sleep(0.05)  # the spare's attempt is refused, quietly
    assert not client._transport._idle.get(("http", "127.0.0.1", server.port)), "no spare was kept"
    with pytest.raises(httpx.ConnectError):
        client.get(server.url + "/")
    release.set()
    for response in (first, second):
        assert response.read() == b"ok"
        response.close()
    assert server.connections == 2
