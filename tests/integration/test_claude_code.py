"""Claude Code (`claude -p`, `@anthropic-ai/claude-code` from npm, in tests/node) through ChatWait's
Messages API, over the fake upstream scripted to call one tool (Bash) and then answer: the
command finishes with the scripted answer, the tool ran, and no request of the session was
refused (its deferred tools and thinking display are fields ChatWait takes and names). Over the fake as chat completions
(translated) and as a Messages API server (Claude Code's own bodies passed through)."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.processes import ChatWaitServer, FakeUpstream

from ..conftest import FAKE_MODEL, anthropic_upstream, completion_lines, server_env
from ..node import claude_code_env, client_bin

pytestmark = pytest.mark.integration

CLAUDE = client_bin("claude")


@pytest.fixture(scope="module", params=["chat", "messages"])
def server(
    fake: FakeUpstream, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChatWaitServer]:
    """Claude Code's prompt (its tools' definitions) is some 18,000 tokens."""
    if request.param == "chat":
        env = server_env(fake.base_url, MAX_INPUT_TOKENS="200000", MAX_TOKENS="")  # each model's own bound
    else:
        listing = anthropic_upstream(fake, tmp_path_factory.mktemp("claude"))
        env = server_env("", UPSTREAMS_FILE=str(listing), MAX_INPUT_TOKENS="200000", MAX_TOKENS="")
    running = ChatWaitServer(env)
    running.upstream = request.param
    yield running
    running.stop()


def _claude(server: ChatWaitServer, home: Path, prompt: str, tool: str = "Bash") -> subprocess.CompletedProcess[str]:
    env = claude_code_env(server.url, home, FAKE_MODEL)
    command = [str(CLAUDE), "-p", prompt, "--allowedTools", tool]
    return subprocess.run(
        command, cwd=home, env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL, check=False
    )


def test_claude_code_runs_the_tool_and_ends_with_the_answer(server, fake, tmp_path) -> None:
    marker = tmp_path / "ran.txt"
    call = {"command": f"echo ran > {marker}", "description": "Mark that the tool ran"}
    args = base64.urlsafe_b64encode(json.dumps(call).encode()).decode().rstrip("=")
    prompt = f"Mark it @tool=Bash @args={args}"
    result = _claude(server, tmp_path, prompt)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("The tool said: "), result.stdout  # the fake's answer to the tool's result
    assert marker.read_text() == "ran\n", "Claude Code ran the Bash call ChatWait streamed to it"
    records = server.log_records()
    refused = [r for r in records if r.get("event") == "request_completed" and r["status"] >= 400]
    assert not refused, "not one request of the session refused (its newest fields taken and named)"
    ended = completion_lines(records)
    assert [r["finish_reason"] for r in ended][-2:] == ["tool_calls", "stop"], "the call, then the answer"
    if server.upstream == "messages":  # Claude Code's own bodies reached the Messages API server
        sent = [o["body"] for o in fake.stats()["outcomes"] if o.get("api") == "messages" and args in json.dumps(o)]
        asked, answered = sent[-2:]
        assert isinstance(asked["system"], list) and asked["tools"], "its system blocks and tools, as it sent them"
        results = [b for b in answered["messages"][-1]["content"] if b["type"] == "tool_result"]
        assert [b["tool_use_id"] for b in results] == ["call_fake0"]


def test_claude_code_writes_a_long_file_and_prints_a_long_answer_whole(server, tmp_path) -> None:
    """With ChatWait's defaults, Claude Code's own max_tokens (32,000 and more) is lowered to the
    model's bound only (here a model nobody describes: 4,096), and said: a 9 KB file written through
    its Write tool arrives whole, and so does an answer of 2,000 words (MAX_TOKENS=1024 cut both)."""
    target = tmp_path / "long.txt"
    content = "".join(f"line {n:04d} of a long file Claude Code writes through ChatWait\n" for n in range(150))
    assert len(content) > 9000
    call = {"file_path": str(target), "content": content}
    args = base64.urlsafe_b64encode(json.dumps(call).encode()).decode().rstrip("=")
    result = _claude(server, tmp_path, f"Write it @tool=Write @args={args}", tool="Write")
    assert result.returncode == 0, result.stdout + result.stderr
    assert target.read_text() == content, "the tool's whole input reached Claude Code"
    told = _claude(server, tmp_path, "Tell me all of it @tool=none @tokens=2000 @limit=max_tokens")
    assert told.returncode == 0, told.stdout + told.stderr
    words = told.stdout.split()
    assert len(words) == 2000 and words[-1] == "tok1999", "the whole answer, not its first 1,024 tokens"
    completed = [r for r in server.log_records() if r.get("event") == "request_completed" and r.get("adapted")]
    assert any(change.startswith("max_tokens lowered to 4096") for r in completed for change in r["adapted"])
