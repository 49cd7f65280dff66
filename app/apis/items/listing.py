"""Items as OpenAI lists them (a response's input items, a conversation's items), and their pages.

An input item, once checked (`input`), is kept in OpenAI's item shape with an id of its own (the
one it came with, else a fresh one): a message's content as `input_text` (an assistant's as
`output_text`) and `input_image` parts, a call (of a function, of a custom tool) and its output, a
reasoning or compaction item, an `additional_tools`, `configuration_update` or `compaction_trigger` item.
A page is `{"object": "list", "data", "first_id", "last_id", "has_more"}`, after `after`, at
most `limit` (1 to 100, default 20) items, in `order` (`desc`, the default, or `asc`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import fields, validate

from ...errors import ApiError
from ...ids import random_id
from ...providers.counted import FILE_PART
from ..schema import StrictSchema

MAX_PAGE = 100
DEFAULT_PAGE = 20
ORDERS = ("asc", "desc")
_ID_PREFIXES = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "custom_tool_call": "ctc",
    "custom_tool_call_output": "ctco",
    "reasoning": "rs",
    "compaction": "cmp",
    "additional_tools": "at",
    "configuration_update": "cfg",
    "compaction_trigger": "ctr",
}
_CALL_FIELDS = ("call_id", "name", "namespace", "arguments", "input", "output")


def listed(item: dict[str, Any]) -> dict[str, Any]:
    """A checked input item in OpenAI's item shape, with its id."""
    kind = item["type"]
    found = {"id": item.get("id") or f"{_ID_PREFIXES[kind]}_{random_id()}", "type": kind}
    if kind == "message":
        role = item["role"]
        content = item["content"]
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        found.update(role=role, status="completed", content=[_part(part, role) for part in parts])
        if "phase" in item:
            found["phase"] = item["phase"]
    elif kind == "additional_tools":
        found.update(role=item["role"], tools=item["tools"])
    elif kind in ("configuration_update", "compaction_trigger"):
        found.update({name: item[name] for name in ("reasoning", "text") if name in item})
    elif kind in ("reasoning", "compaction"):
        found.update({name: item[name] for name in ("summary", "content", "encrypted_content") if name in item})
    else:
        found.update({name: item[name] for name in _CALL_FIELDS if name in item})
        if type(item.get("output")) is list:
            found["output"] = [_part(part, "user") for part in item["output"]]
        found["status"] = "completed"
    return found


def _part(part: dict[str, Any], role: str) -> dict[str, Any]:
    if part["type"] == "image_url":
        image = part["image_url"]
        return {"type": "input_image", "image_url": image["url"], "detail": image.get("detail", "auto")}
    if part["type"] == FILE_PART:
        return {"type": "input_file", **part[FILE_PART]}
    if role == "assistant":
        return {"type": "output_text", "text": part["text"], "annotations": [], "logprobs": []}
    return {"type": "input_text", "text": part["text"]}


def page(items: list[dict[str, Any]], args: Mapping[str, str]) -> dict[str, Any]:
    """One page of `items` (oldest first) as the query `args` ask: `after`, `limit`, `order`."""
    limit, order, after = _limit(args.get("limit")), args.get("order", "desc"), args.get("after")
    if order not in ORDERS:
        raise _invalid("order", "Must be asc or desc.")
    ordered = items if order == "asc" else items[::-1]
    start = 0
    if after:
        index = next((at for at, item in enumerate(ordered) if item.get("id") == after), None)
        if index is None:
            raise _invalid("after", "No item has this id: send the last_id of the page before.")
        start = index + 1
    data = ordered[start : start + limit]
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    return {
        "object": "list",
        "data": data,
        "first_id": first,
        "last_id": last,
        "has_more": start + limit < len(ordered),
    }


def _limit(given: str | None) -> int:
    if given is None:
        return DEFAULT_PAGE
    if not (given.isascii() and given.isdigit() and len(given) <= 3 and 1 <= int(given) <= MAX_PAGE):
        raise _invalid("limit", f"Must be a whole number from 1 to {MAX_PAGE}.")
    return int(given)


def _invalid(name: str, message: str) -> ApiError:
    return ApiError("validation_error", "1 field(s) are invalid.", fields={name: [message]})


class ItemListSchema(StrictSchema):
    """A page of items: a conversation's, or a response's input."""

    object = fields.String(required=True, validate=validate.OneOf(("list",)))
    data = fields.List(fields.Dict(), required=True)
    first_id = fields.String(required=True, allow_none=True)
    last_id = fields.String(required=True, allow_none=True)
    has_more = fields.Boolean(required=True)
