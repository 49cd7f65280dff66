"""Money has one home: the names of what a generation reserves, spends and owes (tickets,
settlements, reservations, prices, costs, budgets, charges) appear in code only in the account's
home (`accounts/`), the modules that reserve and settle (the key limits, admission), the
configuration that defines prices and budgets, and the few that report money (the cost header,
the usage objects, the attempts' ledger, the spend endpoint). A new module that needs one of
them passes the account instead, or joins this list for a reason."""

from __future__ import annotations

import ast
import re
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"

MONEY = re.compile(
    r"^(tickets?|Ticket|Settlement|settle|settlement|Reservation|reservation|price_of|Price|prices?|cost_usd|"
    r"budget|budgets|KeyLimits|Closing|nano|NANO|charge|charged|charger|pays_delivered|budgeted|most_tokens|"
    r"Owed|owed)$"
)
HOME = ("app.accounts",)
RESERVE_AND_SETTLE = (
    "app.limits",
    "app.service.admitting",  # the one place an account is built: its payer's reservation
    "app.service.services",
    "app.service.running",
    "app.service.settling",
    "app.service.takeover",
)
CONFIGURE = ("app.config",)
REPORT = (
    "app.apis.request",  # the cost header; the delivery charge taken while the request is current
    "app.apis.schema",  # the usage objects' cost
    "app.generation.attempts",  # each attempt's cost in the usage ledger
    "app.generation.outcome",  # what a generation cost
    "app.generation.report",  # the cost metric
    "app.http.spend",  # GET /v1/spend
    "app.http.schemas",  # its reply
    "app.http.admin",  # GET /v1/admin/spend
    "app.http.admin_schemas",  # its reply
    "app.providers.call",  # Usage.charged: the tokens a generation is charged
    "app.spend",  # what keys and end users were charged, by model and day: the spend report
    "app.alerts",  # where budgets stand, as alerts
)
ALLOWED = HOME + RESERVE_AND_SETTLE + CONFIGURE + REPORT


def _module(path: Path) -> str:
    return ".".join(path.relative_to(APP.parent).with_suffix("").parts).removesuffix(".__init__")


def _names(tree: ast.AST) -> set[str]:
    """Every identifier a module's code uses or defines (not its docstrings or strings)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, ast.arg):
            found.add(node.arg)
        elif isinstance(node, ast.alias):
            found.update(filter(None, (node.name.rsplit(".", 1)[-1], node.asname)))
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.rsplit(".", 1)[-1])
    return found


def _money_in(source: str) -> list[str]:
    return sorted(name for name in _names(ast.parse(source)) if MONEY.match(name))


def _allowed(module: str) -> bool:
    return any(module == place or module.startswith(place + ".") for place in ALLOWED)


def test_money_is_named_only_where_it_is_reserved_settled_or_reported() -> None:
    found = {}
    for path in sorted(APP.rglob("*.py")):
        module = _module(path)
        named = _money_in(path.read_text())
        if named and not _allowed(module):
            found[module] = named
    assert found == {}, f"money named outside its home (pass the account instead): {found}"


def test_the_check_finds_money_in_code_and_not_in_words() -> None:
    assert _money_in("def f(ticket):\n    return ticket.money") == ["ticket"]
    assert _money_in("from ..accounts import budget\nx = budget.nano(1)") == ["budget", "nano"]
    assert _money_in('"""What it cost, its ticket."""\nx = "cost_usd"') == []
    assert _allowed("app.limits.shared") and _allowed("app.accounts.account")
    assert not _allowed("app.streaming.consumer") and not _allowed("app.limitsx")
