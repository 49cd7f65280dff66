"""Codex CLI (`codex exec`, `@openai/codex` from npm, in tests/node) through ChatWait's Responses
API with its default configuration (a custom provider, `wire_api = "responses"`: its
`client_metadata`, its `namespace` of sub-agent tools, `web_search`), over the fake upstream
scripted to call its shell tool and then answer: the command ran, Codex ends with the answer, and
not one request of the session was refused; `codex exec resume` goes on (a second call and
answer) with the whole conversation sent back; with `supports_websockets`, its turns go over one
WebSocket. Two workers on Redis (a turn may land on either). The sandbox is bypassed: the test
checks the wire, not Codex's sandbox (which needs user namespaces)."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.processes import ChatWaitServer, FakeUpstream

from ..conftest import FAKE_MODEL, server_env, store_env
from ..node import client_bin, codex_env

pytestmark = pytest.mark.integration

CODEX = client_bin("codex")


@pytest.fixture(scope="module")
def server(fake: FakeUpstream, request: pytest.FixtureRequest) -> Iterator[ChatWaitServer]:
    """Codex's prompt (its instructions and tools) is some 6,000 tokens."""
    running = ChatWaitServer(server_env(fake.base_url, MAX_INPUT_TOKENS="200000", **store_env(request, "redis")))
    yield running
    running.stop()


def _codex(
    server: ChatWaitServer, home: Path, *args: str, websockets: bool = False
) -> subprocess.CompletedProcess[str]:
    env = codex_env(server.url, home, FAKE_MODEL, websockets)
    command = [str(CODEX), "exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", *args]
    return subprocess.run(
        command, cwd=home, env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL, check=False
    )


def test_codex_runs_its_shell_tool_and_answers_with_no_request_refused(server, fake, tmp_path) -> None:
    marker = tmp_path / "ran.txt"
    call = {"cmd": "echo ran > ran.txt && echo said-by-the-tool"}  # in its working folder, tmp_path
    args = base64.urlsafe_b64encode(json.dumps(call).encode()).decode().rstrip("=")
    result = _codex(server, tmp_path, f"Mark it @tool=exec_command @args={args}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert marker.read_text() == "ran\n", "Codex ran the exec_command call ChatWait streamed to it"
    answer = result.stdout.strip()
    assert answer.startswith("The tool said: ") and "said-by-the-tool" in answer, "the fake's answer to the result"
    records = server.log_records()
    refused = [r for r in records if r.get("event") == "request_completed" and r["status"] >= 400]
    assert not refused, "not one request of the session refused"
    named = {name for r in records if r.get("event") == "unknown_fields" for name in r["fields"]}
    assert {"client_metadata", "tools[].web_search"} <= named, "what it sends that ChatWait does not know, named"
    asked = [o for o in fake.stats()["outcomes"] if args in o.get("message", "")]
    assert len(asked) == 2, "the call, then the answer to its result"

    follow_up = base64.urlsafe_b64encode(json.dumps({"cmd": "echo second-turn"}).encode()).decode().rstrip("=")
    again = _codex(server, tmp_path, "resume", "--last", f"Again @tool=exec_command @args={follow_up}")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "second-turn" in again.stdout, "the second turn ran its call and answered"
    called, answered = [o for o in fake.stats()["outcomes"] if follow_up in o.get("message", "")]
    assert called["messages"] > asked[-1]["messages"], "the first turn (its call and result) sent back with the second"
    assert answered["messages"] > called["messages"], "then this turn's call and result"
    refused = [r for r in server.log_records() if r.get("event") == "request_completed" and r["status"] >= 400]
    assert not refused


def test_codex_over_the_websocket_runs_its_tool_loop_on_one_socket(server, fake, tmp_path) -> None:
    """`supports_websockets = true`: Codex opens /v1/responses as a WebSocket and makes every turn
    of its tool loop there (the call, then the answer to its result): none over HTTP, so no
    fallback and no delay for one."""
    call = {"cmd": "echo over-the-socket"}
    args = base64.urlsafe_b64encode(json.dumps(call).encode()).decode().rstrip("=")
    started = time.time()
    result = _codex(server, tmp_path, f"Socket @tool=exec_command @args={args}", websockets=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "over-the-socket" in result.stdout, "the fake's answer to the result, read over the socket"
    records = server.log_records()
    opened = [r for r in records if r.get("event") == "request_received" and r.get("method") == "GET"]
    session = {r["correlation_id"] for r in opened if r.get("path") == "/v1/responses"}
    upgraded = [r for r in records if r.get("event") == "request_completed" and r["correlation_id"] in session]
    assert upgraded and {r["status"] for r in upgraded} == {101}, "the upgrade was taken"
    posts = [r for r in records if r.get("event") == "request_received" and r.get("method") == "POST"]
    since = min(r["timestamp"] for r in opened if r["correlation_id"] in session)
    turns = [r for r in posts if r["timestamp"] >= since]
    assert turns and all(r.get("websocket") for r in turns), "every turn over the socket, none over HTTP"
    asked = [o for o in fake.stats()["outcomes"] if args in o.get("message", "")]
    assert len(asked) == 2, "the call, then the answer to its result"
    refused = [r for r in records if r.get("event") == "request_completed" and r["status"] >= 400]
    assert not refused, "not one turn refused"
    warmups = [r for r in records if r.get("event") == "unknown_fields" and "generate" in r["fields"]]
    assert not warmups, "its warmup (generate: false) is taken as such"
    assert len([o for o in fake.stats()["outcomes"] if o["started"] >= started]) == 2, "and the model not asked for it"
