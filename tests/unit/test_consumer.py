"""The SSE response of a stream, as the chat views hand it to the server."""

from __future__ import annotations

import gevent
import httpx

from ..conftest import UNIT_UPSTREAM, mock_upstream
from ..sse import upstream_reply


def test_the_worker_yields_its_cpu_once_the_response_head_is_written(client, monkeypatch) -> None:
    """A client on this machine, woken on the worker's CPU by the response head and the
    priming event, reads them before the worker goes on (`let_local_reader_run`)."""
    written: list[bytes] = []
    written_at_yield: list[int] = []
    monkeypatch.setattr("app.server.scheduling.os.sched_yield", lambda: written_at_yield.append(len(written)))

    def answer_a_moment_later(_: httpx.Request) -> httpx.Response:
        gevent.sleep(0.01)  # the response head goes out first, as with any real upstream
        return httpx.Response(200, content=upstream_reply("Hel", "lo"))

    with mock_upstream() as upstream:
        upstream.post(f"{UNIT_UPSTREAM}/chat/completions").mock(side_effect=answer_a_moment_later)
        response = client.post("/v1/chat/streaming", json={"message": "hi"}, buffered=False)
        for frames in response.response:  # the server writes each item as it comes
            written.append(frames)
    assert b"event: stream" in written[0] and b"event: chunk" not in written[0]
    assert written_at_yield[0] == 1, "the first yield came right after the response head and priming event"
    assert len(written_at_yield) == 2, "then once more, after the first chunk"
