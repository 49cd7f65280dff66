"""An alert's delivery: a JSON POST to BUDGET_ALERT_WEBHOOK signed with HMAC-SHA256 of
`{timestamp}.{body}` under BUDGET_ALERT_SECRET (`X-ChatWait-Signature: t=...,v1=<hex>`), from a
bounded queue a greenlet drains, retried with backoff; each alert is one log line (and a count)
whether it was sent, failed after every try, or dropped (the queue full)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from typing import Any

import gevent
import gevent.queue
import httpx
import orjson

from ..metrics.catalogue import Metrics, NoMetrics

log = logging.getLogger("chatwait.alerts")

MAX_QUEUED = 1_000
TRIES = 5
BACKOFF_SECONDS = 1.0  # doubled after each failed try
TIMEOUT_SECONDS = 5.0
SIGNATURE = "X-ChatWait-Signature"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: `t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class Webhook:
    """Alerts on their way to the webhook (see the module)."""

    def __init__(self, url: str, secret: str, metrics: Metrics | NoMetrics) -> None:
        self._url, self._secret, self._metrics = url, secret, metrics
        self._queue: gevent.queue.Queue[dict[str, Any]] = gevent.queue.Queue(MAX_QUEUED)
        self._sender: gevent.Greenlet | None = None
        self._client = httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False)

    def send(self, alert: dict[str, Any]) -> None:
        """Queue `alert` (never waits: a full queue drops it, and says so)."""
        try:
            self._queue.put_nowait(alert)
        except gevent.queue.Full:
            self._done("dropped", alert)

    def start(self) -> None:
        self._sender = gevent.spawn(self._send_forever)

    def close(self) -> None:
        if self._sender is not None:
            self._sender.kill(block=False)
        self._client.close()

    def _send_forever(self) -> None:
        while True:
            alert = self._queue.get()
            try:
                self._deliver(alert)
            except Exception:  # the next alerts still go
                self._done("failed", alert)
                log.exception("budget_alert_failed")

    def _deliver(self, alert: dict[str, Any]) -> None:
        body = orjson.dumps(alert)
        wait = BACKOFF_SECONDS
        for attempt in range(1, TRIES + 1):
            timestamp = int(time.time())
            headers = {"Content-Type": "application/json", SIGNATURE: signature(self._secret, timestamp, body)}
            try:
                with self._client.stream("POST", self._url, content=body, headers=headers) as answer:
                    sent = answer.status_code < 300  # its body is never read: a receiver's size is its own
                if sent:
                    self._done("sent", alert, attempt)
                    return
            except httpx.HTTPError:
                pass
            if attempt < TRIES:
                gevent.sleep(wait)
                wait *= 2
        self._done("failed", alert, TRIES)

    def _done(self, outcome: str, alert: dict[str, Any], tries: int = 0) -> None:
        said = {"outcome": outcome, "client_name": alert["key"], "budget": alert["budget"], "tries": tries}
        said |= {"threshold_percent": alert["threshold_percent"], "end_user": alert["end_user"]}
        (log.info if outcome == "sent" else log.warning)("budget_alert", extra=said)
        self._metrics.budget_alert(outcome)
