"""The error catalogue: complete entries, one envelope, no internals in any body."""

from __future__ import annotations

import pytest

from app.errors import CATALOGUE, ApiError


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_every_entry_says_what_and_what_to_do(code: str) -> None:
    kind = CATALOGUE[code]
    assert 400 <= kind.status <= 599
    assert kind.message.endswith(".") and len(kind.message) > 15
    assert kind.action.endswith(".") and len(kind.action) > 10
    body = ApiError(code, "why it happened").body("cid")
    expected = {
        "error_code": code,
        "message": kind.message,
        "detail": "why it happened",
        "action": kind.action,
        "retryable": kind.retryable,
        "correlation_id": "cid",
    }
    if kind.retry_after is not None:
        expected["retry_after_seconds"] = kind.retry_after
    assert body == expected


def test_errors_that_promise_a_retry_say_when() -> None:
    """server_busy and service_restarting carry a Retry-After of their own; a given delay wins."""
    for code in ("server_busy", "service_restarting"):
        error = ApiError(code)
        assert error.retry_after and error.retry_after_header == str(max(1, round(error.retry_after)))
    assert ApiError("server_busy", retry_after=7.4).retry_after_header == "7"
    assert ApiError("upstream_rate_limited", retry_after=0.2).retry_after_header == "1"
    assert ApiError("validation_error").retry_after_header is None


def test_server_side_failures_are_retryable_and_client_mistakes_are_not() -> None:
    for code, kind in CATALOGUE.items():
        if kind.status in (400, 404, 405, 413, 414, 415, 417, 431, 501):
            assert not kind.retryable, code
    for code in (
        "server_busy",
        "service_restarting",
        "request_timeout",
        "upstream_unavailable",
        "upstream_timeout",
        "upstream_rate_limited",
        "internal_error",
    ):
        assert CATALOGUE[code].retryable


def test_optional_fields() -> None:
    body = ApiError("validation_error", fields={"message": ["bad"]}, retry_after=2.5, action="Do X.").body(None)
    assert body["fields"] == {"message": ["bad"]} and body["retry_after_seconds"] == 2.5
    assert body["action"] == "Do X." and body["detail"] == body["message"]


def test_an_unexpected_exception_is_a_json_500_without_internals(app, client) -> None:
    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals sk-proj-0123456789abcdef")

    response = client.get("/boom")
    assert response.status_code == 500
    body = response.get_json()
    assert body["error_code"] == "internal_error"
    assert "secret" not in response.get_data(as_text=True) and "Traceback" not in response.get_data(as_text=True)


def test_a_plain_get_of_the_websocket_path_names_the_proxys_lost_headers(client) -> None:
    """Issue 82: GET /v1/responses without its upgrade headers (a proxy dropped them) is a 405 that
    says so; another path's 405 stays the generic one."""
    lost = client.get("/v1/responses")
    assert lost.status_code == 405
    message = lost.get_json()["error"]["message"]
    assert "Upgrade: websocket" in message and "proxy_set_header Upgrade" in message, message
    other = client.get("/v1/chat/wait")
    assert other.status_code == 405 and "Upgrade" not in other.get_data(as_text=True)
