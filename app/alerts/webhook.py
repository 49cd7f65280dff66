"""An alert's delivery: a JSON POST to BUDGET_ALERT_WEBHOOK signed with HMAC-SHA256 of
`{timestamp}.{body}` under BUDGET_ALERT_SECRET (`X-ChatWait-Signature: t=...,v1=<hex>`), from a
bounded queue SENDERS greenlets drain (a receiver that errs or hangs holds one alert, not all),
retried with backoff; each alert is one log line (and a count) whether it was sent, failed after
every try (with the last try's reason: the receiver's status, or the error's type), or dropped
(the queue full)."""

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
SENDERS = 4  # alerts on their way at once
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
        self._senders: list[gevent.Greenlet] = []
        limits = httpx.Limits(max_connections=SENDERS, max_keepalive_connections=SENDERS)
        self._client = httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False, limits=limits)

    def send(self, alert: dict[str, Any]) -> None:
        """Queue `alert` (never waits: a full queue drops it, and says so)."""
        try:
            self._queue.put_nowait(alert)
        except gevent.queue.Full:
            self._done("dropped", alert)

    def start(self) -> None:
        self._senders = [gevent.spawn(self._send_forever) for _ in range(SENDERS)]

    def close(self) -> None:
        gevent.killall(self._senders, block=False)
        self._client.close()

    def _send_forever(self) -> None:
        while True:
            alert = self._queue.get()
            try:
                self._deliver(alert)
            except Exception as error:  # the next alerts still go
                self._done("failed", alert, reason=type(error).__name__)
                log.exception("budget_alert_failed")

    def _deliver(self, alert: dict[str, Any]) -> None:
        body = orjson.dumps(alert)
        wait, reason = BACKOFF_SECONDS, ""
        for attempt in range(1, TRIES + 1):
            timestamp = int(time.time())
            headers = {"Content-Type": "application/json", SIGNATURE: signature(self._secret, timestamp, body)}
            try:
                with self._client.stream("POST", self._url, content=body, headers=headers) as answer:
                    status = answer.status_code  # its body is never read: a receiver's size is its own
                if status < 300:
                    self._done("sent", alert, attempt)
                    return
                reason = f"status {status}"
            except httpx.HTTPError as error:
                reason = type(error).__name__
            if attempt < TRIES:
                gevent.sleep(wait)
                wait *= 2
        self._done("failed", alert, TRIES, reason)

    def _done(self, outcome: str, alert: dict[str, Any], tries: int = 0, reason: str = "") -> None:
        said = {"outcome": outcome, "client_name": alert["key"], "budget": alert["budget"], "tries": tries}
        said |= {"type": alert["type"], "threshold_percent": alert["threshold_percent"], "end_user": alert["end_user"]}
        if reason:
            said["reason"] = reason
        (log.info if outcome == "sent" else log.warning)("budget_alert", extra=said)
        self._metrics.budget_alert(outcome)
