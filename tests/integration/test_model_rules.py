"""Each model as it is today: requests translated for a Claude model follow its published rules and
the Messages API version's (the fake refuses with a 400 whatever Anthropic would: `fake_anthropic.
refusal`), each change named in X-ChatWait-Adapted; a client's own Messages body keeps its version
header; an OpenAI-compatible server gets the request unchanged; the catalog prices a budgeted key's
requests where nobody typed a price (an operator's price first); a reply's length is its model's
output limit unless MAX_TOKENS says less, and a lowered one is said."""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
from genai_prices import data_snapshot

from harness.fake_anthropic import CACHE_READ, CACHE_WRITTEN
from harness.processes import ChatWaitServer, FakeUpstream

from ..conftest import UPSTREAM_KEY, server_env
from ..sse import parse

pytestmark = pytest.mark.integration

# A Claude model of each family the rules know, translated at the newest API version.
CLAUDES = ("claude-3-5-haiku-latest", "claude-sonnet-4-5", "claude-opus-4-6", "claude-sonnet-5", "claude-haiku-5-5",
           "claude-fable-5-2", "claude-mythos-5-2")  # fmt: skip
OLD_VERSION_CLAUDE = "claude-sonnet-4-5-20250929"  # on a server translated to at 2023-06-01
GPT = "gpt-4o-mini"
PRICED = "claude-haiku-4-5"  # priced by the operator: the catalog's price is not used
OPERATOR = {"input": 2.0, "output": 7.0}
KEY = "sk-rules-" + "r" * 24
UNSAMPLED = "sk-rules-" + "u" * 24  # a key whose requests naming no sampling are replayed
TOOL = {"type": "function", "function": {"name": "look", "parameters": {"type": "object"}}}


@pytest.fixture(scope="module")
def server(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatWaitServer]:
    folder = tmp_path_factory.mktemp("rules")
    listing = folder / "upstreams.toml"
    claude = json.dumps([*CLAUDES, PRICED])
    listing.write_text(
        f'[[upstream]]\nname = "claude"\nurl = "{fake.base_url}"\nkind = "anthropic"\napi_key = "{UPSTREAM_KEY}"\n'
        f"models = {claude}\n\n"
        f'[[upstream]]\nname = "claude-old"\nurl = "{fake.base_url}"\nkind = "anthropic"\n'
        f'api_key = "{UPSTREAM_KEY}"\nanthropic_version = "2023-06-01"\nmodels = ["{OLD_VERSION_CLAUDE}"]\n\n'
        f'[[upstream]]\nname = "openai"\nurl = "{fake.base_url}"\nmodels = ["{GPT}"]\n\n'
        f'[prices."{PRICED}"]\ninput = {OPERATOR["input"]}\noutput = {OPERATOR["output"]}\n'
    )
    (folder / "keys").write_text(f"{KEY} name=budgeted budget_day=50\n{UNSAMPLED} name=unsampled cache_unsampled=on\n")
    env = server_env("", UPSTREAMS_FILE=str(listing), ALLOWED_MODELS="", OPENAI_MODEL=GPT, MAX_TOKENS="",
                     MODEL_CATALOG="", READY_CHECK_MODELS="false", CHATWAIT_API_KEYS_FILE=str(folder / "keys"),
                     RESPONSE_CACHE="true")  # fmt: skip
    running = ChatWaitServer(env)
    yield running
    running.stop()


def _client(server: ChatWaitServer, key: str = KEY) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {key}"})


def _asking(model: str, api: str, stream: bool, marker: str) -> tuple[str, dict]:
    """A request of `api` that asks for a temperature, top_p, a reasoning effort and a forced tool."""
    text = f"{marker} Hello @tokens=3"
    if api == "chat":
        body = {"model": model, "messages": [{"role": "user", "content": text}], "temperature": 0.7, "top_p": 0.9,
                "reasoning_effort": "medium", "tools": [TOOL], "tool_choice": "required", "stream": stream}  # fmt: skip
        return "/v1/chat/completions", body
    if api == "responses":
        tool = {"type": "function", "name": "look", "parameters": {"type": "object"}}
        body = {"model": model, "input": text, "temperature": 0.7, "top_p": 0.9, "reasoning": {"effort": "medium"},
                "tools": [tool], "tool_choice": "required", "stream": stream}  # fmt: skip
        return "/v1/responses", body
    return ("/v1/chat/streaming" if stream else "/v1/chat/wait"), {"message": text, "model": model, "temperature": 0.7}


def _sent(fake: FakeUpstream, marker: str) -> dict:
    """What the fake was sent for the request whose text holds `marker` (its last attempt)."""
    found = [o for o in fake.stats()["outcomes"] if marker in json.dumps(o.get("body") or o.get("message"))]
    assert found, f"the fake saw no request with {marker!r}"
    return found[-1]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("api", ["chat", "responses", "native"])
@pytest.mark.parametrize("model", [*CLAUDES, OLD_VERSION_CLAUDE])
def test_a_claude_model_gets_what_its_rules_take_and_the_client_is_told(server, fake, model, api, stream) -> None:
    marker = uuid.uuid4().hex
    path, body = _asking(model, api, stream, marker)
    with _client(server) as http:
        answer = http.post(path, json=body)
    assert answer.status_code == 200, answer.text
    if stream:
        events = parse(answer.content)[0]
        assert not [e for e in events if e.event in ("error", "response.failed")], events[-3:]
    said = answer.headers.get("x-chatwait-adapted", "")
    sent = _sent(fake, marker)
    assert sent.get("status") != 400, sent.get("refused")
    upstream = sent["body"]
    if model == OLD_VERSION_CLAUDE:  # 2023-06-01 takes sampling; a forced tool takes no thinking
        assert sent["headers"]["anthropic-version"] == "2023-06-01" and upstream["temperature"] == 0.7
        if api == "native":
            assert not said, said
        else:
            assert said == "reasoning_effort dropped (tool_choice required takes no thinking)", said
            assert upstream["top_p"] == 0.9 and upstream["tool_choice"]["type"] == "any" and "thinking" not in upstream
        return
    assert sent["headers"]["anthropic-version"] == "2026-10-21"
    assert "temperature" not in upstream and "top_p" not in upstream
    assert "temperature dropped (Messages API version 2026-10-21 refuses it)" in said
    if api == "native":
        return
    assert "top_p dropped (Messages API version 2026-10-21 refuses it)" in said
    if model.startswith(("claude-sonnet-5", "claude-haiku-5", "claude-fable", "claude-mythos")):
        assert "reasoning_effort medium sent as adaptive thinking (effort medium)" in said
    if model.startswith(("claude-fable", "claude-mythos")):
        assert upstream["tool_choice"]["type"] == "auto" and upstream["thinking"] == {"type": "adaptive"}
        assert "tool_choice required sent as auto (the model cannot be forced to call a tool)" in said
    elif model == "claude-3-5-haiku-latest":
        assert "reasoning_effort dropped (the model does not think)" in said and "thinking" not in upstream
    else:
        assert upstream["tool_choice"]["type"] == "any" and "thinking" not in upstream
        assert "reasoning_effort dropped (tool_choice required takes no thinking)" in said


@pytest.mark.parametrize("version", ["2023-06-01", "2026-10-21"])
def test_a_clients_own_messages_body_keeps_its_version_header(server, fake, version) -> None:
    text = f"{uuid.uuid4().hex} Hi @tokens=2"
    body = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": text}]}
    with _client(server) as http:
        answer = http.post("/v1/messages", json=body, headers={"anthropic-version": version})
    assert answer.status_code == 200, answer.text
    sent = _sent(fake, text)
    assert sent["headers"]["anthropic-version"] == version and "x-chatwait-adapted" not in answer.headers


def test_an_openai_compatible_server_gets_the_request_unchanged(server, fake) -> None:
    path, body = _asking(GPT, "chat", False, uuid.uuid4().hex)
    with _client(server) as http:
        answer = http.post(path, json=body)
    assert answer.status_code == 200, answer.text
    assert "x-chatwait-adapted" not in answer.headers
    (sent,) = [o for o in fake.stats()["outcomes"] if body["messages"][0]["content"][:32] in o.get("message", "")]
    assert sent["options"]["top_p"] == 0.9 and sent["options"]["reasoning_effort"] == "medium"
    assert sent["options"]["tool_choice"] == "required"


def _catalog(model: str) -> dict[str, float]:
    _, info = data_snapshot.get_snapshot().find_provider_model(model, None, None, None)
    price = info.get_prices(datetime.datetime.now(datetime.UTC))
    names = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "cache_write_1h_mtok")
    found = {name: getattr(price, name) or 0 for name in names}
    return {name: float(getattr(value, "base", value)) for name, value in found.items()}  # a tier's base


def test_a_budgeted_key_is_charged_the_catalogs_price_where_nobody_typed_one(server) -> None:
    prompt = " ".join(["words"] * 120)
    with _client(server) as http:
        asked = {"model": GPT, "messages": [{"role": "user", "content": f"{prompt} @tokens=5 @cache_read=40"}]}
        answer = http.post("/v1/chat/completions", json=asked)
        assert answer.status_code == 200, answer.text
        usage, rates = answer.json()["usage"], _catalog(GPT)
        fresh = usage["prompt_tokens"] - 40
        expected = (fresh * rates["input_mtok"] + 40 * rates["cache_read_mtok"] + 5 * rates["output_mtok"]) / 1e6
        assert float(answer.headers["x-chatwait-cost-usd"]) == pytest.approx(expected, abs=1e-9)
        text = f"{uuid.uuid4().hex} {prompt} @tokens=4"
        block = {"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}
        claude = {"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": [block]}]}
        answer = http.post("/v1/messages", json=claude)
        assert answer.status_code == 200, answer.text
        usage, rates = answer.json()["usage"], _catalog("claude-sonnet-4-5")
        inputs = usage["input_tokens"] * rates["input_mtok"] + CACHE_READ * rates["cache_read_mtok"]
        writes = CACHE_WRITTEN * rates["cache_write_mtok"]
        expected = (inputs + writes + usage["output_tokens"] * rates["output_mtok"]) / 1e6
        assert float(answer.headers["x-chatwait-cost-usd"]) == pytest.approx(expected, abs=1e-9)
        own = http.post("/v1/chat/wait", json={"message": "@tokens=3", "model": PRICED})
        usage = own.json()["usage"]
        expected = (usage["prompt_tokens"] * OPERATOR["input"] + 3 * OPERATOR["output"]) / 1e6
        assert usage["cost_usd"] == pytest.approx(expected, abs=1e-9), "the operator's price, not the catalog's"
        spent = http.get("/v1/spend").json()
    assert spent["budgets"]["budget_day"]["spent_usd"] > 0, spent
    ready = httpx.get(f"{server.url}/ready", timeout=10).json()
    priced = ready["prices"]
    assert priced[GPT] == "genai-prices" and priced[PRICED] == "operator", priced


def test_a_reply_is_as_long_as_its_model_allows_and_a_lowered_one_is_said(server, fake) -> None:
    with _client(server) as http:
        for model, asked, sent_tokens in (
            ("claude-sonnet-4-5", 128_000, 64_000),
            ("claude-sonnet-5", 128_000, 128_000),
        ):
            text = f"{uuid.uuid4().hex} @tokens=2"
            body = {"model": model, "max_tokens": asked, "messages": [{"role": "user", "content": text}]}
            answer = http.post("/v1/messages", json=body)
            assert answer.status_code == 200, answer.text
            assert _sent(fake, text)["body"]["max_tokens"] == sent_tokens
            said = answer.headers.get("x-chatwait-adapted")
            if sent_tokens < asked:
                assert said == f"max_tokens lowered to {sent_tokens} (the model's output limit)"
            else:
                assert said is None
        text = f"{uuid.uuid4().hex} @tokens=2"
        answer = http.post("/v1/responses", json={"model": "claude-sonnet-5", "input": text})
        assert answer.status_code == 200 and _sent(fake, text)["body"]["max_tokens"] == 128_000, "none asked: all"


def _twice(http: httpx.Client, path: str, body: dict, headers: dict | None = None) -> list[str]:
    """What the response cache made of the same request sent twice."""
    found = []
    for _ in range(2):
        answer = http.post(path, json=body, headers=headers or {})
        assert answer.status_code == 200, answer.text
        found.append(answer.headers["x-chatwait-cache"])
    return found


def test_a_request_naming_no_sampling_is_replayed_where_its_sampling_is_not_the_clients(server) -> None:
    def chat(model: str) -> dict:
        return {"model": model, "messages": [{"role": "user", "content": f"{uuid.uuid4().hex} @tokens=3"}]}

    def messages(model: str) -> dict:
        return {"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": f"{uuid.uuid4().hex} @x"}]}

    with _client(server) as http:
        assert _twice(http, "/v1/chat/completions", chat("claude-sonnet-5")) == ["miss", "hit"], "takes no sampling"
        assert _twice(http, "/v1/chat/completions", chat("claude-sonnet-4-5")) == ["bypass", "bypass"], "sampled"
        new, old = {"anthropic-version": "2026-10-21"}, {"anthropic-version": "2023-06-01"}
        assert _twice(http, "/v1/messages", messages("claude-sonnet-4-5"), new) == ["miss", "hit"], "sends none"
        assert _twice(http, "/v1/messages", messages("claude-sonnet-4-5"), old) == ["bypass", "bypass"]
        asked = {**chat("claude-sonnet-5"), "temperature": 0.6}
        assert _twice(http, "/v1/chat/completions", asked) == ["bypass", "bypass"], "a temperature asked: sampled"
    with _client(server, UNSAMPLED) as http:
        assert _twice(http, "/v1/chat/completions", chat("claude-sonnet-4-5")) == ["miss", "hit"], "the key says so"


def test_the_models_list_says_what_is_known_of_each_model(server) -> None:
    with _client(server) as http:
        listed = {model["id"]: model for model in http.get("/v1/models").json()["data"]}
        one = http.get("/v1/models/claude-sonnet-5").json()
    sonnet = listed["claude-sonnet-5"]
    assert sonnet == one and sonnet["object"] == "model"
    assert (sonnet["context_window"], sonnet["max_output_tokens"]) == (1_000_000, 128_000)
    assert sonnet["reasoning"] and sonnet["tools"] and "image" in sonnet["input_modalities"]
    assert listed[GPT]["max_output_tokens"] == 16_384 and listed[GPT]["pricing"]["input"] == _catalog(GPT)["input_mtok"]
    assert listed[PRICED]["pricing"]["input"] == OPERATOR["input"], "the operator's price, as charged"
