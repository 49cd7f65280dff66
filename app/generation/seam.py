"""The seam of a continuation asked for by message. A model asked to go on with its cut reply may
answer the request as a chat turn ("Sure! Here is the rest"), start the answer over in other
words, or begin a new sentence glued to the last word ("rolled inIn the end"). Its first words
are held until they can be judged: a chat turn or a restart is refused (the next continuation is
tried, or the reply ends as cut), a glued word gets the space it needs."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator

from ..providers.base import UpstreamError
from ..providers.deltas import LOGPROBS, Delta

JUDGE_CHARS = 48  # of the continuation, held to judge it (after what repeated the reply's end)
RESTART_WORDS = 6  # a continuation whose first words are mostly the reply's first words restarts it
# How a model answers "continue" as if it were a new turn (its first words, capitalised).
PREAMBLE = re.compile(
    r"(?:Sure|Certainly|Of course|Absolutely|No problem|Apologies|I apologi[sz]e|Sorry|I'm sorry|I am sorry|"
    r"I'm afraid|You're welcome|You are welcome|Thanks|Thank you|Continuing|As I was saying|I'd be happy|"
    r"I would be happy|Let me continue|Here(?: is|'s| are) (?:the|a) (?:rest|continuation|remaining)|"
    r"Okay[!,.:]|OK[!,.:])"
)
_WORD = re.compile(r"[^\W_]+")
_CLOSES = ".!?,;:"


def hold(pieces: Iterator[str | Delta], enough: Callable[[str], bool]) -> tuple[list[str | Delta], str, Delta | None]:
    """Take text pieces from `pieces` until `enough(what they say so far)`, or a piece that is not
    text (a tool call: it ends the holding); the pieces held, their text, and that other piece."""
    held: list[str | Delta] = []
    seen = ""
    for piece in pieces:
        if type(piece) is not str and piece.kind != LOGPROBS:
            return held, seen, piece
        held.append(piece)
        seen += piece if type(piece) is str else piece.text
        if enough(seen):
            break
    return held, seen, None


def seamed(text: str, pieces: Iterable[str | Delta]) -> Iterator[str | Delta]:
    """`pieces` of a continuation of the delivered `text`, judged by their first JUDGE_CHARS
    characters: UpstreamError (upstream_bad_response) if they answer as a chat turn or restart the
    reply, else as they are, with a space before them where the seam needs one."""
    pieces = iter(pieces)
    held, seen, other = hold(pieces, lambda seen: len(seen.strip()) >= JUDGE_CHARS)
    verdict = judge(text, seen)
    if verdict is not None:
        detail = f"The continuation did not go on with the reply (it {verdict})."
        raise UpstreamError("upstream_bad_response", detail, log_fields={"seam": verdict})
    if held and spacing(text, seen):
        first = held[0]
        held[0] = " " + first if type(first) is str else first._replace(text=" " + first.text)
    yield from held
    if other is not None:
        yield other
    yield from pieces


def judge(text: str, seen: str) -> str | None:
    """What is wrong with a continuation beginning `seen` of the reply `text`: `answered as a chat
    turn`, `restarted the reply`, or None."""
    head = seen.lstrip()
    if PREAMBLE.match(head):
        return "answered as a chat turn"
    said, again = _WORD.findall(text.lower())[:RESTART_WORDS], _WORD.findall(head.lower())[:RESTART_WORDS]
    if len(said) == RESTART_WORDS and len(again) == RESTART_WORDS and _shared(said, again) > RESTART_WORDS // 2:
        return "restarted the reply"
    return None


def _shared(said: list[str], again: list[str]) -> int:
    """How many of `again`'s words are `said`'s words at about the same place (one off at most)."""
    return sum(1 for at, word in enumerate(again) if word in said[max(0, at - 1) : at + 2])


def spacing(text: str, seen: str) -> bool:
    """Whether a space must join `text` and a continuation beginning `seen`: after a sentence's or
    a clause's punctuation, or where a capital begins a word glued to a lowercase letter."""
    if not text or not seen or text[-1].isspace() or seen[0].isspace():
        return False
    last, first = text[-1], seen[0]
    return (last in _CLOSES and first.isalnum()) or (last.islower() and first.isupper())
