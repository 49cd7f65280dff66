"""OpenAI's Response object as its API reference publishes it, field by field, as a JSON Schema:
what a client that validates responses (against OpenAI's schema, or the Open Responses one,
which adds the two penalties) checks. Written from the reference, not from ChatWait's contract."""

from __future__ import annotations

from typing import Any

import jsonschema

_STRING_OR_NULL = {"type": ["string", "null"]}
_USAGE = {
    "type": "object",
    "required": ["input_tokens", "input_tokens_details", "output_tokens", "output_tokens_details", "total_tokens"],
    "properties": {
        "input_tokens": {"type": "integer", "minimum": 0},
        "input_tokens_details": {
            "type": "object",
            "required": ["cached_tokens"],
            "properties": {"cached_tokens": {"type": "integer"}},
        },
        "output_tokens": {"type": "integer", "minimum": 0},
        "output_tokens_details": {
            "type": "object",
            "required": ["reasoning_tokens"],
            "properties": {"reasoning_tokens": {"type": "integer"}},
        },
        "total_tokens": {"type": "integer", "minimum": 0},
    },
}
_OUTPUT_TEXT = {
    "type": "object",
    "required": ["type", "text", "annotations", "logprobs"],
    "properties": {
        "type": {"const": "output_text"},
        "text": {"type": "string"},
        "annotations": {"type": "array"},
        "logprobs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["token", "logprob", "bytes", "top_logprobs"],
                "properties": {
                    "token": {"type": "string"},
                    "logprob": {"type": "number"},
                    "bytes": {"type": "array", "items": {"type": "integer"}},
                    "top_logprobs": {"type": "array"},
                },
            },
        },
    },
}
_MESSAGE = {
    "type": "object",
    "required": ["id", "type", "role", "status", "content"],
    "properties": {
        "type": {"const": "message"},
        "id": {"type": "string"},
        "role": {"const": "assistant"},
        "status": {"enum": ["in_progress", "completed", "incomplete"]},
        "content": {
            "type": "array",
            "items": {"anyOf": [_OUTPUT_TEXT, {"properties": {"type": {"const": "refusal"}}}]},
        },
    },
}
_FUNCTION_CALL = {
    "type": "object",
    "required": ["type", "call_id", "name", "arguments"],
    "properties": {"type": {"const": "function_call"}, "arguments": {"type": "string"}, "name": {"type": "string"}},
}
_REASONING = {
    "type": "object",
    "required": ["id", "type", "summary"],
    "properties": {"type": {"const": "reasoning"}, "summary": {"type": "array"}},
}
RESPONSE = {
    "type": "object",
    "required": [
        "id",
        "object",
        "created_at",
        "completed_at",
        "status",
        "error",
        "incomplete_details",
        "instructions",
        "max_output_tokens",
        "max_tool_calls",
        "model",
        "output",
        "parallel_tool_calls",
        "previous_response_id",
        "reasoning",
        "service_tier",
        "store",
        "temperature",
        "text",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "truncation",
        "usage",
        "user",
        "metadata",
        "background",
        "safety_identifier",
        "prompt_cache_key",
        "presence_penalty",
        "frequency_penalty",
        "conversation",
    ],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "response"},
        "created_at": {"type": "number"},
        "completed_at": {"type": ["number", "null"]},
        "status": {"enum": ["completed", "failed", "in_progress", "cancelled", "queued", "incomplete"]},
        "error": {
            "anyOf": [
                {"type": "null"},
                {"type": "object", "required": ["code", "message"], "properties": {"message": {"type": "string"}}},
            ]
        },
        "incomplete_details": {
            "anyOf": [{"type": "null"}, {"type": "object", "properties": {"reason": {"type": "string"}}}]
        },
        "instructions": {"type": ["string", "array", "null"]},
        "max_output_tokens": {"type": ["integer", "null"]},
        "max_tool_calls": {"type": ["integer", "null"]},
        "model": {"type": "string"},
        "output": {"type": "array", "items": {"anyOf": [_MESSAGE, _FUNCTION_CALL, _REASONING]}},
        "parallel_tool_calls": {"type": "boolean"},
        "previous_response_id": _STRING_OR_NULL,
        "reasoning": {
            "type": "object",
            "required": ["effort", "summary"],
            "properties": {"effort": _STRING_OR_NULL, "summary": _STRING_OR_NULL},
        },
        "service_tier": {"enum": ["auto", "default", "flex", "scale", "priority"]},
        "store": {"type": "boolean"},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "presence_penalty": {"type": "number"},
        "frequency_penalty": {"type": "number"},
        "top_logprobs": {"type": "integer", "minimum": 0, "maximum": 20},
        "text": {
            "type": "object",
            "required": ["format", "verbosity"],
            "properties": {
                "format": {"type": "object", "required": ["type"]},
                "verbosity": {"enum": ["low", "medium", "high"]},
            },
        },
        "tool_choice": {"type": ["string", "object"]},
        "tools": {"type": "array"},
        "truncation": {"enum": ["auto", "disabled"]},
        "usage": {"anyOf": [{"type": "null"}, _USAGE]},
        "user": _STRING_OR_NULL,
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        "background": {"type": "boolean"},
        "safety_identifier": _STRING_OR_NULL,
        "prompt_cache_key": _STRING_OR_NULL,
        "conversation": {
            "anyOf": [
                {"type": "null"},
                {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
            ]
        },
    },
    # OpenAI's rules that tie fields to the status.
    "allOf": [
        {
            "if": {"properties": {"status": {"const": "completed"}}},
            "then": {"properties": {"completed_at": {"type": "number"}, "usage": _USAGE}},
        },
        {"if": {"properties": {"status": {"const": "failed"}}}, "then": {"properties": {"error": {"type": "object"}}}},
        {
            "if": {"properties": {"status": {"const": "incomplete"}}},
            "then": {"properties": {"incomplete_details": {"type": "object"}}},
        },
    ],
}


def check_response(found: dict[str, Any]) -> None:
    """Fail unless `found` is a Response object as OpenAI's reference describes it."""
    jsonschema.Draft202012Validator(RESPONSE).validate(found)


def check_events(events: list[Any]) -> None:
    """Check the Response object of every streamed event that carries one."""
    carried = [event.data["response"] for event in events if "response" in event.data]
    assert carried, "no event carried the response object"
    for response in carried:
        check_response(response)
