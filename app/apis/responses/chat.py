"""The chat conversation a Responses API input's checked items make (`to_messages`): a message as
it is, consecutive calls as one assistant message's `tool_calls` (with the assistant's text just
before them; each named, and a custom tool's input put, as the model is sent the tools:
`tools`), an output as a `tool` message (its images and files in a user message after the tool
messages), a compaction item's summary as an assistant message. A reasoning item is taken but not
sent on: a chat completions server takes no reasoning back (the model reasons afresh each turn).
Beside the messages, what items add: the tools of `additional_tools` (`added_tools`), the
settings of `configuration_update` (`configured`); (its `item_reference`s resolved: `apis.items.references`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ...errors import ApiError
from ..items.compaction import COMPACTION, summary_message, windowed
from ..items.input import ADDED_TOOLS, CALLS, CONFIGURED, OUTPUTS, TRIGGER, ResponseInput
from ..items.references import OutputItem
from ..openai import SYSTEM_ROLES, content_length
from .freeform import arguments_of
from .tools import sent_name

ATTACHED = "The tool calls above returned these too:"  # before the images and files of tool outputs


@dataclasses.dataclass(frozen=True)
class Stored:
    """Where a request's references are read, each raising ApiError (404) when there is nothing:
    the conversation a stored response continues (`previous_response_id`), an output item of a
    stored response (`item_reference`: None when there is none), a conversation's turns."""

    turns: Callable[[str], Earlier]
    item: OutputItem
    conversation: Callable[[str], Earlier]


def configured(items: list[dict[str, Any]], fields: dict[str, Any]) -> dict[str, Any]:
    """The request's fields with its input's `configuration_update` items applied, in order."""
    updates = [item for item in items if item["type"] == CONFIGURED]
    if not updates:
        return fields
    found = {**fields, "reasoning": dict(fields.get("reasoning", {})), "text": dict(fields.get("text", {}))}
    for update in updates:
        found["reasoning"].update(update.get("reasoning", {}))
        found["text"].update(update.get("text", {}))
    return found


def added_tools(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tools `additional_tools` items make available, in order."""
    return [tool for item in items if item["type"] == ADDED_TOOLS for tool in item["tools"]]


def to_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chat conversation `items` make (see the module docstring)."""
    messages: list[dict[str, Any]] = []
    attached: list[dict[str, Any]] = []  # the images and files of the tool outputs just read
    for item in items:
        kind = item["type"]
        if kind not in OUTPUTS:
            _attach(messages, attached)
        if kind == "message":
            role = "system" if item["role"] in SYSTEM_ROLES else item["role"]
            messages.append({"role": role, "content": item["content"]})
        elif kind in CALLS:
            arguments = item["arguments"] if kind == "function_call" else arguments_of(item["input"])
            function = {"name": sent_name(item.get("namespace"), item["name"]), "arguments": arguments}
            call = {"id": item["call_id"], "type": "function", "function": function}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and type(last["content"]) is not list:
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind in OUTPUTS:
            output = item["output"]
            text = output if type(output) is str else "\n".join(p["text"] for p in output if p["type"] == "text")
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": text})
            if type(output) is list:
                attached.extend(part for part in output if part["type"] != "text")
        elif kind == COMPACTION:
            if windowed(item["encrypted_content"]):  # it stands for everything before it
                messages[:] = [message for message in messages if message["role"] == "system"]
            messages.append(summary_message(item["encrypted_content"]))
    _attach(messages, attached)
    return messages


def _attach(messages: list[dict[str, Any]], attached: list[dict[str, Any]]) -> None:
    """The images and files tool outputs returned, as a user message after the tool messages."""
    if attached:
        messages.append({"role": "user", "content": [{"type": "text", "text": ATTACHED}, *attached]})
        attached.clear()


@dataclasses.dataclass(frozen=True)
class Earlier:
    """The turns a request continues (a stored response's, a conversation's): the chat
    conversation they make, and the tools their `additional_tools` items made available."""

    messages: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    tools: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def earlier_of(items: list[Any]) -> Earlier:
    """The turns kept items make (a conversation's, checked when they were added)."""
    checked = ResponseInput().deserialize(items) if items else []
    return Earlier(to_messages(checked), added_tools(checked))


def message_chars(message: dict[str, Any]) -> int:
    """The characters of a chat message: its content and its tool calls' names and arguments."""
    calls = message.get("tool_calls") or ()
    return content_length(message.get("content")) + sum(
        len(c["function"]["name"]) + len(c["function"]["arguments"]) for c in calls
    )


def triggered(items: list[dict[str, Any]]) -> bool:
    """Whether the input holds a compaction_trigger (OpenAI's clients send it last)."""
    return any(item["type"] == TRIGGER for item in items)


def turn_of(items: list[dict[str, Any]], generate: bool) -> list[dict[str, Any]]:
    """This request's input as chat messages; a 400 when nothing in it is for the model (a
    warmup's may be empty: it prepares the chain, no model reads it)."""
    turn = to_messages(items)
    if not turn and generate:
        detail = "The input holds no message and no tool output: nothing for the model to answer."
        raise ApiError("validation_error", detail, fields={"input": ["Send a message or a function_call_output too."]})
    return turn


def refuse_orphans(messages: list[dict[str, Any]]) -> None:
    """A 400 naming the first tool output whose call_id no call before it in the conversation has:
    the client's mistake, which no upstream takes (OpenAI answers it with a 400 too)."""
    called: set[str] = set()
    for message in messages:
        called.update(call["id"] for call in message.get("tool_calls") or ())
        if message["role"] == "tool" and message["tool_call_id"] not in called:
            call_id = message["tool_call_id"][:80]
            detail = f"No tool call found for the output with call_id {call_id!r}: no call before it has that id."
            action = "Send the call's item before its output, or chain from the response that made it."
            raise ApiError("validation_error", detail, action=action, fields={"input": [detail]})
