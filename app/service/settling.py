"""How a stream's account closes: its completion tokens counted as its chunks come, and the account
closed once its producer ends, from its outcome (handed over where another worker took it over)."""

from __future__ import annotations

from typing import Any

from ..accounts.account import Account
from ..streaming.stream import Stream


def closed_with(account: Account, stream: Stream) -> None:
    """Count a stream's completion tokens as its chunks come, and close its account with it (from
    its outcome, also when its producer ended before it got here)."""
    account.counting(lambda: stream.chunks)
    greenlet = stream.producer

    def ended(done: Any) -> None:
        moved = stream.tenure.moved is not None  # another worker took it over: it settles the account
        outcome = done.value if done is not None and done.successful() and not moved else None
        account.close(outcome, handed_over=moved)

    if greenlet is None or greenlet.dead:  # a short reply can end while the store admits it
        ended(greenlet)
        return
    greenlet.link(ended)
