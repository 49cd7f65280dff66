"""The exact response cache (RESPONSE_CACHE): a miss then a hit on every family and transport,
with the same content in the same shapes, at no upstream cost; a hit resumed after a drop;
Cache-Control's no-cache and no-store; errors, cuts, refusals and replies at their length limit
never kept; keys kept apart; single flight; the admin's DELETE /v1/admin/cache; the metrics. On
one worker's memory and on two workers sharing Redis (a hit there may come from the other one)."""

from __future__ import annotations

import concurrent.futures
import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from websockets.sync.client import connect as ws_connect

from harness.processes import ChatWaitServer, FakeUpstream

from ..conftest import FAKE_MODEL, server_env, store_env
from ..sse import parse
from .test_responses_tools import WEATHER

pytestmark = pytest.mark.integration

KEY = "cache-key-0123456789abcdef"
OTHER = "other-cache-key-0123456789abcdef"
PLAIN = "plain-cache-key-0123456789abcdef"  # cache=off
ADMIN = "admin-cache-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
INPUT, OUTPUT = 2.0, 8.0  # USD per million tokens
KEYS_SEEN_SECONDS = 1.5  # every worker reads a managed key's change within a second (keystore.view)
# What differs between two answers of one reply: their ids and times, and the ledger (a hit's
# says it was cached); everything else a hit says as the miss said it.
VOLATILE = frozenset((
    "id", "correlation_id", "stream_id", "created", "created_at", "completed_at", "item_id", "response_id",
    "chatwait", "cost_usd", "duration_ms", "ttft_ms", "attempts", "generated_tokens", "delivered_tokens",
))  # fmt: skip


@pytest.fixture(scope="module", params=["memory", "redis"])
def server(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory, request) -> Iterator[ChatWaitServer]:
    folder = tmp_path_factory.mktemp("response-cache")
    keys = folder / "keys.txt"
    keys.write_text(f"{KEY} name=cached\n{OTHER} name=other\n{PLAIN} name=plain cache=off\n", encoding="utf-8")
    listing = folder / "upstreams.yaml"
    listing.write_text(
        f"upstreams:\n  - {{name: fake, url: {fake.base_url!r}}}\n"
        f"prices: {{{FAKE_MODEL}: {{input: {INPUT}, output: {OUTPUT}}}}}\n"
    )
    env = server_env("", UPSTREAMS_FILE=str(listing), CHATWAIT_API_KEYS_FILE=str(keys), ADMIN_API_KEY=ADMIN,
                     RESPONSE_CACHE="true", **store_env(request, request.param))  # fmt: skip
    running = ChatWaitServer(env)
    yield running
    running.stop()


def _unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:10]}"


def _stable(value: Any) -> Any:
    """`value` without what two answers of one reply may differ in (ids and times, the ledger)."""
    if isinstance(value, dict):
        return {name: _stable(found) for name, found in value.items() if name not in VOLATILE}
    if isinstance(value, (list, tuple)):
        return [_stable(found) for found in value]
    if isinstance(value, str):
        return re.sub(r"\b(chatcmpl|resp|msg|rs|fc)_?-?[0-9a-f]{16,}", r"\1", value)
    return value


def _body(family: str, message: str, stream: bool) -> tuple[str, dict[str, Any]]:
    messages = [{"role": "user", "content": message}]
    if family == "chat_completions":
        streamed = {"stream": True, "stream_options": {"include_usage": True}} if stream else {}
        return "/v1/chat/completions", {"model": FAKE_MODEL, "temperature": 0, "messages": messages, **streamed}
    if family == "responses":
        return "/v1/responses", {"model": FAKE_MODEL, "temperature": 0, "input": message, "stream": stream}
    if family == "messages":
        return "/v1/messages", {"model": FAKE_MODEL, "max_tokens": 64, "temperature": 0, "messages": messages,
                                "stream": stream}  # fmt: skip
    return ("/v1/chat/streaming" if stream else "/v1/chat/wait"), {"message": message, "temperature": 0}


def _asked(server: ChatWaitServer, family: str, message: str, stream: bool, headers: dict[str, str] | None = None,
           key: str = KEY) -> tuple[httpx.Response, Any]:  # fmt: skip
    path, body = _body(family, message, stream)
    answer = httpx.post(f"{server.url}{path}", json=body, headers={"Authorization": f"Bearer {key}", **(headers or {})},
                        timeout=30)  # fmt: skip
    assert answer.status_code == 200, answer.text
    if not stream:
        return answer, answer.json()
    events = parse(answer.content)[0]
    return answer, [(event.event, event.data) for event in events if event.event != ":comment"]


def _upstream_calls(fake: FakeUpstream, message: str) -> int:
    return len(fake.outcomes_for(message))


FAMILIES = ["chat_completions", "responses", "messages", "native"]


@pytest.mark.parametrize("stream", [False, True], ids=["wait", "sse"])
@pytest.mark.parametrize("family", FAMILIES)
def test_a_hit_answers_in_the_shapes_the_miss_did_without_asking_the_model(server, fake, family, stream) -> None:
    message = _unique("Tell me @tokens=6 @reasoning=2")
    first, said = _asked(server, family, message, stream)
    second, again = _asked(server, family, message, stream)
    assert first.headers["x-chatwait-cache"] == "miss" and second.headers["x-chatwait-cache"] == "hit"
    assert first.headers["x-chatwait-cache-entry"] == second.headers["x-chatwait-cache-entry"]
    assert _stable(again) == _stable(said), "the same content, the same shapes, the same events"
    assert again != said, "a new answer: its own ids"
    assert _upstream_calls(fake, message) == 1, "the model was asked once"


def test_a_hit_over_the_responses_websocket_is_the_miss_again(server, fake) -> None:
    message = _unique("Socket @tokens=5")
    turns = []
    with ws_connect(server.url.replace("http://", "ws://") + "/v1/responses",
                    additional_headers=AUTH) as ws:  # fmt: skip
        for _ in range(2):
            ws.send(json.dumps({"type": "response.create", "model": FAKE_MODEL, "temperature": 0, "input": message}))
            events = [json.loads(ws.recv(timeout=10))]
            while events[-1]["type"] not in ("response.completed", "response.failed", "error"):
                events.append(json.loads(ws.recv(timeout=10)))
            turns.append(events)
    assert turns[0][-1]["type"] == "response.completed"
    assert _stable(turns[1]) == _stable(turns[0]) and _upstream_calls(fake, message) == 1


def test_a_hit_costs_nothing_and_its_ledger_says_it_was_cached(server) -> None:
    message = _unique("Priced @tokens=7")
    first, said = _asked(server, "native", message, False)
    second, again = _asked(server, "native", message, False)
    assert said["usage"]["cost_usd"] > 0 and float(first.headers["x-chatwait-cost-usd"]) > 0
    usage = again["usage"]
    assert usage["completion_tokens"] == said["usage"]["completion_tokens"] == 7, "what the original used"
    assert usage["prompt_tokens"] == said["usage"]["prompt_tokens"]
    assert usage["cost_usd"] == 0 and float(second.headers["x-chatwait-cost-usd"]) == 0
    assert usage["generated_tokens"] == 0 and usage["delivered_tokens"] == 7
    assert usage["attempts"] == [{"model": FAKE_MODEL, "server": None, "outcome": "cached", "input_tokens": 0,
                                  "output_tokens": 0, "cost_usd": 0.0}]  # fmt: skip


def test_a_tool_call_is_kept_like_text(server, fake) -> None:
    message = _unique("Weather? @tool=get_weather")
    body = {"model": FAKE_MODEL, "temperature": 0, "input": message, "tools": [WEATHER]}
    answers = [httpx.post(f"{server.url}/v1/responses", json=body, headers=AUTH, timeout=30) for _ in range(2)]
    assert [answer.headers["x-chatwait-cache"] for answer in answers] == ["miss", "hit"]
    calls = [answer.json()["output"] for answer in answers]
    assert calls[0][0]["type"] == "function_call" and _stable(calls[1]) == _stable(calls[0])
    assert calls[1][0]["call_id"] == calls[0][0]["call_id"] and _upstream_calls(fake, message) == 1


def test_a_hit_resumes_after_a_drop_with_nothing_lost_or_repeated(server) -> None:
    message = _unique("Resume me @tokens=12")
    _, whole = _asked(server, "native", message, True)
    with httpx.stream("POST", f"{server.url}/v1/chat/streaming", json={"message": message, "temperature": 0},
                      headers=AUTH, timeout=30) as cut:  # fmt: skip
        assert cut.headers["x-chatwait-cache"] == "hit"
        stream_id = cut.headers["x-stream-id"]
        for line in cut.iter_lines():
            if line == "id: 4":
                break
    resumed = httpx.get(f"{server.url}/v1/chat/streaming/{stream_id}", headers={**AUTH, "Last-Event-ID": "4"},
                        timeout=30)  # fmt: skip
    events = parse(resumed.content)[0]
    assert events[0].id == 5, "from the event after the last one read"
    rest = [(event.event, event.data) for event in events if event.event != ":comment"]
    after = [(name, data) for name, data in whole if data.get("sequence", 0) > 4]
    assert _stable(rest) == _stable(after) and rest[-1][0] == "done", "the rest of the answer, once"


def test_no_cache_skips_the_lookup_and_no_store_the_keeping(server, fake) -> None:
    message = _unique("Fresh @tokens=3")
    unkept, _ = _asked(server, "native", message, False, {"Cache-Control": "no-store"})
    missed, _ = _asked(server, "native", message, False)
    assert unkept.headers["x-chatwait-cache"] == "miss" and missed.headers["x-chatwait-cache"] == "miss"
    fresh, _ = _asked(server, "native", message, False, {"Cache-Control": "no-cache"})
    assert fresh.headers["x-chatwait-cache"] == "bypass"
    hit, _ = _asked(server, "native", message, False, {"Cache-Control": "max-age=60, no-store"})
    assert hit.headers["x-chatwait-cache"] == "hit", "no-store alone still looks"
    for asked in ({"Cache-Control": "max-age=0"}, {"Cache-Control": 'no-cache="x"'}, {"Pragma": "no-cache"}):
        again, _ = _asked(server, "native", message, False, asked)
        assert again.headers["x-chatwait-cache"] == "bypass", asked
    assert _upstream_calls(fake, message) == 6


@pytest.mark.parametrize(
    ("directives", "status"),
    [
        ("@fault=500", 503),  # an error (after its retries)
        ("@tokens=8 @fault=reset@3", 200),  # a cut (no rescue here): the stream ends with an error
        ("@refusal=3", 200),  # a refusal
        ("@tokens=30 @limit=max_tokens", 200),  # at its length limit
    ],
    ids=["error", "cut", "refusal", "length"],
)
def test_errors_cuts_refusals_and_length_limits_are_never_kept(server, fake, directives, status) -> None:
    message = _unique(f"Not kept {directives}")
    body = {"model": FAKE_MODEL, "temperature": 0, "max_tokens": 10, "messages": [{"role": "user", "content": message}]}
    headers = []
    for _ in range(2):
        answer = httpx.post(f"{server.url}/v1/chat/completions", json=body | {"stream": status == 200}, headers=AUTH,
                            timeout=30)  # fmt: skip
        assert answer.status_code == status, answer.text
        headers.append(answer.headers.get("x-chatwait-cache"))
    assert headers == ["miss", "miss"] and _upstream_calls(fake, message) >= 2


def test_keys_keep_their_own_answers_unless_switched_off(server, fake) -> None:
    message = _unique("Whose @tokens=4")
    assert _asked(server, "native", message, False)[0].headers["x-chatwait-cache"] == "miss"
    assert _asked(server, "native", message, False, key=OTHER)[0].headers["x-chatwait-cache"] == "miss"
    assert _asked(server, "native", message, False)[0].headers["x-chatwait-cache"] == "hit"
    assert "x-chatwait-cache" not in _asked(server, "native", message, False, key=PLAIN)[0].headers, "off for it"
    sampled = httpx.post(f"{server.url}/v1/chat/wait", json={"message": message}, headers=AUTH, timeout=30)
    assert sampled.headers["x-chatwait-cache"] == "bypass", "sampled (no temperature, no seed): not kept"
    asked = {"model": FAKE_MODEL, "seed": 7, "messages": [{"role": "user", "content": message}]}
    seeded = httpx.post(f"{server.url}/v1/chat/completions", json=asked, headers=AUTH, timeout=30)
    assert seeded.headers["x-chatwait-cache"] == "miss", "a seed makes it repeatable"
    assert _upstream_calls(fake, message) == 5


def test_each_end_user_keeps_their_own_answers_with_the_end_user_scope(fake, tmp_path) -> None:
    """The red team's finding: within a key, `hit` told one end user that another had asked the
    exact prompt. RESPONSE_CACHE_SCOPE=end_user keeps each end user's answers apart."""
    (tmp_path / "keys").write_text(f"{KEY} name=cached\n", encoding="utf-8")
    env = server_env(fake.base_url, CHATWAIT_API_KEYS_FILE=str(tmp_path / "keys"), RESPONSE_CACHE="true",
                     RESPONSE_CACHE_SCOPE="end_user")  # fmt: skip
    apart = ChatWaitServer(env)
    try:
        message = _unique("Apart @tokens=4")
        said = [
            _asked(apart, "native", message, False, {"X-ChatWait-User": user})[0].headers["x-chatwait-cache"]
            for user in ("alice", "bob", "alice", "bob")
        ]
        assert said == ["miss", "miss", "hit", "hit"]
        nobody = _asked(apart, "native", message, False)[0]
        assert nobody.headers["x-chatwait-cache"] == "miss", "no end user: apart too"
        assert _upstream_calls(fake, message) == 3
    finally:
        apart.stop()


def test_ten_identical_requests_at_once_make_one_upstream_call(server, fake) -> None:
    message = _unique("Together @tokens=20 @delay_ms=40")

    def ask(_: int) -> tuple[str, str]:
        answer, events = _asked(server, "native", message, True)
        return answer.headers["x-chatwait-cache"], "".join(data["content"] for name, data in events if name == "chunk")

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(ask, range(10)))
    assert sorted(state for state, _ in answers) == ["hit"] * 9 + ["miss"], answers
    assert {text for _, text in answers} == {"".join(f"tok{i} " for i in range(20))}, "one whole answer each"
    assert _upstream_calls(fake, message) == 1


def test_a_leader_stopped_by_its_client_goes_on_for_those_that_follow_it(server, fake) -> None:
    """The red team's finding: one end user's stop cut the identical requests following it in the
    single flight (9 of 30 tokens, then upstream_interrupted). The generation now goes on for
    them: each follower gets the whole answer (in one worker, from one upstream call)."""
    message = _unique("Stopped @tokens=30 @delay_ms=40")
    path, body = _body("native", message, True)
    with httpx.stream("POST", f"{server.url}{path}", json=body, headers=AUTH, timeout=30) as leader:
        stream_id = leader.headers["x-stream-id"]
        lines = leader.iter_lines()
        while "tok2" not in next(lines):
            pass
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            followers = [pool.submit(_asked, server, "native", message, True) for _ in range(2)]
            time.sleep(0.4)  # both follow it now
            stopped = httpx.delete(f"{server.url}{path}/{stream_id}", headers=AUTH, timeout=10)
            assert stopped.status_code == 200 and stopped.json()["status"] == "cancelled", stopped.text
            answers = [future.result() for future in followers]
    whole = "".join(f"tok{i} " for i in range(30))
    for answer, events in answers:
        text = "".join(data["content"] for name, data in events if name == "chunk")
        assert answer.headers["x-chatwait-cache"] == "hit", "a hit, and a whole answer"
        assert text == whole and events[-1][0] == "done" and events[-1][1]["finish_reason"] == "stop", str(events[-1])
    if server.env.get("STREAM_STORE") != "redis":
        assert _upstream_calls(fake, message) == 1, "followed in this worker: one generation"
    else:  # a follower on the other worker waits a bounded time for the answer, then asks the model itself
        assert _upstream_calls(fake, message) <= 3


def test_the_admin_clears_one_entry_one_key_or_all(server, fake) -> None:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    first, second = _unique("One @tokens=2"), _unique("Two @tokens=2")
    entry = _asked(server, "native", first, False)[0].headers["x-chatwait-cache-entry"]
    _asked(server, "native", second, False)
    _asked(server, "native", second, False, key=OTHER)
    one = httpx.delete(f"{server.url}/v1/admin/cache", params={"entry": entry}, headers=admin, timeout=10)
    assert one.status_code == 200 and one.json()["deleted"] == 1, one.text
    assert _asked(server, "native", first, False)[0].headers["x-chatwait-cache"] == "miss"
    assert _asked(server, "native", second, False)[0].headers["x-chatwait-cache"] == "hit"
    by_key = httpx.delete(f"{server.url}/v1/admin/cache", params={"key": "cached"}, headers=admin, timeout=10)
    assert by_key.status_code == 200 and by_key.json()["deleted"] >= 2
    assert _asked(server, "native", second, False)[0].headers["x-chatwait-cache"] == "miss"
    assert _asked(server, "native", second, False, key=OTHER)[0].headers["x-chatwait-cache"] == "hit"
    everything = httpx.delete(f"{server.url}/v1/admin/cache", headers=admin, timeout=10)
    assert everything.status_code == 200 and everything.json()["deleted"] >= 2
    assert _asked(server, "native", second, False, key=OTHER)[0].headers["x-chatwait-cache"] == "miss"
    refused = httpx.delete(f"{server.url}/v1/admin/cache", headers=AUTH, timeout=10)
    assert refused.status_code == 401
    unknown = httpx.delete(f"{server.url}/v1/admin/cache", params={"key": "nobody"}, headers=admin, timeout=10)
    assert unknown.status_code == 404 and "nobody" in unknown.text, unknown.text


def test_the_metrics_count_hits_misses_bypasses_and_what_is_kept(server) -> None:
    message = _unique("Counted @tokens=3")
    _asked(server, "native", message, False)
    _asked(server, "native", message, False)
    _asked(server, "native", message, False, {"Cache-Control": "no-cache, no-store"})
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    for result in ("hit", "miss", "bypass"):
        assert re.search(rf'chatwait_response_cache_requests_total\{{result="{result}"\}} [1-9]', text), result
    assert re.search(r"chatwait_response_cache_kept_bytes_total [1-9]", text)
    assert "chatwait_response_cache_bytes" in text and "chatwait_response_cache_entries" in text


def test_a_managed_key_switches_the_cache_off_or_back_to_the_deployments_word(server) -> None:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    name = f"managed-{uuid.uuid4().hex[:8]}"
    made = httpx.post(f"{server.url}/v1/admin/keys", json={"name": name, "cache": False}, headers=admin, timeout=10)
    assert made.status_code == 201 and made.json()["cache"] is False, made.text
    secret, key_id = made.json()["key"], made.json()["id"]
    time.sleep(KEYS_SEEN_SECONDS)
    message = _unique("Managed @tokens=2")
    assert "x-chatwait-cache" not in _asked(server, "native", message, False, key=secret)[0].headers
    changed = httpx.patch(f"{server.url}/v1/admin/keys/{key_id}", json={"cache": None}, headers=admin, timeout=10)
    assert changed.status_code == 200 and changed.json()["cache"] is None
    time.sleep(KEYS_SEEN_SECONDS)
    states = [_asked(server, "native", message, False, key=secret)[0].headers["x-chatwait-cache"] for _ in range(2)]
    assert states == ["miss", "hit"], "RESPONSE_CACHE's word again"
    listed = httpx.get(f"{server.url}/v1/admin/keys", headers=admin, timeout=10).json()["data"]
    assert {entry["name"]: entry["cache"] for entry in listed}["plain"] is False, "a file key's cache= shown"


def test_the_sdks_read_a_hit_as_they_read_the_miss(server) -> None:
    """The newest openai and anthropic SDKs parse a hit, streamed and whole, as they parse a miss."""
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0) as client:
        asked = [{"role": "user", "content": _unique("SDK @tokens=5 @reasoning=1")}]
        whole = [client.chat.completions.create(model=FAKE_MODEL, messages=asked, temperature=0) for _ in range(2)]
        assert whole[1].choices[0].message.content == whole[0].choices[0].message.content
        assert whole[1].usage.completion_tokens == whole[0].usage.completion_tokens == 5
        pieces = []
        for _ in range(2):
            with client.chat.completions.create(model=FAKE_MODEL, messages=asked, temperature=0, stream=True) as got:
                pieces.append([chunk.choices[0].delta.content for chunk in got if chunk.choices])
        assert pieces[1] == pieces[0] and "".join(p or "" for p in pieces[0]) == whole[0].choices[0].message.content
        said = _unique("Responses SDK @tokens=4")
        made = [client.responses.create(model=FAKE_MODEL, input=said, temperature=0) for _ in range(2)]
        assert made[1].output_text == made[0].output_text and made[1].id != made[0].id
    zero = {"temperature": 0}  # the newest SDK's stream() takes it no more: the body's field
    message = [{"role": "user", "content": _unique("Messages SDK @tokens=4")}]
    texts = []
    with anthropic.Anthropic(base_url=server.url, api_key=KEY, max_retries=0) as claude:
        for _ in range(2):
            with claude.messages.stream(model=FAKE_MODEL, max_tokens=64, messages=message, extra_body=zero) as stream:
                texts.append(stream.get_final_message().content[0].text)
    assert texts[1] == texts[0] and texts[0]
