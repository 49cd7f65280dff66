"""A browser's own EventSource (Chromium) resuming an OpenAI-compatible completion stream: the
`?starting_after=N` of its first request, its automatic reconnect with Last-Event-ID after a
cut, and the 204 that ends its reconnecting once it holds the last event."""

from __future__ import annotations

import json

import httpx
from playwright.sync_api import Browser

from ..conftest import FAKE_MODEL
from ..sse import iter_events
from .conftest import WAIT_MS

FOLLOW = """
async ({url, wait}) => new Promise((resolve) => {
  const seen = [];
  let opens = 0, errors = 0;
  const source = new EventSource(url);
  source.onopen = () => { opens += 1; };
  source.onmessage = (event) => { seen.push([event.lastEventId, event.data]); };
  source.onerror = () => {
    errors += 1;
    if (source.readyState === EventSource.CLOSED) resolve({seen, opens, errors, closed: true});
  };
  setTimeout(() => { source.close(); resolve({seen, opens, errors, closed: false}); }, wait);
})
"""


def test_event_source_resumes_a_completion_through_a_cut_and_stops_at_the_end(browser: Browser, proxy) -> None:
    body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": "@tokens=60 @delay_ms=30"}], "stream": True}
    with httpx.stream("POST", f"{proxy.url}/v1/chat/completions", json=body, timeout=30) as response:
        stream_id = response.headers["x-stream-id"]
        for event in iter_events(response):
            if event.id == 3:
                break  # the first client drops after event 3; a browser picks the stream up
    proxy.cut_next_stream(after_bytes=2000)  # the browser's first connection breaks part-way
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{proxy.url}/health")  # the same origin as the API
        url = f"/v1/chat/completions/{stream_id}/stream?starting_after=3"
        result = page.evaluate(FOLLOW, {"url": url, "wait": WAIT_MS})
    finally:
        context.close()
    assert result["closed"], "EventSource stopped reconnecting by itself (the 204 after [DONE])"
    assert proxy.cuts == 1 and result["opens"] == 2, "one cut, one automatic reconnect with Last-Event-ID"
    ids = [int(event_id) for event_id, _ in result["seen"]]
    assert ids == [*range(4, 62), 61], "every event after 3 exactly once; the finish chunk and [DONE] share 61"
    datas = [data for _, data in result["seen"]]
    assert datas[-1] == "[DONE]"
    chunks = [json.loads(data) for data in datas[:-1]]
    text = "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in chunks)
    assert text == "".join(f"tok{i} " for i in range(3, 60))
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
