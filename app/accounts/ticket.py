"""A key's ticket: one admitted generation as its key's counters know it (its id, its end user,
the second it was admitted in, the tokens and the money it reserved, what is counted of it so far)."""

from __future__ import annotations

from collections.abc import Callable

from ..config import ClientKey
from ..config.keys import EndUser
from ..ids import random_id
from .budget import Reservation


class Ticket:
    """One admitted generation: its key, the completion tokens reserved for it (tpm), how many it
    has produced so far (`progress`), how many are counted against tpm already (the reservation
    counts from admission), how many are in the metrics, the second it was admitted in, and (with
    a budget and a priced model) its reservation in money."""

    __slots__ = ("counted", "id", "key", "max_tokens", "money", "progress", "reported", "reserved", "second", "user")

    def __init__(self, key: ClientKey, reserved: int = 0, ticket_id: str = "", user: EndUser | None = None) -> None:
        self.id = ticket_id or random_id()
        self.key = key
        self.user = user  # its end user, counted beside its key (None: none)
        self.max_tokens: int | None = None  # lowered to what its budget had left (None: as asked)
        self.progress: Callable[[], int] = lambda: 0
        self.reserved = reserved
        self.counted = reserved
        self.reported = 0
        self.second = 0
        self.money: Reservation | None = None

    def held(self) -> dict[str, object]:
        """What another worker needs to go on with this ticket if this one dies (kept with the call)."""
        found = {"key": self.key.name, "id": self.id, "reserved": self.reserved, "second": self.second}
        if self.user is not None:
            found["user"] = self.user.id
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
