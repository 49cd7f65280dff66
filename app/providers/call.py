"""What a generation asks of a provider and what it gets back: the call, where its attempts go
(its route), and the tokens it used."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from .counted import definitions

# A content part's mark that a prompt prefix to be cached ends with it (OpenAI's field, as its
# servers take it; an Anthropic server is sent the block's `cache_control` instead).
CACHE_BREAKPOINT = "prompt_cache_breakpoint"
EXPLICIT = {"mode": "explicit"}  # the one value it has
CACHE_CONTROL = "cache_control"  # Anthropic's: a block that ends a prefix to cache


@dataclasses.dataclass(frozen=True, slots=True)
class ChatCall:
    """One validated generation request, as sent to a provider.

    A message is `{"role", "content"}` with text content, as every family sends; chat completions
    may also send content parts (images; text parts that end a prefix to cache, CACHE_BREAKPOINT),
    an assistant's `tool_calls` and a `tool` message's `tool_call_id`, as OpenAI's API has them.
    `typed`: the caller's family carries typed deltas (reasoning, refusals, tool calls); the
    others get the reply's text only, as before.
    """

    model: str
    messages: list[dict[str, Any]]
    max_tokens: int
    temperature: float | None = None
    # More options, by their OpenAI names (top_p, stop, seed, presence_penalty, frequency_penalty,
    # user, tools, response_format...): sent upstream as they are; the embedded model takes what it can.
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    typed: bool = False
    fallbacks: tuple[str, ...] | None = None  # the request's own fallback models (None: UPSTREAMS_FILE's)
    # The request as the client wrote it in another API (`{"api": "messages", "body", "beta"}`), or
    # its chat completions fields ChatWait does not know (`{"api": "chat_completions", "fields"}`): a
    # server that speaks that API is sent them as they are; the others, and continuations, not.
    native: dict[str, Any] | None = None
    # What else the upstream reads, as messages, for counting only: the parts of a body passed
    # through that `messages` leaves out (thinking and its signatures, images in tool results...).
    extra: tuple[dict[str, Any], ...] = ()
    generate: bool = True  # False: a warmup (the Responses API's `generate: false`): nothing generated
    conversation_id: str | None = None  # the conversation a turn belongs to, for traces (never sent)

    def counted(self) -> list[dict[str, Any]]:
        """Every message the model reads, for counting its input tokens: the tools' definitions,
        what else a body passed through holds, then the conversation."""
        return [*definitions(self.options), *self.extra, *self.messages]


@dataclasses.dataclass(frozen=True, slots=True)
class Usage:
    """Token usage of one generation: the upstream's own count, or ChatWait's (`estimated`)."""

    prompt_tokens: int  # every token of the prompt, those read from or written to a cache included
    completion_tokens: int
    estimated: bool = False
    generated: int | None = None  # a rescued reply's tokens generated over its attempts (delivered or not)
    cached_tokens: int = 0  # of the prompt, read from the upstream's prompt cache
    cache_write_tokens: int = 0  # of the prompt, written to it (cache_creation_input_tokens, cache_write_tokens)
    resent: int = 0  # input tokens continuations sent again (a rescued or taken-over reply's prompt and text)
    cache_write_long_tokens: int = 0  # of those written, with the long lifetime (Anthropic's one hour)
    reasoning_tokens: int = 0  # of the completion, the model's reasoning (where the upstream says)

    @property
    def charged(self) -> int:
        """What the client key's tpm is charged beyond the prompt counted at admission: every
        token generated over the attempts (delivered or not) and the input continuations sent."""
        generated = self.completion_tokens if self.generated is None else max(self.generated, self.completion_tokens)
        return generated + self.resent

    @property
    def source(self) -> str:
        """Who counted: `upstream` (the model's server said), or `estimated` (ChatWait counted)."""
        return "estimated" if self.estimated else "upstream"

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, int]:
        """The `usage` object of the API (with `generated_tokens` for a rescued reply)."""
        found = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.cached_tokens or self.cache_write_tokens:
            details = {"cached_tokens": self.cached_tokens}
            found["prompt_tokens_details"] = details | (
                {"cache_write_tokens": self.cache_write_tokens} if self.cache_write_tokens else {}
            )
        if self.reasoning_tokens:
            found["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        if self.generated is not None:
            found["generated_tokens"] = self.generated
        return found


@dataclasses.dataclass(slots=True)
class Route:
    """Where one generation's attempts go: the server of the current attempt (a pool's choice;
    None for a single source), and the servers tried so far (a retry prefers another);
    `pinned`: the next attempt goes to `server` (chosen for a continuation), tried or not."""

    server: str | None = None
    tried: set[str] = dataclasses.field(default_factory=set)
    pinned: bool = False
    affinity: str | None = None  # what keeps its conversation on one server (a pool's; `pool.affinity`)
    owner: str = ""  # the client key it is for: its turn at a busy server's room (`pool.room`)
    request: int = dataclasses.field(default_factory=itertools.count(1).__next__)  # the generation's number
