"""Nothing a client sends moves an upstream past what ChatWait reserved (the red team's findings):
a server-side control (llama.cpp's n_predict) is refused by name, or, where the operator allows
it, passed and still held to max_tokens, counted on the stream; unknown fields are input (the
input limit, the key's tpm); an image and a PDF's pages are reserved as their model bills them,
so a budget holds."""

from __future__ import annotations

import base64
import concurrent.futures
import io
import uuid
from collections.abc import Iterator

import httpx
import PIL.Image
import pytest

from harness.processes import ChatWaitServer, FakeUpstream

from ..conftest import FAKE_MODEL, server_env
from ..documents import data_url, pdf_bytes
from ..sse import iter_events

pytestmark = pytest.mark.integration

BUDGETED = "reserve-budget-0123456789abcdef"
IMAGES = "reserve-images-0123456789abcdef"
TOKENS = "reserve-tokens-0123456789abcdef"
MINI = "gpt-4o-mini"
INPUT, OUTPUT = 150.0, 600.0  # USD per million tokens
BUDGET = 0.125


def _image(width: int, height: int) -> str:
    data = io.BytesIO()
    PIL.Image.new("RGB", (width, height), "white").save(data, "PNG")
    return "data:image/png;base64," + base64.b64encode(data.getvalue()).decode()


@pytest.fixture(scope="module")
def gateway(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatWaitServer]:
    folder = tmp_path_factory.mktemp("reservations")
    (folder / "upstreams.toml").write_text(
        f'[[upstream]]\nname = "llama"\nurl = "{fake.base_url}"\nallow_fields = ["n_predict"]\n'
        f'[prices."{FAKE_MODEL}"]\ninput = {INPUT}\noutput = {OUTPUT}\n'
        f'[prices."{MINI}"]\ninput = {INPUT}\noutput = {OUTPUT}\n'
    )
    (folder / "keys").write_text(
        f"{BUDGETED} name=budgeted budget_day={BUDGET}\n{IMAGES} name=images budget_day=1\n"
        f"{TOKENS} name=tokens tpm=100000\n"
    )
    env = server_env(
        "",
        UPSTREAMS_FILE=str(folder / "upstreams.toml"),
        CHATWAIT_API_KEYS_FILE=str(folder / "keys"),
        ALLOWED_MODELS=f"{FAKE_MODEL},{MINI}",
        MAX_TOKENS="4096",
    )
    env.pop("OPENAI_BASE_URL")
    running = ChatWaitServer(env)
    yield running
    running.stop()


def _post(server: ChatWaitServer, key: str, body: dict, path: str = "/v1/chat/completions") -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def test_a_server_control_is_refused_by_name_where_no_server_allows_it(server: ChatWaitServer) -> None:
    body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    for fields in ({"n_predict": 3000}, {"ignore_eos": True, "min_tokens": 500}, {"options": {"num_predict": -1}}):
        answer = httpx.post(f"{server.url}/v1/chat/completions", json={**body, **fields}, timeout=30)
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["type"] == "invalid_request_error" and all(name in error["message"] for name in fields)
        assert "allow_fields" in error["message"]
    messages = {**body, "ignore_eos": True}
    answer = httpx.post(f"{server.url}/v1/messages", json=messages, headers={"x-api-key": "x"}, timeout=30)
    assert answer.status_code == 400 and answer.json()["type"] == "error" and "ignore_eos" in answer.text
    fine = httpx.post(f"{server.url}/v1/chat/completions", json={**body, "top_k": 40, "min_p": 0.1}, timeout=30)
    assert fine.status_code == 200 and "top_k" in fine.headers["x-chatwait-unknown-fields"], "sampling is passed on"


def test_an_allowed_n_predict_reaches_the_server_and_is_still_held_to_max_tokens(gateway, fake) -> None:
    asked = f"{uuid.uuid4().hex} @tokens=3000 @limit=llama"
    body = {
        "model": FAKE_MODEL,
        "messages": [{"role": "user", "content": asked}],
        "max_tokens": 5,
        "n_predict": 3000,
    }
    whole = _post(gateway, TOKENS, body)
    assert whole.status_code == 200, whole.text
    choice = whole.json()["choices"][0]
    assert choice["finish_reason"] == "length" and whole.json()["usage"]["completion_tokens"] == 5
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        json={**body, "stream": True, "stream_options": {"include_usage": True}},
        headers={"Authorization": f"Bearer {TOKENS}"},
        timeout=60,
    ) as streamed:
        chunks = [event.data for event in iter_events(streamed) if isinstance(event.data, dict)]
    pieces = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"] and c["choices"][0]["delta"]]
    assert len([piece for piece in pieces if piece]) == 5
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]] == [
        "length"
    ]
    assert chunks[-1]["usage"]["completion_tokens"] == 5
    sent = fake.outcomes_for(asked)
    assert sent and all(outcome["options"].get("n_predict") == 3000 for outcome in sent), "the server read its own"


def test_n_predict_cannot_spend_past_a_budget(gateway) -> None:
    """The red team's attack: 20 concurrent streams of max_tokens 5 and n_predict 3000 on a key
    with budget_day 0.125 spent 18.02 USD; the budget and one reservation at most now."""

    def ask(n: int) -> httpx.Response:
        body = {
            "model": FAKE_MODEL,
            "messages": [{"role": "user", "content": f"attack {n} @tokens=3000 @limit=llama @delay_ms=2"}],
            "max_tokens": 5,
            "n_predict": 3000,
        }
        return _post(gateway, BUDGETED, body)

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(ask, range(20)))
    served = [answer for answer in answers if answer.status_code == 200]
    assert served and all(answer.json()["usage"]["completion_tokens"] <= 5 for answer in served)
    spent = httpx.get(f"{gateway.url}/v1/spend", headers={"Authorization": f"Bearer {BUDGETED}"}, timeout=10)
    total = spent.json()["budgets"]["budget_day"]["spent_usd"]
    assert total <= BUDGET + 1e-9, "no single request's reservation can pass a budget it does not fit in"


def test_unknown_fields_are_input_to_the_limit_and_the_keys_tpm(gateway, server: ChatWaitServer) -> None:
    body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    padded = {**body, "knowledge_base": "lorem ipsum " * 75_000}  # 900 KB in a field nobody declares
    refused = httpx.post(f"{server.url}/v1/chat/completions", json=padded, timeout=30)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "context_length_exceeded", refused.text
    plain = _post(gateway, TOKENS, body)
    counted = _post(gateway, TOKENS, {**body, "knowledge_base": "lorem ipsum " * 400})
    assert plain.status_code == counted.status_code == 200
    used = [100_000 - int(answer.headers["x-ratelimit-remaining-tokens"]) for answer in (plain, counted)]
    assert used[1] - used[0] >= 800, f"the unknown field's tokens count toward tpm: {used}"


def test_an_image_is_reserved_as_its_model_bills_it(gateway) -> None:
    """2048 x 768 at high detail: 48,169 tokens on gpt-4o-mini (its published count), which a
    reservation of 765 let through a budget of 1 USD; at 150 USD per million that is 7.23 USD, more
    than the budget: refused before the upstream is asked, saying no answer fits."""
    image = {"type": "image_url", "image_url": {"url": _image(2048, 768), "detail": "high"}}
    text = {"type": "text", "text": "what is it? @limit=max_tokens"}
    body = {"messages": [{"role": "user", "content": [text, image]}], "max_tokens": 5}
    refused = _post(gateway, IMAGES, {**body, "model": MINI})
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "budget_exhausted", refused.text
    assert "no answer to it fits" in refused.json()["error"]["message"]
    small = {**image, "image_url": {"url": _image(2048, 768), "detail": "low"}}
    cheap = _post(gateway, IMAGES, {**body, "model": MINI, "messages": [{"role": "user", "content": [text, small]}]})
    assert cheap.status_code == 200, cheap.text
    assert cheap.json()["usage"]["prompt_tokens"] >= 2833, "the upstream bills the low-detail base"
    spent = httpx.get(f"{gateway.url}/v1/spend", headers={"Authorization": f"Bearer {IMAGES}"}, timeout=10).json()
    assert spent["budgets"]["budget_day"]["spent_usd"] <= 1.0


PAGED = "reserve-pdf-0123456789abcdef"
PDF_BUDGET = 100.0
PAGE_BILLED = 1_500 + 85 + 170 * 8  # the fake bills a page's text and its image (8 tiles), as OpenAI does


@pytest.fixture(scope="module")
def paged(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatWaitServer]:
    """A key with a budget of 100 USD, over the fake billing each PDF page (input 150 USD a million)."""
    folder = tmp_path_factory.mktemp("paged")
    (folder / "upstreams.toml").write_text(
        f'[[upstream]]\nurl = "{fake.base_url}"\n[prices."{FAKE_MODEL}"]\ninput = {INPUT}\noutput = {OUTPUT}\n'
    )
    (folder / "keys").write_text(f"{PAGED} name=paged-{uuid.uuid4().hex[:6]} budget_day={PDF_BUDGET}\n")
    env = server_env("", UPSTREAMS_FILE=str(folder / "upstreams.toml"), CHATWAIT_API_KEYS_FILE=str(folder / "keys"),
                     MAX_INPUT_TOKENS="20000")  # fmt: skip
    env.pop("OPENAI_BASE_URL")
    running = ChatWaitServer(env)
    yield running
    running.stop()


def _with_pdf(family: str, pdf: str, n: int) -> tuple[str, dict]:
    """A request of `family` that attaches `pdf`: its path and body."""
    text = f"summarise {n} @tokens=5"
    if family == "chat_completions":
        part = {"type": "file", "file": {"file_data": pdf, "filename": "report.pdf"}}
        content = [part, {"type": "text", "text": text}]
        return "/v1/chat/completions", {"messages": [{"role": "user", "content": content}]}
    if family == "responses":
        part = {"type": "input_file", "file_data": pdf, "filename": "report.pdf"}
        return "/v1/responses", {"input": [{"role": "user", "content": [part, {"type": "input_text", "text": text}]}]}
    source = {"type": "base64", "media_type": "application/pdf", "data": pdf.split(",", 1)[1]}
    part = {"type": "document", "source": source}
    return "/v1/messages", {"messages": [{"role": "user", "content": [part, {"type": "text", "text": text}]}]}


def test_a_pdf_is_reserved_by_its_pages_so_a_budget_holds_on_every_family(paged) -> None:
    """The red team's attack: a 10 KB, 100-page PDF was reserved 3,397 tokens by its bytes while
    the provider bills each page; one request spent 160 USD against a budget of 100. Now each
    page is reserved as its model bills a page: 30 requests at once over three families spend at
    most the budget and one reservation."""
    pdf = data_url(pdf_bytes(100))
    reservation = (100 * PAGE_BILLED * INPUT + 16 * OUTPUT) / 1e6  # its pages, and max_tokens 16

    def ask(n: int) -> httpx.Response:
        path, body = _with_pdf(("chat_completions", "responses", "messages")[n % 3], pdf, n)
        sent = {"model": FAKE_MODEL, "max_tokens": 16, **body} if "responses" not in path else {
            "model": FAKE_MODEL, "max_output_tokens": 16, **body}  # fmt: skip
        headers = {"Authorization": f"Bearer {PAGED}", "anthropic-version": "2023-06-01"}
        return httpx.post(f"{paged.url}{path}", json=sent, headers=headers, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(30) as pool:
        answers = list(pool.map(ask, range(30)))
    served = [answer for answer in answers if answer.status_code == 200]
    refused = [answer for answer in answers if answer.status_code == 429]
    others = [answer.text[:200] for answer in answers if answer.status_code not in (200, 429)]
    assert served and not others, others
    assert all("budget_exhausted" in answer.text for answer in refused)
    spent = httpx.get(f"{paged.url}/v1/spend", headers={"Authorization": f"Bearer {PAGED}"}, timeout=10).json()
    total = spent["budgets"]["budget_day"]["spent_usd"]
    assert total >= len(served) * 100 * PAGE_BILLED * INPUT / 1e6, "the fake billed every page"
    assert total <= PDF_BUDGET + reservation + 1e-9, f"{len(served)} served spent {total} USD"
