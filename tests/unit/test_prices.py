"""Prices per model (UPSTREAMS_FILE's `prices`), checked field by field, and what a generation
costs from its usage: the cached prompt at its price, every token generated over the attempts,
the input continuations sent again."""

from __future__ import annotations

import pathlib
import re
import types

import pytest
import yaml

from app.accounts.cost import cost, delivered, input_cost
from app.config import ConfigError
from app.config.prices import MAX_PRICED_MODELS, Price, price_table
from app.config.upstreams import upstreams_file
from app.generation.attempts import Entry
from app.generation.outcome import Outcome
from app.providers.call import Usage


def test_a_price_table_gives_each_model_its_prices_and_cached_input_defaults_to_input() -> None:
    given = {"a": {"input": 2, "cached_input": 0.5, "output": 8.0}, "b": {"input": 1, "output": 0}}
    table = price_table("prices", given)
    assert table == {"a": Price(2.0, 8.0, 0.5), "b": Price(1.0, 0.0, None)}
    assert table["b"].cost(1_000_000, 1_000_000, 5) == 2.0, "cached input at the input price"
    assert table["a"].cost(1_000, 3_000, 500) == pytest.approx((1_000 * 2 + 3_000 * 0.5 + 500 * 8) / 1e6)


@pytest.mark.parametrize(
    "table,words",
    [
        (["a"], "must map a model to its prices"),
        ({"a": 3}, "'a' must be a table of prices"),
        ({"a": {"input": 1}}, "'a': output is missing"),
        ({"a": {"input": 1, "output": 1, "cache": 1}}, "'a': 'cache' is not a price: use input, cached_input, cache_"),
        ({"a": {"input": -1, "output": 1}}, "'a': input must be a number of USD per million tokens"),
        ({"a": {"input": True, "output": 1}}, "'a': input must be a number"),
        ({"a": {"input": float("nan"), "output": 1}}, "'a': input must be a number"),
        ({"a": {"input": "1", "output": 1}}, "'a': input must be a number"),
        ({"a": {"input": 1, "output": 1e9}}, "from 0 to 100000"),
        ({str(i): {"input": 1, "output": 1} for i in range(MAX_PRICED_MODELS + 1)}, "at most 256"),
    ],
)
def test_a_bad_price_names_the_model_and_the_field(table, words: str) -> None:
    with pytest.raises(ConfigError) as raised:
        price_table("UPSTREAMS_FILE: prices", table)
    assert words in str(raised.value) and str(raised.value).startswith("UPSTREAMS_FILE: prices")


def test_the_upstreams_file_takes_a_prices_table(tmp_path) -> None:
    listing = tmp_path / "upstreams.yaml"
    listing.write_text("upstreams:\n  - {url: 'http://10.0.0.5:8000/v1'}\nprices: {m: {input: 0.15, output: 0.6}}\n")
    assert upstreams_file("UPSTREAMS_FILE", str(listing), {}).prices == {"m": Price(0.15, 0.6)}
    listing.write_text("upstreams:\n  - {url: 'http://10.0.0.5:8000/v1'}\nprice: {}\n")
    with pytest.raises(ConfigError, match=r"'price' is not a table of the file: use .*prices"):
        upstreams_file("UPSTREAMS_FILE", str(listing), {})


def test_a_generation_costs_its_prompt_every_token_generated_and_what_continuations_sent_again() -> None:
    price = Price(input=1.0, output=10.0, cached_input=0.25)
    assert cost(None, Usage(100, 10)) is None, "no price, no cost"
    assert cost(price, Usage(1_000, 100)) == pytest.approx((1_000 * 1 + 100 * 10) / 1e6)
    cached = Usage(1_000, 100, cached_tokens=800)
    assert cost(price, cached) == pytest.approx((200 * 1 + 800 * 0.25 + 100 * 10) / 1e6)
    rescued = Usage(1_000, 100, generated=160, resent=1_050)  # 60 tokens generated and lost, a prompt sent again
    assert cost(price, rescued) == pytest.approx(((1_000 + 1_050) * 1 + 160 * 10) / 1e6)


def test_an_outcome_keeps_its_cost_in_its_record_and_an_older_record_has_none() -> None:
    outcome = Outcome("Hi", 1, Usage(7, 1), 10.0, 2.0, finish_reason="stop", cost_usd=0.000123)
    record = outcome.record()
    assert Outcome.from_record("Hi", record).cost_usd == 0.000123
    assert outcome.usage_and_cost() == {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8,
                                        "generated_tokens": 1, "delivered_tokens": 1, "cost_usd": 0.000123,
                                        "attempts": []}  # fmt: skip
    del record["cost_usd"]
    assert Outcome.from_record("Hi", record).cost_usd is None
    assert "cost_usd" not in Outcome("Hi", 1, Usage(7, 1), 10.0, 2.0, finish_reason="stop").usage_and_cost()


def test_cache_writes_have_prices_of_their_own_and_a_reservation_counts_the_dearest_input() -> None:
    given = {"input": 3, "cached_input": 0.3, "cache_write": 3.75, "cache_write_long": 6, "output": 15}
    table = price_table("prices", {"a": given, "b": {"input": 1, "cache_write": 1.25, "output": 4}})
    a, b = table["a"], table["b"]
    assert a == Price(3.0, 15.0, 0.3, 3.75, 6.0) and b.cache_write_long is None
    assert a.cost(100, 40, 10, 30, 20) == pytest.approx((100 * 3 + 40 * 0.3 + 30 * 3.75 + 20 * 6 + 10 * 15) / 1e6)
    assert b.cost(0, 0, 0, 10, 10) == pytest.approx(20 * 1.25 / 1e6), "a long write costs a write where not given"
    assert Price(2.0, 8.0).cost(0, 0, 0, 5) == pytest.approx(5 * 2.0 / 1e6), "a write costs input where not given"
    assert a.reserved() == Price(6.0, 15.0) and b.reserved() == Price(1.25, 4.0)
    assert Price(2, 8).reserved() == Price(2, 8)


def test_a_generation_costs_its_cache_writes_from_its_usage_and_its_ledger() -> None:
    price = Price(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75, cache_write_long=6.0)
    usage = Usage(1_000, 10, cached_tokens=400, cache_write_tokens=300, cache_write_long_tokens=100)
    expected = (300 * 3 + 400 * 0.3 + 200 * 3.75 + 100 * 6 + 10 * 15) / 1e6
    assert cost(price, usage) == pytest.approx(expected)
    attempt = {"input_tokens": 1_000, "cached_tokens": 400, "cache_write_tokens": 300, "cache_write_long_tokens": 100}
    assert input_cost(price, attempt) == pytest.approx(expected - 10 * 15 / 1e6)
    over = Usage(100, 0, cached_tokens=80, cache_write_tokens=80)  # a server's counts past its prompt: bounded
    assert cost(price, over) == pytest.approx((80 * 0.3 + 20 * 3.75) / 1e6)
    settings = types.SimpleNamespace(price_of={"m": price}.get)  # what an entry reads of the settings
    entry = Entry("m", input_tokens=1_000, cached_tokens=400, output_tokens=10, outcome="completed",
                  written_tokens=300, written_long_tokens=100).as_dict(settings)  # type: ignore[arg-type]  # fmt: skip
    assert (entry["cache_write_tokens"], entry["cache_write_long_tokens"]) == (300, 100)
    assert entry["cost_usd"] == pytest.approx(expected)
    assert delivered((entry,), usage, settings.price_of, "m", 10) == pytest.approx(expected)


def test_the_documented_prices_are_a_valid_table() -> None:
    text = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "scaling.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```yaml\n(prices:.*?)```", text, re.DOTALL)]
    table = price_table("prices", yaml.safe_load(block)["prices"])
    assert table["claude-sonnet-5"] == Price(3.0, 15.0, 0.3, 3.75, 6.0)
