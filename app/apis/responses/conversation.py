"""A response's `conversation` (the Conversations API's, `apis.conversations`): the conversation's
items come before its input, and as it ends (completed or incomplete) its input and output items
are appended, before its last event."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ...generation.outcome import Outcome
from ...service.services import Services
from ...streaming.stream import Stream
from .replies import response_status
from .wire import ResponsesWriter

log = logging.getLogger("chatwait.conversations")


def appender(
    found: Services, client_digest: str, conversation_id: str, input_items: list[dict[str, Any]]
) -> Callable[[Stream, Outcome], None]:
    """What appends a response's turn (its input items, then its output items) to its
    conversation as its generation ends, before its last event: a client that saw the end finds
    the turn there. A failed or cancelled turn is not appended; a store that fails loses the
    turn (logged), never the response."""

    def append(stream: Stream, outcome: Outcome) -> None:
        said = {"conversation_id": conversation_id, "stream_id": stream.stream_id}
        status = response_status(outcome.finish_reason, outcome.error is not None)
        writer = stream.writer
        if status not in ("completed", "incomplete") or not isinstance(writer, ResponsesWriter):
            return
        try:
            turn = [*input_items, *writer.output(outcome.text, outcome.parts, outcome)]
            if not found.conversations.append(client_digest, conversation_id, turn):
                log.warning("conversation_gone", extra=said)
        except Exception as error:  # the response stands: only its turn is missing from the conversation
            log.error("conversation_not_appended", extra={**said, "error_type": type(error).__name__})

    return append
