"""The tolerant contract of the OpenAI and Anthropic families: a field ChatWait does not know is
never a 400. It is taken out of what is validated (a body passed through to a server of the same
API still holds it) and named: the response's `X-ChatWait-Unknown-Fields` header, one
`unknown_fields` log line (names only, never values) and a metric by name (a bounded set).

Clients add fields every month; refusing them makes the gateway the one hop that breaks when a
client updates. What ChatWait does read keeps its strict types and bounds.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any

from flask import g, has_request_context
from marshmallow import Schema

from ..config import Settings
from ..config.controls import held_back
from ..errors import ApiError
from .request import note, services

log = logging.getLogger("chatwait.api")

UNKNOWN = "Unknown field."  # marshmallow's message for a field no schema declares
HEADER = "X-ChatWait-Unknown-Fields"
MAX_NAMED = 20  # names in the header and the log line; the rest are counted
OTHER = "other"  # a name that is not a plain identifier (never put in a header, log or metric)
_NAME = re.compile(r"[A-Za-z0-9_$@:/-]{1,64}")

Path = tuple[str | int, ...]


# What a field's own check left out while a tolerant request is validated (None: not tolerant).
_left_out: contextvars.ContextVar[list[Path] | None] = contextvars.ContextVar("left_out", default=None)


def leave_out(path: Path) -> bool:
    """Note a value ChatWait cannot use (a hosted tool) as left out and named; False when the
    request's contract is strict (the caller refuses it)."""
    noted = _left_out.get()
    if noted is None:
        return False
    noted.append(path)
    return True


@contextlib.contextmanager
def tolerating() -> Iterator[list[Path]]:
    """While validating a tolerant request: what `leave_out` notes."""
    noted: list[Path] = []
    token = _left_out.set(noted)
    try:
        yield noted
    finally:
        _left_out.reset(token)


def split(messages: Mapping[Any, Any]) -> tuple[list[Path], dict[Any, Any]]:
    """marshmallow's error messages as the paths of the unknown fields, and every other error."""
    unknown: list[Path] = []
    return unknown, _split(messages, (), unknown)


def _split(messages: Mapping[Any, Any], path: Path, unknown: list[Path]) -> dict[Any, Any]:
    kept: dict[Any, Any] = {}
    for key, inner in messages.items():
        if inner == [UNKNOWN]:
            unknown.append((*path, key))
        elif isinstance(inner, Mapping):
            rest = _split(inner, (*path, key), unknown)
            if rest:
                kept[key] = rest
        else:
            kept[key] = inner
    return kept


def without(data: Any, paths: list[Path]) -> Any:
    """`data` without the fields at `paths`: the containers on the way copied, once each."""
    trie: dict[Any, Any] = {}
    for path in paths:
        node = trie
        for key in path[:-1]:
            node = node.setdefault(key, {})
            if node is None:
                break
        else:
            node[path[-1]] = None
    return _drop(data, trie)


def _drop(value: Any, trie: dict[Any, Any]) -> Any:
    if isinstance(value, dict):
        kept = {}
        for key, inner in value.items():
            below = trie.get(key, ...)
            if below is None:
                continue
            kept[key] = inner if below is ... else _drop(inner, below)
        return kept
    if isinstance(value, list):
        return [_drop(inner, trie[index]) if trie.get(index) else inner for index, inner in enumerate(value)]
    return value


def names(paths: list[Path]) -> list[str]:
    """Each path once, as `tools[].defer_loading`: list indexes left out (a bounded set of names)."""
    found: dict[str, None] = {}
    for path in paths:
        name = ""
        for key in path:
            if isinstance(key, int):
                name += "[]"
            else:
                part = key if _NAME.fullmatch(key) else OTHER
                name = f"{name}.{part}" if name else part
        found[name] = None
    return list(found)


def record(paths: list[Path], api: str) -> None:
    """Name the fields left out of validation: for the response header, the log and the metric."""
    named = names(paths)
    metrics = services().metrics
    for name in named:
        metrics.unknown_field(api, name)
    if has_request_context():  # named on the request's completion line and its response's header
        g.unknown_fields = named
        note(unknown_fields=named[:MAX_NAMED], unknown_count=len(named))
    else:
        log.info("unknown_fields", extra={"api": api, "fields": named[:MAX_NAMED], "count": len(named)})


def passed(data: dict[str, Any], schema: Schema) -> dict[str, Any]:
    """The body's top-level fields (not null) that `schema` does not declare: what a server of the
    same API is sent as they were sent."""
    declared = _declared(type(schema))
    return {name: value for name, value in data.items() if name not in declared and value is not None}


def refuse_controls(fields: Mapping[str, Any], allowed: frozenset[str]) -> None:
    """A 400 naming each server-side control among a body's unknown top-level `fields` that no
    server of the model allows (`config.controls`): passed on, it could make the upstream
    generate more than ChatWait reserved, or otherwise than asked."""
    held = held_back(fields, allowed)
    if held:
        why = (
            "A model server's own control (of how much it generates, a grammar, a template, a slot): ChatWait "
            "does not pass it on. Leave it out, or ask the operator to allow it for a server (allow_fields in "
            "UPSTREAMS_FILE)."
        )
        raise ApiError("validation_error", f"{len(held)} field(s) are invalid.", fields={name: [why] for name in held})


def as_input(fields: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Unknown top-level `fields` passed on, as one message to count: their bytes are input (the
    input limits, the key's tpm and budget), as known fields are."""
    if not fields:
        return []
    return [{"role": "user", "content": json.dumps(fields, ensure_ascii=False, separators=(",", ":"))}]


@functools.cache
def _declared(schema: type[Schema]) -> frozenset[str]:
    return frozenset(field.data_key or name for name, field in schema().load_fields.items())


def tolerance(settings: Settings, api: str) -> str | None:
    """`api`, whose unknown fields are left out and named, unless UNKNOWN_FIELDS=refuse."""
    return api if settings.requests.unknown_fields == "pass" else None


def header_value(named: list[str]) -> str:
    """The header's value: the first MAX_NAMED names, and how many more there were."""
    shown = ", ".join(named[:MAX_NAMED])
    return shown if len(named) <= MAX_NAMED else f"{shown}, (+{len(named) - MAX_NAMED} more)"
