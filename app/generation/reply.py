"""The reply a generation has relayed so far: its text pieces and its typed deltas' parts,
counted, and bounded: at the tokens reserved for it (max_tokens, counted on the stream whatever
the upstream was told: `Ceiling`), and in characters (a broken or hostile upstream would
otherwise fill memory)."""

from __future__ import annotations

from typing import NamedTuple

from ..providers.base import UpstreamError
from ..providers.deltas import LOGPROBS, Delta, ReplyParts

# A reply longer than this many characters per token asked for is not a model's reply.
MAX_CHARS_PER_TOKEN = 64
REPLY_CHARS_FLOOR = 65_536
_TEXT_ONLY = {str}


class Ceiling(Exception):
    """The reply reached the tokens reserved for it: the attempt ends there, as at `length`."""


class Prefix(NamedTuple):
    """What a generation taken over from a worker that died had delivered: its text, its typed
    deltas' parts, and how many chunks it took."""

    text: str
    parts: ReplyParts
    chunks: int


class Reply:
    """The pieces relayed so far. A taken-over reply (`prefix`) starts from what its clients have:
    its text as one piece, and the chunks it had besides (`inherited`)."""

    __slots__ = ("_capped", "_chars", "_max_chars", "_max_tokens", "_room", "deltas", "inherited", "parts", "pieces")

    def __init__(self, max_tokens: int, prefix: Prefix | None = None) -> None:
        self.pieces: list[str] = [] if prefix is None else [prefix.text]
        self.parts = ReplyParts() if prefix is None else prefix.parts  # the typed deltas (a family that carries them)
        self.deltas = 0  # typed deltas relayed
        self.inherited = 0 if prefix is None else prefix.chunks - 1
        self._chars = 0
        self._max_tokens = max_tokens
        # The pieces it may hold: max_tokens less the tokens counted apart (a prefix's chunks beyond
        # its one piece, typed deltas with text); a piece is one token at least.
        self._room = max_tokens - self.inherited
        self._capped = False
        self._max_chars = max_tokens * MAX_CHARS_PER_TOKEN + REPLY_CHARS_FLOOR

    def add_text(self, piece: str) -> None:
        """Keep one piece of text; Ceiling at the reserved tokens, upstream_bad_response past the bound."""
        if len(self.pieces) >= self._room:
            self._cap()
        self._chars += len(piece)
        if self._chars > self._max_chars:
            self._too_long()
        self.pieces.append(piece)

    def add_texts(self, pieces: list[str | Delta]) -> bool:
        """Keep `pieces` if they are all text and within the bounds (True); else keep none of them."""
        if set(map(type, pieces)) != _TEXT_ONLY:
            return False
        chars = self._chars + sum(map(len, pieces))  # type: ignore[arg-type]
        if chars > self._max_chars or len(self.pieces) + len(pieces) > self._room:
            return False
        self._chars = chars
        self.pieces += pieces  # type: ignore[arg-type]
        return True

    def add_delta(self, delta: Delta) -> None:
        """Keep one typed delta (a log-probability entry's text with the text); Ceiling at the
        reserved tokens (a delta with text, or a token's log probabilities), upstream_bad_response
        past the bound."""
        if delta.kind == LOGPROBS:
            if len(self.pieces) >= self._room:
                self._cap()
        elif delta.text:
            if len(self.pieces) >= self._room:
                self._cap()
            self._room -= 1
        self._chars += delta.size
        if self._chars > self._max_chars:
            self._too_long()
        self.parts.add(delta)
        self.deltas += 1
        if delta.kind == LOGPROBS:
            self.pieces.append(delta.text)

    def _cap(self) -> None:
        self._capped = True
        raise Ceiling

    def _too_long(self) -> None:
        detail = f"The reply is longer than {self._max_tokens} tokens (max_tokens) can be."
        raise UpstreamError("upstream_bad_response", detail, log_fields={"limit": "max_tokens"})

    @property
    def capped(self) -> int | None:
        """The tokens it was cut at, had it reached its reservation (None: it had not): what it
        is counted as (one a piece: a server streams a token a chunk)."""
        return self._max_tokens if self._capped else None

    def produced(self) -> int:
        """How many pieces it has produced so far (about the completion tokens)."""
        return len(self.pieces) + self.deltas + self.inherited

    def text(self) -> str:
        """Its text so far."""
        return "".join(self.pieces)

    def counted_text(self) -> str:
        """What its completion tokens are counted from: its text, and its typed deltas' text."""
        text = self.text()
        return text + self.parts.counted_text() if self.deltas or self.inherited else text
