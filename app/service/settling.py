"""How a stream's account settles: its completion tokens counted as its chunks come, and the
account settled once its producer ends (from its outcome), unless another worker took it over."""

from __future__ import annotations

from typing import Any

from ..accounts.account import Account
from ..streaming.stream import Stream


def settled_with(account: Account, stream: Stream) -> None:
    """Count a stream's completion tokens as its chunks come, and settle its account with it
    (from its outcome, also when its producer ended before it got here)."""
    account.counting(lambda: stream.chunks)
    greenlet = stream.producer

    def ended(done: Any) -> None:
        if stream.tenure.moved is not None:  # another worker took it over: it settles the account
            account.hand_over()
            return
        outcome = done.value if done is not None and done.successful() else None
        account.settle(outcome, lambda: stream.chunks, stream.model, whole=False)

    if greenlet is None or greenlet.dead:  # a short reply can end while the store admits it
        ended(greenlet)
        return
    greenlet.link(ended)
