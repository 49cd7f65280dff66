"""Streamed tool calls as upstreams send them, made into one well-formed call per tool call.

OpenAI's shape: a call's first delta has its `index`, `id` and `function.name`; the deltas after
it have the same `index` and pieces of `function.arguments`. Servers stray from it, and what
each stray costs a client is a corrupted call, so each is mended here: no `index` (a piece
continues the last call; an `id` not seen opens a new one), an `index` reused for a second call
(a new `id` opens a new call), continuation deltas repeating the name (or an empty one), arguments
sent whole at the end or as a JSON object rather than a string, a call without an `id` (one is
made). The client's calls are numbered 0, 1, ... in the order they began.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..ids import random_id
from .deltas import TOOL_CALL, Delta

MAX_TOOL_CALLS = 128  # calls in one reply; a stream that opens more is not a reply a client can use
MAX_NAME_CHARS = 256
MAX_PENDING_CHARS = 65_536  # arguments held for a call whose name has not come (sent on once it does)


class MalformedToolCall(ValueError):
    """A tool-call delta no mending makes sense of."""


class _Call:
    __slots__ = ("call_id", "index", "name", "pending", "started", "upstream_index")

    def __init__(self, index: int, upstream_index: Any, call_id: str | None) -> None:
        self.index = index
        self.upstream_index = upstream_index
        self.call_id = call_id or "call_" + random_id()[:24]
        self.name = ""
        self.started = False
        self.pending = ""  # arguments that came before the name


class ToolCalls:
    """Turns the `tool_calls` of successive chunk deltas into `Delta`s."""

    def __init__(self) -> None:
        self._calls: list[_Call] = []
        self._by_id: dict[str, _Call] = {}

    def feed(self, entries: Any) -> list[Delta]:
        """The deltas one chunk's `tool_calls` list makes; MalformedToolCall when it is not one."""
        if type(entries) is not list:
            raise MalformedToolCall("tool_calls is not a list")
        if len(entries) == 1:
            piece = self._piece(entries[0])
            if piece is not None:
                return [piece] if piece.text else []
        found: list[Delta] = []
        for entry in entries:
            if not isinstance(entry, dict):
                raise MalformedToolCall("a tool call is not an object")
            function = entry.get("function") or {}
            if not isinstance(function, dict):
                raise MalformedToolCall("a tool call's function is not an object")
            call = self._call_of(entry.get("index"), entry.get("id"))
            name, arguments = function.get("name"), _arguments(function.get("arguments"))
            if name and not call.started:
                if not isinstance(name, str) or len(name) > MAX_NAME_CHARS:
                    raise MalformedToolCall("a tool call's name is not a short string")
                call.name, call.started = _utf8(name), True
                found.append(Delta(TOOL_CALL, "", call.index, call.call_id, call.name))
                arguments, call.pending = call.pending + arguments, ""
            if not arguments:
                continue
            if call.started:
                found.append(Delta(TOOL_CALL, arguments, call.index))
            elif len(call.pending) + len(arguments) > MAX_PENDING_CHARS:
                raise MalformedToolCall("arguments without a name, past the bound")
            else:
                call.pending += arguments
        return found

    def _piece(self, entry: Any) -> Delta | None:
        """The usual chunk, `{"index": i, "function": {"arguments": "..."}}` for the newest call
        at index i (already named), as its delta; None for anything else (the general path)."""
        function = entry.get("function") if type(entry) is dict and len(entry) == 2 else None
        arguments = function.get("arguments") if type(function) is dict and len(function) == 1 else None
        last = self._calls[-1] if self._calls else None
        if type(arguments) is not str or last is None or not last.started:
            return None
        if entry.get("index") != last.upstream_index or type(last.upstream_index) is not int:
            return None
        return Delta(TOOL_CALL, _utf8(arguments), last.index)

    def unnamed(self) -> bool:
        """Whether a call never got its name (the reply is not usable)."""
        return any(not call.started for call in self._calls)

    def _call_of(self, upstream_index: Any, call_id: Any) -> _Call:
        if upstream_index is not None and (type(upstream_index) is not int or upstream_index < 0):
            raise MalformedToolCall("a tool call's index is not a whole number")
        if call_id is not None and (not isinstance(call_id, str) or len(call_id) > MAX_NAME_CHARS):
            raise MalformedToolCall("a tool call's id is not a short string")
        if call_id:
            call_id = _utf8(call_id)
            known = self._by_id.get(call_id)
            if known is not None:
                return known
            last = self._latest(upstream_index)
            if last is not None and last.call_id == call_id:
                return last
            return self._open(upstream_index, call_id)
        last = self._latest(upstream_index)
        return last if last is not None else self._open(upstream_index, None)

    def _latest(self, upstream_index: Any) -> _Call | None:
        """The newest call at `upstream_index` (no index: the newest call)."""
        if upstream_index is None:
            return self._calls[-1] if self._calls else None
        for call in reversed(self._calls):
            if call.upstream_index == upstream_index:
                return call
        return None

    def _open(self, upstream_index: Any, call_id: str | None) -> _Call:
        if len(self._calls) >= MAX_TOOL_CALLS:
            raise MalformedToolCall("too many tool calls")
        call = _Call(len(self._calls), upstream_index, call_id)
        self._calls.append(call)
        self._by_id[call.call_id] = call
        return call


def _arguments(value: Any) -> str:
    """A piece of arguments as text: a string as it is, an object (some servers send one) as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return _utf8(value)
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    raise MalformedToolCall("a tool call's arguments are not text")


def _utf8(text: str) -> str:
    """`text` as UTF-8 can hold it (an escaped lone surrogate becomes "?", as in text chunks)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text
