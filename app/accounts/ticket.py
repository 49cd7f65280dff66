"""A ticket: one admitted generation as its payer's counters know it (its id, its payer, the
second it was admitted in, the tokens and the money it reserved, what is counted of it so far)."""

from __future__ import annotations

from collections.abc import Callable

from ..config import ClientKey
from ..ids import random_id
from .budget import Reservation
from .payer import Payer


class Ticket:
    """One admitted generation: its payer, the completion tokens reserved for it (tpm), how many it
    has produced so far (`progress`), how many are counted against tpm already (the reservation
    counts from admission), how many are in the metrics, the second it was admitted in, and (with
    a budget and a priced model) its reservation in money. A WebSocket held open is a ticket too
    (`limits.sockets`)."""

    __slots__ = ("counted", "id", "max_tokens", "money", "payer", "progress", "reported", "reserved", "second")

    def __init__(self, payer: Payer, reserved: int = 0, ticket_id: str = "") -> None:
        self.id = ticket_id or random_id()
        self.payer = payer  # its key is set: only a key's counters hold tickets
        self.max_tokens: int | None = None  # lowered to what its budget had left (None: as asked)
        self.progress: Callable[[], int] = _none
        self.reserved = reserved
        self.counted = reserved
        self.reported = 0
        self.second = 0
        self.money: Reservation | None = None

    @property
    def key(self) -> ClientKey:
        """Its payer's key."""
        key = self.payer.key
        assert key is not None, "a ticket's payer has a key"
        return key

    def held(self) -> dict[str, object]:
        """What another worker needs to go on with this ticket if this one dies (kept with the call,
        beside its payer's `record`)."""
        found = {"id": self.id, "reserved": self.reserved, "second": self.second}
        return found if self.money is None else found | self.money.held()

    def most_tokens(self, asked: int) -> int:
        """The completion tokens a generation asking `asked` may produce: no more than its key's
        tpm and budget had left to reserve."""
        most = asked
        if self.key.tpm and 0 < self.reserved < most:
            most = self.reserved
        if self.max_tokens is not None and self.max_tokens < most:
            most = self.max_tokens
        return most


def _none() -> int:
    return 0
