"""The JavaScript clients (openai-node, the Vercel AI SDK over OpenAI, Anthropic and Open Responses), as they are,
against ChatWait's chat completions, Responses and Messages APIs over the fake upstream scripted to
call tools: clients.mjs runs each scenario with Node and prints what the client reported. Their
packages (Node 22 among them) are pinned by tests/node/package-lock.json and installed by the test
command; `CHATWAIT_NODE_CLIENTS` names another such folder (scripts/clients-drift: the newest)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from ..conftest import FAKE_MODEL
from ..node import CLIENTS, NODE

pytestmark = pytest.mark.integration


def run(server, scenario: str, **env: str) -> dict:
    """What clients.mjs reports of `scenario` against `server` (`env`: the scenario's settings)."""
    done = subprocess.run(
        [str(NODE), str(CLIENTS / "clients.mjs"), server.url, FAKE_MODEL, scenario],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr
    reported = json.loads(done.stdout.strip().splitlines()[-1])
    assert reported.pop("ok"), reported
    return reported


def test_openai_node_accumulates_two_streamed_tool_calls(server) -> None:
    reported = run(server, "openai-tool-stream")
    assert reported["finish"] == "tool_calls"
    assert reported["calls"] == [["call_fake0", "get_weather", '{"city": "fake"}'],
                                 ["call_fake1", "get_weather", '{"city": "fake"}']]  # fmt: skip


@pytest.mark.parametrize("api", ["chat", "responses", "messages", "open-responses"])
def test_vercel_stream_text_runs_a_tool_and_answers(server, api: str) -> None:
    reported = run(server, f"vercel-{api}-stream-tool" if api != "chat" else "vercel-stream-tool")
    assert reported["calls"] == [["get_weather", {"city": "fake"}]], "called once, with its input parsed"
    assert reported["text"] == "The tool said: clear in fake" and reported["finish"] == "stop"


@pytest.mark.parametrize("api", ["chat", "responses", "open-responses"])
def test_vercel_generate_object_gets_an_object_of_its_schema(server, api: str) -> None:
    scenario = f"vercel-{api}-generate-object" if api != "chat" else "vercel-generate-object"
    assert run(server, scenario) == {"object": {"city": "fake", "days": 1.5}}


def test_openai_node_accumulates_streamed_function_calls_of_the_responses_api(server) -> None:
    reported = run(server, "openai-responses-tool-stream")
    assert reported == {
        "status": "completed",
        "items": [
            ["reasoning", None, None],
            ["function_call", "call_fake0", '{"city": "fake"}'],
            ["function_call", "call_fake1", '{"city": "fake"}'],
        ],
    }


def test_openai_node_runs_a_tool_loop_over_the_responses_websocket(server) -> None:
    """openai-node's `ResponsesWS` (over the `ws` package): two turns chained by
    previous_response_id on one socket, with `store` true and false."""
    turn = ["function_call", "get_weather", "response.completed", "The tool said: sunny"]
    assert run(server, "openai-responses-websocket") == {"true": turn, "false": turn}
