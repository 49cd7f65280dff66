"""A model server's own list of models (its GET /models), read to catch a configured model name
the server does not serve (a typo) before requests meet its 404.

Only a list the server means as complete is used: read whole within MAX_LIST_BYTES, not cut by
paging (`has_more`), and not from a server known to answer any name (llama.cpp's servers on one
model, Azure's deployments, which its list does not name). A name counts as listed when the
list holds it, a dated version of it (Anthropic's aliases, `claude-x` for `claude-x-20250101`),
its `-latest` stem's, or its `:latest` tag (Ollama's `llama3` for `llama3:latest`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

MAX_LIST_BYTES = 8 * 1024 * 1024  # the longest lists known (OpenRouter's, with descriptions) fit with room
# `owned_by` of the servers that answer any model name while they load one model:
# llama.cpp's llama-server, and llama-cpp-python's server.
_ANY_NAME_OWNERS = frozenset(("llamacpp", "me"))
_ANY_NAME_HOSTS = (".openai.azure.com", ".services.ai.azure.com", ".cognitiveservices.azure.com")


def listed_models(body: bytes, host: str) -> frozenset[str] | None:
    """The model ids of a GET /models answer, or None where it cannot tell which names the
    server refuses (not a list, cut, empty, or a server that takes any name)."""
    if len(body) > MAX_LIST_BYTES or host.endswith(_ANY_NAME_HOSTS):
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    entries = document.get("data") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries or document.get("has_more") is True:
        return None
    models = [entry for entry in entries if isinstance(entry, dict) and isinstance(entry.get("id"), str)]
    if len(models) == 1 and models[0].get("owned_by") in _ANY_NAME_OWNERS:
        return None
    return frozenset(entry["id"] for entry in models) or None


def is_listed(model: str, ids: Iterable[str]) -> bool:
    """Whether `model` is one of the `ids`, under a name its server takes for it."""
    stems = (model + "-", model.removesuffix("-latest") + "-")
    tagged = model + ":latest"
    return any(found in (model, tagged) or found.startswith(stems) for found in ids)
