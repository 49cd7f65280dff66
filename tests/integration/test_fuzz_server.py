"""Fuzz the live server: the request fuzzer's inputs over real sockets. Every answer is a
well-formed HTTP response, every error the catalogue's JSON (in OpenAI's shape on its paths); the
worker never logs an error and keeps answering. Bounded: a few dozen connections."""

from __future__ import annotations

import json
import socket

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

from ..rawhttp import connect, read_until_close, responses
from ..unit.test_fuzz_request_parser import requests

pytestmark = pytest.mark.integration


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=requests())
def test_any_bytes_get_well_formed_answers(server, raw: bytes) -> None:
    with connect(server.port, timeout=20) as sock:
        try:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)  # no more input: the server answers what it has, then closes
        except OSError:
            pass  # refused early and closed: what came back is still checked
        data = read_until_close(sock)
    if raw.startswith(b"HEAD"):  # an answer to a HEAD has no body, a refusal has one: not parsed further
        assert data == b"" or data.startswith((b"HTTP/1.1 ", b"HTTP/1.0 "))
        return
    for answer in responses(data):
        assert 100 <= answer.status <= 599
        if answer.status >= 400 and answer.body:
            body = json.loads(answer.body)
            if "error" in body:  # OpenAI's shape, on /v1/ paths other than the native chat ones
                assert body["error"]["code"] and body["error"]["message"], body
            else:
                assert body["error_code"] and body["action"], body


def test_the_worker_is_healthy_and_logged_no_error_after_the_fuzzing(server) -> None:
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
    errors = [r for r in server.log_records() if r["level"] in ("ERROR", "CRITICAL")]
    assert not errors, errors[:2]
