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
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ...config import Settings
from ..base import Attempt, Provider
from ..call import ChatCall, Route
from ..counted import message_text
from .attempt import Lease, LocalAttempt, Prefill
from .prompt import template_messages
from .waiting_line import WaitingLine

log = logging.getLogger("chatwait.local")

MESSAGE_OVERHEAD_TOKENS = 3  # role markers and separators around each message
REPLY_ROOM_TOKENS = 16  # the input limit keeps at least this much of the context for the reply
# What the embedded model cannot honour (a request asking for it is refused, naming the setting
# that points ChatWait at a server that can): images, logit_bias, log probabilities.
NOT_TAKEN = frozenset(("logit_bias", "images", "files", "file_urls", "audio", "logprobs", "top_logprobs"))


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
