"""Budget alerts: the thresholds a key's and an end user's budgets reach, each alerted once per
period (in one worker's memory and across workers on one file), and the webhook's delivery: a
valid HMAC-SHA256 signature, retries with backoff, one log line and one count per alert."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

import httpx
import pytest
import respx

from app.accounts.budget import Budget
from app.accounts.payer import Payer
from app.alerts import thresholds, webhook
from app.alerts.thresholds import Alerts, MemoryMarks, SqliteMarks, Thresholds
from app.alerts.webhook import Webhook
from app.config import ClientKey, ConfigError, load_settings
from app.metrics.catalogue import Metrics

URL = "http://alerts.test/hook"
SECRET = "s3cret-for-the-alerts"


APP = Payer(ClientKey("", "app"))
ALICE = Payer(APP.key, "alice")


def _spend(spent: float, name: str = "budget_day", limit: float = 10.0) -> Budget:
    return Budget(name, limit, spent, "2026-11-28", 3600.0)


def test_each_threshold_alerts_once_per_budget_period_and_end_user() -> None:
    found = Thresholds((50, 80, 100), MemoryMarks())
    assert found.reached(APP, [_spend(4.9)]) == []
    first = found.reached(APP, [_spend(8.5)])
    assert [(a["threshold_percent"], a["budget"], a["end_user"]) for a in first] == [
        (50, "budget_day", None), (80, "budget_day", None)]  # fmt: skip
    assert found.reached(APP, [_spend(9.0)]) == [], "each once"
    assert [a["threshold_percent"] for a in found.reached(APP, [_spend(10.0)])] == [100]
    users = found.reached(ALICE, [_spend(0.6, "user_budget_day", 1.0)])
    assert [(a["end_user"], a["budget"], a["threshold_percent"]) for a in users] == [("alice", "user_budget_day", 50)]
    other_day = Budget("budget_day", 10.0, 6.0, "2026-11-29", 3600.0)
    assert [a["period"] for a in found.reached(APP, [other_day])] == ["2026-11-29"], "a new period"


def test_workers_sharing_a_file_alert_once(tmp_path) -> None:
    first, second = Thresholds((50,), SqliteMarks(tmp_path)), Thresholds((50,), SqliteMarks(tmp_path))
    assert len(first.reached(APP, [_spend(6.0)])) == 1
    assert second.reached(APP, [_spend(7.0)]) == [], "the other worker marked it"


class Failing(MemoryMarks):
    def mark(self, name: str) -> bool:
        raise thresholds.redis.ConnectionError("down")


def test_a_mark_that_cannot_be_made_is_tried_again_at_the_next_admission() -> None:
    found = Thresholds((50,), Failing())
    assert found.reached(APP, [_spend(6.0)]) == []
    found.marks = MemoryMarks()
    assert len(found.reached(APP, [_spend(6.0)])) == 1


def test_an_alert_is_posted_signed_and_retried_with_backoff(monkeypatch, sleeps, caplog) -> None:
    metrics = Metrics()
    hook = Webhook(URL, SECRET, metrics)
    alert = Thresholds((80,), MemoryMarks()).reached(ALICE, [_spend(9.0)])[0]
    with respx.mock(assert_all_called=True) as router:
        route = router.post(URL).mock(side_effect=[httpx.Response(500), httpx.ConnectError("no"), httpx.Response(204)])
        with caplog.at_level(logging.INFO):
            hook._deliver(alert)
    assert route.call_count == 3 and sleeps[:2] == [1.0, 2.0], "backoff doubles"
    request = route.calls[-1].request
    stamp, mac = dict(part.split("=", 1) for part in request.headers[webhook.SIGNATURE].split(",")).values()
    expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + request.content, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(mac, expected) and json.loads(request.content) == alert
    said = [r for r in caplog.records if r.getMessage() == "budget_alert"]
    assert [(r.outcome, r.tries) for r in said] == [("sent", 3)]
    assert SECRET not in caplog.text
    assert metrics.keys.alerts.labels("sent")._value.get() == 1
    hook.close()


def test_an_alert_that_never_gets_through_fails_once_and_a_full_queue_drops(monkeypatch, sleeps, caplog) -> None:
    hook = Webhook(URL, SECRET, Metrics())
    alert = Thresholds((50,), MemoryMarks()).reached(APP, [_spend(6.0)])[0]
    with respx.mock() as router, caplog.at_level(logging.INFO):
        router.post(URL).mock(return_value=httpx.Response(503))
        hook._deliver(alert)
        monkeypatch.setattr(webhook, "MAX_QUEUED", 1)
        full = Webhook(URL, SECRET, Metrics())
        full.send(alert)
        full.send(alert)
    said = [(r.outcome, r.tries) for r in caplog.records if r.getMessage() == "budget_alert"]
    assert said == [("failed", webhook.TRIES), ("dropped", 0)]
    failed = next(r for r in caplog.records if r.getMessage() == "budget_alert" and r.outcome == "failed")
    assert failed.reason == "status 503", "a failed delivery says why"
    assert sleeps[: webhook.TRIES - 1] == [1.0, 2.0, 4.0, 8.0]
    hook.close()
    full.close()


def test_a_receiver_that_hangs_holds_one_alert_not_all(monkeypatch) -> None:
    """The red team's finding: one serial sender, so an erring receiver held each alert ~31 s."""
    import gevent
    import gevent.event

    release, delivered = gevent.event.Event(), []
    hook = Webhook(URL, SECRET, Metrics())

    def deliver(alert: dict) -> None:
        if alert["threshold_percent"] == 50:
            release.wait(10)  # the first alert's receiver hangs
        delivered.append(alert["threshold_percent"])

    monkeypatch.setattr(hook, "_deliver", deliver)
    hook.start()
    for alert in Thresholds((50, 80, 100), MemoryMarks()).reached(APP, [_spend(10.0)]):
        hook.send(alert)
    gevent.sleep(0.2)
    assert delivered == [80, 100], "the others went while the first waited"
    release.set()
    gevent.sleep(0.1)
    assert delivered == [80, 100, 50]
    hook.close()


def test_alerts_go_through_the_sender() -> None:
    sent: list[dict] = []

    class Sender:
        def send(self, alert):
            sent.append(alert)

        def start(self) -> None: ...

        def close(self) -> None: ...

    alerts = Alerts(Thresholds((50,), MemoryMarks()), Sender())
    alerts.check(Payer(APP.key, "bob"), [_spend(6.0), _spend(1, "user_budget_day", 1)])
    assert [(a["end_user"], a["budget"]) for a in sent] == [(None, "budget_day"), ("bob", "user_budget_day")]


@pytest.mark.parametrize(
    ("environ", "said"),
    [({"BUDGET_ALERT_WEBHOOK": URL}, "go together"), ({"BUDGET_ALERT_THRESHOLDS": "50,101"}, "from 1 to 100")],
)
def test_alert_settings_are_checked(environ, said) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={"OPENAI_API_KEY": "sk-test", **environ})
    assert said in str(refused.value)


def test_the_receivers_answer_is_never_read(sleeps) -> None:
    class Unread(httpx.SyncByteStream):
        def __iter__(self):
            raise AssertionError("the receiver's body was read")

    hook = Webhook(URL, SECRET, Metrics())
    alert = Thresholds((50,), MemoryMarks()).reached(APP, [_spend(6.0)])[0]
    with respx.mock() as router:
        route = router.post(URL).mock(return_value=httpx.Response(200, stream=Unread()))
        hook._deliver(alert)
    assert route.call_count == 1 and sleeps == [], "sent at the first try, its answer's body untouched"
    hook.close()
