"""Every bad input gets its catalogue error as JSON, never a 5xx, HTML or a stack trace."""

from __future__ import annotations

import httpx
import pytest

from ..bad_inputs import CASES, ERROR_FIELDS
from ..conftest import UNIT_UPSTREAM, mock_upstream
from ..sse import upstream_reply


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(client, case) -> None:
    _, method, path, headers, body, status, code = case
    response = client.open(path, method=method, headers=headers, data=body)
    assert response.status_code == status
    assert response.mimetype == "application/json"
    payload = response.get_json()
    assert payload["error_code"] == code
    assert payload.keys() >= ERROR_FIELDS
    assert payload["detail"] != payload["message"], "why it happened, not what happened again"
    assert payload["correlation_id"] == response.headers["X-Correlation-Id"]
    assert "Traceback" not in response.get_data(as_text=True)


def test_validation_errors_name_every_field(client) -> None:
    response = client.post("/v1/chat/wait", json={"message": "", "temperature": 9, "extra": 1})
    fields = response.get_json()["fields"]
    assert set(fields) == {"message", "temperature", "extra"}


def test_method_not_allowed_lists_the_allowed_methods(client) -> None:
    response = client.get("/v1/chat/wait")
    assert "POST" in response.headers["Allow"]


def test_input_too_long_says_how_many_history_messages_to_drop(client) -> None:
    """MAX_INPUT_TOKENS is 200 in the unit app; each history message here is about 50 tokens."""
    turn = " ".join(["word"] * 45)
    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": turn} for i in range(6)]
    response = client.post("/v1/chat/wait", json={"message": "hello", "history": history})
    assert response.status_code == 400
    body = response.get_json()
    assert body["error_code"] == "input_too_long"
    assert "Drop the 3 oldest history message(s)" in body["action"]
    assert "the limit is 200" in body["detail"]
    with mock_upstream() as upstream:
        upstream.post(f"{UNIT_UPSTREAM}/chat/completions").mock(
            return_value=httpx.Response(200, content=upstream_reply("fine"))
        )
        shortened = client.post("/v1/chat/wait", json={"message": "hello", "history": history[3:]})
    assert shortened.status_code == 200 and shortened.get_json()["content"] == "fine"


def test_input_too_long_without_history_asks_to_shorten(client) -> None:
    response = client.post("/v1/chat/wait", json={"message": " ".join(["word"] * 300)})
    assert response.get_json()["error_code"] == "input_too_long"
    assert "Shorten the message" in response.get_json()["action"]
