"""The contract: a valid OpenAPI 3.1 document, mirrored by the marshmallow schemas, and obeyed
by live responses of the real server (JSON bodies and every SSE event's data)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import jsonschema
import pytest
import yaml
from marshmallow import fields as mfields
from marshmallow import validate
from openapi_spec_validator import validate as validate_spec

from app.apis.chat_completions.schemas import OPENAI_COMPONENTS, CompletionRequestSchema
from app.apis.conversations.schemas import CONVERSATION_COMPONENTS
from app.apis.messages.schemas import MESSAGES_COMPONENTS, MessagesRequestSchema
from app.apis.native.schemas import NATIVE_COMPONENTS, ChatRequestSchema
from app.apis.responses.schemas import RESPONSES_COMPONENTS
from app.apis.schema import BLANK, NOT_BLANK_PATTERN
from app.errors import CATALOGUE
from app.http.schemas import SERVICE_COMPONENTS

from ..conformance import CONTRACT, CONTRACT_PATH, SCHEMAS, conform
from ..sse import parse, responses_events


def test_the_contract_is_valid_openapi() -> None:
    validate_spec(CONTRACT)


_TYPES = {
    mfields.Integer: "integer",
    mfields.Float: "number",
    mfields.Boolean: "boolean",
    mfields.String: "string",
    mfields.List: "array",
    mfields.Dict: "object",
}


ALL_COMPONENTS = {
    **NATIVE_COMPONENTS,
    **SERVICE_COMPONENTS,
    **OPENAI_COMPONENTS,
    **RESPONSES_COMPONENTS,
    **CONVERSATION_COMPONENTS,
    **MESSAGES_COMPONENTS,
}


# The families whose requests' unknown fields are taken and named (UNKNOWN_FIELDS=pass): the
# components their request bodies reach say so; every other (the native API's, every reply's) refuses them.
TOLERANT_PATHS = ("/v1/chat/completions", "/v1/responses", "/v1/conversations", "/v1/messages")


def _refs(node: object) -> set[str]:
    """The components a part of the contract names."""
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[1]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node))
    return set()


def _reached_by_tolerant_requests() -> frozenset[str]:
    bodies = [
        operation["requestBody"]
        for path, operations in CONTRACT["paths"].items()
        if path.startswith(TOLERANT_PATHS)
        for operation in operations.values()
        if isinstance(operation, dict) and "requestBody" in operation
    ]
    reached, todo = set(), list(_refs(bodies))
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(_refs(SCHEMAS[name]))
    return frozenset(reached)


TOLERANT = _reached_by_tolerant_requests()


def _json_types(field: mfields.Field) -> tuple[str, ...]:
    """The JSON types a field takes: its own `json_types` (fields of several types), else by class."""
    if hasattr(field, "json_types"):
        return field.json_types
    if type(field) is mfields.Raw:
        return ("null",) if field.allow_none else ()
    return (_json_type(field),)


def _json_type(field: mfields.Field) -> str | None:
    for cls, name in _TYPES.items():
        if isinstance(field, cls):
            return name
    return None


@pytest.mark.parametrize("name", sorted(ALL_COMPONENTS))
def test_marshmallow_schemas_mirror_the_contract(name: str) -> None:
    schema = ALL_COMPONENTS[name]()
    component = SCHEMAS[name]
    properties = component["properties"]
    by_key = {(f.data_key or key): f for key, f in schema.fields.items()}
    assert set(by_key) == set(properties), f"{name}: field names differ"
    assert {k for k, f in by_key.items() if f.required} == set(component.get("required", [])), f"{name}: required"
    assert component.get("additionalProperties") is (name in TOLERANT), f"{name}: unknown fields taken or refused"
    for key, field in by_key.items():
        spec = properties[key]
        if isinstance(field, mfields.Nested):
            nested = field.nested if isinstance(field.nested, type) else type(field.nested)
            ref = spec.get("$ref") or next(option["$ref"] for option in spec["anyOf"] if "$ref" in option)
            assert ref.endswith("/" + next(k for k, v in ALL_COMPONENTS.items() if v is nested))
            continue
        options = spec.get("oneOf", spec.get("anyOf", ()))
        spec_type = spec.get("type") or [option["type"] for option in options if "type" in option]
        spec_types = spec_type if isinstance(spec_type, list) else [spec_type]
        assert set(_json_types(field)) <= set(spec_types), f"{name}.{key} type"
        for validator in field.validators:
            if isinstance(validator, validate.OneOf):
                allowed = [choice for choice in spec["enum"] if choice is not None]
                assert list(validator.choices) == allowed, f"{name}.{key} enum"
            if isinstance(validator, validate.Range):
                low = spec.get("minimum") if validator.min_inclusive else spec.get("exclusiveMinimum")
                assert (validator.min, validator.max) == (low, spec.get("maximum")), f"{name}.{key}"
        if isinstance(field, mfields.List) and isinstance(field.inner, mfields.Nested):
            inner = field.inner.nested if isinstance(field.inner.nested, type) else type(field.inner.nested)
            assert spec["items"]["$ref"].endswith("/" + next(k for k, v in ALL_COMPONENTS.items() if v is inner))


def test_request_bounds_match_the_default_settings() -> None:
    schema = ChatRequestSchema()
    request = SCHEMAS["ChatRequest"]["properties"]
    assert request["message"]["maxLength"] == schema.max_message_chars
    assert request["system"]["maxLength"] == schema.max_message_chars
    assert request["history"]["maxItems"] == schema.max_history_messages
    assert request["max_tokens"]["maximum"] == schema.max_tokens_limit


def test_completion_request_bounds_match_the_default_settings() -> None:
    schema = CompletionRequestSchema()
    request = SCHEMAS["CompletionRequest"]["properties"]
    assert request["messages"]["maxItems"] == schema.max_messages
    assert request["max_tokens"]["maximum"] == request["max_completion_tokens"]["maximum"] == schema.max_tokens_limit


def test_messages_request_bounds_match_the_default_settings() -> None:
    schema = MessagesRequestSchema()
    request = SCHEMAS["MessagesRequest"]["properties"]
    assert request["messages"]["maxItems"] == schema.max_messages
    assert "maximum" not in request["max_tokens"], "lowered to MAX_TOKENS, not refused"


def test_the_contract_lists_every_error_code_of_the_catalogue() -> None:
    assert SCHEMAS["ErrorCode"]["enum"] == list(CATALOGUE)


@pytest.mark.integration
def test_live_responses_conform(http: httpx.Client) -> None:
    conform("Health", http.get("/health").json())
    ready = http.get("/ready").json()
    assert ready["provider"] == "openai" and "upstream" in ready
    conform("Ready", ready)
    conform("ChatReply", http.post("/v1/chat/wait", json={"message": "@tokens=3"}).json())
    conform("Error", http.post("/v1/chat/wait", json={"message": ""}).json())
    conform("Error", http.get("/nowhere").json())
    conform("Error", http.post("/v1/chat/wait", json={"message": "@fault=401"}).json())

    streamed = http.post("/v1/chat/streaming", json={"message": "@tokens=3"})
    failed = http.post("/v1/chat/streaming", json={"message": "@tokens=3 @fault=reset@1"})
    names = {"stream": "StreamEvent", "chunk": "ChunkEvent", "done": "DoneEvent", "error": "ErrorEvent"}
    seen = set()
    for response in (streamed, failed):
        for event in parse(response.content)[0]:
            conform(names[event.event], event.data)
            seen.add(event.event)
    assert seen == set(names)

    stream_id = streamed.headers["x-stream-id"]
    conform("StopResult", http.delete(f"/v1/chat/streaming/{stream_id}").json())
    conform("Error", http.get(f"/v1/chat/streaming/{stream_id}", params={"last_event_id": "x"}).json())


def test_blank_is_one_rule_in_the_contract_and_the_app() -> None:
    """The contract's pattern for `message` lists the blank characters the app refuses, so a
    JSON Schema validator (any regex engine) and the app agree on every character."""
    pattern = SCHEMAS["ChatRequest"]["properties"]["message"]["pattern"]
    assert pattern == NOT_BLANK_PATTERN
    schema = ChatRequestSchema()
    contract = jsonschema.Draft202012Validator({"type": "string", "pattern": pattern})
    candidates = [chr(code) for code in range(0x3100)] + ["\ufeff", "\u200b", "\U0001f600"]
    for char in candidates:
        by_contract = contract.is_valid(char * 3)
        by_app = "message" not in schema.validate({"message": char * 3})
        assert by_contract == by_app == (char not in BLANK), repr(char)


def test_a_common_client_generator_takes_every_json_endpoint(tmp_path) -> None:
    """openapi-python-client generates every operation and model (only the YAML contract's own
    response, which it cannot parse, is left out)."""
    generator = Path(sys.executable).parent / "openapi-python-client"
    result = subprocess.run(
        [str(generator), "generate", "--path", str(CONTRACT_PATH), "--output-path", str(tmp_path / "client")],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    said = result.stdout + result.stderr
    assert result.returncode == 0, said
    assert "Unable to process schema" not in said and "will not be generated" not in said, said
    operations = {path.stem for path in (tmp_path / "client").glob("*/api/default/*.py")}
    assert {"create_chat_completion", "chat_streaming", "resume_stream", "stop_stream"} <= operations


@pytest.mark.integration
def test_live_responses_of_the_responses_api_conform(http: httpx.Client) -> None:
    body = {"model": "fake-model", "input": "@tokens=3", "metadata": {"k": "v"}}
    created = http.post("/v1/responses", json=body).json()
    conform("ResponseObject", created)
    conform("ResponseObject", http.get(f"/v1/responses/{created['id']}").json())
    for text in ("@tokens=3", "@tokens=3 @fault=reset@1", "@tokens=3 @finish=length"):
        streamed = http.post("/v1/responses", json={**body, "input": text, "stream": True})
        events = responses_events(streamed.content)
        assert [e.id for e in events] == list(range(len(events)))
        for event in events:
            conform("ResponseEvent", event.data)
            assert event.data["type"] == event.event
    conform("ResponseObject", http.post(f"/v1/responses/{created['id']}/cancel").json())
    conform("ResponseDeleted", http.delete(f"/v1/responses/{created['id']}").json())
    conform("OpenAIError", http.get(f"/v1/responses/{created['id']}").json())
    conform("OpenAIError", http.post("/v1/responses", json={"input": "x", "tools": [{"name": "x"}]}).json())


def test_the_tolerant_components_are_the_openai_and_anthropic_requests_only() -> None:
    assert {"CompletionRequest", "ResponseRequest", "MessagesRequest", "MessagesToolUseBlock"} <= TOLERANT
    assert not TOLERANT & {"ChatRequest", "HistoryMessage", "Completion", "ResponseObject", "Message"}


def test_the_strict_deployment_serves_a_strict_contract() -> None:
    """With UNKNOWN_FIELDS=refuse, no object of the served contract takes fields it does not list,
    and nothing is there only to be left out (hosted tools); the default serves the tolerant one."""
    from app.config import load_settings
    from app.http import FAMILIES
    from app.http.openapi import render_contract

    from ..conftest import server_env

    strict = yaml.safe_load(render_contract(load_settings(environ=server_env("", UNKNOWN_FIELDS="refuse")), FAMILIES))
    served = json.dumps(strict)
    assert '"additionalProperties": true' not in served and "x-chatwait-tolerant" not in served
    assert not [name for name in TOLERANT if strict["components"]["schemas"][name].get("additionalProperties", False)]
    validate_spec(strict)
    tolerant = json.dumps(yaml.safe_load(render_contract(load_settings(environ=server_env("")), FAMILIES)))
    assert tolerant.count("x-chatwait-tolerant") == 8, "the hosted tools' entries and their items', served"
