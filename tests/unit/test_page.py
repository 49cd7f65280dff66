"""The chat page as served: local files only, a strict Content-Security-Policy."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "app" / "static"
VENDOR = STATIC / "vendor"


def test_the_page_and_its_files_are_served_with_a_strict_policy(client) -> None:
    with client.get("/") as page:
        assert page.status_code == 200 and page.mimetype == "text/html"
        policy = page.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.get_data(as_text=True))
    assert "/static/chat.js" in assets and "/static/chat.css" in assets
    for asset in assets:
        with client.get(asset) as response:
            assert response.status_code == 200, asset
            if asset.endswith(".js"):
                assert response.mimetype == "text/javascript"


def test_nothing_is_loaded_from_elsewhere() -> None:
    """The page's own files name no other host and never insert HTML (Markdown goes through the
    vendored sanitiser, which does, inside its own inert document)."""
    for path in STATIC.iterdir():
        if path.is_dir():
            continue
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text), f"{path.name} refers to another host"
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text, f"{path.name} inserts HTML"


def test_vendored_libraries_are_the_published_files_and_load_nothing() -> None:
    """Each vendored file is byte for byte the one its README lists (scripts/vendor re-creates it
    from the npm tarball), imports nothing and fetches nothing."""
    listed = dict(re.findall(r"\| `([\w.]+\.js)` \|.*\| `([0-9a-f]{64})` \|", (VENDOR / "README.md").read_text()))
    files = sorted(path.name for path in VENDOR.glob("*.js"))
    assert files == sorted(listed) == ["highlight.js", "marked.js", "purify.js"]
    for name, digest in listed.items():
        data = (VENDOR / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, f"{name} differs from the published file"
        text = data.decode("utf-8")
        assert not re.search(r"^\s*import\b|\bimport\s*\(|importScripts|XMLHttpRequest|\bfetch\(", text, re.M), name


def test_a_missing_static_file_is_a_json_404(client) -> None:
    response = client.get("/static/missing.js")
    assert response.status_code == 404 and response.get_json()["error_code"] == "not_found"
