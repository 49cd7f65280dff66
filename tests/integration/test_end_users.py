"""End users behind one key, on two instances x two workers sharing Redis: 50 concurrent requests
of one new end user are held to the key's user_budget_day (spend within it and one reservation),
user_rpm and user_max_streams, while another end user of the same key is served; the refusals
name the end user's limit; the end user reaches the log line and the upstream, never a metric;
the spend report adds up to the answers' cost headers, per key and per end user."""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from app.accounts import budget
from harness.processes import ChatWaitServer, FakeUpstream

from ..conftest import FAKE_MODEL, server_env

pytestmark = pytest.mark.integration

BUDGETED = "users-budget-key-0123456789abcdef"
RATED = "users-rpm-key-0123456789abcdef"
STREAMING = "users-streams-key-0123456789abcdef"
INPUT, OUTPUT = 100.0, 1_000.0  # USD per million tokens: a token of output is a tenth of a cent
MAX_TOKENS = 20
USER_BUDGET = 0.06  # about five answers of 10 tokens
USER_RPM = 5
USER_STREAMS = 2
ADMIN = "users-admin-key-0123456789abcdef"


@pytest.fixture(scope="module")
def instances(fake: FakeUpstream, redis_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list]:
    folder = tmp_path_factory.mktemp("end-users")
    (folder / "upstreams.yaml").write_text(
        f"upstreams:\n  - {{name: fake, url: {fake.base_url!r}}}\n"
        f"prices: {{{FAKE_MODEL}: {{input: {INPUT}, output: {OUTPUT}}}}}\n"
    )
    (folder / "keys").write_text(
        f"{BUDGETED} name=budgeted budget_day=100 user_budget_day={USER_BUDGET}\n"
        f"{RATED} name=rated rpm=1000 user_rpm={USER_RPM}\n"
        f"{STREAMING} name=streaming user_max_streams={USER_STREAMS}\n"
    )
    env = server_env("", UPSTREAMS_FILE=str(folder / "upstreams.yaml"), CHATWAIT_API_KEYS_FILE=str(folder / "keys"),
                     STREAM_STORE="redis", REDIS_URL=redis_server.url, WEB_CONCURRENCY="2",
                     ADMIN_API_KEY=ADMIN)  # fmt: skip
    running = [ChatWaitServer(env), ChatWaitServer(env)]
    yield running
    for server in running:
        server.stop()


@pytest.fixture(scope="module")
def servers(instances: list[ChatWaitServer]) -> list[str]:
    return [server.url for server in instances]


def _ask(url: str, key: str, content: str, user: str, stream: bool = False) -> httpx.Response:
    body = {"model": FAKE_MODEL, "max_tokens": MAX_TOKENS, "messages": [{"role": "user", "content": content}],
            "stream": stream, "user": user}  # fmt: skip
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def _flood(servers: list[str], key: str, content: str, user: str, stream: bool = False) -> list[httpx.Response]:
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        return list(pool.map(lambda n: _ask(servers[n % 2], key, content, user, stream), range(50)))


def _refusals(answers: list[httpx.Response], code: str, limit: str, user: str) -> list[httpx.Response]:
    refused = [answer for answer in answers if answer.status_code == 429]
    for answer in refused:
        error = answer.json()["error"]
        assert error["code"] == code and f"({limit})" in error["message"], error
        assert f"end user {user!r}" in error["message"] and int(answer.headers["retry-after"]) >= 1
    return refused


def test_an_end_users_budget_holds_across_instances_and_other_end_users_are_served(servers, redis_server) -> None:
    user = f"alice-{uuid.uuid4().hex[:8]}"  # a new end user: its first requests race
    answers = _flood(servers, BUDGETED, "Hello @tokens=10 @delay_ms=20", user)
    served = [answer for answer in answers if answer.status_code == 200]
    refused = _refusals(answers, "budget_exhausted", "user_budget_day", user)
    assert len(served) + len(refused) == 50 and served and refused, [a.status_code for a in answers]
    prompt = served[0].json()["usage"]["prompt_tokens"]
    reservation = (prompt * INPUT + MAX_TOKENS * OUTPUT) / 1e6
    costs = sum(float(answer.headers["x-chatwait-cost-usd"]) for answer in served)
    assert costs <= USER_BUDGET + reservation + 1e-9, "within the budget and one reservation"
    day = budget.periods(time.time()).day
    spent = int(redis_server.client().get(f"chatwait:limits:{{budgeted}}:u:{user}:spent:{day}"))
    assert spent == pytest.approx(budget.nano(costs), abs=len(served)), "settled: what the answers cost"
    other = _ask(servers[1], BUDGETED, "Hello @tokens=10", f"bob-{uuid.uuid4().hex[:8]}")
    assert other.status_code == 200, "another end user of the same key is served"


def test_an_end_users_rpm_holds_across_instances_and_other_end_users_are_served(servers) -> None:
    user = f"carol-{uuid.uuid4().hex[:8]}"
    answers = _flood(servers, RATED, "Hello @tokens=3", user)
    served = [answer for answer in answers if answer.status_code == 200]
    refused = _refusals(answers, "rate_limit_exceeded", "user_rpm", user)
    assert len(served) == USER_RPM and len(refused) == 50 - USER_RPM, [a.status_code for a in answers]
    assert _ask(servers[0], RATED, "Hello @tokens=3", f"dave-{uuid.uuid4().hex[:8]}").status_code == 200


def test_an_end_users_streams_are_held_to_max_streams_and_other_end_users_are_served(servers, fake) -> None:
    user, content = f"erin-{uuid.uuid4().hex[:8]}", f"Hello {uuid.uuid4().hex[:8]} @tokens=6 @delay_ms=100"
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        flooding = pool.submit(_flood, servers, STREAMING, content, user, True)
        time.sleep(0.2)
        other = pool.submit(_ask, servers[0], STREAMING, "Hello @tokens=2", f"frank-{uuid.uuid4().hex[:8]}", True)
        answers, others = flooding.result(), other.result()
    assert others.status_code == 200 and "[DONE]" in others.text, "another end user streams meanwhile"
    served = [answer for answer in answers if answer.status_code == 200]
    refused = _refusals(answers, "rate_limit_exceeded", "user_max_streams", user)
    assert len(served) >= USER_STREAMS and refused and len(served) + len(refused) == 50
    upstream = fake.outcomes_for(content)
    spans = sorted((o["started"], 1) for o in upstream) + sorted((o["ended"], -1) for o in upstream if "ended" in o)
    running = most = 0
    for _, change in sorted(spans, key=lambda span: (span[0], span[1])):
        running += change
        most = max(most, running)
    assert len(upstream) == len(served) and most <= USER_STREAMS, "never more than user_max_streams at once"


def test_the_end_user_is_in_the_log_and_sent_upstream_and_never_a_metric_label(instances, servers, fake) -> None:
    user, content = f"grace-{uuid.uuid4().hex[:8]}", f"Hello {uuid.uuid4().hex[:8]} @tokens=2"
    answer = httpx.post(
        f"{servers[0]}/v1/chat/completions",
        json={"model": FAKE_MODEL, "messages": [{"role": "user", "content": content}]},
        headers={"Authorization": f"Bearer {RATED}", "X-ChatWait-User": user},
    )
    assert answer.status_code == 200, answer.text
    assert fake.outcomes_for(content)[-1].get("options", {}).get("user") is None, "the header is ChatWait's own"
    sent = _ask(servers[0], RATED, content, user)
    assert fake.outcomes_for(content)[-1]["options"]["user"] == user, "the family's field is passed on"
    assert sent.status_code == 200
    assert user not in httpx.get(f"{servers[0]}/metrics", timeout=10).text
    completed = [r for r in instances[0].log_records() if r.get("event") == "request_completed"]
    said = [r for r in completed if r.get("end_user") == user]
    assert [r["status"] for r in said] == [200, 200], "each of its requests' completion line names it"
    bad = httpx.post(
        f"{servers[0]}/v1/chat/completions",
        json={"model": FAKE_MODEL, "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {RATED}", "X-ChatWait-User": "a\tb"},
    )
    assert bad.status_code == 400 and "X-ChatWait-User" in bad.json()["error"]["message"], bad.text


def test_the_spend_report_adds_up_to_the_cost_headers_per_key_and_end_user(servers) -> None:
    users = [f"{name}-{uuid.uuid4().hex[:8]}" for name in ("ivan", "judy")]
    costs: dict[str, float] = {}
    for n in range(6):
        user = users[n % 2]
        answer = _ask(servers[n % 2], BUDGETED, "Hello @tokens=3", user)
        assert answer.status_code == 200, answer.text
        costs[user] = costs.get(user, 0.0) + float(answer.headers["x-chatwait-cost-usd"])
    admin = {"Authorization": f"Bearer {ADMIN}"}
    deadline = time.monotonic() + 10

    def reported() -> dict[str, float]:
        found = httpx.get(f"{servers[0]}/v1/admin/spend?key=budgeted&group_by=end_user", headers=admin, timeout=10)
        assert found.status_code == 200, found.text
        return {e["end_user"]: round(e["cost_usd"], 9) for e in found.json()["data"] if e["end_user"] in users}

    while reported() != {user: round(cost, 9) for user, cost in costs.items()}:  # each worker writes within a second
        assert time.monotonic() < deadline, (reported(), costs)
        time.sleep(0.2)
    own = httpx.get(f"{servers[1]}/v1/spend", headers={"Authorization": f"Bearer {BUDGETED}"}, timeout=10).json()
    mine = {e["end_user"]: e["month_usd"] for e in own["end_users"] if e["end_user"] in users}
    assert mine == pytest.approx(costs, abs=1e-9), "the key's own view shows its end users"
