"""What a request's attachments are billed as beyond the input count's estimates, by the rule of
the model that bills them most: its images (`images`) and its files (`documents`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from . import documents, images


def surcharge(models: Iterable[str], messages: list[dict[str, Any]]) -> int:
    """The tokens `messages`' images and files are billed as beyond the input count's estimate,
    by the one of `models` that bills them most."""
    models = tuple(models)
    return images.surcharge(models, messages) + documents.surcharge(models, messages)
