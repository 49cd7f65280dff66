"""Who pays, once: the payer (a key, its end user and what the key holds them to) is one frozen
value resolved at admission and rebuilt the same from a stream's revival record; no signature
carries a key and an end user apart; an account is built whole (by admission, or by a takeover
before its producer starts), never assigned to after, and ended once; the doors into the money
take few parameters."""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path
from typing import Any

import pytest

from app.accounts.account import Account, Asked, Origin
from app.accounts.billing import Billing
from app.accounts.payer import NOBODY, Payer
from app.accounts.reserving import Needs
from app.config import ClientKey
from app.config.keys import EndUserLimits
from app.generation.outcome import Outcome
from app.keystore.record import BLOCKED
from app.limits import Limits, MemoryCounters
from app.limits.counters import Counters
from app.metrics.catalogue import NoMetrics
from app.providers.call import ChatCall, Route, Usage
from app.service import takeover as taking
from app.service.admitting import Admitter
from app.service.keys import ClientKeys
from app.service.services import Services
from app.service.takeover import Takeover
from app.streaming.stream import Stream

from .test_key_limits import Clock

APP = Path(__file__).resolve().parents[2] / "app"
USERS = EndUserLimits(rpm=5, budget_day=1.0)
KEY = ClientKey("", "app", tpm=10_000, users=USERS)


def _functions() -> list[tuple[str, ast.FunctionDef]]:
    found = []
    for path in sorted(APP.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                found.append((f"{path.relative_to(APP.parent)}:{node.lineno}", node))
    return found


def _carries_key_and_user(node: ast.FunctionDef) -> bool:
    """Whether a signature takes a client key and an end user as two values (who pays, apart)."""
    arguments = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
    names = {argument.arg for argument in arguments}
    typed = {ast.unparse(argument.annotation) for argument in arguments if argument.annotation is not None}
    keyed = "key" in names or any("ClientKey" in annotation for annotation in typed)
    return keyed and bool(names & {"user", "end_user", "user_id"})


def test_no_signature_carries_a_key_and_an_end_user_apart() -> None:
    """Who pays travels as one Payer; an admin endpoint naming a key's record and one of its end
    users (`key_id`, `user`) addresses the record, not who pays."""
    found = [where for where, node in _functions() if _carries_key_and_user(node)]
    assert found == [], f"pass the payer instead: {found}"


def test_the_check_sees_a_key_and_a_user_apart() -> None:
    def parsed(source: str) -> ast.FunctionDef:
        return ast.parse(source).body[0]  # type: ignore[return-value]

    assert _carries_key_and_user(parsed("def f(key, cost, user=None): ..."))
    assert _carries_key_and_user(parsed("def f(self, found: ClientKey, end_user: str): ..."))
    assert not _carries_key_and_user(parsed("def f(payer, cost): ..."))
    assert not _carries_key_and_user(parsed("def f(key_id, user): ..."))


def test_the_doors_into_the_money_take_few_parameters() -> None:
    def count(function: Any) -> int:
        return len([name for name in inspect.signature(function).parameters if name != "self"])

    assert count(Services.admit) <= 3 and count(Admitter.admit) <= 3
    assert count(Limits.admit) <= 4 and count(Counters.admit) <= 4 and count(MemoryCounters.admit) <= 4
    assert count(Billing.delivery) == 1 and count(Account.close) <= 2


def test_no_assignment_to_an_account_after_it_is_built() -> None:
    """An account's parts are set where it is built and nowhere else (held here rather than by a
    frozen dataclass, whose construction costs every request), and it has no others."""
    assigned = []
    for where, node in _functions():
        for inner in ast.walk(node):
            targets = inner.targets if isinstance(inner, ast.Assign) else []
            targets += [inner.target] if isinstance(inner, ast.AugAssign | ast.AnnAssign) else []
            for target in targets:
                for part in ast.walk(target):
                    named = isinstance(part, ast.Attribute) and isinstance(part.value, ast.Name)
                    if named and part.value.id == "account":
                        assigned.append(f"{where} account.{part.attr}")
    assert assigned == []
    with pytest.raises(AttributeError):
        Account(ChatCall("m", (), 5), 1).paid = True  # type: ignore[attr-defined]  # its parts are all it has


def test_a_payer_is_resolved_with_its_end_users_limits_and_rebuilt_the_same() -> None:
    keys = ClientKeys([KEY])
    alice = keys.resolve(Payer(KEY, "alice"))
    assert alice == Payer(KEY, "alice", USERS) and alice.counted_user == "alice" and alice.budgeted
    assert keys.revived(json.loads(json.dumps(alice.record()))) == alice, "through a revival record"
    assert keys.revived(Payer(KEY).record()) == Payer(KEY)
    assert keys.revived({"key": "gone", "user": "alice"}) == Payer(None, "alice"), "a key no longer known"
    plain = ClientKey("", "plain")
    assert keys.resolve(Payer(plain, "bob")) == Payer(plain, "bob"), "no limits of their own: named, not counted"
    assert not Payer(plain, "bob").limited and Payer(plain, "bob").counted_user is None
    assert NOBODY.name == "" and NOBODY.record() == {"key": ""} and not NOBODY.limited


def test_a_blocked_end_user_is_refused_at_admission_and_still_rebuilt_by_a_takeover() -> None:
    class Record:
        def override(self, user: str) -> Any:
            return BLOCKED if user == "mallory" else None

    class View:
        def named(self, name: str) -> Record:
            return Record()

    keys = ClientKeys([KEY])
    keys.view = View()  # type: ignore[assignment]
    with pytest.raises(Exception) as refused:
        keys.resolve(Payer(KEY, "mallory"))
    assert getattr(refused.value, "error_code", None) == "end_user_blocked"
    assert keys.resolve(Payer(KEY, "mallory"), refuse_blocked=False) == Payer(KEY, "mallory", USERS)


def test_an_end_user_the_logs_would_scrub_is_shown_by_its_digest() -> None:
    assert Payer(KEY, "alice").shown == "alice"
    shown = Payer(KEY, "alice@example.com").shown
    assert shown is not None and shown.startswith("sha256:") and "example" not in shown
    assert Payer(KEY).shown is None


class _Provider:
    """What admission and a takeover ask of a provider."""

    name = "fake"

    def route(self, model: str, affinity: Any) -> Route:
        return Route("a")

    def affinity(self, call: ChatCall) -> None:
        return None

    def prompt_tokens(self, messages: Any) -> int:
        return 7

    def continuation(self, model: str, route: Route) -> str:
        return "prefill"

    def adaptations(self, call: ChatCall) -> tuple[str, ...]:
        return ()


class _Settings:
    """What admission and a takeover read of the settings."""

    class upstream:  # noqa: N801
        upstream_rescues = 0
        upstream_takeovers = 0

    class access:  # noqa: N801
        budget_min_tokens = 256

    @staticmethod
    def fallbacks_of(model: str, too_long: bool = False) -> tuple[str, ...]:
        return ()

    @staticmethod
    def price_of(model: str) -> None:
        return None


def test_admission_builds_the_account_whole() -> None:
    limits = Limits(MemoryCounters(Clock()), NoMetrics())
    billing = Billing(limits)
    admitter = Admitter(_Settings(), _Provider(), ClientKeys([KEY]), limits, billing)  # type: ignore[arg-type]
    origin = Origin("cid", "sid")
    admitter.admit(Asked(ChatCall("m", (), 100), 10), Payer(KEY), Origin("first"))  # 110 tokens of tpm counted
    admission = admitter.admit(Asked(ChatCall("m", (), 50_000)), Payer(KEY, "alice"), origin)
    account = admission.account
    assert account.payer == Payer(KEY, "alice", USERS) and account.origin is origin and account.billing is billing
    assert account.ticket is not None and account.ticket.payer == account.payer and admission.verdict is not None
    assert account.call.max_tokens == 10_000 - 110 - 7, "asks for no more than tpm had left to reserve"
    assert account.route.server == "a" and account.route.owner == "app"
    open_api = admitter.admit(Asked(ChatCall("m", (), 5), 3), NOBODY, Origin("c")).account
    assert open_api.ticket is None and open_api.payer == NOBODY and not open_api.limited


def test_an_account_ends_once_whatever_ends_it() -> None:
    ended: list[tuple[str, Any]] = []

    class Recording:
        def end(self, ticket: Any, completion_tokens: int, cost_usd: float | None = None) -> None:
            ended.append(("end", completion_tokens))

        def hand_over(self, ticket: Any) -> None:
            ended.append(("hand_over", None))

        def charge(self, payer: Payer, cost_usd: float) -> None: ...

    class Lookup:
        hit = False

        def provider(self, real: Any) -> Any:
            return real

        def finish(self) -> None:
            ended.append(("finish", None))

    limits = Limits(MemoryCounters(Clock()), NoMetrics())
    ticket, _ = limits.admit(Payer(KEY), Needs(1, 5))
    outcome = Outcome("ab", 2, Usage(1, 2), 1.0, 1.0, "stop")
    for how in ("settled", "released", "handed over"):
        ended.clear()
        billing = Billing(Recording())  # type: ignore[arg-type]
        account = Account(ChatCall("m", (), 5), 1, payer=Payer(KEY), ticket=ticket, lookup=Lookup(), billing=billing)
        account.counting(lambda: 4)
        for _ in range(2):
            if how == "settled":
                account.close(outcome)
            elif how == "released":
                account.close()
            else:
                account.close(handed_over=True)
        expected = {"settled": ("end", 2), "released": ("end", 4), "handed over": ("hand_over", None)}[how]
        assert ended == [expected, ("finish", None)], how


def test_a_takeover_builds_the_account_whole_before_its_producer_starts(monkeypatch) -> None:
    """The payer and its ticket are the account's when the producer reads it, not set after."""
    limits = Limits(MemoryCounters(Clock()), NoMetrics())
    started: list[Account] = []

    def start(stream: Stream, provider: Any, settings: Any, account: Account, metrics: Any) -> None:
        started.append(account)

    monkeypatch.setattr(taking.producer, "start", start)
    keys = ClientKeys([KEY])
    taker = Takeover(_Settings(), _Provider(), keys, limits, Billing(limits), NoMetrics(), {})  # type: ignore[arg-type]
    stream = Stream("sid", "cid", "m", 0.0)
    call = {"call": {"model": "m", "messages": [], "max_tokens": 5}, "prompt_tokens": 3}
    held = {**Payer(KEY, "alice").record(), "id": "t1", "reserved": 5, "second": 0}
    assert taker.adopt(stream, {**call, "ticket": held})
    account = started[0]
    assert account.payer == Payer(KEY, "alice", USERS) and account.origin == Origin("cid", "sid")
    assert account.ticket is not None and account.ticket.id == "t1" and account.ticket.payer == account.payer
