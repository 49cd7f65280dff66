"""The Responses API's input items, checked, and the conversation they make for the model.

`input` is a string (one user message) or a list of items: messages (content a string or
`input_text`, `output_text`, `refusal` and `input_image` parts), an earlier reply's
`function_call` and `custom_tool_call` items and the client's outputs for them, its `reasoning`
items, the `compaction` item of /v1/responses/compact (its summary, as an assistant message:
`compaction`), `additional_tools` (tools the conversation makes available from that item on:
they join the request's, `added_tools`), and `item_reference`s to an earlier response's output
items (by their id, which names the response: `resolve`). The other items OpenAI publishes are
the calls and results of tools run on its own servers (`HOSTED_ITEMS`): left out and named, as
hosted tools are. The model is sent a chat conversation: a message as it is, consecutive
calls as one assistant message's `tool_calls` (with the assistant's text just before them; each
named, and a custom tool's input put, as the model is sent the tools: `tools`), an output as a
`tool` message. A reasoning item is taken but not sent on: a chat completions server takes no
reasoning back (the model reasons afresh each turn).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from marshmallow import ValidationError, fields, validate

from ...errors import ApiError
from ..files import file_part
from ..functions import check_name, image_url_ok
from ..openai import ROLES, SYSTEM_ROLES, MessageContent, content_length
from ..schema import Neutral, NullMeansAbsent, Text, text_of
from ..unknown import UNKNOWN, leave_out
from .compaction import COMPACTION, summary_message, unseal
from .freeform import arguments_of
from .tools import ItemTools, sent_name

ITEM_STATUSES = ("in_progress", "completed", "incomplete")
PHASES = ("commentary", "final_answer")
TEXT_PARTS = ("input_text", "output_text")
MAX_CALL_ID_CHARS = 256
CALLS, OUTPUTS = ("function_call", "custom_tool_call"), ("function_call_output", "custom_tool_call_output")
ADDED_TOOLS = "additional_tools"
ATTACHED = "The tool calls above returned these too:"  # before the images and files of tool outputs
_TAKEN = (
    "message, function_call, custom_tool_call, their outputs, reasoning, compaction, additional_tools and "
    "item_reference"
)
# Items of OpenAI's published input that record a tool run by OpenAI's servers (or by a client
# for a tool only OpenAI's models call): no model here called them, so none is sent on.
HOSTED_ITEMS = frozenset(
    (
        "file_search_call", "computer_call", "computer_call_output", "web_search_call", "tool_search_call",
        "tool_search_output", "image_generation_call", "code_interpreter_call", "local_shell_call",
        "local_shell_call_output", "shell_call", "shell_call_output", "apply_patch_call", "apply_patch_call_output",
        "mcp_list_tools", "mcp_approval_request", "mcp_approval_response", "mcp_call", "program", "program_output",
    )
)  # fmt: skip


# Each part type: its fields (any other is unknown: left out and named).
_PART_FIELDS = {
    "input_text": ("text",),
    "output_text": ("text", "annotations", "logprobs"),
    "refusal": ("refusal",),
    "input_image": ("image_url", "detail", "file_id"),
    "input_file": ("file_data", "filename", "file_id", "file_url", "detail"),
}
_PARTS = "input_text, output_text, refusal, input_image and input_file parts"


def _part(index: int, part: Any) -> dict[str, Any]:
    """One part of a message's content, as a chat part (an image an `image_url`, a file `files`')."""
    kind = part.get("type") if isinstance(part, dict) else None
    if kind not in _PART_FIELDS:
        raise ValidationError(f"Part {index} is of type {str(kind)[:40]!r}: ChatWait takes {_PARTS}.")
    unknown = set(part) - {"type", *_PART_FIELDS[kind]}
    if unknown:  # as marshmallow names them: the tolerant contract takes them out and names them
        raise ValidationError({name: [UNKNOWN] for name in sorted(unknown)})
    if kind in TEXT_PARTS:
        if all(_objects(part.get(name, [])) for name in ("annotations", "logprobs")) and isinstance(part["text"], str):
            return {"type": "text", "text": text_of(part["text"])}
    elif kind == "refusal" and isinstance(part.get("refusal"), str):
        return {"type": "text", "text": text_of(part["refusal"])}
    elif kind == "input_image":
        return _image(index, part)
    elif kind == "input_file":
        given = {"data": part.get("file_data"), "file_id": part.get("file_id"), "url": part.get("file_url")}
        try:
            return file_part(filename=part.get("filename"), **given)
        except ValidationError as error:
            raise ValidationError(f"Part {index}: {error.messages[0]}") from None
    raise ValidationError(f"Part {index} is not a well-formed {kind} part.")


def _image(index: int, part: dict[str, Any]) -> dict[str, Any]:
    if part.get("file_id") is not None:
        raise ValidationError(
            f"Part {index}: ChatWait keeps no files: send the image as image_url (a URL or a data URL)."
        )
    url, detail = part.get("image_url"), part.get("detail") or "auto"
    detail = "high" if detail == "original" else detail  # the most a chat completions server renders
    if image_url_ok(url, detail):
        return {"type": "image_url", "image_url": {"url": url, "detail": detail}}
    raise ValidationError(
        f'Part {index} must be {{"type": "input_image", "image_url": "https://..." or "data:image/png;base64,...", '
        '"detail": "auto" | "low" | "high" | "original"}.'
    )


def _objects(value: Any) -> bool:
    """Whether `value` is a list of JSON objects (a part's annotations or logprobs, sent back as they came)."""
    return isinstance(value, list) and all(isinstance(entry, dict) for entry in value)


class InputMessageSchema(NullMeansAbsent):
    """A message item of `input` (also an earlier reply's output message, sent back as it came)."""

    type = Neutral(("message",), "A message item's type is message.", ("string",))
    role = fields.String(
        required=True, validate=validate.OneOf(ROLES, error="Must be one of: user, assistant, system, developer.")
    )
    content = MessageContent(_part, required=True, error_messages={"required": "Every message item needs content."})
    id = Text(validate=validate.Length(min=1, max=128))
    status = fields.String(validate=validate.OneOf(ITEM_STATUSES))
    phase = fields.String(validate=validate.OneOf(PHASES))  # an assistant message's, as it came (not sent on)


class _CallInputSchema(NullMeansAbsent):
    """What every call item sent back holds: its call id, the tool's name and namespace, its own id."""

    call_id = Text(required=True, validate=validate.Length(min=1, max=MAX_CALL_ID_CHARS))
    name = Text(required=True, validate=check_name)
    namespace = Text(validate=check_name)
    id = Text(validate=validate.Length(min=1, max=128))
    status = fields.String(validate=validate.OneOf(ITEM_STATUSES))


class FunctionCallInputSchema(_CallInputSchema):
    """An earlier reply's `function_call` item, sent back with the conversation."""

    type = fields.String(required=True, validate=validate.OneOf(("function_call",)))
    arguments = Text(required=True)


class CustomToolCallInputSchema(_CallInputSchema):
    """An earlier reply's `custom_tool_call` item: a custom tool's free-form input."""

    type = fields.String(required=True, validate=validate.OneOf(("custom_tool_call",)))
    input = Text(required=True)


class ToolOutput(fields.Field):
    """A tool's output: a string, or `input_text`, `input_image` and `input_file` parts (text
    parts joined by newlines; images and files, which a chat completions server takes from users
    only, follow the tool messages as a user message: `to_messages`)."""

    json_types = ("string", "array")

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | list[dict[str, Any]]:
        if isinstance(value, str):
            return text_of(value)
        if not isinstance(value, list) or not all(
            isinstance(part, dict) and part.get("type") in ("input_text", "input_image", "input_file") for part in value
        ):
            raise ValidationError("Must be a string, or a list of input_text, input_image and input_file parts.")
        parts = MessageContent(_part).deserialize(value) if value else ""
        return parts


class FunctionCallOutputInputSchema(NullMeansAbsent):
    """The client's result of a function call, for the model to go on with."""

    type = fields.String(required=True, validate=validate.OneOf(("function_call_output",)))
    call_id = Text(required=True, validate=validate.Length(min=1, max=MAX_CALL_ID_CHARS))
    output = ToolOutput(required=True)
    id = Text(validate=validate.Length(min=1, max=128))
    status = fields.String(validate=validate.OneOf(ITEM_STATUSES))


class CustomToolCallOutputInputSchema(FunctionCallOutputInputSchema):
    """The client's result of a custom tool call."""

    type = fields.String(required=True, validate=validate.OneOf(("custom_tool_call_output",)))


class ReasoningInputSchema(NullMeansAbsent):
    """An earlier reply's reasoning item, sent back as it came (taken, not sent on)."""

    type = fields.String(required=True, validate=validate.OneOf(("reasoning",)))
    id = Text(validate=validate.Length(min=1, max=128))
    summary = fields.List(fields.Dict(), required=True)
    content = fields.List(fields.Dict())
    encrypted_content = Text()
    status = fields.String(validate=validate.OneOf(ITEM_STATUSES))


class CompactionInputSchema(NullMeansAbsent):
    """The compaction item /v1/responses/compact answered, sent back: its summary goes to the model."""

    type = fields.String(required=True, validate=validate.OneOf((COMPACTION,)))
    id = Text(validate=validate.Length(min=1, max=128))
    encrypted_content = Text(required=True, validate=unseal)
    created_by = Text(validate=validate.Length(max=128))


class AdditionalToolsSchema(NullMeansAbsent):
    """Tools made available from this item on (Codex sends its tools so, as the first item, for
    the models it knows): they join the request's `tools`."""

    type = fields.String(required=True, validate=validate.OneOf((ADDED_TOOLS,)))
    role = fields.String(required=True, validate=validate.OneOf(("developer",), error="Must be developer."))
    tools = ItemTools(required=True)
    id = Text(validate=validate.Length(min=1, max=128))


class ItemReferenceSchema(NullMeansAbsent):
    """An output item of an earlier stored response of this client, by its id."""

    type = fields.String(required=True, validate=validate.OneOf(("item_reference",)))
    id = Text(required=True, validate=validate.Length(min=1, max=128))


_SCHEMAS = {
    "message": InputMessageSchema,
    "function_call": FunctionCallInputSchema,
    "function_call_output": FunctionCallOutputInputSchema,
    "custom_tool_call": CustomToolCallInputSchema,
    "custom_tool_call_output": CustomToolCallOutputInputSchema,
    "reasoning": ReasoningInputSchema,
    COMPACTION: CompactionInputSchema,
    ADDED_TOOLS: AdditionalToolsSchema,
    "item_reference": ItemReferenceSchema,
}


class ResponseInput(fields.Field):
    """`input`: a string (one user message), or a list of items (empty: a warmup's, `generate`
    false, or a turn that only names its chain); hosted tools' items left out and named."""

    json_types = ("string", "array")

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[dict[str, Any]]:
        if isinstance(value, str):
            return [{"type": "message", "role": "user", "content": text_of(value)}]
        if not isinstance(value, list):
            raise ValidationError("Must be a string, or a list of items.")
        items, errors = [], {}
        for index, item in enumerate(value):
            kind = (item.get("type") or "message") if isinstance(item, dict) else None  # null: a message
            schema = _SCHEMAS.get(kind) if isinstance(kind, str) else None
            if kind in HOSTED_ITEMS and leave_out(("input", index, kind)):
                continue
            if schema is None:
                shown = "not an object" if not isinstance(item, dict) else f"of type {str(kind)[:40]!r}"
                errors[index] = [f"This item is {shown}: ChatWait takes {_TAKEN} items."]
                continue
            try:
                items.append({**schema().load(item), "type": kind})
            except ValidationError as exc:
                errors[index] = exc.messages
        if errors:
            raise ValidationError(errors)
        return items


def added_tools(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tools `additional_tools` items make available, in order."""
    return [tool for item in items if item["type"] == ADDED_TOOLS for tool in item["tools"]]


def item_chars(item: Any) -> int:
    """The characters of an input item as sent (before validation): its content, a call's
    arguments or an output (the tools an item adds count as tokens, as `tools` do)."""
    if not isinstance(item, dict):
        return 0
    said = [item.get(name) for name in ("arguments", "input")]
    if item.get("type") == COMPACTION:
        said.append(item.get("encrypted_content"))

    return (
        content_length(item.get("content"))
        + content_length(item.get("output"))
        + sum(len(text) for text in said if isinstance(text, str))
    )


def resolve(items: list[dict[str, Any]], lookup: Callable[[str], dict[str, Any] | None]) -> list[dict[str, Any]]:
    """`items` with each `item_reference` replaced by the output item it names, as an input item
    (`lookup(id)`: the output item, None when no stored response of this client has it: 404
    response_not_found, as for an unknown previous_response_id)."""
    resolved = []
    for item in items:
        if item["type"] != "item_reference":
            resolved.append(item)
            continue
        found = lookup(item["id"])
        if found is None:
            detail = f"No output item {item['id'][:80]!r} of a finished stored response of yours is kept."
            raise ApiError("response_not_found", detail, action="Send the item itself instead of a reference.")
        if found["type"] == "message":
            text = "".join(part.get("text") or part.get("refusal") or "" for part in found["content"])
            resolved.append({"type": "message", "role": "assistant", "content": text})
        else:
            taken = ("type", "call_id", "name", "namespace", "arguments", "input")
            resolved.append({key: found[key] for key in taken if key in found})
    return resolved


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
