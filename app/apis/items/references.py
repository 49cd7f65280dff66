"""An `item_reference`: an input item that names an earlier response's output item by its id,
resolved to that item (`resolve`). A family whose streams have output items says where they are
found (`Family.output_items`); a request reads them all through `lookup`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, current_app

from ...errors import ApiError

OutputItem = Callable[[str], dict[str, Any] | None]  # an output item of this client's, by its id
SOURCES = "chatwait.output_items"  # app.extensions: the families' makers of an OutputItem


def register(app: Flask, source: Callable[[], OutputItem]) -> None:
    """`source` makes a lookup of a family's output items, one per request."""
    app.extensions.setdefault(SOURCES, []).append(source)


def lookup() -> OutputItem:
    """Where this request's references are found: every family's output items."""
    found = [source() for source in current_app.extensions.get(SOURCES, ())]
    return lambda item_id: next((item for look in found if (item := look(item_id)) is not None), None)


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
