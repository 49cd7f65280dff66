"""A response's output items as objects, from where its events fell (`layout`) and where it
stands (its text, parts and outcome): what its terminal event carries, GET /v1/responses/{id}
answers and a conversation appends; an item as it opens; and the `done` events that close it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...providers.deltas import ReplyParts
from .layout import FUNCTION_CALL, MESSAGE, REASONING_PART, REFUSAL_PART, TEXT_PART, Item, Layout
from .replies import CUSTOM_TOOL_CALL, call_item, item_status, output_item
from .tools import Called

if TYPE_CHECKING:
    from ...generation.outcome import Outcome

# Each content part's delta event, by the part's kind.
DELTA_EVENTS = {TEXT_PART: "output_text", REFUSAL_PART: "refusal", REASONING_PART: "reasoning_text"}


def output_items(
    layout: Layout,
    message_id: str,
    text: str,
    parts: ReplyParts | None,
    outcome: Outcome | None,
    called: Mapping[str, Called],
    logprobs: bool,
    prepared: bool,
) -> list[dict[str, Any]]:
    """The reply's output items in output order (`outcome` None: in progress); once ended, a reply
    without any item has its empty message (`message_id`), a warmup (`prepared`) none."""
    status = item_status(outcome)
    if not layout.items:
        if outcome is None or prepared:
            return []
        return [output_item(MESSAGE, message_id, status, {TEXT_PART: text})]
    found = parts or ReplyParts()
    texts = {TEXT_PART: text, REFUSAL_PART: found.refusal, REASONING_PART: found.reasoning}
    entries = found.logprobs if logprobs else None
    output = []
    for item in layout.items:
        if item.kind != FUNCTION_CALL:
            given = {part: texts[part] for part, _ in item.parts}
            output.append(output_item(item.kind, item.item_id, status, given, entries))
            continue
        index = item.call.index if item.call is not None else -1
        arguments = found.tool_calls[index].arguments if 0 <= index < len(found.tool_calls) else ""
        output.append(call_item(item.item_id, status, item.call, arguments, called))
    return output


def opening_item(item: Item, called: Mapping[str, Called]) -> dict[str, Any]:
    """An item as it opens."""
    if item.kind == FUNCTION_CALL:
        return call_item(item.item_id, "in_progress", item.call, "", called)
    return output_item(item.kind, item.item_id, "in_progress", {})


def closing_events(output_index: int, item: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The `done` events of one output item as it ended: its parts', then its own."""
    events: list[tuple[str, dict[str, Any]]] = []
    place = {"item_id": item["id"], "output_index": output_index}
    if item["type"] == FUNCTION_CALL:
        done = {**place, "name": item["name"], "arguments": item["arguments"]}
        events.append(("response.function_call_arguments.done", done))
    elif item["type"] == CUSTOM_TOOL_CALL:
        events.append(("response.custom_tool_call_input.done", {**place, "input": item["input"]}))
    for index, part in enumerate(item.get("content", [])):
        kind = part["type"]
        said = {"refusal": part.get("refusal")} if kind == REFUSAL_PART else {"text": part["text"]}
        if kind == TEXT_PART:
            said["logprobs"] = part["logprobs"]
        events.append((f"response.{DELTA_EVENTS[kind]}.done", {**place, "content_index": index, **said}))
        events.append(("response.content_part.done", {**place, "content_index": index, "part": part}))
    events.append(("response.output_item.done", {"output_index": output_index, "item": item}))
    return events
