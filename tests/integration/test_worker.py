"""ChatWait's gunicorn worker (gevent's pywsgi server) keeps gunicorn's connection rules and
logs through the JSON logging, over a raw socket to a real gunicorn."""

from __future__ import annotations

import socket

HEALTH = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n"


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length body (what /health and error pages send)."""
    data = b""
    while b"\r\n\r\n" not in data:
        block = sock.recv(65536)
        assert block, f"the connection closed mid-response: {data!r}"
        data += block
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_a_kept_alive_connection_serves_several_requests(server) -> None:
    with _connect(server.port) as sock:
        for _ in range(3):
            sock.sendall(HEALTH)
            assert _read_response(sock).startswith(b"HTTP/1.1 200")


def test_an_idle_connection_is_closed_after_the_keepalive_time(start_server) -> None:
    running = start_server(GUNICORN_KEEPALIVE="1")
    with _connect(running.port) as sock:
        sock.sendall(HEALTH)
        assert _read_response(sock).startswith(b"HTTP/1.1 200")
        assert sock.recv(1) == b""  # closed by the server: without the rule this waits 15 s and fails


def test_keepalive_zero_closes_each_connection_after_its_response(start_server) -> None:
    running = start_server(GUNICORN_KEEPALIVE="0")
    with _connect(running.port) as sock:
        sock.sendall(HEALTH)
        head = _read_response(sock)
        assert head.startswith(b"HTTP/1.1 200")
        assert b"connection: close" in head.lower()
        assert sock.recv(1) == b""


def test_a_malformed_request_is_refused_and_logged_as_json(server) -> None:
    with _connect(server.port) as sock:
        sock.sendall(b"NOT-HTTP\r\n\r\n")
        assert _read_response(sock).startswith(b"HTTP/1.1 400")
    lines = server.log_records()  # every whole line is JSON
    assert any(line["event"] == "request_rejected" and line["error_code"] == "bad_http_request" for line in lines)
