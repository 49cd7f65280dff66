"""A custom tool call's input, from the arguments a chat completions server streams for it
(`{"input": "..."}`: the function a custom tool is sent as): each piece of arguments as the text
it adds to the input, decoded as far as it is whole (an escape split between pieces waits for
its end), and the whole input once the call is done.
"""

from __future__ import annotations

import json
import re

_OPENED = '{"input":"'
_OPENING = re.compile(r'\s*\{\s*"input"\s*:\s*"')
_PLAIN = re.compile(r'[^"\\]*')
_ESCAPE_LENGTH = 6  # \uXXXX
_SURROGATES = range(0xD800, 0xDC00)  # a high surrogate: its low one follows as another \uXXXX


def arguments_of(text: str) -> str:
    """A custom tool call's input as the arguments the model is sent back."""
    return json.dumps({"input": text}, ensure_ascii=False)


def whole_input(arguments: str) -> str:
    """The input of a call whose arguments are `arguments`: their `input` string, or the arguments
    themselves where the model wrote no such object."""
    try:
        found = json.loads(arguments)
    except ValueError:
        return arguments
    return found["input"] if isinstance(found, dict) and isinstance(found.get("input"), str) else arguments


class InputDecoder:
    """The input of one call as its arguments stream in (`feed`: the text each piece adds)."""

    __slots__ = ("_done", "_ended", "_raw")

    def __init__(self) -> None:
        self._raw = ""
        self._done = -1  # where the undecoded part of the input string starts (-1: not opened yet)
        self._ended = False  # the string closed, or was not JSON

    def feed(self, piece: str) -> str:
        if self._ended:
            return ""
        self._raw += piece
        if self._done < 0:
            opened = _OPENING.match(self._raw)
            if opened is None:
                self._ended = not _OPENED.startswith("".join(self._raw.split()))  # it can no longer open
                return ""
            self._done = opened.end()
        end = self._whole_until()
        segment = self._raw[self._done : end]
        self._raw, self._done = self._raw[end:], 0  # only what is not decoded yet is kept
        try:
            return json.loads(f'"{segment}"')
        except ValueError:
            self._ended = True
            return ""

    def _whole_until(self) -> int:
        """Where the input's text decodable so far ends (its closing quote ends it)."""
        raw, at = self._raw, self._done
        while True:
            at = _PLAIN.match(raw, at).end()  # type: ignore[union-attr]
            if at >= len(raw):
                return at
            if raw[at] == '"':
                self._ended = True
                return at
            step = self._escape(at)
            if not step:
                return at
            at += step

    def _escape(self, at: int) -> int:
        """The length of the escape at `at`, 0 while it is not all here."""
        raw = self._raw
        if at + 1 >= len(raw):
            return 0
        if raw[at + 1] != "u":
            return 2
        if at + _ESCAPE_LENGTH > len(raw):
            return 0
        try:
            high = int(raw[at + 2 : at + _ESCAPE_LENGTH], 16) in _SURROGATES
        except ValueError:
            return _ESCAPE_LENGTH  # not JSON: decoding it fails and ends the input
        if not high:
            return _ESCAPE_LENGTH
        return 2 * _ESCAPE_LENGTH if at + 2 * _ESCAPE_LENGTH <= len(raw) else 0
