"""Details real clients and servers trip over, in both APIs: usage ChatWait had to count says
so, and a finish reason outside the contract's list (some servers say `eos_token`) is mapped,
its own word kept in the log."""

from __future__ import annotations

import httpx
import pytest

from ..conftest import FAKE_MODEL, completion_lines
from ..sse import parse

pytestmark = pytest.mark.integration


def native(http: httpx.Client, text: str, stream: bool) -> dict:
    """The reply (wait) or the terminal event's data (streaming) of the native API."""
    if not stream:
        return http.post("/v1/chat/wait", json={"message": text}).json()
    return parse(http.post("/v1/chat/streaming", json={"message": text}).content)[0][-1].data


def compat(http: httpx.Client, text: str, stream: bool) -> tuple[dict, str]:
    """The usage object with its source, and the finish reason, of the OpenAI-compatible API."""
    body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": text}]}
    if not stream:
        reply = http.post("/v1/chat/completions", json=body).json()
        return {**reply["usage"], "source": reply["usage_source"]}, reply["choices"][0]["finish_reason"]
    body |= {"stream": True, "stream_options": {"include_usage": True}}
    events, _ = parse(http.post("/v1/chat/completions", json=body).content)
    finish, usage = events[-3].data, events[-2].data
    return {**usage["usage"], "source": usage["usage_source"]}, finish["choices"][0]["finish_reason"]


@pytest.mark.parametrize("stream", [False, True])
def test_usage_counted_by_chatwait_is_marked_estimated(http: httpx.Client, stream: bool) -> None:
    counted = native(http, "@tokens=4 @usage=0", stream)
    assert counted["usage_source"] == "estimated" and counted["usage"]["completion_tokens"] >= 4  # cl100k_base
    assert native(http, "@tokens=4", stream)["usage_source"] == "upstream"
    usage, _ = compat(http, "@tokens=4 @usage=0", stream)
    assert usage["source"] == "estimated" and usage["completion_tokens"] >= 4
    assert compat(http, "@tokens=4", stream)[0]["source"] == "upstream"


@pytest.mark.parametrize("stream", [False, True])
def test_an_unknown_finish_reason_is_mapped_and_kept_in_the_log(http: httpx.Client, server, stream: bool) -> None:
    assert native(http, "@tokens=2 @finish=eos_token", stream)["finish_reason"] == "stop"
    assert native(http, "@tokens=2 @finish=max_tokens", stream)["finish_reason"] == "length"
    assert compat(http, "@tokens=2 @finish=eos_token", stream)[1] == "stop"
    completed = completion_lines(server.log_records())
    assert {r.get("upstream_finish_reason") for r in completed} >= {"eos_token", "max_tokens"}
    assert all(r["finish_reason"] in ("stop", "length") for r in completed if r.get("upstream_finish_reason"))
