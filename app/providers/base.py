"""The provider interface: what the relay needs from any source of generated text."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any

from ..errors import CATALOGUE
from .call import ChatCall, Route, Usage
from .deltas import Delta, ToolCall

# How a generation ends, as providers report it: OpenAI's finish reasons (other servers' words
# are mapped onto them). The native API adds its own `cancelled` (a stop by the client).
OPENAI_FINISH_REASONS = ("stop", "length", "content_filter", "tool_calls", "function_call")

# Other servers' names for running out of tokens; any other unknown reason (eos_token, end_turn) is a stop.
_LENGTH_REASONS = frozenset(("max_tokens", "max_length", "max_output_tokens", "max_new_tokens", "model_length"))


class FirstTokenDeadline(BaseException):
    """Raised into a generation's greenlet when no first token came within TIMEOUT_SECONDS (a
    BaseException, so that no library wraps it); a pool rests the server that kept it waiting."""


ENDED_EARLY = "without_finish_reason"  # `upstream_ended` of a reply ended cleanly with no finish_reason
REFUSED = "refused"  # in an UpstreamError's log fields: a refusal asked of the fallback model
MAX_REPLY_ID_CHARS = 256  # an upstream's id of its reply, kept for traces up to this length


class UpstreamError(Exception):
    """A provider failure, already classified by its catalogue error code.

    `detail` is written by ChatWait, never copied from the upstream body, so it is safe to
    show and log. `retryable` says whether trying again (before the first token) may help.
    `log_fields` go to the log line only (e.g. a redirect's Location), never to the client.
    """

    def __init__(
        self,
        error_code: str,
        detail: str,
        *,
        retry_after: float | None = None,
        upstream_status: int | None = None,
        upstream_request_id: str | None = None,
        log_fields: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(error_code)
        self.log_fields = log_fields or {}
        self.error_code = error_code
        self.detail = detail
        self.retry_after = retry_after
        self.upstream_status = upstream_status
        self.upstream_request_id = upstream_request_id

    @property
    def preempted(self) -> bool:
        """Whether the server ended the reply cleanly without a finish_reason (llama.cpp's servers
        end a request another one preempts so): busy, not sick."""
        return self.log_fields.get("upstream_ended") == ENDED_EARLY

    @property
    def busy(self) -> bool:
        """Whether it was a preemption by a server known to preempt, or one that held another of
        this worker's requests (a pool says so): a busy server, not a broken one."""
        return self.preempted and bool(self.log_fields.get("busy"))

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed if tried again."""
        return CATALOGUE[self.error_code].retryable

    @property
    def misconfigured(self) -> bool:
        """Whether its server cannot answer the model as configured (a fallback model's may)."""
        return self.error_code in ("upstream_misconfigured", "upstream_model_unknown")

    @property
    def refused(self) -> bool:
        """Whether it is a model's refusal that its server sends to a fallback model
        (`fallback_on_refusal`): never tried again on the model, asked of the next."""
        return bool(self.log_fields.get(REFUSED))


def reply_id(found: Any) -> str:
    """An upstream's id of its reply as kept (for traces): a short string, else "" (none)."""
    return found if type(found) is str and 0 < len(found) <= MAX_REPLY_ID_CHARS else ""


def refusal(route: Route) -> UpstreamError:
    """The failure a refusal is, where its server sends refusals to the fallback model."""
    detail = "The model refused; its server sends refusals to the fallback model (fallback_on_refusal)."
    return UpstreamError("upstream_rejected", detail, log_fields={REFUSED: True, "upstream_server": route.server})


class Attempt(abc.ABC):
    """One upstream attempt of a generation, in progress: iterate to get its pieces (text as `str`, anything else as a
    `Delta`); close releases the upstream.

    After the iteration ends normally, `finish_reason` is set (a provider raises
    UpstreamError rather than end without one) and `usage` holds the upstream's own count
    when it sent one.
    """

    finish_reason: str | None = None
    upstream_finish_reason: str | None = None  # the upstream's own word, when it is not one of OpenAI's
    stop_sequence: str | None = None  # the client's stop sequence that ended it, where the upstream says which
    usage: Usage | None = None
    upstream_request_id: str | None = None
    response_id: str | None = None  # the upstream's id of its reply, once read ("": it gave none)
    replayed = False  # a kept answer played back by the response cache: no upstream, no cost

    def finish(self, reason: str) -> None:
        """Record the upstream's finish reason as one of OpenAI's (keeping its own word if mapped)."""
        known = reason.strip().lower()
        if known not in OPENAI_FINISH_REASONS:
            known = "length" if known in _LENGTH_REASONS else "stop"
            self.upstream_finish_reason = reason
        self.finish_reason = known

    @abc.abstractmethod
    def __iter__(self) -> Iterator[str | Delta]: ...

    def reads(self) -> Iterator[list[str | Delta]]:
        """Its pieces a list at a time, those that arrived together (one read of an upstream's
        body: a burst costs the relay a step per read, not per piece); by default one per list."""
        for piece in self:
            yield [piece]

    @abc.abstractmethod
    def close(self) -> None:
        """Release the upstream connection at once (idempotent)."""

    def stop(self) -> None:
        """Nobody wants the rest: close, and where the upstream can be told to stop generating
        (a ChatWait named its stream), tell it. Closing alone leaves some servers generating."""
        self.close()

    def abandon(self) -> None:
        """Its client stopped wanting the rest: stop (an attempt others follow goes on for them)."""
        self.stop()

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Provider(abc.ABC):
    """A source of generated text: OpenAI-compatible HTTP, or an embedded model."""

    name: str
    takes_turns = False  # generations wait in line for this provider (the embedded model)

    @contextlib.contextmanager
    def reserve(self, on_wait: Callable[[int], None] | None = None) -> Iterator[Any]:
        """Wait for this provider's turn and hold it during one generation (retries included).

        Yields the slot to pass to `open`. Remote providers have no turn to wait for; the
        embedded model serves one generation per instance, first come, first served, and tells
        `on_wait` how many are ahead while the caller waits (then 0).
        """
        yield None

    def waiting(self) -> int:
        """How many generations wait for their turn (the embedded model's line)."""
        return 0

    def route(self, model: str, affinity: str | None = None) -> Route:
        """Where a new generation of `model` goes first (a pool picks a server, the one that
        holds the `affinity` key's cache where it can); raises ApiError(upstream_unavailable)
        when no server can take it now."""
        return Route(affinity=affinity)

    def affinity(self, call: ChatCall) -> str | None:
        """The key that keeps `call`'s conversation on one server (None: no choice to make)."""
        return None

    def falls_back_on_refusal(self, route: Route) -> bool:
        """Whether a refusal from `route`'s server goes to the fallback model (its UPSTREAMS_FILE entry)."""
        return False

    def answered(self, call: ChatCall, route: Route, text: str, calls: Sequence[ToolCall]) -> None:
        """`call` was answered in full on `route`'s server (its reply: `text` and tool `calls`):
        a pool remembers where its conversation's next turn finds its cache."""

    def can_fail_over(self, model: str, route: Route) -> bool:
        """Whether a server `route` has not tried can take a retry now (then without backoff)."""
        return False

    def can_continue(self, model: str, route: Route) -> bool:
        """Whether a server of `model` other than `route`'s, not resting, can take a continuation
        (else a fallback model may); a single source always can."""
        return True

    def continuation(self, model: str, route: Route) -> str:
        """How a reply of `model` cut mid-answer can be continued (`prefill`, `message` or `none`:
        `config.upstreams.CONTINUATIONS`); a pool picks the server now (another than the one that
        failed where it can) and pins `route` to it."""
        return "none"

    def chunk_tokens(self, route: Route) -> bool:
        """Whether `route`'s server streams one token a chunk, as OpenAI-compatible servers and
        llama.cpp do: its chunks then count what an attempt cut before its usage generated."""
        return False

    def prefill_refused(self, route: Route) -> None:
        """`route`'s server refused a prefilled continuation: it continues by `message` from now on."""

    @abc.abstractmethod
    def open(self, call: ChatCall, slot: Any = None, route: Route | None = None) -> Attempt:
        """Start a generation in `slot` (from `reserve`) on `route`'s server (a pool moves it to
        another after a failure); raises UpstreamError when it cannot start."""

    @abc.abstractmethod
    def message_costs(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """Token cost of each message with this provider's tokenizer."""

    @abc.abstractmethod
    def prompt_tokens(self, messages: Sequence[dict[str, str]]) -> int:
        """Tokens the model reads for these messages."""

    def prompt_tokens_bound(self, messages: Sequence[dict[str, str]]) -> int | None:
        """A cheap upper bound of `prompt_tokens`, or None where only the exact count will do.

        When the bound is within the input limit, the exact count is not needed to accept the
        request, and is made only if the upstream reports no usage.
        """
        return None

    @abc.abstractmethod
    def completion_tokens(self, text: str) -> int:
        """Tokens of a generated text, for when the upstream reports no usage."""

    def takes(self, option: str, options: dict[str, Any]) -> bool:
        """Whether this provider honours the request option `option` (by its OpenAI name, or
        `images` for image parts) among `options`: a call asking for what it cannot do is refused,
        not answered as if it had not asked. OpenAI-compatible servers take everything and say
        otherwise themselves."""
        return True

    def allowed_fields(self, model: str) -> frozenset[str]:
        """The server-side controls (`config.controls`) a server of `model` may be sent."""
        return frozenset()

    def adaptations(self, call: ChatCall) -> tuple[str, ...]:
        """What sending `call` to this provider changes of what its client asked, each with its
        reason (a parameter the model or the API refuses): said to the client, never silent."""
        return ()

    def input_token_limit(self, configured: int) -> int:
        """The most prompt tokens accepted: MAX_INPUT_TOKENS, or less where the model's context is smaller."""
        return configured

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """What /ready reports about this provider (never a secret)."""

    check_name: str  # what /ready calls this provider's check: `upstream` or `model`

    @abc.abstractmethod
    def check(self) -> tuple[bool, str]:
        """Whether this provider can generate now, and why not (in ChatWait's words, never the
        upstream's); called by /ready, whose answer is cached."""

    def listed_models(self) -> frozenset[str] | None:
        """The model names the server's own list held at the last check, where that list is
        complete (None: no such list, or it cannot tell)."""
        return None

    def close(self) -> None:
        """Release pooled connections (shutdown)."""
