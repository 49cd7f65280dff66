"""Budgets in money across two instances sharing Redis: concurrent requests of one key spend at
most its budget and one request's reservation, rescued and taken-over streams too; a refusal is a 429
budget_exhausted in the family's shape with Retry-After; GET /v1/spend and /metrics say what the
key spent, which is what its answers said they cost."""

from __future__ import annotations

import base64
import concurrent.futures
import io
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator

import httpx
import PIL.Image
import pytest

from harness.processes import ChatWaitServer, FakeUpstream

from ..conftest import FAKE_MODEL, server_env
from ..sse import iter_events, parse, read_events
from .test_scale_out import FRESH, _workers_of

pytestmark = pytest.mark.integration

KEY = "budget-key-0123456789abcdef"
OTHER = "other-budget-key-0123456789abcdef"
TAKEN = "taken-budget-key-0123456789abcdef"
READER = "reader-budget-key-0123456789abcdef"
WATCHER = "watcher-budget-key-0123456789abcdef"
ATTACKER = "attacker-budget-key-0123456789abcdef"
INPUT, OUTPUT = 100.0, 1_000.0  # USD per million tokens: a token of output is a tenth of a cent
BUDGET = 1.0
MAX_TOKENS = 20
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def servers(fake: FakeUpstream, redis_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list]:
    folder = tmp_path_factory.mktemp("budgets")
    (folder / "upstreams.yaml").write_text(
        f"upstreams:\n  - {{name: fake, url: {fake.base_url!r}, allow_fields: [n_predict]}}\n"
        f"prices: {{{FAKE_MODEL}: {{input: {INPUT}, output: {OUTPUT}}}}}\n"
    )
    (folder / "keys").write_text(
        f"{KEY} name=team budget_day={BUDGET}\n{OTHER} name=other budget_month=0.1\n{TAKEN} name=taken budget_day=4\n"
        f"{READER} name=reader budget_day=5 pays=delivered\n{ATTACKER} name=attacker budget_day={BUDGET}\n"
        f"{WATCHER} name=watcher budget_day=5\n"
    )
    env = server_env("", UPSTREAMS_FILE=str(folder / "upstreams.yaml"), CHATWAIT_API_KEYS_FILE=str(folder / "keys"),
                     STREAM_STORE="redis", REDIS_URL=redis_server.url, WEB_CONCURRENCY="2",
                     UPSTREAM_RESCUES=str(RESCUES), UPSTREAM_TAKEOVERS=str(TAKEOVERS))  # fmt: skip
    running = [ChatWaitServer(env), ChatWaitServer(env)]
    yield running
    for server in running:
        server.stop()


@pytest.fixture(scope="module")
def instances(servers: list[ChatWaitServer]) -> list[str]:
    return [server.url for server in servers]


RESCUES = 2  # UPSTREAM_RESCUES
TAKEOVERS = 1  # UPSTREAM_TAKEOVERS


def _reservation(prompt: int, max_tokens: int = MAX_TOKENS) -> float:
    """The most a request can cost: its prompt and max_tokens, and for each continuation allowed
    (after a cut, or a takeover) the prompt and max_tokens sent again and max_tokens more generated."""
    again = RESCUES + TAKEOVERS
    return ((prompt + again * (prompt + max_tokens)) * INPUT + (1 + again) * max_tokens * OUTPUT) / 1e6


def _spend(url: str, auth: dict[str, str] = AUTH) -> dict:
    answer = httpx.get(f"{url}/v1/spend", headers=auth, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _ask(url: str, content: str) -> httpx.Response:
    body = {"model": FAKE_MODEL, "max_tokens": MAX_TOKENS, "messages": [{"role": "user", "content": content}]}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=AUTH, timeout=60)


def _costs(answers: list[httpx.Response]) -> float:
    return sum(float(answer.headers["x-chatwait-cost-usd"]) for answer in answers if answer.status_code == 200)


def test_fifty_concurrent_requests_on_two_instances_spend_at_most_the_budget_and_one_reservation(instances) -> None:
    content = "Hello @tokens=10 @delay_ms=20"
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda n: _ask(instances[n % 2], content), range(50)))
    served = [answer for answer in answers if answer.status_code == 200]
    refused = [answer for answer in answers if answer.status_code == 429]
    assert len(served) + len(refused) == 50 and served and refused, [a.status_code for a in answers]
    prompt = served[0].json()["usage"]["prompt_tokens"]
    for answer in refused:
        error = answer.json()["error"]
        assert (error["code"], error["type"]) == ("budget_exhausted", "insufficient_quota"), error
        assert "'team'" in error["message"] and "daily budget" in error["message"]
        assert 1 <= int(answer.headers["retry-after"]) <= 86_400
    spend = _spend(instances[1])["budgets"]["budget_day"]
    assert spend["spent_usd"] == pytest.approx(_costs(answers), abs=1e-6), "settled: what the answers cost"
    assert spend["spent_usd"] <= BUDGET + _reservation(prompt) + 1e-9
    more = []
    while len(more) < 200 and (not more or more[-1].status_code == 200):  # what the reservations left
        more.append(_ask(instances[len(more) % 2], "Hello @tokens=10"))
    assert more[-1].status_code == 429, "the budget ends"
    spent = _spend(instances[0])["budgets"]["budget_day"]
    assert spent["spent_usd"] == pytest.approx(_costs(answers + more), abs=1e-6)
    # ChatWait counts the prompt itself at admission: its estimate, a few tokens above the upstream's
    assert BUDGET - _reservation(2 * prompt) < spent["spent_usd"] <= BUDGET + _reservation(prompt) + 1e-9
    assert spent["remaining_usd"] == pytest.approx(max(0.0, BUDGET - spent["spent_usd"]), abs=1e-9)
    metrics = httpx.get(f"{instances[0]}/metrics", timeout=10).text
    assert 'chatwait_key_refusals_total{key="team",limit="budget_day"}' in metrics


def test_n_predict_images_and_padding_spend_at_most_the_budget_and_one_reservation(instances) -> None:
    """The red team's mix on 50 concurrent streams of one key over 2 instances x 2 workers: an
    allowed n_predict of 3000 against max_tokens 20, an image billed by its published rule, and
    100 KB of an unknown field; what the key spent stays within its budget and one reservation."""
    image = {"type": "image_url", "image_url": {"url": _png(1024, 1024), "detail": "high"}}

    def stream(n: int) -> tuple[int, float, int]:
        text = {"type": "text", "text": f"attack {n} @tokens=3000 @limit=llama @delay_ms=1"}
        body = {
            "model": FAKE_MODEL,
            "messages": [{"role": "user", "content": [text, image]}],
            "max_tokens": MAX_TOKENS,
            "n_predict": 3000,
            "knowledge_base": "lorem ipsum " * 400,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        auth = {"Authorization": f"Bearer {ATTACKER}"}
        answer = httpx.post(f"{instances[n % 2]}/v1/chat/completions", json=body, headers=auth, timeout=60)
        if answer.status_code != 200:
            return answer.status_code, 0.0, 0
        chunks = [json.loads(line[6:]) for line in answer.text.splitlines() if line.startswith("data: {")]
        usage = chunks[-1]["usage"]
        return 200, (usage["prompt_tokens"] * INPUT + usage["completion_tokens"] * OUTPUT) / 1e6, usage["prompt_tokens"]

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(stream, range(50)))
    served = [answer for answer in answers if answer[0] == 200]
    assert served and len(served) < 50 and {status for status, _, _ in answers} <= {200, 429}, answers
    assert all(prompt >= 765 for _, _, prompt in served), "the image is billed"
    spent = _spend(instances[0], {"Authorization": f"Bearer {ATTACKER}"})["budgets"]["budget_day"]["spent_usd"]
    assert spent == pytest.approx(sum(cost for _, cost, _ in served), abs=1e-6)
    assert spent <= BUDGET + _reservation(max(prompt for _, _, prompt in served)) + 1e-9


def _png(width: int, height: int) -> str:
    data = io.BytesIO()
    PIL.Image.new("RGB", (width, height), "white").save(data, "PNG")
    return "data:image/png;base64," + base64.b64encode(data.getvalue()).decode()


def test_rescued_streams_of_a_key_settle_what_they_cost(instances) -> None:
    """Streams cut by the upstream and continued on it cost their resent input too: the key pays
    what their `done` events say, and its spend stays within a reservation of its budget."""
    auth = {"Authorization": f"Bearer {OTHER}"}

    def stream(n: int) -> httpx.Response:
        body = {"message": f"Hi {n} @tokens=4 @delay_ms=10 @fault=reset@2 @fail_times=1", "max_tokens": 6}
        return httpx.post(f"{instances[n % 2]}/v1/chat/streaming", json=body, headers=auth, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(stream, range(20)))
    costs, refused, rescued = 0.0, 0, 0
    for answer in answers:
        if answer.status_code == 429:
            assert answer.json()["error_code"] == "budget_exhausted" and "monthly budget" in answer.json()["detail"]
            refused += 1
            continue
        done = parse(answer.content)[0][-1]
        assert done.event == "done", done
        usage = done.data["usage"]
        if usage.get("generated_tokens", 0) > usage["completion_tokens"]:  # rescued (not one the budget lowered)
            plain = (usage["prompt_tokens"] * INPUT + usage["generated_tokens"] * OUTPUT) / 1e6
            assert usage["cost_usd"] > plain, "its resent input is paid for"
            rescued += 1
        costs += usage["cost_usd"]
        prompt = usage["prompt_tokens"]
    spend = _spend(instances[0], auth)["budgets"]["budget_month"]
    assert refused and rescued and spend["spent_usd"] == pytest.approx(costs, abs=1e-6)
    assert spend["spent_usd"] <= 0.1 + _reservation(prompt, 6) + 1e-9


def test_the_messages_api_refuses_in_anthropics_shape(instances) -> None:
    body = {"model": FAKE_MODEL, "max_tokens": MAX_TOKENS, "messages": [{"role": "user", "content": "@tokens=20"}]}
    for _ in range(120):
        answer = httpx.post(f"{instances[0]}/v1/messages", json=body, headers={"x-api-key": KEY}, timeout=30)
        if answer.status_code != 200:
            break
    assert answer.status_code == 429, answer.text
    found = answer.json()
    assert found["type"] == "error" and found["error"]["type"] == "rate_limit_error"
    assert "daily budget" in found["error"]["message"] and int(answer.headers["retry-after"]) >= 1


def test_spend_without_a_budget_is_empty_and_without_keys_keyless(instances, fake) -> None:
    assert set(_spend(instances[0])["budgets"]) == {"budget_day"}
    assert set(_spend(instances[0], {"Authorization": f"Bearer {OTHER}"})["budgets"]) == {"budget_month"}
    assert httpx.get(f"{instances[0]}/v1/spend", timeout=10).status_code == 401
    open_api = ChatWaitServer(server_env(fake.base_url))
    try:
        answer = httpx.get(f"{open_api.url}/v1/spend", timeout=10)
        assert answer.status_code == 200 and answer.json() == {"object": "spend", "key": None, "budgets": {}}
    finally:
        open_api.stop()


def _settled(url: str, auth: dict[str, str], below: float) -> float:
    """The key's spend today once its running generations have settled (no reservation held) and
    it stopped moving; under `below`."""
    deadline, last = time.monotonic() + 20, None
    while True:
        found = _spend(url, auth)["budgets"]["budget_day"]
        spent = found["spent_usd"]
        if found["reserved_usd"] == 0 and spent == last:
            assert spent < below, spent
            return spent
        assert time.monotonic() < deadline, found
        last = spent
        time.sleep(0.3)


def test_the_spend_shows_what_running_generations_reserve_apart_from_what_is_spent(instances) -> None:
    """While a stream runs, /v1/spend (on either instance) shows its reservation as reserved, not
    spent, and takes it off what remains; once it ends, its cost is spent and nothing is reserved."""
    auth = {"Authorization": f"Bearer {WATCHER}"}
    before = _spend(instances[1], auth)["budgets"]["budget_day"]
    assert before["reserved_usd"] == 0
    body = {"message": "Watch @tokens=12 @delay_ms=150", "max_tokens": 40}
    with httpx.stream("POST", f"{instances[0]}/v1/chat/streaming", json=body, headers=auth, timeout=30) as answer:
        events = iter_events(answer)
        next(events), next(events)
        running = _spend(instances[1], auth)["budgets"]["budget_day"]
        frames = [next(events), *events]
    again = RESCUES + TAKEOVERS
    assert running["spent_usd"] == before["spent_usd"], "nothing spent until it ends"
    assert running["reserved_usd"] >= (1 + again) * 40 * OUTPUT / 1e6, "the most it can cost, every continuation's"
    left = running["budget_usd"] - running["spent_usd"] - running["reserved_usd"]
    assert running["remaining_usd"] == pytest.approx(left, abs=1e-9)
    cost = next(frame for frame in frames if frame.event == "done").data["usage"]["cost_usd"]
    after = _settled(instances[1], auth, below=5)
    assert after == pytest.approx(before["spent_usd"] + cost, abs=1e-9), "what it cost, settled"


def test_a_key_that_pays_for_delivery_pays_the_input_and_what_reached_its_clients(instances) -> None:
    """pays=delivered: a stream whose client left after a few chunks costs its key the input and
    the chunks its connection took; resumed to its end on the other instance, every chunk once
    (what a resume sends again is not charged twice); a whole answer, its input and its reply."""
    auth = {"Authorization": f"Bearer {READER}"}
    body = {"message": "Read @tokens=30 @delay_ms=20", "max_tokens": 40}
    with httpx.stream("POST", f"{instances[0]}/v1/chat/streaming", json=body, headers=auth, timeout=30) as cut:
        stream_id = cut.headers["x-stream-id"]
        for line in cut.iter_lines():
            if line == "id: 5":
                break
    first = _settled(instances[0], auth, below=_reservation(50, 40) / 2)
    url = f"{instances[1]}/v1/chat/streaming/{stream_id}"
    done = parse(httpx.get(url, headers={**auth, "Last-Event-ID": "2"}, timeout=30).content)[0][-1]
    usage = done.data["usage"]
    (attempt,) = usage["attempts"]
    paid_input = attempt["input_tokens"] * INPUT / 1e6
    chunks_first = round((first - paid_input) * 1e6 / OUTPUT, 6)
    assert chunks_first == int(chunks_first) and 5 <= chunks_first < 30, "the input and what its connection took"
    whole = _settled(instances[1], auth, below=1.0)
    assert whole == pytest.approx(paid_input + 30 * OUTPUT / 1e6, abs=1e-9), "every chunk once, not the replay"
    assert whole < usage["cost_usd"] + 1e-9
    httpx.get(url, headers={**auth, "Last-Event-ID": "0"}, timeout=30)  # all of it again: nothing new reached anyone
    assert _settled(instances[0], auth, below=1.0) == pytest.approx(whole, abs=1e-9)
    asked = {"model": FAKE_MODEL, "max_tokens": MAX_TOKENS, "messages": [{"role": "user", "content": "Hi @tokens=7"}]}
    answer = httpx.post(f"{instances[0]}/v1/chat/completions", json=asked, headers=auth, timeout=30).json()
    read = answer["usage"]["chatwait"]["attempts"][0]["input_tokens"]
    expected = whole + (read * INPUT + 7 * OUTPUT) / 1e6
    assert _settled(instances[1], auth, below=1.0) == pytest.approx(expected, abs=1e-9), "a whole answer: all of it"
    response = {"model": FAKE_MODEL, "input": "Hi @tokens=4", "max_output_tokens": MAX_TOKENS}
    made = httpx.post(f"{instances[1]}/v1/responses", json=response, headers=auth, timeout=30).json()
    read = made["usage"]["chatwait"]["attempts"][0]["input_tokens"]
    expected += (read * INPUT + 4 * OUTPUT) / 1e6
    assert _settled(instances[0], auth, below=1.0) == pytest.approx(expected, abs=1e-9), "a whole Response too"


def _moved_from(server, pid: int, stream_id: str) -> bool:
    """Whether worker `pid` logged `stream_moved` for this stream: a live worker stalled past its
    lease (a loaded machine) and another took its stream over."""
    lines = server.log_records()
    return any(
        line.get("event") == "stream_moved" and line.get("pid") == pid and line.get("stream_id") == stream_id
        for line in lines
    )


def test_streams_taken_over_from_a_killed_worker_settle_what_they_cost(servers) -> None:
    """A burst of a key's streams, and the worker holding most of them killed (SIGKILL): another
    worker continues each and settles its reservation; the key pays what every `done` says,
    the dead worker's attempt included, and stays within one reservation of its budget."""
    auth = {"Authorization": f"Bearer {TAKEN}"}
    server = servers[0]

    def start(n: int) -> tuple[str | None, str]:
        cid = f"budget-taken-{n}-{uuid.uuid4().hex[:8]}"
        body = {"message": f"Go {n} @tokens=100 @delay_ms=80", "max_tokens": 120}  # 8 s: killed mid-reply
        with (
            httpx.Client(base_url=server.url, timeout=60, limits=FRESH, headers=auth) as client,
            client.stream("POST", "/v1/chat/streaming", json=body, headers={"X-Correlation-Id": cid}) as answer,
        ):
            if answer.status_code == 429:
                return None, cid
            read_events(answer, 3)
            return answer.headers["x-stream-id"], cid

    began = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(14) as pool:
        started = list(pool.map(start, range(14)))
    pids = _workers_of(server, [cid for stream_id, cid in started if stream_id is not None])
    admitted = [(stream_id, pids[cid]) for stream_id, cid in started if stream_id is not None]
    owners = [pid for _, pid in admitted]
    victim = max(set(owners), key=owners.count)
    assert 3 <= len(admitted) < 14, "the budget lets some through, not all"
    os.kill(victim, signal.SIGKILL)
    killed_after = time.monotonic() - began  # its streams take 8 s: one it had finished is not taken over
    costs, prompt, taken = 0.0, 0, 0
    for stream_id, owner in admitted:
        whole = httpx.get(f"{servers[1].url}/v1/chat/streaming/{stream_id}", headers=auth, timeout=60)
        done = parse(whole.content)[0][-1]
        assert done.event == "done", (owner == victim, done)
        usage = done.data["usage"]
        lost = usage["attempts"][0].get("error_code") == "generation_lost"  # the dead worker's attempt
        moved = lost and owner != victim and _moved_from(server, owner, stream_id)  # it stalled past its lease
        assert not lost or owner == victim or moved, "only the dead (or a stalled) worker's streams are taken over"
        costs, prompt, taken = costs + usage["cost_usd"], usage["prompt_tokens"], taken + lost
    deadline = time.monotonic() + 20  # the taker settles as its generation ends, after its last event
    while (spent := _spend(servers[1].url, auth)["budgets"]["budget_day"]["spent_usd"]) != pytest.approx(costs, 1e-6):
        assert time.monotonic() < deadline, (spent, costs)
        time.sleep(0.2)
    assert taken >= 1, f"a stream the killed worker held was taken over (killed {killed_after:.1f} s in)"
    assert spent <= 4 + _reservation(2 * prompt, 120) + 1e-9
