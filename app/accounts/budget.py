"""Budgets in money: the UTC day and month a key's spend counts in, when each resets, and which
budget refuses a generation. Money is counted in whole billionths of a dollar (nano-USD) so that
memory and Redis add it exactly; a generation reserves its estimate at admission and settles
what it cost when it ends (`Limits`)."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any, Protocol

from ..config.prices import Price

NANO = 1_000_000_000
NAMES = ("budget_day", "budget_month")


class Budgeted(Protocol):
    """What has budgets in money: a key, or what each end user of a key is held to."""

    @property
    def budget_day(self) -> float | None: ...

    @property
    def budget_month(self) -> float | None: ...

    @property
    def budgeted(self) -> bool: ...


def is_budget(name: str | None) -> bool:
    """Whether a limit's name is a budget's (a key's, or its end users' `user_...`)."""
    return name is not None and name.removeprefix("user_") in NAMES


def nano(usd: float | None) -> int:
    """USD as whole billionths (0 for None)."""
    return 0 if not usd else round(usd * NANO)


@dataclasses.dataclass(frozen=True)
class Periods:
    """The UTC day and month of an instant, and the seconds until each ends."""

    day: str  # 2026-11-27
    month: str  # 2026-11
    day_left: float
    month_left: float

    def left(self, name: str) -> float:
        """Seconds until the period of budget `name` resets."""
        return self.day_left if name.endswith("budget_day") else self.month_left

    def period(self, name: str) -> str:
        return self.day if name.endswith("budget_day") else self.month


UNBUDGETED = Periods("", "", 0.0, 0.0)  # a key without budgets: no period is read or written


def periods_for(now: float, *holders: Budgeted | None) -> Periods:
    """The periods of the `holders`' budgets at `now` (none to work out where none has a budget)."""
    return periods(now) if any(holder is not None and holder.budgeted for holder in holders) else UNBUDGETED


def periods(now: float) -> Periods:
    """The periods `now` (Unix seconds) falls in."""
    moment = datetime.datetime.fromtimestamp(now, datetime.UTC)
    day_start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    next_day = day_start + datetime.timedelta(days=1)
    month_start = day_start.replace(day=1)
    next_month = (month_start + datetime.timedelta(days=32)).replace(day=1)
    return Periods(
        moment.strftime("%Y-%m-%d"),
        moment.strftime("%Y-%m"),
        (next_day - moment).total_seconds(),
        (next_month - moment).total_seconds(),
    )


@dataclasses.dataclass(frozen=True)
class Budget:
    """One budget of a key (or of its end users: `user_budget_day`) as it is now: its limit, what
    generations that ended spent and what those still running reserve, all in USD, its period and
    the seconds until it resets."""

    name: str  # budget_day or budget_month
    limit: float
    spent: float
    period: str
    resets_in: float
    reserved: float = 0.0

    @property
    def used(self) -> float:
        """What is spent or reserved: what the budget no longer has for a new generation."""
        return self.spent + self.reserved

    def body(self) -> dict[str, object]:
        """As the spend endpoint shows it."""
        return {
            "period": self.period,
            "budget_usd": self.limit,
            "spent_usd": round(self.spent, 9),
            "reserved_usd": round(self.reserved, 9),
            "remaining_usd": round(max(0.0, self.limit - self.used), 9),
            "resets_in_seconds": round(self.resets_in, 3),
        }


@dataclasses.dataclass
class Reservation:
    """A generation's reservation against its key's budgets: the most it can cost (nano-USD, at
    `price`: `most_tokens`), the day and month it was reserved in, and what settles it should it
    end without its cost known (its price, its prompt's tokens)."""

    price: Price
    prompt: int
    cost: int = 0
    periods: tuple[str, str] = ("", "")
    unsure: bool = False  # asked while the counters were out of reach: reserved only if they took it late

    @classmethod
    def of(cls, price: Price, prompt: int, max_tokens: int, rescues: int = 0) -> Reservation:
        return cls(price, prompt, nano(price.cost(*most_tokens(prompt, max_tokens, rescues))))

    def spent(self, completion_tokens: int, cost_usd: float | None) -> int:
        """What the generation cost (nano-USD): `cost_usd` where known, else its prompt and
        `completion_tokens` at its price."""
        if cost_usd is not None:
            return nano(cost_usd)
        return nano(self.price.cost(self.prompt, 0, completion_tokens))

    def held(self) -> dict[str, Any]:
        """As another worker takes it over (without the price: its settings have it)."""
        return {"cost": self.cost, "periods": list(self.periods), "prompt": self.prompt}

    @classmethod
    def taken_over(cls, held: dict[str, Any], price: Price) -> Reservation:
        periods = held.get("periods")
        found = cls(price, int(held.get("prompt") or 0), int(held.get("cost") or 0))
        if isinstance(periods, list) and len(periods) == 2:
            found.periods = (str(periods[0]), str(periods[1]))
        return found


def most_tokens(prompt: int, max_tokens: int, rescues: int) -> tuple[int, int, int]:
    """The most tokens (input, cached input, output) a generation can be charged: its prompt and
    max_tokens, and for each continuation `rescues` allows (UPSTREAM_RESCUES after a cut or a
    preemption, and UPSTREAM_TAKEOVERS with Redis) the prompt and the reply so far sent again
    and at most max_tokens more. So that a key's spend stays within its budget and one
    reservation, rescued or not."""
    return prompt + rescues * (prompt + max_tokens), 0, (1 + rescues) * max_tokens


def limit_of(key: Budgeted, name: str) -> float | None:
    return key.budget_day if name == "budget_day" else key.budget_month


def refusal(key: Budgeted, spent: tuple[int, int], cost: int, at: Periods) -> tuple[str | None, float]:
    """Which budget refuses a generation reserving `cost` (nano-USD) when the day and month have
    `spent`, and the seconds until it resets (None: none refuses): any it would pass (`Limits`
    then tries a lowered reservation, `fitting` what is left)."""
    for name, used in zip(NAMES, spent, strict=True):
        limit = limit_of(key, name)
        if limit is None:
            continue
        if used >= nano(limit) or used + cost > nano(limit):
            return name, at.left(name)
    return None, 0.0


def fitting(price: Price, prompt: int, rescues: int, left: int) -> int:
    """The most completion tokens (max_tokens) whose reservation (`most_tokens`) costs no more than
    `left` nano-USD (0: not even one)."""
    fixed = nano(price.cost(*most_tokens(prompt, 0, rescues)))
    per_token = price.cost(rescues * 1_000_000, 0, (1 + rescues) * 1_000_000)  # a million tokens' worth, in USD
    if left <= fixed or per_token <= 0:
        return 0
    tokens = int((left - fixed) * 1_000_000 // nano(per_token))
    while tokens > 0 and nano(price.cost(*most_tokens(prompt, tokens, rescues))) > left:
        tokens -= 1  # rounding to billionths
    return tokens


def left(budgets: tuple[Budget, ...]) -> int:
    """What the tightest budget has left (nano-USD)."""
    return min((max(0, nano(spend.limit) - nano(spend.used)) for spend in budgets), default=0)


def current(
    key: Budgeted, spent: tuple[int, int], at: Periods, prefix: str = "", reserved: tuple[int, int] = (0, 0)
) -> tuple[Budget, ...]:
    """Each budget `key` has as it is now, from the day's and the month's spend (nano-USD, the
    reservations of generations still running included) and those reservations (`reserved`), each
    named with `prefix` (an end user's: `user_`)."""
    found = []
    for name, used, held in zip(NAMES, spent, reserved, strict=True):
        limit = limit_of(key, name)
        if limit is not None:
            held = min(max(0, held), used)
            found.append(
                Budget(prefix + name, limit, (used - held) / NANO, at.period(name), at.left(name), held / NANO)
            )
    return tuple(found)


def detail(who: str, spend: Budget, least: float | None = None) -> str:
    """Why a generation is refused by the budget `spend` tells, of `who` ("the key 'app'"): what is
    spent and left, what the least answer to it costs (`least`, USD), and when it resets."""
    word = "daily" if spend.name.endswith("budget_day") else "monthly"
    left = max(0.0, spend.limit - spend.used)
    need = "" if least is None else f", less than the least answer to this request costs (${least:.6f})"
    running = f" and reserved ${spend.reserved:.6f} for generations still running" if spend.reserved else ""
    return (
        f"{who[0].upper()}{who[1:]} has spent ${spend.spent:.6f}{running} of its ${spend.limit:g} {word} budget "
        f"({spend.name}) for {spend.period} (UTC): ${left:.6f} is left{need}; it resets in {round(spend.resets_in)} s."
    )


def never(who: str, spend: Budget, prompt: int) -> str:
    """Why a generation is refused by a budget of `who` too small for any reservation of its prompt."""
    return (
        f"This request's prompt ({prompt} tokens, reserved again for each continuation allowed) costs more than "
        f"{who}'s whole ${spend.limit:g} budget ({spend.name}): no answer to it fits in that budget. "
        "Shorten the input, or ask the operator to raise the budget."
    )
