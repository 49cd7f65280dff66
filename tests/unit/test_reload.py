"""A reload on the memory store: a draining worker's key counters (spend, minute windows) handed to
the next worker through a private folder, once, whatever else is in it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.accounts import budget
from app.accounts.payer import Payer
from app.config import ClientKey
from app.limits import Closing, MemoryCounters, reload
from app.limits.counters import Settlement

from ..payers import count
from .test_key_limits import Clock

NOW = 1_795_780_800.0  # 2026-11-27 12:00 UTC


def _spent(counters: MemoryCounters, key: ClientKey) -> float:
    """What is spent or reserved."""
    return counters.peek(key).budgets[0].used


def test_a_draining_workers_counters_reach_the_next_one_with_what_settled_after(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "reload"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv(reload.VARIABLE, str(folder))
    assert reload.folder() == folder
    key = ClientKey("", "team", rpm=100, budget_day=5.0)
    old, new = MemoryCounters(Clock(NOW)), MemoryCounters(Clock(NOW + 1))
    periods = count(old, key, "a", 10, cost=budget.NANO).periods
    count(old, key, "b", 10, cost=budget.NANO)
    old.release(Closing(Payer(key), "a", settle=Settlement(budget.NANO // 4, budget.NANO, periods)))
    count(new, key, "c", 10, cost=budget.NANO // 2)  # the new worker serves meanwhile
    state = reload.hand_over(folder, old, None)  # the drain starts: 1.25 spent or reserved
    assert reload.take(folder, new) == 1 and _spent(new, key) == 1.75
    assert new.peek(key).budgets[0].reserved == 1.5, "b's reservation (handed over) and c's"
    drained = Settlement(budget.NANO // 2, budget.NANO, periods)
    old.release(Closing(Payer(key), "b", settle=drained))  # b ends in the drain
    reload.hand_over(folder, old, state)
    assert reload.take(folder, new) == 1 and _spent(new, key) == 1.25, "0.25 + 0.5 + 0.5"
    assert new.peek(key).budgets[0].reserved == 0.5, "b gave its reservation back: c's is left"
    assert new.peek(key).requests.remaining == 100 - 3, "the minute's requests too"
    assert reload.take(folder, new) == 0 and not list(folder.iterdir()), "each file taken once"


def test_a_folder_that_is_not_private_or_a_broken_file_is_not_trusted(tmp_path: Path, monkeypatch) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    os.chmod(shared, 0o777)
    monkeypatch.setenv(reload.VARIABLE, str(shared))
    assert reload.folder() is None
    link = tmp_path / "link"
    link.symlink_to(shared)
    monkeypatch.setenv(reload.VARIABLE, str(link))
    assert reload.folder() is None
    monkeypatch.delenv(reload.VARIABLE)
    assert reload.folder() is None
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "1-drain.json").write_text("{not json")
    (private / "2-drain.json").write_text('{"team": {"spent": {"2026-11-27": "x"}}}')
    counters = MemoryCounters(Clock(NOW))
    assert reload.take(private, counters) == 0 and not list(private.iterdir())


@pytest.mark.parametrize("count", [0, 3])
def test_a_change_holds_only_what_moved(count: int) -> None:
    before = {"a": {"spent": {"2026-11-27": 5}}, "b": {"spent": {"2026-11-27": 1}}}
    after = {"a": {"spent": {"2026-11-27": 5 + count}}, "b": {"spent": {"2026-11-27": 1}}}
    assert reload.change(before, after) == ({"a": {"spent": {"2026-11-27": count}}} if count else {})


def test_a_hand_over_bigger_than_its_bound_is_not_read(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(reload, "MAX_FILE_BYTES", 64)
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "1-drain.json").write_text('{"team": {"spent": {"2026-11-27": 5}}, "pad": {"spent": {}}, "x": {}}')
    counters = MemoryCounters(Clock(NOW))
    assert reload.take(private, counters) == 0 and not list(private.iterdir()), "too big: dropped, not read"
