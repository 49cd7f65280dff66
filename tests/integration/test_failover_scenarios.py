"""The failover benchmark's 16 scenarios against one deployment configured as the docs say: one
UPSTREAMS_FILE, each scenario's model on a server of its own (so that one scenario's breaker is
not another's), `fallbacks` and `context_window_fallbacks` to a healthy model, UPSTREAM_RETRIES=2,
TIMEOUT_SECONDS=30, everything else at its default but IDLE_TIMEOUT_SECONDS (12 s, above the
attempt's first-token limit, so that the 30-second stall costs the suite 12 s, not 30). The
client is the `openai` SDK with its own retries off. Each scenario checks the answer and
ChatWait's conduct on the wire (the fake's log of the attempts it met: how many, how far apart,
on which model).
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from harness.processes import ChatWaitServer, FakeUpstream
from harness.upstream_servers import SwitchServer

from ..conftest import CANARY_KEY, completion_lines
from ..sse import expected_reply

pytestmark = pytest.mark.integration

BACKUP = "other-model"
SCENARIOS = (
    "retry-after-429",
    "plain-429",
    "once-500",
    "down-503",
    "reset",
    "silent",
    "late-first-token",
    "cut-at-40",
    "stall",
    "malformed-chunk",
    "no-done",
    "context-length",
    "content-filter",
    "cut-no-prefill",
    "flapping",
    "accounting",
)
SWITCHED = ("silent", "flapping")  # served by a misbehaving server of their own, not the fake


class Deployment:
    """ChatWait, the fake behind every scenario's server, the SDK, and the two switch servers."""

    def __init__(self, server: ChatWaitServer, fake: FakeUpstream, switches: dict[str, SwitchServer]) -> None:
        self.server, self.fake, self.switches = server, fake, switches
        self.sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=60)

    def ask(self, model: str, directives: str, stream: bool = False) -> tuple[str, object, list[dict]]:
        """The message sent, the SDK's answer (the final completion when streamed, or the error
        raised), and the attempts the fake met for it."""
        message = f"{uuid.uuid4().hex} {directives} @only={model}"
        messages = [{"role": "user", "content": message}]
        try:
            if stream:
                usage = {"include_usage": True}
                with self.sdk.chat.completions.stream(model=model, messages=messages, stream_options=usage) as events:
                    answer: object = events.get_final_completion()
            else:
                answer = self.sdk.chat.completions.create(model=model, messages=messages)
        except openai.APIError as error:
            answer = error
        return message, answer, self.fake.outcomes_for(message)


def _listing(path: Path, fake: FakeUpstream, switches: dict[str, SwitchServer]) -> Path:
    rows = [
        f"  - {{name: {name}, url: {switches.get(name, fake).base_url!r}, models: [{name}], continuation: prefill}}"
        for name in SCENARIOS
    ]
    rows.append(f"  - {{name: backup, url: {fake.base_url!r}, models: [{BACKUP}], continuation: prefill}}")
    fallbacks = ", ".join(f"{name}: [{BACKUP}]" for name in SCENARIOS)
    path.write_text(
        "upstreams:\n" + "\n".join(rows) + f"\nfallbacks: {{{fallbacks}}}\ncontext_window_fallbacks: {{{fallbacks}}}\n"
    )
    return path


@pytest.fixture(scope="module")
def deployment(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    switches = {"silent": SwitchServer("silent"), "flapping": SwitchServer("pass", fake.port)}
    listing = _listing(tmp_path_factory.mktemp("scenarios") / "upstreams.yaml", fake, switches)
    env = {
        "UPSTREAMS_FILE": str(listing),
        "OPENAI_API_KEY": CANARY_KEY,
        "OPENAI_MODEL": SCENARIOS[0],
        "ALLOWED_MODELS": "",
        "UPSTREAM_RETRIES": "2",
        "TIMEOUT_SECONDS": "30",
        "IDLE_TIMEOUT_SECONDS": "12",
        "WEB_CONCURRENCY": "1",  # one worker: one view of each server's health
    }
    server = ChatWaitServer(env)
    found = Deployment(server, fake, switches)
    yield found
    found.sdk.close()
    server.stop()
    for switch in switches.values():
        switch.close()


def _answered(answer: object, model: str, tokens: int) -> None:
    assert not isinstance(answer, Exception), answer
    assert answer.model == model, f"answered by {answer.model}"  # type: ignore[attr-defined]
    assert answer.choices[0].message.content == expected_reply(tokens)  # type: ignore[attr-defined]
    assert answer.choices[0].finish_reason == "stop"  # type: ignore[attr-defined]


def _tried(attempts: list[dict]) -> list[tuple[str, str]]:
    return [(attempt["model"], attempt.get("how", "open")) for attempt in attempts]


def _gaps(attempts: list[dict], model: str) -> list[float]:
    starts = [attempt["started"] for attempt in attempts if attempt["model"] == model]
    return [later - earlier for earlier, later in itertools.pairwise(starts)]


def test_a_429_with_retry_after_is_retried_no_sooner_than_asked_then_falls_back(deployment) -> None:
    for stream in (False, True):
        _, answer, attempts = deployment.ask("retry-after-429", "@tokens=5 @fault=429 @retry_after=1", stream)
        _answered(answer, BACKUP, 5)
        assert _tried(attempts)[-1] == (BACKUP, "completed") and len(attempts) <= 4
        assert all(gap >= 1.0 for gap in _gaps(attempts, "retry-after-429")), "Retry-After honoured"


def test_a_429_without_retry_after_is_retried_with_backoff_then_falls_back(deployment) -> None:
    _, answer, attempts = deployment.ask("plain-429", "@tokens=5 @fault=429")
    _answered(answer, BACKUP, 5)
    assert [how for _, how in _tried(attempts)] == ["http_429"] * 3 + ["completed"], "UPSTREAM_RETRIES=2"
    assert all(gap >= 0.1 for gap in _gaps(attempts, "plain-429")), "backed off, not hammered"


def test_a_500_once_is_retried_on_the_same_model(deployment) -> None:
    for stream in (False, True):
        _, answer, attempts = deployment.ask("once-500", "@tokens=5 @fault=500 @fail_times=1", stream)
        _answered(answer, "once-500", 5)
        assert _tried(attempts) == [("once-500", "http_500"), ("once-500", "completed")]


def test_a_persistent_503_goes_to_the_fallback_and_then_rests(deployment) -> None:
    _, answer, attempts = deployment.ask("down-503", "@tokens=5 @fault=503")
    _answered(answer, BACKUP, 5)
    assert [model for model, _ in _tried(attempts)] == ["down-503"] * 3 + [BACKUP]
    later = [deployment.ask("down-503", "@tokens=5 @fault=503") for _ in range(4)]
    for _, answer, _ in later:
        _answered(answer, BACKUP, 5)
    met = sum(1 for _, _, attempts in later for model, _ in _tried(attempts) if model == "down-503")
    assert met <= 2 * 3, "its breaker opens after UPSTREAM_BREAKER_FAILURES requests: requests skip it"


def test_a_connection_reset_before_the_first_token_is_retried_then_falls_back(deployment) -> None:
    _, answer, attempts = deployment.ask("reset", "@tokens=5 @fault=reset@0", stream=True)
    _answered(answer, BACKUP, 5)
    assert _tried(attempts) == [("reset", "reset")] * 3 + [(BACKUP, "completed")]


def test_a_silent_server_a_20_second_first_token_and_a_stall_each_cost_one_limit(deployment) -> None:
    """The three scenarios that take time, at once (12 s of the suite). UPSTREAM_ATTEMPT_SECONDS
    unset: 10 s per attempt where a fallback could answer; neither slow route is tried twice and
    the fallback answers without waiting for the late token (20 s). A stall mid-answer is let go
    after IDLE_TIMEOUT_SECONDS and the reply continued where it stopped."""

    def timed(model: str, directives: str) -> tuple[float, object, list[dict]]:
        started = time.monotonic()
        _, answer, attempts = deployment.ask(model, directives, stream=True)
        return time.monotonic() - started, answer, attempts

    with ThreadPoolExecutor(3) as pool:
        asked = [
            pool.submit(timed, "silent", "@tokens=5"),
            pool.submit(timed, "late-first-token", "@tokens=5 @fault=late@20000"),
            pool.submit(timed, "stall", "@tokens=30 @fault=stall@12 @fail_times=1"),
        ]
        (silent_took, silent, silent_attempts), (late_took, late, late_attempts), (_, stalled, stall_attempts) = [
            future.result() for future in asked
        ]
    _answered(silent, BACKUP, 5)
    _answered(late, BACKUP, 5)
    assert deployment.switches["silent"].silenced == 1 and _tried(silent_attempts) == [(BACKUP, "completed")]
    assert _tried(late_attempts) == [("late-first-token", "client_closed"), (BACKUP, "completed")]
    assert silent_took < 20 and late_took < 20, "the late first token was not waited for"
    limited = [r for r in deployment.server.log_records() if r.get("event") == "upstream_fallback"]
    assert {r["model"] for r in limited if r["error_code"] == "upstream_timeout"} >= {"silent", "late-first-token"}
    _answered(stalled, "stall", 30)
    assert [a.get("how") for a in stall_attempts] == ["client_closed", "completed"], "the stalled request let go"


def test_a_reply_cut_at_40_of_60_tokens_is_continued_seamlessly(deployment) -> None:
    """The model's only server broke: the fallback continues the reply by prefill, exactly where
    it stopped. (A reply begun by one model and finished by another: its stream's chunks name the
    first, the finished completion the second.)"""
    for stream in (False, True):
        _, answer, attempts = deployment.ask("cut-at-40", "@tokens=60 @fault=reset@40 @fail_times=1", stream)
        _answered(answer, "cut-at-40" if stream else BACKUP, 60)
        assert _tried(attempts) == [("cut-at-40", "reset"), (BACKUP, "completed")]
        assert attempts[1].get("continued_from"), "one continuation, by prefill"


def test_a_malformed_chunk_is_skipped_and_the_answer_stays_whole(deployment) -> None:
    _, answer, attempts = deployment.ask("malformed-chunk", "@tokens=20 @fault=badjson@5", stream=True)
    _answered(answer, "malformed-chunk", 20)
    assert _tried(attempts) == [("malformed-chunk", "completed")]


def test_a_stream_without_done_is_complete_once_it_finished(deployment) -> None:
    for stream in (False, True):
        _, answer, attempts = deployment.ask("no-done", "@tokens=7 @fault=nodone", stream)
        _answered(answer, "no-done", 7)
        assert _tried(attempts) == [("no-done", "completed")], "no retry of a finished answer"


def test_an_input_over_the_context_window_goes_to_the_wider_model_once(deployment) -> None:
    _, answer, attempts = deployment.ask("context-length", "@tokens=4 @fault=context")
    _answered(answer, BACKUP, 4)
    assert _tried(attempts) == [("context-length", "http_400_context"), (BACKUP, "completed")], "never resent"


def test_a_content_filter_refusal_is_passed_on_and_given_to_no_other_model(deployment) -> None:
    _, answer, attempts = deployment.ask("content-filter", "@tokens=4 @fault=filter")
    assert isinstance(answer, openai.BadRequestError) and answer.code == "content_policy_violation"
    assert "content policy" in answer.message
    assert _tried(attempts) == [("content-filter", "http_400_filter")]


def test_a_cut_whose_fallback_refuses_prefill_is_continued_by_message(deployment) -> None:
    """The cut server rests (its model has a fallback); the fallback's server refuses the prefill,
    is asked by message, and repeats two tokens, which ChatWait drops."""
    directives = "@tokens=30 @fault=reset@12 @fail_times=1 @prefill=reject"
    _, answer, attempts = deployment.ask("cut-no-prefill", directives, stream=True)
    assert not isinstance(answer, Exception), answer
    assert answer.choices[0].message.content == expected_reply(30)  # type: ignore[attr-defined]
    assert [(a["model"], a.get("how")) for a in attempts] == [
        ("cut-no-prefill", "reset"),
        (BACKUP, "http_400_prefill"),
        (BACKUP, "completed"),
    ]


def test_a_flapping_primary_is_shielded_and_used_again_once_back(deployment) -> None:
    """Down (503) and up twice, 3 s each: every request is answered; while down, the breaker keeps
    requests off it after UPSTREAM_BREAKER_FAILURES; once up for good, it answers again after its
    rest (5 s, doubled by a second outage in a row)."""
    switch = deployment.switches["flapping"]
    answers = []
    for mode in ("status:503", "pass", "status:503", "pass"):
        switch.mode, switch.answered = mode, 0
        until = time.monotonic() + 3
        while time.monotonic() < until:
            answers.append(deployment.ask("flapping", "@tokens=3")[1])
            time.sleep(0.1)
        assert switch.answered <= 3 * 3 + 1, "3 requests of 3 attempts, then a probe a rest"
    for answer in answers:
        _answered(answer, answer.model, 3)  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while (answer := deployment.ask("flapping", "@tokens=3")[1]).model != "flapping":  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "back on the primary once its rest is over"
        time.sleep(0.2)


def test_failover_accounting_names_and_counts_the_model_that_answered(deployment) -> None:
    _, waited, _ = deployment.ask("accounting", "@tokens=6 @fault=503")
    _, streamed, _ = deployment.ask("accounting", "@tokens=6 @fault=503", stream=True)
    for answer in (waited, streamed):
        _answered(answer, BACKUP, 6)
        assert answer.usage is not None and answer.usage.completion_tokens == 6  # type: ignore[attr-defined]
    metrics = httpx.get(f"{deployment.server.url}/metrics", timeout=10).text
    assert 'chatwait_upstream_fallbacks_total{error_code="upstream_unavailable"}' in metrics
    fell = [r for r in deployment.server.log_records() if r.get("event") == "upstream_fallback"]
    assert any(r["model"] == "accounting" and r["fallback"] == BACKUP for r in fell)
    ended = completion_lines(deployment.server.log_records())
    assert ended and any(r.get("model") == BACKUP for r in ended), "the completion line names the model that answered"
