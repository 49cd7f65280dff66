"""Run the locust suite headless against the fake upstream through ChatWait, then stop both.

    ./scripts/load run_locust.py [--users 100] [--seconds 60] [--tokens 200] [--delay-ms 20]

Exit code 0 only if no request failed and first-token p95 stayed within 2 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness.processes import BIN, ROOT, ChatWaitServer, FakeUpstream


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--delay-ms", dest="delay_ms", type=float, default=20)
    parser.add_argument("--csv", default="artifacts/locust")
    args = parser.parse_args()
    fake = FakeUpstream()
    server = ChatWaitServer(
        {"OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-load", "OPENAI_MODEL": "fake-model"}
    )
    Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
    try:
        command = [
            str(BIN / "locust"),
            "-f",
            str(ROOT / "load" / "locustfile.py"),
            "--headless",
            "--users",
            str(args.users),
            "--spawn-rate",
            str(max(1, args.users // 5)),
            "--run-time",
            f"{args.seconds}s",
            "--host",
            server.url,
            "--csv",
            args.csv,
            "--only-summary",
        ]
        env = {**os.environ, "CHAT_TOKENS": str(args.tokens), "CHAT_DELAY_MS": str(args.delay_ms)}
        return subprocess.run(command, env=env, check=False).returncode
    finally:
        server.stop()
        fake.stop()


if __name__ == "__main__":
    sys.exit(main())
