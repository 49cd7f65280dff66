"""The README's screenshots of the chat page, as a user gets it: the embedded model, a real reply.

    ./scripts/load page_screenshot.py            # writes docs/chat-page.png and docs/chat-page-phone.png

Starts ChatWait on its defaults (the embedded model), asks one question in Chromium (Debian's,
or $CHROMIUM) at a desktop's size and at a phone's, waits for the reply's end (on the desktop,
opens its Details) and saves each window.
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

QUESTION = "Show a Python function that reverses a string, in a code block."
SIZES = {"chat-page.png": {"width": 1200, "height": 800}, "chat-page-phone.png": {"width": 390, "height": 844}}
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="the folder the screenshots go to")
    parser.add_argument("--question", default=QUESTION)
    args = parser.parse_args()
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    server = ChatWaitServer({"LLM_PROVIDER": "local"})
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=FLAGS, headless=True)
            for name, viewport in SIZES.items():
                page = browser.new_page(viewport=viewport)
                shoot(page, server.url, args.question, args.out / name, details=viewport["width"] > 600)
                page.close()
                print(f"wrote {args.out / name}")
            browser.close()
    finally:
        server.stop()


def shoot(page, url: str, question: str, path: Path, details: bool) -> None:
    """Ask `question`, wait for the whole reply (its Details open with `details`), save the window."""
    page.goto(url)
    page.fill("#input", question)
    page.click("#send")
    page.wait_for_selector("#stop", state="visible", timeout=30_000)  # the reply has begun
    page.wait_for_selector("#stop", state="hidden", timeout=180_000)  # and ended
    if details:
        page.locator(".details-toggle").last.click()
    page.wait_for_timeout(500)  # highlight.js is loaded on the first code block
    page.screenshot(path=str(path))


if __name__ == "__main__":
    main()
