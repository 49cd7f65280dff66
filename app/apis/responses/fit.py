"""Fitting a Responses API conversation (the stored chain of `previous_response_id`, then this
request's input) into the bounds a direct input meets: MAX_HISTORY_MESSAGES + 2 items,
MAX_CONVERSATION_CHARS with the instructions, and the input-token limit.

`truncation: "disabled"` (the default) refuses a conversation over any of them with 400
input_too_long naming the limit; `"auto"` drops the oldest items, whole turns (up to the next
user message), until it fits, as OpenAI's truncation does. The last input item is never dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ...config import Settings
from ...errors import ApiError
from ...providers.base import Provider
from ..intake import conversation_char_limit, count_prompt, refuse_long_text
from .chat import message_chars

Message = dict[str, Any]
DROPPABLE = "input item(s) (or earlier turns)"
MAX_TOKEN_PASSES = 4  # token counts after a cut by estimated costs: the estimate is close


@dataclasses.dataclass(frozen=True)
class Fitted:
    """The conversation that fits: its items (earlier turns, then input), its counted prompt
    tokens (None: it fits without counting) and how many of the oldest items were dropped."""

    items: list[Message]
    prompt_tokens: int | None
    dropped: int = 0


def fit(
    system: list[Message],
    items: list[Message],
    chained: int,
    settings: Settings,
    provider: Provider,
    auto: bool,
    chain: str = "previous_response_id",
) -> Fitted:
    """`items` (the first `chained` of them from the stored chain, which the request names with
    its `chain` parameter) within the bounds, after the `system` messages; ApiError(input_too_long)
    when they are over one (and, with `auto`, still over with every droppable item dropped)."""
    if not auto:
        try:
            _refuse_over_sizes(system, items, settings, provider)
            droppable = (len(system), len(system) + len(items) - 1)
            total = count_prompt([*system, *items], droppable, settings, provider, DROPPABLE)
        except ApiError as error:
            raise _advised(error, chained, chain) from None
        return Fitted(items, total)
    kept = _cut(items, _over_sizes(system, items, settings, provider))
    limit = provider.input_token_limit(settings.requests.max_input_tokens)
    total = _count(system, kept, settings, provider)
    for _ in range(MAX_TOKEN_PASSES):
        if total is None or total <= limit or len(kept) == 1:
            break
        kept = _cut(kept, _enough(provider.message_costs(kept[:-1]), total - limit))
        total = _count(system, kept, settings, provider)
    _refuse_over_sizes(system, kept, settings, provider)  # what is left is still over: say what
    if total is not None and total > limit:
        count_prompt([*system, *kept], (len(system), len(system) + len(kept) - 1), settings, provider, DROPPABLE)
    return Fitted(kept, total, len(items) - len(kept))


def _refuse_over_sizes(system: list[Message], items: list[Message], settings: Settings, provider: Provider) -> None:
    """input_too_long when the items are more than MAX_HISTORY_MESSAGES + 2, or longer than
    MAX_CONVERSATION_CHARS with the instructions."""
    bound = settings.requests.max_history_messages + 2
    if len(items) > bound:
        excess = len(items) - bound
        detail = f"The conversation holds {len(items)} items; the limit is {bound} (MAX_HISTORY_MESSAGES + 2)."
        raise ApiError(
            "input_too_long",
            detail,
            action=f"Drop the {excess} oldest {DROPPABLE} and send the request again.",
            drop_history_messages=excess,
        )
    lengths = [message_chars(message) for message in (*system, *items)]
    refuse_long_text(lengths, (len(system), len(lengths) - 1), settings, provider, DROPPABLE)


def _over_sizes(system: list[Message], items: list[Message], settings: Settings, provider: Provider) -> int:
    """How many of the oldest items to drop to be within the item and character bounds."""
    drop = max(0, len(items) - (settings.requests.max_history_messages + 2))
    excess = sum(message_chars(m) for m in (*system, *items)) - conversation_char_limit(settings, provider)
    return max(drop, _enough([message_chars(m) for m in items[:-1]], excess))


def _enough(costs: Sequence[int], excess: int) -> int:
    """How many of the first `costs` add up to at least `excess` (all of them if they never do)."""
    if excess <= 0:
        return 0
    dropped = 0
    for count, cost in enumerate(costs, start=1):
        dropped += cost
        if dropped >= excess:
            return count
    return len(costs)


def _cut(items: list[Message], count: int) -> list[Message]:
    """`items` without their `count` oldest, cut on to the next turn (a user message); the last
    item always stays, with the assistant's calls its tool results answer."""
    if count <= 0:
        return items
    count = min(count, len(items) - 1)
    while count < len(items) - 1 and items[count]["role"] != "user":
        count += 1
    while count > 0 and items[count]["role"] == "tool":
        count -= 1
    return items[count:]


def _count(system: list[Message], items: list[Message], settings: Settings, provider: Provider) -> int | None:
    """The prompt tokens of the conversation (None: its cheap bound is within the limit)."""
    messages = [*system, *items]
    bound = provider.prompt_tokens_bound(messages)
    if bound is not None and bound <= provider.input_token_limit(settings.requests.max_input_tokens):
        return None
    return provider.prompt_tokens(messages)


def _advised(error: ApiError, chained: int, chain: str) -> ApiError:
    """A refusal of a chained conversation says how to go on: the client cannot drop earlier turns itself."""
    if not chained or error.error_code != "input_too_long":
        return error
    count = error.drop_history_messages
    oldest = f"the {count} oldest items" if count else "the oldest turns"
    action = (
        f'Send truncation "auto" to drop {oldest} of the conversation ({chained} of its items come from '
        f"{chain}), or start a new conversation without {chain}."
    )
    return ApiError("input_too_long", error.detail, action=action, drop_history_messages=count)
