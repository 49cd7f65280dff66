"""Budgets in money: the key file's budget_day and budget_month, the UTC periods they reset with,
the memory counters' reservations and settlements, and the Limits façade's refusals
(budget_exhausted with what was spent and when it resets), takeovers included."""

from __future__ import annotations

import datetime
import time

import pytest

from app.accounts import budget
from app.accounts.payer import Payer
from app.config import ClientKey, ConfigError, load_settings
from app.config.prices import Price
from app.errors import ApiError
from app.limits import Closing, CountersUnavailable, Limits, MemoryCounters
from app.limits.counters import Settlement
from app.limits.owed import Owed
from app.metrics.catalogue import NoMetrics
from app.providers.call import ChatCall

from ..payers import admit, count
from ..payers import ticket as ticket_of
from .test_key_limits import Clock

BASE = {"OPENAI_API_KEY": "sk-test"}
KEY = "k" * 16
PRICE = Price(input=1.0, output=10.0)  # USD per million tokens
CALL_1000 = ChatCall(model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=1_000)
MIDDAY = datetime.datetime(2026, 11, 27, 12, tzinfo=datetime.UTC).timestamp()


def _keys(tmp_path, text: str) -> dict[str, ClientKey]:
    path = tmp_path / "keys"
    path.write_text(text, encoding="utf-8")
    return {entry.key: entry for entry in load_settings(environ={**BASE, "CHATWAIT_API_KEYS_FILE": str(path)}).keys}


def test_budgets_are_key_fields_in_usd(tmp_path) -> None:
    keys = _keys(tmp_path, f"{KEY}a name=team budget_day=5 budget_month=100.25\n{KEY}b budget_month=0.000001\n{KEY}c\n")
    assert (keys[f"{KEY}a"].budget_day, keys[f"{KEY}a"].budget_month) == (5.0, 100.25)
    assert keys[f"{KEY}b"].budget_month == 0.000001 and keys[f"{KEY}b"].budgeted and keys[f"{KEY}b"].limited
    assert not keys[f"{KEY}c"].budgeted and not keys[f"{KEY}c"].limited


@pytest.mark.parametrize("value", ["0", "-1", "five", "1e3", "2000000", "0.1234567891", "$5", ""])
def test_a_budget_that_is_not_a_plain_amount_is_refused_naming_its_line(tmp_path, value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        _keys(tmp_path, f"{KEY} budget_day={value}\n")
    assert "line 1: budget_day=" in str(refused.value) and "USD" in str(refused.value)
    assert KEY not in str(refused.value)


@pytest.mark.parametrize(
    "moment,day,month,day_left,month_left",
    [
        ((2026, 11, 27, 12), "2026-11-27", "2026-11", 12 * 3600, 3 * 86400 + 12 * 3600),
        ((2026, 12, 31, 23, 59, 59), "2026-12-31", "2026-12", 1, 1),
        ((2028, 2, 28, 0), "2028-02-28", "2028-02", 86400, 2 * 86400),  # a leap year
    ],
)
def test_periods_are_utc_days_and_months(moment, day, month, day_left, month_left) -> None:
    at = budget.periods(datetime.datetime(*moment, tzinfo=datetime.UTC).timestamp())
    assert (at.day, at.month, at.day_left, at.month_left) == (day, month, day_left, month_left)


def test_the_memory_counters_reserve_refuse_and_settle() -> None:
    clock = Clock(MIDDAY)
    counters = MemoryCounters(clock)
    key = ClientKey("", "money", budget_day=1.0)
    dollar = budget.NANO
    assert count(counters, key, "a", 0, cost=3 * dollar).refused == "budget_day", "more than the whole budget"
    assert count(counters, key, "a", 0, cost=3 * dollar // 4).refused is None
    refused = count(counters, key, "b", 0, cost=dollar // 2)
    assert refused.refused == "budget_day" and refused.retry_after == 12 * 3600
    held = refused.budgets[0]
    assert (held.spent, held.reserved, held.period) == (0.0, 0.75, "2026-11-27"), "reserved, not spent yet"
    assert held.body()["remaining_usd"] == 0.25
    quarter = Settlement(dollar // 4, 3 * dollar // 4, ("2026-11-27", "2026-11"))  # it cost a quarter
    counters.release(Closing(Payer(key), "a", settle=quarter))
    assert (counters.peek(key).budgets[0].spent, counters.peek(key).budgets[0].reserved) == (0.25, 0.0)
    assert count(counters, key, "c", 0, cost=dollar // 2).refused is None
    assert count(counters, key, "d", 0, cost=dollar // 2).refused == "budget_day", "0.25 + 0.5 + 0.5 > 1"
    assert count(counters, key, "e", 0, cost=dollar // 4).refused is None, "exactly the budget"
    clock.now += 12 * 3600  # the next day: a new budget_day; the releases of yesterday's go nowhere
    late = Settlement(3 * dollar // 2, dollar // 2, ("2026-11-27", "2026-11"))
    counters.release(Closing(Payer(key), "c", settle=late))
    assert counters.peek(key).budgets[0].spent == 0.0 and count(counters, key, "f", 0, cost=dollar).refused is None


def test_the_month_counts_every_day_of_it() -> None:
    clock = Clock(MIDDAY)
    counters = MemoryCounters(clock)
    key = ClientKey("", "monthly", budget_day=1.0, budget_month=1.5)
    assert count(counters, key, "a", 0, cost=budget.NANO).refused is None
    clock.now += 86400
    verdict = count(counters, key, "b", 0, cost=budget.NANO)
    assert verdict.refused == "budget_month", "a new day, the same month"
    assert [spend.name for spend in verdict.budgets] == ["budget_day", "budget_month"]


def test_limits_refuse_with_budget_exhausted_saying_what_was_spent_and_when_it_resets() -> None:
    limits = Limits(MemoryCounters(Clock(MIDDAY)), NoMetrics())
    key = ClientKey("", "team", budget_day=0.01)
    ticket, _ = admit(limits, key, 1_000, 1_000, PRICE)  # 0.001 + 0.01 asked: lowered to what the budget holds
    assert ticket.max_tokens == 900 and ticket.money is not None and ticket.money.cost == 10_000_000
    with pytest.raises(ApiError) as refused:
        admit(limits, key, 10, 10, PRICE)
    error = refused.value
    assert error.error_code == "budget_exhausted" and error.status == 429 and error.retry_after == 12 * 3600
    assert "'team'" in error.detail and "$0.010000" in error.detail and "budget_day" in error.detail
    limits.end(ticket, 100, cost_usd=0.002)
    assert limits.look(key).budgets[0].spent == pytest.approx(0.002)
    second, _ = admit(limits, key, 10, 10, PRICE)
    limits.end(second, 7)  # no cost known: its prompt and tokens at its price
    assert limits.look(key).budgets[0].spent == pytest.approx(0.002 + (10 * 1.0 + 7 * 10.0) / 1e6)


def test_an_unpriced_model_reserves_nothing_and_a_spent_budget_still_refuses() -> None:
    limits = Limits(MemoryCounters(Clock(MIDDAY)), NoMetrics())
    key = ClientKey("", "free", budget_day=0.01)
    ticket, _ = admit(limits, key, 10, 10, None)
    assert ticket.money is None
    limits.end(ticket, 10, cost_usd=None)
    priced, _ = admit(limits, key, 1_000, 100, PRICE)
    limits.end(priced, 100, cost_usd=0.05)  # the upstream's count, past the reservation: a debt
    with pytest.raises(ApiError) as refused:
        admit(limits, key, 1, 1, None)
    assert refused.value.error_code == "budget_exhausted" and "daily budget" in refused.value.detail


def test_a_budget_smaller_than_a_reservation_answers_within_what_is_left_or_says_it_never_can() -> None:
    """The red team's small budget: the continuations' allowance is dropped before an answer is
    cut; an answer is lowered to fit what is left down to a floor; below it, budget_exhausted
    says what is left; a prompt no budget holds, that it never will."""
    limits = Limits(MemoryCounters(Clock(MIDDAY)), NoMetrics())
    key = ClientKey("", "small", budget_day=0.0125)
    first, _ = admit(limits, key, 100, 1_000, PRICE, rescues=1)  # 0.0212 with a continuation, 0.0101 without
    assert first.max_tokens is None and first.money.cost == budget.nano(0.0101), "one whole answer, as asked"
    limits.end(first, 10, cost_usd=0.005)
    second, _ = admit(limits, key, 100, 1_000, PRICE, rescues=1)
    assert second.max_tokens == 740, "what the first left: (0.0125 - 0.005 - 0.0001) / 0.00001"
    assert second.most_tokens(CALL_1000.max_tokens) == 740
    limits.end(second, 10, cost_usd=0.0074)
    with pytest.raises(ApiError) as spent:
        admit(limits, key, 100, 1_000, PRICE, rescues=1, floor=256)  # $0.0001 left: not 256 tokens' worth
    assert "resets in" in spent.value.detail and "$0.000100 is left" in spent.value.detail
    assert "least answer to this request costs ($0.002660)" in spent.value.detail
    with pytest.raises(ApiError) as never:
        admit(Limits(MemoryCounters(Clock(MIDDAY)), NoMetrics()), key, 20_000, 10, PRICE, rescues=1)
    error = never.value
    assert error.error_code == "budget_exhausted" and "no answer to it fits" in error.detail
    assert "20000 tokens" in error.detail and error.retry_after == 12 * 3600


def test_a_taken_over_generation_settles_its_reservation_where_it_ends() -> None:
    counters = MemoryCounters(Clock(MIDDAY))
    first, second = Limits(counters, NoMetrics()), Limits(counters, NoMetrics())
    key = ClientKey("", "moved", budget_day=1.0)
    ticket, _ = admit(first, key, 1_000, 10_000, PRICE)  # 0.101 reserved
    held = ticket.held()
    first.hand_over(ticket)
    resumed = second.resume(Payer(key), held, PRICE)
    assert resumed.money is not None and resumed.money.cost == ticket.money.cost
    assert first.look(key).budgets[0].reserved == pytest.approx(0.101), "the reservation holds while it moves"
    second.end(resumed, 500, cost_usd=0.006)
    found = first.look(key).budgets[0]
    assert (found.spent, found.reserved) == (pytest.approx(0.006), 0.0)


def test_a_stream_that_ended_before_its_ticket_was_counted_settles_its_outcomes_cost() -> None:
    """A short reply can end while the store admits its stream: its ticket still settles what its
    outcome cost (not its chunks at its price), as a later end does."""
    import gevent

    from app.accounts.account import Account
    from app.accounts.billing import Billing
    from app.generation.outcome import Outcome
    from app.providers.call import ChatCall, Usage
    from app.service import settling
    from app.streaming.stream import Stream

    settled: list[tuple] = []

    class Recording:
        def end(self, ticket, completion_tokens, cost_usd=None):
            settled.append((completion_tokens, cost_usd))

    stream = Stream("s", "c", "m", 0.0)
    outcome = Outcome("ab", 2, Usage(10, 2, generated=5, resent=20), 1.0, 1.0, "stop", cost_usd=0.0136)
    stream.producer = gevent.spawn(lambda: outcome)
    stream.producer.join()
    limits = Limits(MemoryCounters(Clock(MIDDAY)), NoMetrics())
    ticket, _ = admit(limits, ClientKey("", "short", budget_day=1.0), 10, 6, PRICE)
    account = Account(ChatCall("m", (), 6), 10, ticket=ticket, billing=Billing(Recording()))  # type: ignore[arg-type]
    settling.closed_with(account, stream)
    assert settled == [(25, 0.0136)], "its usage charged (generated and resent) and its cost"


def test_the_tickets_taken_over_that_memory_remembers_are_bounded(monkeypatch) -> None:
    """Memory keeps the settlements of at most MAX_TAKEN tickets taken over per key, the oldest
    forgotten first (a forgotten one settles as any ticket does)."""
    from app.limits import memory as counted

    monkeypatch.setattr(counted, "MAX_TAKEN", 3)
    memory = MemoryCounters(Clock(MIDDAY))
    key = ClientKey("", "taker", budget_day=1.0)
    for name in ("a", "b", "c", "d", "e"):
        memory.take_over(ticket_of(key, name))
    assert list(memory._counts(key).taken) == ["c", "d", "e"]


class Flaky:
    """Memory counters that can be made out of reach, as Redis away is."""

    def __init__(self, counters: MemoryCounters) -> None:
        self.counters, self.away = counters, False

    def __getattr__(self, name: str):
        method = getattr(self.counters, name)

        def call(*args, **kwargs):
            if self.away:
                raise CountersUnavailable("away")
            return method(*args, **kwargs)

        return call


def test_spend_made_while_the_counters_are_away_is_kept_and_settled_when_they_answer() -> None:
    flaky = Flaky(MemoryCounters(Clock(time.time())))  # the periods of what is owed are today's
    limits = Limits(flaky, NoMetrics())
    key = ClientKey("", "outage", budget_day=10.0)
    seen, _ = admit(limits, key, 100, 100, PRICE)  # where its budget stands, seen before the outage
    limits.end(seen, 0, cost_usd=0.0)
    flaky.away = True
    admitted, verdict = admit(limits, key, 100, 100, PRICE)  # limits open: admitted, counted nowhere
    assert verdict is None and admitted.money is not None and admitted.money.unsure
    limits.end(admitted, 50, cost_usd=0.25)
    limits.charge(Payer(ClientKey("", "outage", budget_day=10.0)), 0.5)  # delivered output, also owed
    assert len(limits.owed) == 2
    with pytest.raises(CountersUnavailable):
        limits.owed.pay(flaky)
    assert len(limits.owed) == 2, "kept while the counters are away"
    flaky.away = False
    limits.owed.pay(flaky)
    assert len(limits.owed) == 0 and limits.look(key).budgets[0].spent == pytest.approx(0.75)


def test_while_the_counters_are_away_each_worker_admits_its_share_of_what_was_left() -> None:
    """The red team's Redis pause: 1,887 requests of a key with budget_day 0.125 spent 43.4 USD.
    Now each worker admits against its share of what the budget had left when last seen (split
    among the workers counting): together they pass it by at most one reservation each."""
    counters = Flaky(MemoryCounters(Clock(time.time())))
    workers = [Limits(counters, NoMetrics()) for _ in range(2)]
    key = ClientKey("", "paused", budget_day=0.125)
    for limits in workers:
        limits.outage.workers = 2
        first, _ = admit(limits, key, 100, 1_000, PRICE)  # 0.0101 reserved each: seen, 0.1048 left
        limits.end(first, 1_000, cost_usd=0.0101)
    counters.away = True
    admitted = 0
    for limits in workers:
        while True:
            try:
                ticket, _ = admit(limits, key, 100, 1_000, PRICE)
            except ApiError as refused:
                assert refused.error_code == "store_unavailable" and "its share" in refused.detail
                break
            limits.end(ticket, 1_000, cost_usd=0.0101)
            admitted += 1
    spent = 2 * 0.0101 + admitted * 0.0101
    assert admitted > 0 and spent <= 0.125 + 2 * 0.0101 + 1e-9, f"{admitted} admitted while away: {spent} USD"
    unseen = Limits(counters, NoMetrics())
    with pytest.raises(ApiError) as refused:
        admit(unseen, ClientKey("", "never-seen", budget_day=1.0), 100, 1_000, PRICE)
    assert refused.value.error_code == "store_unavailable", "a budget never seen cannot be shared out"
    counters.away = False
    again, _ = admit(workers[0], key, 100, 10, PRICE)
    assert again is not None and not workers[0].outage._taken, "the counters answer: the outage's count ends"


def test_what_is_owed_is_bounded() -> None:
    owed = Owed(entries=3)
    key = ClientKey("", "many", budget_day=1.0)
    for n in range(5):
        owed.add(Closing(Payer(key), f"t{n}", settle=Settlement(n, 0, ("2026-11-27", "2026-11"))))
    assert len(owed) == 3
