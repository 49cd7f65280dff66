"""The upstream attempts of one generation, as its ledger keeps them and its trace shows them:
each request to a model server (a retry, a failover, a fallback model, a continuation after a
cut or a takeover), its server and model, the tokens it read and generated, and how it ended;
one span each, a child of the request's, from its request to its last token."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from ..accounts.cost import input_cost
from ..config import Settings
from ..providers.call import ChatCall
from ..traces import AttemptSpan, Parent, meters

_UNTRACED = contextlib.nullcontext()  # reusable: it holds nothing
MAX_ATTEMPTS = 64  # kept per generation: retries and rescues are bounded, fallbacks by the models
# The sampling options (OpenAI's names) an attempt's span names, as the GenAI conventions call them.
_SAMPLING = (
    ("top_p", "gen_ai.request.top_p"),
    ("top_k", "gen_ai.request.top_k"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
    ("seed", "gen_ai.request.seed"),
    ("n", "gen_ai.request.choice.count"),
)


def requested(call: ChatCall) -> dict[str, Any]:
    """What an attempt's span says of the request (the GenAI conventions' names): its limit, its
    sampling parameters, its stop sequences, that it is streamed (every attempt is), and the
    conversation a chained turn belongs to."""
    found: dict[str, Any] = {"gen_ai.request.max_tokens": call.max_tokens, "gen_ai.request.stream": True}
    if call.temperature is not None:
        found["gen_ai.request.temperature"] = call.temperature
    for option, name in _SAMPLING:
        value = call.options.get(option)
        if type(value) in (int, float):
            found[name] = value
    stop = call.options.get("stop")
    if stop:
        found["gen_ai.request.stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if call.conversation_id is not None:
        found["gen_ai.conversation.id"] = call.conversation_id
    return found


@dataclasses.dataclass(slots=True)
class Entry:
    """One attempt: `input_tokens` its upstream counted (or ChatWait, for a continuation), None
    until known; `outcome` completed, cut (mid-answer), failed (before its first token),
    cancelled or stopped (the generation's deadline)."""

    model: str
    server: str | None = None
    input_tokens: int | None = None
    cached_tokens: int = 0
    output_tokens: int = 0
    outcome: str = "running"
    error_code: str | None = None
    written_tokens: int = 0  # of its input, written to the server's prompt cache
    written_long_tokens: int = 0  # of those, with the long lifetime

    def as_dict(self, settings: Settings) -> dict[str, Any]:
        found: dict[str, Any] = {"model": self.model, "server": self.server, "outcome": self.outcome}
        found |= {"input_tokens": self.input_tokens or 0, "output_tokens": self.output_tokens}
        for name, tokens in (
            ("cached_tokens", self.cached_tokens),
            ("cache_write_tokens", self.written_tokens),
            ("cache_write_long_tokens", self.written_long_tokens),
        ):
            if tokens:
                found[name] = tokens
        if self.error_code is not None:
            found["error_code"] = self.error_code
        price = settings.price_of(self.model)
        if price is not None:
            found["cost_usd"] = round(input_cost(price, found) + price.cost(0, 0, self.output_tokens), 9)
        return found


class Attempts:
    """The attempts of one generation, the current one last; spans where traces are on."""

    def __init__(self, parent: Parent, provider: str, request: dict[str, Any]) -> None:
        self.entries: list[Entry] = []
        self._parent, self._provider, self._request = parent, provider, request
        self._span: AttemptSpan | None = None
        self._resent: int | None = None  # the input the next attempt sends (a continuation's)

    def begin(self, model: str, cause: str | None = None) -> None:
        """An attempt on `model` starts (`cause`: it continues a reply cut by that)."""
        self._close_open("stopped")
        entry = Entry(model, input_tokens=self._resent)
        self._resent = None
        if len(self.entries) >= MAX_ATTEMPTS:  # the oldest retries give way
            del self.entries[1]
        self.entries.append(entry)
        self._span = AttemptSpan.begin(self._parent, model, self._provider, self._request)
        if self._span is not None and cause is not None:
            self._span.event("chatwait.rescue", {"chatwait.cause": cause})

    def lost(self, model: str, chunks: int) -> None:
        """The attempt of a worker that died, as its stream has it: `chunks` written, a token each
        (the ledger of a reply taken over starts with it)."""
        self.entries.append(Entry(model, output_tokens=chunks, outcome="cut", error_code="generation_lost"))

    def resending(self, tokens: int) -> None:
        """The next attempt (a continuation) sends `tokens` of input again."""
        self._resent = tokens

    def current(self) -> contextlib.AbstractContextManager[None]:
        """The current attempt's span as the current one (its request carries its traceparent)."""
        return _UNTRACED if self._span is None else self._span.current()

    def first_token(self) -> None:
        if self._span is not None:
            self._span.first_chunk()

    def end(self, outcome: str, server: str | None, output: int = 0, **how: Any) -> None:
        """The current attempt ended: `outcome`, on `server`, `output` tokens generated; `how`:
        `input`, `cached`, `written`, `written_long`, `reasoning` (its upstream's counts),
        `finish_reason`, `error_code`, `response_id` (the upstream's id of its reply)."""
        if not self.entries or self.entries[-1].outcome != "running":
            return
        entry = self.entries[-1]
        entry.outcome, entry.server, entry.output_tokens = outcome, server, output
        entry.error_code = how.get("error_code")
        if how.get("input") is not None:
            entry.input_tokens, entry.cached_tokens = how["input"], how.get("cached") or 0
            entry.written_tokens, entry.written_long_tokens = how.get("written") or 0, how.get("written_long") or 0
        span, self._span = self._span, None
        if span is not None:
            usage = {"gen_ai.usage.output_tokens": output, "gen_ai.usage.input_tokens": entry.input_tokens}
            usage |= {"gen_ai.response.model": entry.model, "chatwait.upstream_server": server}
            usage |= {
                "gen_ai.usage.cache_read.input_tokens": entry.cached_tokens or None,
                "gen_ai.usage.cache_creation.input_tokens": entry.written_tokens or None,
                "gen_ai.usage.reasoning.output_tokens": how.get("reasoning") or None,
                "gen_ai.response.id": how.get("response_id") or None,
            }
            failed = None if outcome in ("completed", "cached") else entry.error_code or outcome
            span.end(usage, how.get("finish_reason"), failed)

    def close(self, prompt_tokens: int | None = None) -> None:
        """The generation is over: an attempt still open stopped (its deadline), and the first
        that answered read the prompt (`prompt_tokens`) where its upstream did not say (one that
        failed before its first token read nothing a server charges)."""
        self._close_open("stopped")
        if prompt_tokens is None:
            return
        for entry in self.entries:
            if entry.outcome != "failed":
                if entry.input_tokens is None:
                    entry.input_tokens = prompt_tokens
                return

    def ledger(self, settings: Settings) -> tuple[dict[str, Any], ...]:
        """The attempts as the ledger keeps them (each priced attempt's cost counted in the GenAI
        metrics too, once: the generation is over)."""
        found = tuple(entry.as_dict(settings) for entry in self.entries)
        for attempt in found:
            if "cost_usd" in attempt:
                meters.cost(self._provider, attempt["model"], attempt["cost_usd"])
        return found

    def _close_open(self, outcome: str) -> None:
        if self.entries and self.entries[-1].outcome == "running":
            self.end(outcome, self.entries[-1].server)
