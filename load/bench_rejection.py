"""What refusing an oversized request costs the worker: CPU per refusal, in process.

    ./scripts/load bench_rejection.py                    # this tree
    ./scripts/load bench_rejection.py ../other-checkout  # and another, one after the other

Each case is a request that must be refused (too many history entries; a conversation over the
character bound), sent through the app 15 times after a warm-up; the median, lowest and highest
CPU time per refusal are printed. A refusal is CPU the worker takes from every open stream.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    "10,000 history entries": {"message": "hi", "history": [{"role": "user", "content": "x" * 40}] * 10_000},
    "1 MB of text in 150 entries": {"message": "hi", "history": [{"role": "user", "content": "word " * 1300}] * 150},
}


def measure() -> None:
    """In a tree's own process: refuse each case and print its CPU cost."""
    import logging

    settings = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "sk-x"}
    try:
        from app import build_app
        from app.config import load_settings

        app = build_app(load_settings(settings))
    except ImportError:  # a tree from before build_app: its test switch skipped the gevent check
        from app import create_app

        app = create_app({"TESTING": "true", **settings})
    logging.disable(logging.CRITICAL)
    client = app.test_client()
    for name, body in CASES.items():
        raw = json.dumps(body)
        times = []
        for attempt in range(18):
            started = time.process_time()
            answer = client.post("/v1/chat/wait", data=raw, content_type="application/json")
            if attempt >= 3:
                times.append((time.process_time() - started) * 1000)
        times.sort()
        code = answer.get_json()["error_code"]
        median = times[len(times) // 2]
        print(f"  {name} ({len(raw) / 1e6:.2f} MB): {answer.status_code} {code}, {median:.1f} ms CPU", end="")
        print(f" (lowest {times[0]:.1f}, highest {times[-1]:.1f})", flush=True)


def main() -> None:
    if sys.argv[1:2] == ["--measure"]:
        measure()
        return
    for root in [Path(__file__).resolve().parent.parent, *map(Path, sys.argv[1:])]:
        print(root.resolve(), flush=True)
        # The app of `root`, measured by this file's code, in a process of its own.
        env = {**os.environ, "PYTHONPATH": str(root.resolve())}
        command = [sys.executable, __file__, "--measure"]
        subprocess.run(command, cwd=root, env=env, check=True, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
