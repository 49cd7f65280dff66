"""Files a client attaches, as each upstream gets them: a Responses `input_file`, a chat
completions `file` part and a Messages `document` reach an OpenAI-compatible server as a `file`
part (a text file inlined as text, which every model reads), and an Anthropic server as a
`document` block; a file by URL is for Anthropic's servers only; a tool output's images and files
follow its tool messages; files count toward the input bounds (a 400 when over, never an
upstream call)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator

import httpx
import openai
import pytest

from harness.processes import ChatWaitServer, FakeUpstream

from ..conftest import FAKE_MODEL, anthropic_upstream, server_env

pytestmark = pytest.mark.integration

PDF_BYTES = b"%PDF-1.4 a forecast of rain " * 8
PDF = "data:application/pdf;base64," + base64.b64encode(PDF_BYTES).decode()
CSV = base64.b64encode(b"city,sky\nOslo,rain\n").decode()
INLINED = '<file name="weather.csv">\ncity,sky\nOslo,rain\n\n</file>'


@pytest.fixture(scope="module")
def server(fake: FakeUpstream) -> Iterator[ChatWaitServer]:
    running = ChatWaitServer(server_env(fake.base_url))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def claude(fake: FakeUpstream, tmp_path_factory) -> Iterator[ChatWaitServer]:
    """The same, its model on a server of Anthropic's Messages API."""
    listing = anthropic_upstream(fake, tmp_path_factory.mktemp("f"))
    running = ChatWaitServer(server_env("", UPSTREAMS_FILE=str(listing), MAX_INPUT_TOKENS="20000"))
    yield running
    running.stop()


def _user_parts(sent: dict) -> list:
    """The content parts of the last user message with parts the model was sent (`@reply=request`)."""
    return next(m["content"] for m in reversed(sent["messages"]) if isinstance(m.get("content"), list))


def test_a_responses_input_file_reaches_an_openai_compatible_server_as_a_file_part(sdk) -> None:
    content = [
        {"type": "input_file", "file_data": PDF, "filename": "forecast.pdf"},
        {"type": "input_file", "file_data": CSV, "filename": "weather.csv"},
        {"type": "input_text", "text": " @reply=request"},  # the fake reads the user's text parts joined
    ]
    answer = sdk.responses.create(model=FAKE_MODEL, input=[{"role": "user", "content": content}])
    parts = _user_parts(json.loads(answer.output_text))
    assert parts[0] == {"type": "file", "file": {"file_data": PDF, "filename": "forecast.pdf"}}
    assert parts[1] == {"type": "text", "text": INLINED}, "a text file inlined: every model reads it"
    listed = sdk.responses.input_items.list(answer.id).data[0].content
    assert [part.type for part in listed] == ["input_file", "input_text", "input_text"]


def test_a_chat_completions_file_part_and_a_tool_outputs_file_and_image(sdk) -> None:
    part = {"type": "file", "file": {"file_data": PDF, "filename": "forecast.pdf"}}
    asked = [{"role": "user", "content": [{"type": "text", "text": "@reply=request"}, part]}]
    sent = json.loads(sdk.chat.completions.create(model=FAKE_MODEL, messages=asked).choices[0].message.content)
    assert _user_parts(sent)[1] == part
    call = {"type": "function_call", "call_id": "c1", "name": "fetch", "arguments": "{}"}
    output = {
        "type": "function_call_output",
        "call_id": "c1",
        "output": [
            {"type": "input_text", "text": "here"},
            {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
            {"type": "input_file", "file_data": PDF, "filename": "forecast.pdf"},
        ],
    }
    given = [{"role": "user", "content": "Fetch it"}, call, output, {"role": "user", "content": "@reply=request"}]
    tools = [{"type": "function", "name": "fetch", "parameters": {"type": "object", "properties": {}}}]
    sent = json.loads(sdk.responses.create(model=FAKE_MODEL, input=given, tools=tools).output_text)["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "user", "user"]
    assert sent[2]["content"] == "here", "the tool message: its text"
    assert [p["type"] for p in sent[3]["content"]] == ["text", "image_url", "file"], "its image and file after it"


def test_a_file_reaches_an_anthropic_server_as_a_document_and_a_document_as_sent(claude, fake) -> None:
    with openai.OpenAI(base_url=f"{claude.url}/v1", api_key="unused", max_retries=0, timeout=30) as sdk:
        marker = uuid.uuid4().hex
        content = [
            {"type": "input_text", "text": marker},
            {"type": "input_file", "file_data": PDF, "filename": "forecast.pdf"},
            {"type": "input_file", "file_url": "https://files.example/report.pdf"},
        ]
        sdk.responses.create(model=FAKE_MODEL, input=[{"role": "user", "content": content}])
    (outcome,) = fake.outcomes_for(marker)
    blocks = outcome["body"]["messages"][-1]["content"]
    assert blocks[1] == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF.split(",", 1)[1]},
        "title": "forecast.pdf",
    }
    assert blocks[2] == {"type": "document", "source": {"type": "url", "url": "https://files.example/report.pdf"}}
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Notes"}}
    marker = uuid.uuid4().hex
    body = {
        "model": FAKE_MODEL,
        "max_tokens": 20,
        "messages": [{"role": "user", "content": [document, {"type": "text", "text": marker}]}],
    }
    assert httpx.post(f"{claude.url}/v1/messages", json=body, timeout=30).status_code == 200
    (outcome,) = fake.outcomes_for(marker)
    assert outcome["body"]["messages"][0]["content"][0] == document, "a Messages body reaches it as sent"


def test_a_document_reaches_an_openai_compatible_server_and_a_url_does_not(server) -> None:
    data = PDF.split(",", 1)[1]
    pdf = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": data},
        "title": "f.pdf",
    }
    ask = {"type": "text", "text": "@reply=request"}
    body = {"model": FAKE_MODEL, "max_tokens": 20, "messages": [{"role": "user", "content": [pdf, ask]}]}
    answer = httpx.post(f"{server.url}/v1/messages", json=body, timeout=30)
    sent = json.loads(answer.json()["content"][0]["text"])
    assert _user_parts(sent)[0] == {"type": "file", "file": {"file_data": PDF, "filename": "f.pdf"}}
    linked = [{"type": "input_file", "file_url": "https://files.example/a.pdf"}, {"type": "input_text", "text": "x"}]
    given = {"model": FAKE_MODEL, "input": [{"role": "user", "content": linked}]}
    refused = httpx.post(f"{server.url}/v1/responses", json=given, timeout=30)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "input"
    assert "Anthropic's servers only" in refused.json()["error"]["message"]


def test_files_count_toward_the_input_bounds(start_server, fake) -> None:
    small = start_server(MAX_INPUT_TOKENS="2000")
    big = "data:application/pdf;base64," + base64.b64encode(b"%PDF" + b"x" * 30_000).decode()  # ~10,000 tokens
    marker = uuid.uuid4().hex
    content = [{"type": "input_text", "text": marker}, {"type": "input_file", "file_data": big, "filename": "big.pdf"}]
    refused = httpx.post(
        f"{small.url}/v1/responses",
        json={"model": FAKE_MODEL, "input": [{"role": "user", "content": content}]},
        timeout=30,
    )
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "context_length_exceeded", refused.text
    assert not fake.outcomes_for(marker), "never sent upstream"
    counted = httpx.post(
        f"{small.url}/v1/responses/input_tokens",
        json={
            "model": FAKE_MODEL,
            "input": [{"role": "user", "content": [*content[:1], {**content[1], "file_data": PDF}]}],
        },
        timeout=30,
    ).json()
    assert counted["input_tokens"] >= len(PDF_BYTES) // 3, "a file's bytes counted as tokens"
