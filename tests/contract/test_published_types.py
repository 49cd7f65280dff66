"""Every shape the newest openai and anthropic Python SDKs publish for what a client sends — the
Responses API's input items, content parts, tool outputs and tools; the Messages API's content
blocks, tool results' contents and roles — read from their type definitions (`tests/published`),
is taken by ChatWait, or left out and named: never a 400. A type an SDK adds fails the first test
until it has a sample here, and the second until ChatWait answers it so."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest

from harness.processes import ChatWaitServer, FakeUpstream

from ..conftest import FAKE_MODEL, server_env
from ..published import SDK_TYPES, published, published_in_field

pytestmark = pytest.mark.integration

RESPONSES = "openai.types.responses"
WEATHER = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}
ASK = {"type": "message", "role": "user", "content": "And now?"}
CALL = {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"}
TEXT_FILE = base64.b64encode(b"a,b\n1,2\n").decode()
PDF = "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.4 a tiny document").decode()
PNG = "data:image/png;base64,iVBORw0KGgo="

# A sample of each published Responses input item, with what it needs before it (a call before
# its output) and a user message after it: the model has something to answer.
ITEMS: dict[str, list[dict]] = {
    "message": [{"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Be brief."}]}],
    "function_call": [CALL, {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}],
    "function_call_output": [CALL, {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}],
    "custom_tool_call": [{"type": "custom_tool_call", "call_id": "c1", "name": "get_weather", "input": "x"}],
    "custom_tool_call_output": [
        {"type": "custom_tool_call", "call_id": "c1", "name": "get_weather", "input": "x"},
        {"type": "custom_tool_call_output", "call_id": "c1", "output": "done"},
    ],
    "reasoning": [{"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"}],
    "compaction": [{"type": "compaction", "encrypted_content": "chatwait.compaction.v1:We spoke of rain."}],
    "compaction_trigger": [{"type": "compaction_trigger"}],
    "additional_tools": [{"type": "additional_tools", "role": "developer", "tools": [WEATHER]}],
    "configuration_update": [{"type": "configuration_update", "reasoning": {"effort": "low"}}],
    "item_reference": [],  # needs a stored response: `test_an_item_reference_is_taken`
    "file_search_call": [{"type": "file_search_call", "id": "fs_1", "queries": ["q"], "status": "completed"}],
    "computer_call": [
        {"type": "computer_call", "id": "cu_1", "call_id": "cc_1", "pending_safety_checks": [], "status": "completed"}
    ],
    "computer_call_output": [
        {"type": "computer_call_output", "call_id": "cc_1", "output": {"type": "computer_screenshot", "image_url": PNG}}
    ],
    "web_search_call": [
        {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "q"}}
    ],
    "tool_search_call": [{"type": "tool_search_call", "arguments": {"query": "weather"}}],
    "tool_search_output": [{"type": "tool_search_output", "tools": [WEATHER]}],
    "image_generation_call": [{"type": "image_generation_call", "id": "ig_1", "result": None, "status": "completed"}],
    "code_interpreter_call": [
        {
            "type": "code_interpreter_call",
            "id": "ci_1",
            "code": "1",
            "container_id": "c",
            "outputs": [],
            "status": "completed",
        }
    ],
    "local_shell_call": [
        {
            "type": "local_shell_call",
            "id": "ls_1",
            "call_id": "l1",
            "status": "completed",
            "action": {"type": "exec", "command": ["ls"], "env": {}},
        }
    ],
    "local_shell_call_output": [{"type": "local_shell_call_output", "id": "l1", "output": "a.txt"}],
    "shell_call": [{"type": "shell_call", "call_id": "s1", "action": {"commands": ["ls"]}}],
    "shell_call_output": [
        {
            "type": "shell_call_output",
            "call_id": "s1",
            "output": [{"stdout": "a", "stderr": "", "outcome": {"type": "exit", "exit_code": 0}}],
        }
    ],
    "apply_patch_call": [
        {
            "type": "apply_patch_call",
            "call_id": "p1",
            "status": "completed",
            "operation": {"type": "delete_file", "path": "a.txt"},
        }
    ],
    "apply_patch_call_output": [{"type": "apply_patch_call_output", "call_id": "p1", "status": "completed"}],
    "mcp_list_tools": [{"type": "mcp_list_tools", "id": "ml_1", "server_label": "s", "tools": []}],
    "mcp_approval_request": [
        {"type": "mcp_approval_request", "id": "ma_1", "arguments": "{}", "name": "t", "server_label": "s"}
    ],
    "mcp_approval_response": [{"type": "mcp_approval_response", "approval_request_id": "ma_1", "approve": True}],
    "mcp_call": [{"type": "mcp_call", "id": "mc_1", "arguments": "{}", "name": "t", "server_label": "s"}],
    "program": [{"type": "program", "id": "pg_1", "call_id": "g1", "code": "1", "fingerprint": "f"}],
    "program_output": [{"type": "program_output", "id": "po_1", "call_id": "g1", "result": "1", "status": "completed"}],
}
# A part of each published type of a user's message, of an assistant's, of a tool's output.
INPUT_PARTS = {
    "input_text": {"type": "input_text", "text": "Look:"},
    "input_image": {"type": "input_image", "image_url": PNG, "detail": "original"},
    "input_file": {"type": "input_file", "file_data": TEXT_FILE, "filename": "table.csv"},
}
OUTPUT_PARTS = {
    "output_text": {"type": "output_text", "text": "Earlier.", "annotations": []},
    "refusal": {"type": "refusal", "refusal": "No."},
}
OUTPUT_ITEM_PARTS = {
    "input_text": {"type": "input_text", "text": "sunny"},
    "input_image": {"type": "input_image", "image_url": PNG},
    "input_file": {"type": "input_file", "file_data": PDF, "filename": "forecast.pdf"},
}
TOOLS = {
    kind: {"type": kind}
    for kind in (
        "file_search",
        "computer",
        "computer_use_preview",
        "web_search",
        "web_search_2025_08_26",
        "web_search_preview",
        "web_search_preview_2025_03_11",
        "mcp",
        "code_interpreter",
        "image_generation",
        "local_shell",
        "shell",
        "apply_patch",
        "tool_search",
        "programmatic_tool_calling",
    )
} | {
    "function": WEATHER,
    "custom": {"type": "custom", "name": "apply_patch"},
    "namespace": {"type": "namespace", "name": "crm", "tools": [WEATHER]},
}
# The Messages API's blocks: each published type in the message of a role that sends it.
BLOCKS = {
    "text": ("user", {"type": "text", "text": "Hi"}),
    "image": (
        "user",
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
    ),
    "document": ("user", {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Notes"}}),
    "search_result": (
        "user",
        {
            "type": "search_result",
            "source": "https://a.example",
            "title": "A",
            "content": [{"type": "text", "text": "x"}],
        },
    ),
    "thinking": ("assistant", {"type": "thinking", "thinking": "Hmm.", "signature": "sig"}),
    "redacted_thinking": ("assistant", {"type": "redacted_thinking", "data": "opaque"}),
    "tool_use": ("assistant", {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}),
    "tool_result": ("user", {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}),
    "server_tool_use": (
        "assistant",
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
    ),
    "web_search_tool_result": (
        "assistant",
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
    ),
    "web_fetch_tool_result": (
        "assistant",
        {"type": "web_fetch_tool_result", "tool_use_id": "srvtoolu_1", "content": {}},
    ),
    "code_execution_tool_result": (
        "assistant",
        {"type": "code_execution_tool_result", "tool_use_id": "srvtoolu_1", "content": {}},
    ),
    "bash_code_execution_tool_result": (
        "assistant",
        {"type": "bash_code_execution_tool_result", "tool_use_id": "srvtoolu_1", "content": {}},
    ),
    "text_editor_code_execution_tool_result": (
        "assistant",
        {"type": "text_editor_code_execution_tool_result", "tool_use_id": "srvtoolu_1", "content": {}},
    ),
    "tool_search_tool_result": (
        "assistant",
        {"type": "tool_search_tool_result", "tool_use_id": "srvtoolu_1", "content": {}},
    ),
    "container_upload": ("user", {"type": "container_upload", "file_id": "file_1"}),
}
RESULT_CONTENT = {
    "text": {"type": "text", "text": "sunny"},
    "image": BLOCKS["image"][1],
    "document": {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF[28:]}},
    "search_result": BLOCKS["search_result"][1],
    "browser_state": {"type": "browser_state", "url": "https://a.example"},
    "tool_reference": {"type": "tool_reference", "tool_name": "get_weather"},
}
ROLES = {"user", "assistant", "system"}
# Chat completions: a user's content parts, an assistant's.
CHAT_PARTS = {
    "text": {"type": "text", "text": "Look:"},
    "image_url": {"type": "image_url", "image_url": {"url": PNG}},
    "file": {"type": "file", "file": {"file_data": PDF, "filename": "forecast.pdf"}},
    "input_audio": {"type": "input_audio", "input_audio": {"data": "UklGRiQAAABXQVZF", "format": "wav"}},
}
CHAT_ASSISTANT_PARTS = {"text": {"type": "text", "text": "Earlier."}, "refusal": {"type": "refusal", "refusal": "No."}}


def _published() -> dict[str, set[str]]:
    """Every place's published types, read from the SDKs' definitions."""
    openai, anthropic = SDK_TYPES, SDK_TYPES
    return {
        "responses items": published(openai, f"{RESPONSES}.response_input_item_param", "ResponseInputItemParam"),
        "responses input parts": published(
            openai, f"{RESPONSES}.response_input_content_param", "ResponseInputContentParam"
        ),
        "responses output parts": published_in_field(
            openai, f"{RESPONSES}.response_output_message_param", "ResponseOutputMessageParam", "content"
        ),
        "responses tool output parts": published(
            openai,
            f"{RESPONSES}.response_function_call_output_item_list_param",
            "ResponseFunctionCallOutputItemListParam",
        ),
        "responses tools": published(openai, f"{RESPONSES}.tool_param", "ToolParam"),
        "messages blocks": published(anthropic, "anthropic.types.message_content_param", "MessageContentParam"),
        "messages tool result content": published_in_field(
            anthropic, "anthropic.types.tool_result_block_param", "ToolResultBlockParam", "content"
        ),
        "messages roles": published(anthropic, "anthropic.types.message_param", "MessageParam", "role"),
        "chat parts": published(
            openai, "openai.types.chat.chat_completion_content_part_param", "ChatCompletionContentPartParam"
        ),
        "chat assistant parts": published(
            openai, "openai.types.chat.chat_completion_assistant_message_param", "ContentArrayOfContentPart"
        ),
    }


SAMPLED = {
    "responses items": set(ITEMS),
    "responses input parts": set(INPUT_PARTS),
    "responses output parts": set(OUTPUT_PARTS),
    "responses tool output parts": set(OUTPUT_ITEM_PARTS),
    "responses tools": set(TOOLS),
    "messages blocks": set(BLOCKS),
    "messages tool result content": set(RESULT_CONTENT),
    "messages roles": ROLES,
    "chat parts": set(CHAT_PARTS),
    "chat assistant parts": set(CHAT_ASSISTANT_PARTS),
}


@pytest.fixture(scope="module")
def server(fake: FakeUpstream) -> Iterator[ChatWaitServer]:
    running = ChatWaitServer(server_env(fake.base_url))
    yield running
    running.stop()


def test_every_type_the_newest_sdks_publish_has_a_sample() -> None:
    found = _published()
    assert all(found.values()), f"the SDKs' type definitions were read ({SDK_TYPES})"
    assert {place: sorted(types) for place, types in found.items()} == {
        place: sorted(types) for place, types in SAMPLED.items()
    }, "a type the SDKs publish (or no longer do): give it a sample here, and make ChatWait take it or name it"


def _answered(answer: httpx.Response, named: str | None) -> set[str]:
    """The names the answer says were left out, once it is known to be answered."""
    assert answer.status_code == 200, answer.text[:400]
    said = answer.headers.get("x-chatwait-unknown-fields", "")
    return {name.strip() for name in said.split(",") if name.strip()}


@pytest.mark.parametrize("kind", sorted(set(ITEMS) - {"item_reference"}))
def test_every_responses_input_item_is_taken_or_named(server, kind: str) -> None:
    given = [ASK, *ITEMS[kind]] if kind == "compaction_trigger" else [*ITEMS[kind], ASK]  # the input's last item
    body = {"model": FAKE_MODEL, "input": given, "tools": [WEATHER]}
    named = _answered(httpx.post(f"{server.url}/v1/responses", json=body, timeout=30), kind)
    left_out = {name for name in named if name.startswith("input[].")}
    assert left_out <= {f"input[].{kind}"}, "only the item itself may be left out"


def test_an_item_reference_is_taken(server) -> None:
    first = httpx.post(f"{server.url}/v1/responses", json={"model": FAKE_MODEL, "input": "Hi"}, timeout=30).json()
    reference = {"type": "item_reference", "id": first["output"][0]["id"]}
    body = {"model": FAKE_MODEL, "input": [{"role": "user", "content": "Hi"}, reference, ASK]}
    assert not _answered(httpx.post(f"{server.url}/v1/responses", json=body, timeout=30), None)


@pytest.mark.parametrize(
    ("role", "part"),
    [("user", part) for part in INPUT_PARTS.values()] + [("assistant", part) for part in OUTPUT_PARTS.values()],
    ids=[f"user-{kind}" for kind in INPUT_PARTS] + [f"assistant-{kind}" for kind in OUTPUT_PARTS],
)
def test_every_responses_content_part_is_taken(server, role: str, part: dict) -> None:
    body = {"model": FAKE_MODEL, "input": [{"type": "message", "role": role, "content": [part]}, ASK]}
    assert not _answered(httpx.post(f"{server.url}/v1/responses", json=body, timeout=30), None)


@pytest.mark.parametrize("kind", sorted(OUTPUT_ITEM_PARTS))
def test_every_part_of_a_tool_output_is_taken(server, kind: str) -> None:
    output = {"type": "function_call_output", "call_id": "call_1", "output": [OUTPUT_ITEM_PARTS[kind]]}
    body = {"model": FAKE_MODEL, "input": [CALL, output], "tools": [WEATHER]}
    assert not _answered(httpx.post(f"{server.url}/v1/responses", json=body, timeout=30), None)


@pytest.mark.parametrize("kind", sorted(TOOLS))
def test_every_responses_tool_is_taken_or_named(server, kind: str) -> None:
    body = {"model": FAKE_MODEL, "input": "Hi", "tools": [TOOLS[kind]]}
    named = _answered(httpx.post(f"{server.url}/v1/responses", json=body, timeout=30), kind)
    assert named <= {f"tools[].{kind}"}


@pytest.mark.parametrize("kind", sorted(BLOCKS))
def test_every_messages_block_is_taken_or_named(server, kind: str) -> None:
    role, block = BLOCKS[kind]
    turns = [{"role": "user", "content": "Hi"}]
    if role == "assistant":
        turns.append({"role": "assistant", "content": [block, {"type": "text", "text": "Done."}]})
    elif kind == "tool_result":
        turns.append({"role": "assistant", "content": [BLOCKS["tool_use"][1]]})
        turns.append({"role": "user", "content": [block]})
    else:
        turns.append({"role": "assistant", "content": "Yes?"})
        turns.append({"role": "user", "content": [block, {"type": "text", "text": "And now?"}]})
    turns.append({"role": "user", "content": "And now?"}) if turns[-1]["role"] == "assistant" else None
    body = {"model": FAKE_MODEL, "max_tokens": 50, "messages": turns}
    named = _answered(httpx.post(f"{server.url}/v1/messages", json=body, timeout=30), kind)
    assert named <= {f"messages[].content[].{kind}"}


@pytest.mark.parametrize("kind", sorted(RESULT_CONTENT))
def test_every_part_of_a_tool_result_is_taken_or_named(server, kind: str) -> None:
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": [RESULT_CONTENT[kind]]}
    turns = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [BLOCKS["tool_use"][1]]},
        {"role": "user", "content": [result]},
    ]
    body = {"model": FAKE_MODEL, "max_tokens": 50, "messages": turns}
    named = _answered(httpx.post(f"{server.url}/v1/messages", json=body, timeout=30), kind)
    assert named <= {f"messages[].content[].content[].{kind}"}


@pytest.mark.parametrize("role", sorted(ROLES))
def test_every_messages_role_is_taken(server, role: str) -> None:
    turns = [{"role": role, "content": "Be brief." if role == "system" else "Hi"}, {"role": "user", "content": "Hi"}]
    body = {"model": FAKE_MODEL, "max_tokens": 50, "messages": turns}
    assert not _answered(httpx.post(f"{server.url}/v1/messages", json=body, timeout=30), None)


@pytest.mark.parametrize(
    ("role", "part"),
    [("user", part) for part in CHAT_PARTS.values()] + [("assistant", part) for part in CHAT_ASSISTANT_PARTS.values()],
    ids=[f"user-{kind}" for kind in CHAT_PARTS] + [f"assistant-{kind}" for kind in CHAT_ASSISTANT_PARTS],
)
def test_every_chat_completions_content_part_is_taken(server, role: str, part: dict) -> None:
    messages = [{"role": role, "content": [part]}, {"role": "user", "content": "And now?"}]
    answer = httpx.post(
        f"{server.url}/v1/chat/completions", json={"model": FAKE_MODEL, "messages": messages}, timeout=30
    )
    assert not _answered(answer, None)
