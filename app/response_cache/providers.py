"""The provider a generation the response cache answers is given: the real one, whose first
open the cache answers (a kept answer played back, a flight followed) or records (a leader's)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..providers.base import Attempt, Provider
from ..providers.call import ChatCall, Route
from ..providers.deltas import ToolCall


class Answering(Provider):
    """`real` in all but `open`, which `opened` answers (`opened(call, slot, route, real)`); a
    replay (`replaying`) takes no turn at the embedded model."""

    def __init__(
        self,
        real: Provider,
        opened: Callable[[ChatCall, Any, Route | None, Provider], Attempt],
        replaying: bool = False,
    ) -> None:
        self.real, self._opened, self._replaying = real, opened, replaying
        self.name, self.check_name = real.name, real.check_name
        self.takes_turns = real.takes_turns and not replaying

    def open(self, call: ChatCall, slot: Any = None, route: Route | None = None) -> Attempt:
        return self._opened(call, slot, route, self.real)

    @contextlib.contextmanager
    def reserve(self, on_wait: Callable[[int], None] | None = None) -> Iterator[Any]:
        if self._replaying:
            yield None
            return
        with self.real.reserve(on_wait) as slot:
            yield slot

    def waiting(self) -> int:
        return self.real.waiting()

    def route(self, model: str, affinity: str | None = None) -> Route:
        return self.real.route(model, affinity)

    def affinity(self, call: ChatCall) -> str | None:
        return self.real.affinity(call)

    def falls_back_on_refusal(self, route: Route) -> bool:
        return self.real.falls_back_on_refusal(route)

    def answered(self, call: ChatCall, route: Route, text: str, calls: Sequence[ToolCall]) -> None:
        self.real.answered(call, route, text, calls)

    def can_fail_over(self, model: str, route: Route) -> bool:
        return self.real.can_fail_over(model, route)

    def can_continue(self, model: str, route: Route) -> bool:
        return self.real.can_continue(model, route)

    def continuation(self, model: str, route: Route) -> str:
        return self.real.continuation(model, route)

    def chunk_tokens(self, route: Route) -> bool:
        return self.real.chunk_tokens(route)

    def prefill_refused(self, route: Route) -> None:
        self.real.prefill_refused(route)

    def message_costs(self, messages: Sequence[dict[str, str]]) -> list[int]:
        return self.real.message_costs(messages)

    def prompt_tokens(self, messages: Sequence[dict[str, str]]) -> int:
        return self.real.prompt_tokens(messages)

    def prompt_tokens_bound(self, messages: Sequence[dict[str, str]]) -> int | None:
        return self.real.prompt_tokens_bound(messages)

    def completion_tokens(self, text: str) -> int:
        return self.real.completion_tokens(text)

    def takes(self, option: str, options: dict[str, Any]) -> bool:
        return self.real.takes(option, options)

    def allowed_fields(self, model: str) -> frozenset[str]:
        return self.real.allowed_fields(model)

    def input_token_limit(self, configured: int) -> int:
        return self.real.input_token_limit(configured)

    def describe(self) -> dict[str, Any]:
        return self.real.describe()

    def check(self) -> tuple[bool, str]:
        return self.real.check()

    def listed_models(self) -> frozenset[str] | None:
        return self.real.listed_models()

    def close(self) -> None:
        """The real provider is the service's: it closes it."""
