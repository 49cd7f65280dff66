"""The streaming readers of docs/clients.md (JavaScript, in Chromium; Python with
httpx, in this process), as they are, against the live service through a proxy that cuts the
stream part-way, so that each must resume to the exact text; a refusal reaches the caller with
what to fix in which field."""

from __future__ import annotations

from playwright.sync_api import Browser

from ..conftest import readme_block
from .conftest import open_page
from .test_chat_page import full_reply


def test_the_javascript_reader_resumes_to_the_exact_text(browser: Browser, proxy) -> None:
    source = readme_block("javascript", "async function chat(", "docs/clients.md")
    page = open_page(browser, proxy.url)
    try:
        proxy.cut_next_stream(after_bytes=3000)
        result = page.evaluate(
            f"""async (base) => {{
                {source}
                let text = "";
                const onText = (piece) => {{ text += piece; }};
                const done = await chat("From the README @tokens=120 @delay_ms=10", onText, base);
                return {{text, finish: done.finish_reason, length: done.content_length}};
            }}""",
            proxy.url,
        )
        assert proxy.cuts == 1
        assert result == {"text": full_reply(120), "finish": "stop", "length": len(full_reply(120))}
        refused = page.evaluate(
            f"async (base) => {{ {source} try {{ await chat('', () => {{}}, base); }}"
            f" catch (e) {{ return [e.error_code, Object.keys(e.fields)]; }} }}",
            proxy.url,
        )
        assert refused == ["validation_error", ["message"]], "a refusal is thrown with the service's error body"
    finally:
        page.context.close()


def test_the_python_reader_resumes_to_the_exact_text(proxy) -> None:
    namespace: dict = {}
    exec(compile(readme_block("python", "def chat(", "docs/clients.md"), "docs/clients.md", "exec"), namespace)
    proxy.cut_next_stream(after_bytes=3000)
    reader = namespace["chat"]("From the README @tokens=120 @delay_ms=10", base=proxy.url)
    pieces = []
    try:
        while True:
            pieces.append(next(reader))
    except StopIteration as ended:
        done = ended.value
    assert proxy.cuts == 1
    assert "".join(pieces) == full_reply(120) and done["finish_reason"] == "stop"
    failing = namespace["chat"]("Break @tokens=5 @fault=500 @fail_times=9", base=proxy.url)
    try:
        list(failing)
        raise AssertionError("an error event must raise")
    except RuntimeError as error:
        assert "try again" in str(error).lower()
    try:
        list(namespace["chat"]("", base=proxy.url))
        raise AssertionError("a refusal must raise")
    except RuntimeError as error:
        assert "message" in error.args[1], "what to fix, field by field"


def test_the_javascript_responses_reader_resumes_to_the_exact_text(browser: Browser, proxy) -> None:
    source = readme_block("javascript", "async function respond(", "docs/clients.md")
    page = open_page(browser, proxy.url)
    try:
        proxy.cut_next_stream(after_bytes=4000)
        result = page.evaluate(
            f"""async (base) => {{
                {source}
                let text = "";
                const final = await respond("From the docs @tokens=120 @delay_ms=10", (p) => {{ text += p; }}, base);
                return {{text, status: final.status, output: final.output[0].content[0].text}};
            }}""",
            proxy.url,
        )
        assert proxy.cuts == 1
        assert result == {"text": full_reply(120), "status": "completed", "output": full_reply(120)}
        refused = page.evaluate(
            f"async (base) => {{ {source} try {{ await respond([], () => {{}}, base); }}"
            f" catch (e) {{ return e.body.error.param; }} }}",
            proxy.url,
        )
        assert refused == "input", "a refusal is thrown with the service's error body"
        proxy.cut_next_stream(after_bytes=0, after_head=True)  # dropped before its first event
        early = page.evaluate(
            f"""async (base) => {{
                {source}
                let text = "";
                const final = await respond("Early @tokens=30 @delay_ms=10", (p) => {{ text += p; }}, base);
                return {{text, status: final.status}};
            }}""",
            proxy.url,
        )
        assert proxy.cuts == 2 and early == {"text": full_reply(30), "status": "completed"}
    finally:
        page.context.close()
