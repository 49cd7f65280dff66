"""The catalogue's errors in OpenAI's shape: the type by status, OpenAI's own codes where it has
them, the first field at fault as `param`, and one message that says what, why and what to do."""

from __future__ import annotations

import pytest

from app.apis.openai import openai_error_body
from app.errors import CATALOGUE, ApiError


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_every_error_has_openais_shape(code: str) -> None:
    body = openai_error_body(ApiError(code, "Why it happened."), "cid")
    error = body["error"]
    assert set(error) <= {"message", "type", "param", "code", "correlation_id", "retry_after_seconds"}
    assert error["type"] in ("invalid_request_error", "rate_limit_error", "insufficient_quota", "server_error")
    assert (error["type"] == "server_error") == (CATALOGUE[code].status >= 500)
    assert error["message"].startswith(CATALOGUE[code].message) and "Why it happened." in error["message"]
    assert error["correlation_id"] == "cid" and error["code"]


@pytest.mark.parametrize(
    "code,expected",
    [
        ("input_too_long", "context_length_exceeded"),
        ("upstream_rate_limited", "rate_limit_exceeded"),
        ("invalid_api_key", "invalid_api_key"),
        ("upstream_unavailable", "upstream_unavailable"),
    ],
)
def test_openais_own_codes(code: str, expected: str) -> None:
    assert openai_error_body(ApiError(code), None)["error"]["code"] == expected


def test_fields_become_param_and_the_message() -> None:
    fields = {"messages": {1: {"content": ["Part 0 is of type 'image_url'."]}}, "n": ["One choice only."]}
    error = openai_error_body(ApiError("validation_error", "2 field(s) are invalid.", fields=fields), None)["error"]
    assert error["param"] == "messages[1].content" and error["code"] == "validation_error"
    assert "messages[1].content: Part 0 is of type 'image_url'; n: One choice only." in error["message"]
    assert "named above" in error["message"] and "`fields`" not in error["message"]
    model = openai_error_body(ApiError("validation_error", "x", fields={"model": ["Not allowed."]}), None)["error"]
    assert (model["param"], model["code"]) == ("model", "model_not_found")


def test_a_raisers_own_action_is_kept_and_retry_after_is_given() -> None:
    error = ApiError("upstream_rate_limited", "429", action="Wait a bit.", retry_after=2.5)
    body = openai_error_body(error, None)["error"]
    assert body["message"].endswith("Wait a bit.") and body["retry_after_seconds"] == 2.5
    assert body["type"] == "rate_limit_error"
