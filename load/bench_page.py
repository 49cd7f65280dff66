"""Chat page benchmark: how far the page's screen trails the stream it receives, in Chromium.

    ./scripts/load bench_page.py --rounds 5

Two arms, alternating in every round, each in a fresh browser context:
- `burst`: a 10,000-token reply sent as fast as the fake upstream can (`@delay_ms=0`); reports
  how long after its last chunk reached the page the whole reply was on screen.
- `paced`: a reply at 100 tokens/s (`@delay_ms=10`); reports each chunk's lag, from reaching
  the page to its text being in the DOM, as p50 / p95 / max.

The page is instrumented from outside (an init script): `fetch` is wrapped so that an SSE
response is teed and its chunks timed as they arrive; a MutationObserver times each change of
the reply's shown text (the page renders in animation-frame callbacks, so that is when it is
painted next). Text is compared by its count of non-space characters (Markdown moves spaces).
The longest main-thread task (Long Tasks API) after the first chunk is reported too. Chromium and this script run on
CPU 0, ChatWait and the fake upstream on CPU 1 (on a machine with 2 CPUs or more).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness.processes import ROOT, ChatWaitServer, FakeUpstream
from load.stats import pct

ARMS = {"burst": "@tokens={tokens} @delay_ms=0", "paced": "@tokens={tokens} @delay_ms=10"}
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
INSTRUMENT = """
(() => {
  const bench = (window.__bench = { arrivals: [], shows: [], tasks: [] });
  const solid = (text) => text.replace(/\\s+/g, "").length;
  const original = window.fetch;
  window.fetch = async (...args) => {
    const response = await original(...args);
    if (!(response.headers.get("content-type") || "").startsWith("text/event-stream")) return response;
    const [page, mine] = response.body.tee();
    (async () => {
      const reader = mine.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      let shown = 0;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        const now = performance.now();
        buffer += decoder.decode(value, { stream: true });
        const blocks = buffer.split("\\n\\n");
        buffer = blocks.pop();
        for (const block of blocks) {
          if (!block.includes("event: chunk")) continue;
          const data = block.split("\\n").find((line) => line.startsWith("data: "));
          shown += solid(JSON.parse(data.slice(6)).content);
          bench.arrivals.push([now, shown]);
        }
      }
    })();
    return new Response(page, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
  new MutationObserver(() => {
    const body = [...document.querySelectorAll(".message.assistant .markdown")].pop();
    if (!body) return;
    const length = solid(body.textContent);
    const last = bench.shows[bench.shows.length - 1];
    if (!last || last[1] !== length) bench.shows.push([performance.now(), length]);
  }).observe(document, { subtree: true, childList: true, characterData: true });
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) bench.tasks.push([entry.startTime, entry.duration]);
  }).observe({ type: "longtask", buffered: true });
})();
"""


def lags_ms(arrivals: list[list[float]], shows: list[list[float]]) -> list[float]:
    """For each arrival (time, characters so far), the time until a show held that many."""
    lags, index = [], 0
    for arrived, characters in arrivals:
        while index < len(shows) and (shows[index][1] < characters or shows[index][0] < arrived):
            index += 1
        if index == len(shows):
            raise RuntimeError(f"text up to {characters} characters was never shown")
        lags.append(shows[index][0] - arrived)
    return lags


def one_reply(page: Page, arm: str, tokens: int) -> dict:
    """Send one turn on a fresh page, wait for the reply to complete, and time it."""
    page.locator("#input").fill(f"Bench {ARMS[arm].format(tokens=tokens)}")
    page.locator("#input").press("Enter")
    page.locator(".message.assistant[data-status=complete]").wait_for(timeout=300_000)
    bench = page.evaluate("window.__bench")
    arrivals, shows = bench["arrivals"], bench["shows"]
    if len(arrivals) != tokens:
        raise RuntimeError(f"{arm}: {len(arrivals)} chunks arrived, {tokens} expected")
    lags = lags_ms(arrivals, shows)
    first = arrivals[0][0]  # main-thread tasks from the first chunk on (not the page's loading)
    tasks = [duration for start, duration in bench["tasks"] if start + duration >= first]
    return {
        "arm": arm,
        "tokens": tokens,
        "arrival_span_ms": round(arrivals[-1][0] - arrivals[0][0], 1),
        "shown_after_last_ms": round(lags[-1], 1),
        "lag_ms": {f"p{q}": round(pct(lags, q), 1) for q in (50, 95)} | {"max": round(max(lags), 1)},
        "dom_updates": len(shows),
        "longest_task_ms": round(max(tasks, default=0.0), 1),
    }


def pin(cpus: set[int]) -> set[int] | None:
    """Pin this process (and the browser it starts) to `cpus`; the other CPUs, for the server."""
    available = os.sched_getaffinity(0)
    if len(available) < 2:
        return None
    os.sched_setaffinity(0, cpus)
    return set(available) - cpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--burst-tokens", type=int, default=10_000)
    parser.add_argument("--paced-tokens", type=int, default=1_000)
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts" / "bench-page.json")
    args = parser.parse_args()
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    server_cpus = pin({0})
    fake = FakeUpstream(cpus=server_cpus)
    server = ChatWaitServer(
        {"OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-bench", "OPENAI_MODEL": "fake-model"},
        cpus=server_cpus,
    )
    results: list[dict] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=FLAGS, headless=True)
            for round_ in range(args.rounds):
                order = ["burst", "paced"] if round_ % 2 == 0 else ["paced", "burst"]
                for arm in order:
                    context = browser.new_context(viewport={"width": 1200, "height": 800})
                    context.add_init_script(INSTRUMENT)
                    page = context.new_page()
                    page.goto(server.url)
                    page.locator("body[data-ready=true]").wait_for()
                    tokens = args.burst_tokens if arm == "burst" else args.paced_tokens
                    result = one_reply(page, arm, tokens) | {"round": round_}
                    context.close()
                    results.append(result)
                    print(json.dumps(result), flush=True)
            browser.close()
    finally:
        server.stop()
        fake.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rounds": args.rounds, "results": results}, indent=2))
    for arm in ARMS:
        mine = [r for r in results if r["arm"] == arm]
        after = sorted(r["shown_after_last_ms"] for r in mine)
        p95 = sorted(r["lag_ms"]["p95"] for r in mine)
        print(
            f"{arm}: shown after the last chunk {after[len(after) // 2]} ms (median; {after[0]}–{after[-1]}), "
            f"lag p95 {p95[len(p95) // 2]} ms ({p95[0]}–{p95[-1]}), arrival span "
            f"{sorted(r['arrival_span_ms'] for r in mine)[len(mine) // 2]} ms, "
            f"longest task {max(r['longest_task_ms'] for r in mine)} ms"
        )


if __name__ == "__main__":
    main()
