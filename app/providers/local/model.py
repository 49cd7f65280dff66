"""The embedded model: a GGUF chat model run in-process by llama.cpp (llama-cpp-python).

llama.cpp is blocking C code, so every call into it runs in gevent's threadpool (ctypes
releases the GIL), one token per call: the event loop keeps serving other streams and
/health meanwhile, and a cancelled generation stops after the token in flight. A model
instance is not thread-safe, so each generation leases one instance from a pool
(LOCAL_INSTANCES, default 1); waiters are served first come, first served, each told its place
in line. An instance goes back only once its last step in the threadpool has finished, whatever
interrupted the generation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import gevent
from gevent.event import AsyncResult

from ...config import Settings
from ...ids import random_id
from ..base import Attempt, ChatCall, Provider, Route, UpstreamError, Usage
from ..counted import message_text
from ..deltas import TOOL_CALL, Delta
from .grammar import CALL, TEXT, arguments_schema, json_grammar, names_grammar, reply_schema, tool_plan
from .prompt import template_messages, tools_hint
from .waiting_line import WaitingLine

log = logging.getLogger("chatwait.local")

MESSAGE_OVERHEAD_TOKENS = 3  # role markers and separators around each message
REPLY_ROOM_TOKENS = 16  # the input limit keeps at least this much of the context for the reply
# The sampling options llama.cpp takes under their OpenAI names (not `user`, which is OpenAI's own).
LLAMA_OPTIONS = frozenset(("top_p", "stop", "seed", "presence_penalty", "frequency_penalty"))
# What the embedded model cannot honour (a request asking for it is refused, naming the setting
# that points ChatWait at a server that can): images, logit_bias, log probabilities.
NOT_TAKEN = frozenset(("logit_bias", "images", "files", "file_urls", "audio", "logprobs", "top_logprobs"))
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


def _chat_formatter(llama: Any) -> Any:
    """The model's chat template (from the GGUF metadata) as llama-cpp-python renders it."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        return None
    eos = llama.detokenize([llama.token_eos()], special=True).decode("utf-8", "replace")
    bos = llama.detokenize([llama.token_bos()], special=True).decode("utf-8", "replace")
    return Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)


class LocalProvider(Provider):
    """The embedded GGUF model (SmolLM2-135M-Instruct unless LOCAL_MODEL_PATH says otherwise)."""

    name = "local"
    takes_turns = True
    check_name = "model"

    def __init__(self, settings: Settings) -> None:
        from llama_cpp import Llama  # imported here: only this provider needs the C library

        assert settings.local.local_model_path is not None  # resolved by load_settings
        self.settings = settings
        self.model = settings.default_model
        started = time.monotonic()
        self._instances = [
            Llama(
                model_path=str(settings.local.local_model_path),
                n_ctx=settings.local.local_context_tokens,
                n_threads=settings.local.local_threads,
                verbose=False,
            )
            for _ in range(settings.local.local_instances)
        ]
        self._line = WaitingLine(self._instances)
        self.context_tokens = self._instances[0].n_ctx()
        self._formatter = _chat_formatter(self._instances[0])
        log.info(
            "model_loaded",
            extra={
                "model": self.model,
                "instances": len(self._instances),
                "context_tokens": self.context_tokens,
                "threads": settings.local.local_threads,
                "load_ms": round((time.monotonic() - started) * 1000),
            },
        )

    @contextlib.contextmanager
    def reserve(self, on_wait: Callable[[int], None] | None = None) -> Iterator[Lease]:
        """Wait in line for a model instance (first come, first served) and hold it; `on_wait`
        hears how many are ahead while waiting, then 0."""
        lease = Lease(self._line.take(on_wait), self._line.give_back, self.settings.upstream.idle_timeout_seconds)
        try:
            yield lease
        finally:
            lease.release()

    def waiting(self) -> int:
        return len(self._line)

    def takes(self, option: str, options: dict[str, Any]) -> bool:
        """Structured output (a grammar from the JSON Schema) and tools (`grammar.tool_plan`); not
        images, files (text ones come inlined), logit_bias or log probabilities (llama.cpp keeps
        them only with every logit of the prompt)."""
        return option not in NOT_TAKEN

    def open(self, call: ChatCall, slot: Lease | None = None, route: Route | None = None) -> Attempt:
        if slot is None:
            raise RuntimeError("the local provider generates only inside reserve()")
        return LocalAttempt(slot, call, self.settings.local.local_repeat_penalty, self, self._prefill(call))

    def continuation(self, model: str, route: Route) -> str:
        """A reply cut short (its worker died) is continued in-process from its own text."""
        return "prefill" if self._formatter is not None else "none"

    def _prefill(self, call: ChatCall) -> Prefill | None:
        """The prompt that continues `call`'s last message, the assistant's reply so far, where
        the call asks for it (`continue_final_message`); else None."""
        messages = call.messages
        if not call.options.get("continue_final_message") or self._formatter is None or not messages:
            return None
        if messages[-1]["role"] != "assistant":
            return None
        rendered = self._formatter(messages=template_messages(messages[:-1]))
        text = rendered.prompt + message_text(messages[-1])
        tokens = self._instances[0].tokenize(text.encode("utf-8"), add_bos=not rendered.added_special, special=True)
        stop = rendered.stop if isinstance(rendered.stop, list) else [rendered.stop] if rendered.stop else []
        return Prefill(tokens, stop)

    def _count(self, text: str, special: bool = False, add_bos: bool = False) -> int:
        # Tokenizing reads only the vocabulary, which is safe while the instance generates.
        if not text:
            return 0
        return len(self._instances[0].tokenize(text.encode("utf-8"), add_bos=add_bos, special=special))

    def message_costs(self, messages: Sequence[dict[str, Any]]) -> list[int]:
        return [MESSAGE_OVERHEAD_TOKENS + self._count(m["role"]) + self._count(message_text(m)) for m in messages]

    def prompt_tokens(self, messages: Sequence[dict[str, Any]]) -> int:
        """Exact: the messages rendered with the model's own chat template, then tokenized."""
        if self._formatter is None:
            return sum(self.message_costs(messages)) + MESSAGE_OVERHEAD_TOKENS
        rendered = self._formatter(messages=template_messages(list(messages)))
        return self._count(rendered.prompt, special=True, add_bos=not rendered.added_special)

    def completion_tokens(self, text: str) -> int:
        return self._count(text)

    def input_token_limit(self, configured: int) -> int:
        return min(configured, self.context_tokens - REPLY_ROOM_TOKENS)

    def describe(self) -> dict[str, Any]:
        return {
            "provider": self.name,
            "model": self.model,
            "allowed_models": [self.model],
            "model_file": self.settings.local.local_model_path.name if self.settings.local.local_model_path else None,
            "context_tokens": self.context_tokens,
            "instances": len(self._instances),
        }

    def check(self) -> tuple[bool, str]:
        """The model is loaded once at start-up (a failure stops the start): it is ready."""
        count = len(self._instances)
        return True, f"{self.model} is loaded ({count} instance{'s' if count > 1 else ''})."

    def close(self) -> None:
        for instance in self._instances:
            instance.close()
