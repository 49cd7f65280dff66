"""A stream's frames, kept compactly so that a long reply does not cost its weight in encoded SSE.

The priming and terminal frames are kept as bytes, the chunks as their UTF-8 text (or a typed
delta's stored payload) in one buffer with each chunk's length (2 bytes a chunk, 4 if one is ever
longer than 64 KiB) and, once one is not text, each chunk's kind. The last RECENT_FRAMES chunk
frames are also kept encoded: followers that keep up share those exact bytes (encoded once); a
resume from further back re-encodes the older chunks from the text.
"""

from __future__ import annotations

import array
import collections
import itertools

from ..generation.outcome import Outcome
from ..providers.deltas import TEXT_KIND, Delta, ReplyParts, fold_stored
from .wire import WireWriter, chunk_frame

RECENT_FRAMES = 64  # chunk frames kept encoded for followers that keep up
_TEXT_ONLY = {str}


class Frames:
    """Frame 0 (`head`), the chunks 1..n, and frame n+1 (`tail`) once written."""

    __slots__ = ("_kinds", "_lengths", "_recent", "_text", "head", "tail")

    def __init__(self) -> None:
        self.head: bytes | None = None
        self.tail: bytes | None = None
        self._text = bytearray()
        self._lengths = array.array("H")
        self._kinds: bytearray | None = None  # each chunk's stored kind, once one is not text
        self._recent: collections.deque[bytes] = collections.deque(maxlen=RECENT_FRAMES)

    @property
    def chunks(self) -> int:
        """How many chunk frames it holds."""
        return len(self._lengths)

    @property
    def written(self) -> int:
        """How many frames have been written."""
        if self.head is None:
            return 0
        return 1 + len(self._lengths) + (1 if self.tail is not None else 0)

    def add_text(self, frame: bytes, encoded: bytes) -> None:
        """The next chunk: its frame and its UTF-8 text."""
        if self._kinds is not None:
            self._kinds += TEXT_KIND
        self._add(frame, encoded)

    def add_pieces(self, pieces: list[str | Delta], writer: WireWriter) -> list[bytes]:
        """The next chunks, a piece each (text, or a typed delta), framed by `writer`; their frames."""
        first = len(self._lengths) + 1
        if set(map(type, pieces)) == _TEXT_ONLY:  # a burst of text: all at once
            frames = [writer.chunk(sequence, text) for sequence, text in enumerate(pieces, first)]  # type: ignore[arg-type]
            self._add_texts(frames, [text.encode("utf-8", "replace") for text in pieces])  # type: ignore[union-attr]
            return frames
        frames = []
        for sequence, piece in enumerate(pieces, first):
            if type(piece) is str:
                frames.append(writer.chunk(sequence, piece))
                self.add_text(frames[-1], piece.encode("utf-8", "replace"))
            else:
                frames.append(writer.delta(sequence, piece))  # type: ignore[arg-type]
                self.add_delta(frames[-1], *piece.encode())  # type: ignore[union-attr]
        return frames

    def _add_texts(self, frames: list[bytes], encoded: list[bytes]) -> None:
        if self._kinds is not None:
            self._kinds += TEXT_KIND * len(encoded)
        self._recent.extend(frames)
        self._text += b"".join(encoded)
        lengths = list(map(len, encoded))
        if self._lengths.typecode == "H" and max(lengths) > 0xFFFF:
            self._lengths = array.array("I", self._lengths)
        self._lengths.extend(lengths)

    def add_delta(self, frame: bytes, kind: bytes, payload: bytes) -> None:
        """The next chunk as a typed delta: its frame, its kind's letter and its stored payload."""
        if self._kinds is None:
            self._kinds = bytearray(TEXT_KIND * len(self._lengths))
        self._kinds += kind
        self._add(frame, payload)

    def _add(self, frame: bytes, encoded: bytes) -> None:
        self._recent.append(frame)
        self._text += encoded
        length = len(encoded)
        if length > 0xFFFF and self._lengths.typecode == "H":
            self._lengths = array.array("I", self._lengths)
        self._lengths.append(length)

    def entries(self, first: int, end: int) -> list[tuple[int, bytes, bytes]]:
        """Frames `first` to `end - 1` as the journal stores them: (event id, field, value).

        The priming (`h`) and terminal (`t`) frames come as bytes; a chunk as its kind (`c` for
        text, a delta's letter) and its UTF-8 text or payload.
        """
        chunks = len(self._lengths)
        kinds = self._kinds
        offset = len(self._text) - sum(self._lengths[max(0, first - 1) :])
        found: list[tuple[int, bytes, bytes]] = []
        for event_id in range(first, end):
            if event_id == 0:
                found.append((0, b"h", self.head))  # type: ignore[arg-type]
            elif event_id > chunks:
                found.append((event_id, b"t", self.tail))  # type: ignore[arg-type]
            else:
                length = self._lengths[event_id - 1]
                kind = TEXT_KIND if kinds is None else kinds[event_id - 1 : event_id]
                found.append((event_id, bytes(kind), bytes(self._text[offset : offset + length])))
                offset += length
        return found

    def result(self, outcome: Outcome | None) -> tuple[str, Outcome | None, ReplyParts] | None:
        """The text so far, the typed deltas' parts so far and, once the terminal frame is
        written, `outcome` (None before the priming frame)."""
        if self.head is None:
            return None
        ended = outcome if self.tail is not None else None
        if self._kinds is None:
            return self._text.decode("utf-8", "replace"), ended, ReplyParts()
        offsets = itertools.accumulate(self._lengths, initial=0)
        stored = zip(self._kinds, offsets, self._lengths, strict=False)
        text, parts = fold_stored((bytes((kind,)), bytes(self._text[at : at + n])) for kind, at, n in stored)
        return text, ended, parts

    def frames(self, first: int, end: int, writer: WireWriter) -> list[bytes]:
        """The bytes of frames `first` to `end - 1` (older chunks re-encoded by `writer`)."""
        chunks = len(self._lengths)
        recent_first = chunks - len(self._recent) + 1
        found: list[bytes] = []
        offset = -1
        for event_id in range(first, end):
            if event_id == 0:
                found.append(self.head)  # type: ignore[arg-type]
            elif event_id > chunks:
                found.append(self.tail)  # type: ignore[arg-type]
            elif event_id >= recent_first:
                found.append(self._recent[event_id - recent_first])
            else:  # older than the encoded window: re-encode from the text
                if offset < 0:
                    offset = sum(self._lengths[: event_id - 1])
                length = self._lengths[event_id - 1]
                kind = TEXT_KIND if self._kinds is None else self._kinds[event_id - 1 : event_id]
                found.append(chunk_frame(writer, event_id, bytes(kind), self._text[offset : offset + length]))
                offset += length
        return found

    def next_write(self, cursor: int, end: int, writer: WireWriter) -> bytes:
        """The bytes of frames `cursor` to `end - 1` as one write."""
        recent = self._recent
        if end == cursor + 1 and cursor == len(self._lengths) and recent:
            return recent[-1]  # the usual case: the one new chunk, kept encoded
        found = self.frames(cursor, end, writer)
        return found[0] if len(found) == 1 else b"".join(found)
