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
    assert body == {
        "error_code": code,
        "message": kind.message,
        "detail": "why it happened",
        "action": kind.action,
        "retryable": kind.retryable,
        "correlation_id": "cid",
    }


def test_server_side_failures_are_retryable_and_client_mistakes_are_not() -> None:
    for code, kind in CATALOGUE.items():
        if kind.status in (400, 404, 405, 413, 415):
            assert not kind.retryable, code
    for code in ("server_busy", "upstream_unavailable", "upstream_timeout", "upstream_rate_limited", "internal_error"):
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
