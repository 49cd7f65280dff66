"""A key that pays for delivery (`pays=delivered`): the key file's field, what a generation's end
charges it (the input of the attempt that answered, and a whole answer's reply), and its output
charged to its budgets as it reaches a client (the memory counters; Redis's in
test_key_limits_redis)."""

from __future__ import annotations

import pytest

from app.accounts import cost
from app.accounts.account import Account, Origin
from app.accounts.billing import Billing
from app.accounts.payer import Payer
from app.config import ClientKey, ConfigError
from app.config.keys import EndUserLimits
from app.config.prices import Price
from app.errors import ApiError
from app.generation.outcome import Outcome
from app.limits import Limits, MemoryCounters
from app.metrics.catalogue import NoMetrics
from app.providers.call import ChatCall, Usage

from ..payers import admit
from .test_budgets import KEY, MIDDAY, _keys
from .test_key_limits import Clock

PRICES = {"small": Price(input=1.0, output=10.0), "big": Price(input=5.0, cached_input=2.5, output=50.0)}


def _attempt(model: str, outcome: str, read: int, out: int, cached: int = 0) -> dict:
    found = {"model": model, "outcome": outcome, "input_tokens": read, "output_tokens": out}
    return found | ({"cached_tokens": cached} if cached else {})


def test_pays_is_a_key_field_generated_by_default(tmp_path) -> None:
    keys = _keys(tmp_path, f"{KEY}a pays=delivered budget_day=1\n{KEY}b pays=generated\n{KEY}c rpm=5\n")
    assert keys[f"{KEY}a"].pays_delivered and keys[f"{KEY}a"].pays == "delivered"
    assert not keys[f"{KEY}b"].pays_delivered and keys[f"{KEY}c"].pays == "generated"


@pytest.mark.parametrize("value", ["tokens", "Delivered", "", "generated,delivered"])
def test_a_pays_that_is_not_generated_or_delivered_is_refused_naming_its_line(tmp_path, value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        _keys(tmp_path, f"{KEY} pays={value}\n")
    assert "line 1: pays=" in str(refused.value) and "pays=delivered" in str(refused.value)
    assert KEY not in str(refused.value)


def test_a_generation_charges_the_input_of_the_attempt_that_answered_and_the_output_delivered() -> None:
    attempts = (
        _attempt("big", "failed", 0, 0),
        _attempt("big", "cut", 100, 7, cached=40),
        _attempt("small", "completed", 130, 5),
    )
    usage = Usage(100, 12)
    # the cut attempt answered first: its fresh and cached input at its price, then 3 tokens delivered
    expected = (60 * 5.0 + 40 * 2.5 + 3 * 10.0) / 1e6
    assert cost.delivered(attempts, usage, PRICES.get, "small", 3) == pytest.approx(expected)
    assert cost.delivered(attempts, usage, PRICES.get, "small", 0) == pytest.approx((60 * 5.0 + 40 * 2.5) / 1e6)
    failed = (_attempt("big", "failed", 0, 0),)
    assert cost.delivered(failed, usage, PRICES.get, "big", 0) == 0.0, "nothing answered: nothing read"
    assert cost.delivered((), Usage(10, 4), PRICES.get, "small", 4) == pytest.approx((10 * 1.0 + 4 * 10.0) / 1e6)
    assert cost.delivered((), Usage(10, 4), PRICES.get, "unpriced", 4) is None


def test_output_delivered_is_charged_to_the_budgets_of_today_and_this_month() -> None:
    clock = Clock(MIDDAY)
    limits = Limits(MemoryCounters(clock), NoMetrics())
    key = ClientKey("", "reader", budget_day=1.0, budget_month=2.0, pays="delivered")
    limits.charge(Payer(key), 0.25)
    limits.charge(Payer(key), 0.5)
    assert [round(spend.spent, 9) for spend in limits.look(key).budgets] == [0.75, 0.75]
    clock.now += 86_400  # the next day: the month goes on counting
    limits.charge(Payer(key), 0.125)
    assert [round(spend.spent, 9) for spend in limits.look(key).budgets] == [0.125, 0.875]
    assert admit(limits, key, 10, 10, PRICES["small"])[1].refused is None
    limits.charge(Payer(key), 1.0)
    with pytest.raises(ApiError) as refused:
        admit(limits, key, 10, 10, PRICES["small"])
    assert refused.value.error_code == "budget_exhausted"


class _Recording:
    """Stands for the limits: what an account's ticket settles with."""

    def __init__(self) -> None:
        self.settled: list[tuple[int, float | None]] = []

    def end(self, ticket, completion_tokens, cost_usd=None):
        self.settled.append((completion_tokens, cost_usd))

    def charge(self, payer, cost_usd):
        """A key without limits: nothing to count."""


@pytest.mark.parametrize("pays", ["generated", "delivered"])
def test_a_generations_ticket_settles_by_its_keys_policy(pays: str) -> None:
    """Paying for generation, a ticket settles the generation's cost; paying for delivery, the
    input of the attempt that answered, and a whole answer's reply (a stream's output is charged
    as it reaches a client)."""
    limits = Limits(MemoryCounters(Clock(MIDDAY)), NoMetrics())
    key = ClientKey("", "k", budget_day=1.0, pays=pays)
    ticket, _ = admit(limits, key, 100, 10, PRICES["small"])
    attempts = (_attempt("small", "cut", 100, 4), _attempt("small", "completed", 110, 6))
    outcome = Outcome("reply", 10, Usage(100, 10, generated=10, resent=110), 1.0, 1.0, "stop", None, None, None, None,
                      cost_usd=0.00031, attempts=attempts)  # fmt: skip
    recording = _Recording()
    billing = Billing(recording, PRICES.get)  # type: ignore[arg-type]
    for stream_id in (None, "s"):  # wait mode: a whole answer; a stream
        account = Account(ChatCall("small", (), 10), 100, Origin("c", stream_id), payer=Payer(key), ticket=ticket,
                          billing=billing)  # fmt: skip
        account.close(outcome)
        account.close(outcome)  # once only
    whole_answer, streamed = recording.settled
    if pays == "generated":
        assert whole_answer == streamed == (outcome.usage.charged, 0.00031)
    else:
        assert whole_answer == (outcome.usage.charged, pytest.approx((100 * 1.0 + 10 * 10.0) / 1e6))
        assert streamed == (outcome.usage.charged, pytest.approx(100 * 1.0 / 1e6))


def test_the_spend_of_a_key_that_pays_for_delivery_counts_its_output_once() -> None:
    """A key without limits that pays for delivery: its stream's settlement joins the spend with
    its input only, its output as each delivery is charged (never both)."""
    added: list[tuple] = []

    class Spend:
        def add(self, payer, model, usd, tokens, requests=1):
            added.append((payer.name, payer.user, model, usd, tokens, requests))

    alice = Payer(ClientKey("", "reader", pays="delivered"), "alice")
    outcome = Outcome("reply", 10, Usage(100, 10, generated=10), 1.0, 1.0, "stop", cost_usd=0.0002,
                      attempts=(_attempt("small", "completed", 100, 10),))  # fmt: skip
    billing = Billing(_Recording(), PRICES.get, Spend())  # type: ignore[arg-type]
    account = Account(ChatCall("small", (), 10), 100, Origin("c", "s"), payer=alice, billing=billing)
    account.close(outcome)
    charge = account.delivery()
    assert charge is not None
    charge("small", 10)
    assert added == [("reader", "alice", "small", pytest.approx(100 * 1.0 / 1e6), (100, 0), 1),
                     ("reader", "alice", "small", pytest.approx(10 * 10.0 / 1e6), (0, 10), 0)]  # fmt: skip


def test_delivery_is_charged_to_an_end_user_held_to_limits_of_their_own() -> None:
    """A key without limits or end-user defaults, one of whose end users the admin API holds to a
    budget: their delivered output counts against it (the key's defaults would count nothing)."""
    limits = Limits(MemoryCounters(Clock(MIDDAY)), NoMetrics())
    key = ClientKey("", "reader", pays="delivered")
    alice = Payer(key, "alice", EndUserLimits(budget_day=0.0001))
    charge = Billing(limits, PRICES.get).delivery(alice)
    assert charge is not None
    assert admit(limits, alice, 10, 0, PRICES["small"])[1].refused is None
    charge("small", 20)  # $0.0002 of output reached alice
    with pytest.raises(ApiError) as refused:
        admit(limits, alice, 10, 0, PRICES["small"])
    assert refused.value.error_code == "budget_exhausted" and "user_budget_day" in refused.value.detail
    bob = Payer(key, "bob", EndUserLimits(budget_day=0.0001))
    assert admit(limits, bob, 10, 0, PRICES["small"])[1].refused is None, "another end user"
