"""OpenAI's input items, checked: a Responses API input's and a conversation's (the chat
conversation they make: `apis.responses.turns`).

`input` is a string (one user message) or a list of items: messages (their content `parts`), an
earlier reply's `function_call` and `custom_tool_call` items and the client's outputs for them,
its `reasoning` items, a `compaction` item (of /v1/responses/compact, or of a server-side
compaction) and a `compaction_trigger`, `additional_tools` (tools the conversation makes available
from that item on), `configuration_update` (a reasoning effort or a reply's format from there
on), and `item_reference`s to an earlier response's output items. The other items OpenAI
publishes are the calls and results of tools run on its own servers (`HOSTED_ITEMS`): left out
and named, as hosted tools are.
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate

from ..functions import check_name
from ..openai import REASONING_EFFORTS, ROLES, MessageContent, content_length
from ..schema import Neutral, NullMeansAbsent, Text, text_of
from ..unknown import leave_out
from .compaction import COMPACTION, unseal
from .formats import TextFormat
from .parts import ToolOutput, input_part
from .tools import ItemTools

ITEM_STATUSES = ("in_progress", "completed", "incomplete")
PHASES = ("commentary", "final_answer")
MAX_CALL_ID_CHARS = 256
CALLS, OUTPUTS = ("function_call", "custom_tool_call"), ("function_call_output", "custom_tool_call_output")
ADDED_TOOLS = "additional_tools"
TRIGGER = "compaction_trigger"
CONFIGURED = "configuration_update"
_TAKEN = (
    "message, function_call, custom_tool_call, their outputs, reasoning, compaction, compaction_trigger, "
    "additional_tools, configuration_update and item_reference"
)
# Items of OpenAI's published input that record a tool run by OpenAI's servers (or by a client
# for a tool only OpenAI's models call): no model here called them, so none is sent on.
HOSTED_ITEMS = frozenset(
    (
        "file_search_call computer_call computer_call_output web_search_call tool_search_call "
        "tool_search_output image_generation_call code_interpreter_call local_shell_call "
        "local_shell_call_output shell_call shell_call_output apply_patch_call apply_patch_call_output "
        "mcp_list_tools mcp_approval_request mcp_approval_response mcp_call program program_output"
    ).split()
)


class InputMessageSchema(NullMeansAbsent):
    """A message item of `input` (also an earlier reply's output message, sent back as it came)."""

    type = Neutral(("message",), "A message item's type is message.", ("string",))
    role = fields.String(
        required=True, validate=validate.OneOf(ROLES, error="Must be one of: user, assistant, system, developer.")
    )
    content = MessageContent(
        input_part, required=True, error_messages={"required": "Every message item needs content."}
    )
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


class ReasoningUpdateSchema(NullMeansAbsent):
    """A configuration update's reasoning: its effort."""

    effort = fields.String(validate=validate.OneOf(REASONING_EFFORTS))


class TextUpdateSchema(NullMeansAbsent):
    """A configuration update's text: the reply's format."""

    format = TextFormat(required=True)


class ConfigurationUpdateSchema(NullMeansAbsent):
    """The reasoning effort or the reply's format from this item on, until a later one: applied
    over the request's own (`configured`)."""

    type = fields.String(required=True, validate=validate.OneOf((CONFIGURED,)))
    id = Text(validate=validate.Length(min=1, max=128))
    reasoning = fields.Nested(ReasoningUpdateSchema)
    text = fields.Nested(TextUpdateSchema)


class CompactionTriggerSchema(NullMeansAbsent):
    """Compact the conversation now (sent as the input's last item): server-side compaction (`window`)."""

    type = fields.String(required=True, validate=validate.OneOf((TRIGGER,)))
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
    TRIGGER: CompactionTriggerSchema,
    CONFIGURED: ConfigurationUpdateSchema,
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
            if isinstance(kind, str) and kind in HOSTED_ITEMS and leave_out(("input", index, kind)):
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
