"""Who pays for a generation (`Payer`): its client key, the end user it answers (the application's
own id), and what the key holds that end user to. Resolved once, at admission (`ClientKeys.resolve`);
tickets, closings, the counters, refusals, alerts, the spend tally and the delivery charge take it
whole, and a stream's revival record keeps it for the worker that takes the stream over."""

from __future__ import annotations

from typing import Any, NamedTuple

from ..config import ClientKey
from ..config.keys import EndUserLimits, digest
from ..logs.redaction import redact


class Payer(NamedTuple):
    """Who pays: the client key (None: the API is open: nothing is counted, the spend report shows
    the open API's), its end user's id (None: none named) and, where the key holds its end users to
    limits of their own, theirs (None: the key alone is counted)."""

    key: ClientKey | None = None
    user: str | None = None
    user_limits: EndUserLimits | None = None

    @property
    def name(self) -> str:
        """The key's name, as logs, metrics and the spend report show it ("" when the API is open)."""
        return "" if self.key is None else self.key.name

    @property
    def counted_user(self) -> str | None:
        """The end user the key's counters count beside it (None: none, or no limits of their own)."""
        return None if self.user_limits is None else self.user

    @property
    def limited(self) -> bool:
        """Whether any limit counts its generations, its key's or its end user's."""
        return self.key is not None and (self.key.limited or self.user_limits is not None)

    @property
    def budgeted(self) -> bool:
        """Whether its generations reserve money: its key or its end user has a budget."""
        user = self.user_limits
        return self.key is not None and (self.key.budgeted or (user is not None and user.budgeted))

    @property
    def counts_tokens(self) -> bool:
        """Whether its generations reserve tokens: its key or its end user has a tpm."""
        user = self.user_limits
        return self.key is not None and (self.key.tpm is not None or (user is not None and user.tpm is not None))

    @property
    def pays_delivered(self) -> bool:
        """Whether it pays for the output that reaches its clients (else for what is generated)."""
        return self.key is not None and self.key.pays_delivered

    @property
    def shown(self) -> str | None:
        """Its end user as logs and spans show them: the id, or (one the logs would scrub: an e-mail,
        a phone number) `sha256:` and the start of its digest, which tells one end user's lines
        apart without showing who they are."""
        user = self.user
        if user is None or redact(user) == user:
            return user
        return "sha256:" + digest(user)[:16]

    def record(self) -> dict[str, Any]:
        """What another worker rebuilds it from (`ClientKeys.revived`): its key's name and its end user."""
        found: dict[str, Any] = {"key": self.name}
        return found if self.user is None else found | {"user": self.user}


NOBODY = Payer()  # the API is open and no end user is named
