"""What a Responses request asks of the model beyond the conversation, in chat completions' terms."""

from __future__ import annotations

from typing import Any

from .schemas import LOGPROBS_INCLUDED
from .tools import chat_tools, chosen

# Options passed on as they are, under the same names in chat completions.
PASSED = tuple("top_p user presence_penalty frequency_penalty service_tier prompt_cache_key safety_identifier".split())


def model_options(fields: dict[str, Any], added: list[dict[str, Any]]) -> dict[str, Any]:
    """What the model is asked beyond the conversation, in chat completions' terms: tools (the
    request's, then those its chain's items `added`) as chat tools, a named tool choice,
    `text.format` as `response_format`, `reasoning.effort` as `reasoning_effort`, `text.verbosity`
    as `verbosity`, log probabilities when `include` names them (or `top_logprobs` asks for
    alternatives). The choice of tool and parallel calls without tools ask for nothing and are
    not sent on."""
    options = {name: fields[name] for name in PASSED if name in fields}
    tools = [*fields.get("tools", ()), *added]
    if tools:
        options["tools"] = chat_tools(tools)
        choice = fields.get("tool_choice")
        if isinstance(choice, dict):
            options["tool_choice"] = {"type": "function", "function": {"name": chosen(choice, tools)}}
        elif choice is not None:
            options["tool_choice"] = choice
        if "parallel_tool_calls" in fields:
            options["parallel_tool_calls"] = fields["parallel_tool_calls"]
    text = fields.get("text", {})
    found = text.get("format")
    if found and found["type"] == "json_object":
        options["response_format"] = found
    elif found and found["type"] == "json_schema":
        spec = {name: found[name] for name in ("name", "description", "schema", "strict") if name in found}
        options["response_format"] = {"type": "json_schema", "json_schema": spec}
    if "verbosity" in text:
        options["verbosity"] = text["verbosity"]
    if "effort" in fields.get("reasoning", {}):
        options["reasoning_effort"] = fields["reasoning"]["effort"]
    if logprobs_asked(fields):
        options["logprobs"] = True
        if fields.get("top_logprobs"):
            options["top_logprobs"] = fields["top_logprobs"]
    return options


def logprobs_asked(fields: dict[str, Any]) -> bool:
    """Whether the output's text carries its tokens' log probabilities."""
    return LOGPROBS_INCLUDED in fields.get("include", ()) or bool(fields.get("top_logprobs"))
