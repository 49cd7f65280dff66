"""One generation on the embedded model: a lease on one model instance (its steps run in the
threadpool, under the idle timeout), and the attempt that advances it one token per step (or,
continuing a reply cut short, a text completion of its prompt)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import gevent
from gevent.event import AsyncResult

from ...ids import random_id
from ..base import Attempt, UpstreamError
from ..call import ChatCall, Usage
from ..deltas import TOOL_CALL, Delta
from .grammar import CALL, TEXT, arguments_schema, json_grammar, names_grammar, reply_schema, tool_plan
from .prompt import template_messages, tools_hint

# The sampling options llama.cpp takes under their OpenAI names (not `user`, which is OpenAI's own).
LLAMA_OPTIONS = frozenset(("top_p", "stop", "seed", "presence_penalty", "frequency_penalty"))
CHOICE_TOKENS = 24  # the most a tool's name takes, as the model names the one to call
_END = object()


class TokenCounter(Protocol):
    """What counts a generation's tokens with the model's own tokenizer."""

    def prompt_tokens(self, messages: Sequence[dict[str, Any]]) -> int: ...

    def completion_tokens(self, text: str) -> int: ...


class _Idle(Exception):
    """Our own idle timer fired (distinct from any other gevent.Timeout in flight)."""


class Lease:
    """One model instance, held by one generation; runs its steps in the threadpool."""

    def __init__(self, llama: Any, give_back: Callable[[Any], None], idle_timeout: float) -> None:
        self.llama = llama
        self._give_back = give_back
        self._idle_timeout = idle_timeout
        self._step: AsyncResult | None = None

    def run(self, function: Any, *args: Any) -> Any:
        """Run `function(*args)` in the threadpool and wait for it without blocking the loop.

        Raises UpstreamError(upstream_timeout) after IDLE_TIMEOUT_SECONDS without a result.
        """
        self._step = gevent.get_hub().threadpool.spawn(function, *args)
        try:
            with gevent.Timeout(self._idle_timeout, _Idle):
                return self._step.get()
        except _Idle:
            detail = f"The embedded model produced nothing for {self._idle_timeout:g} s (IDLE_TIMEOUT_SECONDS)."
            raise UpstreamError("upstream_timeout", detail) from None

    def after_step(self, callback: Any) -> None:
        """Call `callback()` now, or when the step in flight has finished."""
        step = self._step
        if step is None or step.ready():
            callback()
        else:
            step.rawlink(lambda _: callback())

    def release(self) -> None:
        """Give the instance back to the pool once it is idle."""
        self.after_step(lambda: self._give_back(self.llama))


@dataclasses.dataclass(frozen=True)
class Prefill:
    """A reply continued from its own beginning: the conversation rendered by the chat template
    up to the assistant's turn, then the reply so far, as tokens; and where the turn ends."""

    tokens: list[int]
    stop: list[str]


class LocalAttempt(Attempt):
    """One chat completion from the embedded model, advanced one token per threadpool call (or,
    `prefill`, the continuation of a reply cut short: a text completion of its prompt). Its usage
    is counted with the model's own tokenizer (`counter`: the prompt as its chat template renders
    it, and the text it generated), as llama.cpp counts what it evaluates."""

    def __init__(
        self,
        lease: Lease,
        call: ChatCall,
        repeat_penalty: float = 1.0,
        counter: TokenCounter | None = None,
        prefill: Prefill | None = None,
    ) -> None:
        self._lease = lease
        self._counter = counter
        self._prefill = prefill
        self._messages = template_messages(call.messages)
        options: dict[str, Any] = {
            "max_tokens": call.max_tokens,
            "stream": True,
            "repeat_penalty": repeat_penalty,
        }
        if prefill is None:
            options["messages"] = self._messages
        else:
            options.update(prompt=prefill.tokens, stop=prefill.stop)
        if call.temperature is not None:
            options["temperature"] = call.temperature
        options.update((name, value) for name, value in call.options.items() if name in LLAMA_OPTIONS)
        if prefill is not None:  # the turn's end, and the client's own stop sequences
            given = options.get("stop") or []
            options["stop"] = [*prefill.stop, *([given] if isinstance(given, str) else given)]
        self._plan, self._tools = tool_plan(call.options, call.messages) if prefill is None else (TEXT, [])
        self._tool: str | None = None
        schema = reply_schema(call.options) if self._plan == TEXT and prefill is None else None
        if schema is not None:
            options["grammar"] = json_grammar(schema)
        self._options = options
        self._chunks: Iterator[dict[str, Any]] | None = None
        self._closed = False

    def __iter__(self) -> Iterator[str | Delta]:
        lease = self._lease
        if self._plan != TEXT:
            self._call(self._tools[0] if self._plan == CALL else self._choose())
        create = lease.llama.create_chat_completion if self._prefill is None else lease.llama.create_completion
        self._chunks = lease.run(lambda: create(**self._options))
        pieces: list[str] = []
        while not self._closed:
            chunk = lease.run(next, self._chunks, _END)
            if chunk is _END:
                break
            choice = chunk["choices"][0]
            content = (choice.get("delta") or {}).get("content") if self._prefill is None else choice.get("text")
            if content and self._tool is not None:  # the forced tool call's arguments
                if not pieces:
                    yield Delta(TOOL_CALL, "", 0, "call_" + random_id()[:24], self._tool)
                pieces.append(content)
                yield Delta(TOOL_CALL, content, 0)
            elif content:
                pieces.append(content)
                yield content
            if choice.get("finish_reason"):
                reason = choice["finish_reason"]
                self.finish("tool_calls" if self._tool is not None and reason == "stop" else reason)
        if self.finish_reason is None and not self._closed:
            raise UpstreamError("upstream_interrupted", "The embedded model stopped without a finish reason.")
        if self.finish_reason is not None and self._counter is not None:
            counter = self._counter
            prompt = counter.prompt_tokens(self._messages) if self._prefill is None else len(self._prefill.tokens)
            self.usage = Usage(prompt, counter.completion_tokens("".join(pieces)))

    def _choose(self) -> dict[str, Any]:
        """The tool the model names, its output constrained to the tools' names."""
        lease, names = self._lease, [tool["function"]["name"] for tool in self._tools]
        asked = [*self._messages, tools_hint(self._tools, "Name the one tool to call now.")]
        grammar = names_grammar(names)
        chosen = lease.run(
            lambda: lease.llama.create_chat_completion(messages=asked, grammar=grammar, max_tokens=CHOICE_TOKENS)
        )
        name = (chosen["choices"][0]["message"].get("content") or "").strip()
        return next((tool for tool in self._tools if tool["function"]["name"] == name), self._tools[0])

    def _call(self, tool: dict[str, Any]) -> None:
        """Make the reply a call to `tool`: its arguments constrained to its parameters' schema."""
        self._tool = tool["function"]["name"]
        self._options["grammar"] = json_grammar(arguments_schema(tool))
        hint = tools_hint([tool], f"Write the arguments of {self._tool} as JSON.")
        self._messages = self._options["messages"] = [*self._messages, hint]  # the prompt counted is the one read

    def close(self) -> None:
        """Stop asking for tokens; the step in flight finishes, then the generator is closed."""
        if self._closed:
            return
        self._closed = True
        chunks = self._chunks
        if chunks is not None:
            self._lease.after_step(chunks.close)
