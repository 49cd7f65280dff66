"""The bad-input list through a real socket to gunicorn/gevent: JSON errors, never a 5xx."""

from __future__ import annotations

import socket

import httpx
import pytest

from ..bad_inputs import CASES, ERROR_FIELDS

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_over_http(http: httpx.Client, case) -> None:
    _, method, path, headers, body, status, code = case
    response = http.request(method, path, headers=headers, content=body)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    payload = response.json()
    assert payload["error_code"] == code
    assert payload.keys() >= ERROR_FIELDS
    assert "Traceback" not in response.text and "<html" not in response.text.lower()


def test_chunked_body_over_the_limit_is_a_413(server) -> None:
    """A body sent without Content-Length is cut off at MAX_BODY_BYTES too."""

    def chunks():
        yield b'{"message": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.post("/v1/chat/wait", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error_code"] == "payload_too_large"


def test_garbage_request_line_does_not_crash_the_worker(server, http: httpx.Client) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        raw.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n")
        raw.recv(4096)
    assert http.get("/health").status_code == 200
