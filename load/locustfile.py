"""Locust suite: chat users streaming and waiting through ChatWait.

Each streaming request reports two extra entries: `first_token` (time to the first `chunk`
event) and `full_stream` (time to the terminal event); a stream that ends with `error`, or
without a terminal event, counts as a failure. Wait-mode requests are reported by route.
At the end the run fails (exit code 1) if any request failed or first-token p95 exceeds
FIRST_TOKEN_P95_MS (2000 ms, the seed's target).

Run it with load/run_locust.py, which starts the fake upstream and ChatWait first.
"""

from __future__ import annotations

import os
import time

from locust import HttpUser, between, events, task

TOKENS = int(os.environ.get("CHAT_TOKENS", "200"))
DELAY_MS = float(os.environ.get("CHAT_DELAY_MS", "20"))
FIRST_TOKEN_P95_MS = float(os.environ.get("FIRST_TOKEN_P95_MS", "2000"))
STREAMING = "/v1/chat/streaming"


class ChatUser(HttpUser):
    """A person chatting: mostly streaming replies, sometimes waiting for a whole one."""

    wait_time = between(0.5, 1.5)

    def _report(self, name: str, started: float, error: Exception | None = None) -> None:
        self.environment.events.request.fire(
            request_type="SSE",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=error,
            context={},
        )

    @task(4)
    def stream(self) -> None:
        body = {"message": f"Tell me a story @tokens={TOKENS} @delay_ms={DELAY_MS}"}
        started = time.perf_counter()
        first = False
        terminal = None
        with self.client.post(STREAMING, json=body, stream=True, name=STREAMING, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                return
            for line in response.iter_lines():
                if line == b"event: chunk" and not first:
                    first = True
                    self._report(f"first_token {STREAMING}", started)
                elif line in (b"event: done", b"event: error"):
                    terminal = line[7:].decode()
            if terminal == "done":
                response.success()
                self._report(f"full_stream {STREAMING}", started)
            else:
                problem = RuntimeError(f"stream ended with {terminal or 'no terminal event'}")
                response.failure(str(problem))
                self._report(f"full_stream {STREAMING}", started, problem)

    @task(1)
    def wait(self) -> None:
        body = {"message": f"Answer at once @tokens={TOKENS // 4} @delay_ms={DELAY_MS}"}
        with self.client.post("/v1/chat/wait", json=body, name="/v1/chat/wait", catch_response=True) as response:
            if response.status_code != 200 or not response.json().get("content"):
                response.failure(f"HTTP {response.status_code}")


@events.quitting.add_listener
def _check_targets(environment, **_) -> None:
    """Fail the run on any error, or first-token p95 over the target."""
    stats = environment.stats
    first_token = stats.get(f"first_token {STREAMING}", "SSE")
    p95 = first_token.get_response_time_percentile(0.95) if first_token.num_requests else None
    failures = stats.total.num_failures
    ok = failures == 0 and p95 is not None and p95 <= FIRST_TOKEN_P95_MS
    print(
        f"first_token p95 = {p95} ms (target <= {FIRST_TOKEN_P95_MS:g}), failures = {failures}: "
        f"{'PASS' if ok else 'FAIL'}",
        flush=True,
    )
    environment.process_exit_code = 0 if ok else 1
