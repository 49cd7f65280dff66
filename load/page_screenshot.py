"""The README's screenshot of the chat page, as a user gets it: the embedded model, a real reply.

    ./scripts/load page_screenshot.py            # writes docs/chat-page.png

Starts ChatWait on its defaults (the embedded model), asks one question in Chromium (Debian's,
or $CHROMIUM), waits for the reply's end, opens its Details and saves the window.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness.processes import ROOT, ChatWaitServer

QUESTION = "Give me three short tips for writing clear emails."
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "chat-page.png")
    parser.add_argument("--question", default=QUESTION)
    args = parser.parse_args()
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    server = ChatWaitServer({"LLM_PROVIDER": "local"})
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=FLAGS, headless=True)
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            page.goto(server.url)
            page.fill("#input", args.question)
            page.click("#send")
            page.wait_for_selector("#stop", state="visible", timeout=30_000)  # the reply has begun
            page.wait_for_selector("#stop", state="hidden", timeout=180_000)  # and ended
            page.locator(".details-toggle").last.click()
            page.wait_for_timeout(300)
            page.screenshot(path=str(args.out))
            browser.close()
    finally:
        server.stop()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
