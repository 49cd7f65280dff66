"""Codex CLI (`codex exec`, `@openai/codex` from npm, in tests/node) through ChatWait's Responses
API with its default configuration (a custom provider, `wire_api = "responses"`: its
`client_metadata`, its `namespace` of sub-agent tools, `web_search`), over the fake upstream
scripted to call its shell tool and then answer: the command ran, Codex ends with the answer, and
not one request of the session was refused; `codex exec resume` goes on (a second call and
answer) with the whole conversation sent back; with `supports_websockets`, its turns go over one
WebSocket. Two workers on Redis (a turn may land on either). The sandbox is bypassed: the test
checks the wire, not Codex's sandbox (which needs user namespaces). With a model name Codex knows
(its default `gpt-6.2-sol`, and `gpt-5.6-terra`), its tools come as an `additional_tools` input
item and its shell runs inside its JavaScript `exec` tool: the same session, over HTTP and over
its WebSocket (whose warmup has an empty input)."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.processes import ChatWaitServer, FakeUpstream

from ..conftest import FAKE_MODEL, server_env, store_env
from ..node import CODEX_MODELS, client_bin, codex_env, codex_exec

pytestmark = pytest.mark.integration

CODEX = client_bin("codex")


@pytest.fixture(scope="module")
def server(fake: FakeUpstream, request: pytest.FixtureRequest) -> Iterator[ChatWaitServer]:
    """Codex's prompt (its instructions and tools) is some 6,000 tokens."""
    models = ",".join((FAKE_MODEL, *CODEX_MODELS))
    env = server_env(fake.base_url, MAX_INPUT_TOKENS="200000", ALLOWED_MODELS=models, MAX_TOKENS="",
                     **store_env(request, "redis"))  # fmt: skip
    running = ChatWaitServer(env)
    yield running
    running.stop()


def _codex(
    server: ChatWaitServer, home: Path, *args: str, websockets: bool = False, model: str = FAKE_MODEL
) -> subprocess.CompletedProcess[str]:
    env = codex_env(server.url, home, model, websockets)
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
    named = {name for r in records if r.get("event") == "request_completed" for name in r.get("unknown_fields", ())}
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
    warmups = [r for r in records if "generate" in r.get("unknown_fields", ())]
    assert not warmups, "its warmup (generate: false) is taken as such"
    assert len([o for o in fake.stats()["outcomes"] if o["started"] >= started]) == 2, "and the model not asked for it"


def _refused(server: ChatWaitServer, since: str) -> list[dict]:
    records = server.log_records()
    ended = [r for r in records if r.get("event") == "request_completed" and r["timestamp"] >= since]
    return [r for r in ended if r["status"] >= 400]


@pytest.mark.parametrize("websockets", [False, True], ids=["http", "websocket"])
@pytest.mark.parametrize("model", CODEX_MODELS)
def test_codex_with_a_model_it_knows_runs_its_tool_and_a_second_turn(server, fake, tmp_path, model, websockets) -> None:
    """Its tools arrive as an `additional_tools` item (no top-level `tools`): they reach the model
    as the request's would, its `functions.exec` call comes back as the custom tool call it
    sent, the command runs; `resume` sends the first turn back with the second."""
    since = max((r["timestamp"] for r in server.log_records()), default="")
    marker, again_marker = uuid.uuid4().hex, uuid.uuid4().hex  # the fake keeps a message's first 200 characters
    first = codex_exec(f"echo first-{model} > ran.txt && echo said-by-the-tool")
    result = _codex(server, tmp_path, f"{marker} {first}", websockets=websockets, model=model)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "ran.txt").read_text() == f"first-{model}\n", "Codex ran the command its exec tool was given"
    assert "said-by-the-tool" in result.stdout, "the fake's answer quotes the tool's output"
    called, answered = [o for o in fake.stats()["outcomes"] if marker in o.get("message", "")]
    assert answered["messages"] > called["messages"], "the call and its output sent back"
    second = codex_exec("echo second-turn")
    again = _codex(server, tmp_path, "resume", "--last", f"{again_marker} {second}", websockets=websockets, model=model)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "second-turn" in again.stdout
    (resumed, _) = [o for o in fake.stats()["outcomes"] if again_marker in o.get("message", "")]
    assert resumed["messages"] > answered["messages"], "the first turn sent back with the second"
    assert not _refused(server, since), "not one request of either session refused"
    records = [r for r in server.log_records() if r["timestamp"] >= since]
    named = {name for r in records if r.get("event") == "request_completed" for name in r.get("unknown_fields", ())}
    assert not {name for name in named if name.startswith("input")}, f"every item taken: {named}"
    if websockets:
        upgraded = [r for r in records if r.get("event") == "request_completed" and r["status"] == 101]
        assert len(upgraded) == 2, "each session over its socket"


def test_codex_writes_a_long_file_and_prints_a_long_answer_whole(server, tmp_path) -> None:
    """With ChatWait's defaults (Codex asks no max_output_tokens: each model's own bound, here
    4,096), a 9 KB tool input arrives whole and the command writes it; a 2,000-word answer too."""
    content = "".join(f"line {n:04d} of a long file Codex writes through ChatWait\n" for n in range(170))
    assert len(content) > 9000
    call = {"cmd": f"printf '%s' '{content}' > long.txt"}
    args = base64.urlsafe_b64encode(json.dumps(call).encode()).decode().rstrip("=")
    result = _codex(server, tmp_path, f"Write it @tool=exec_command @args={args}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "long.txt").read_text() == content, "the whole tool input reached Codex"
    told = _codex(server, tmp_path, "Tell me all of it @tool=none @tokens=2000 @limit=max_tokens")
    assert told.returncode == 0, told.stdout + told.stderr
    words = told.stdout.split()
    assert len(words) == 2000 and words[-1] == "tok1999", "the whole answer, not cut at max_output_tokens"
