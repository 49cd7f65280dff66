"""The chat page when a turn is refused (a person's words, the server's one click away, the text back in the composer,
the actions that help), in several tabs at once, with long Markdown replies, and its welcome."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from harness.processes import ChatWaitServer

from ..conftest import server_env
from .conftest import ROOT, open_page, screenshot
from .test_chat_page import assert_reply, full_reply, last_reply, norm, send, stored_reply

ARTIFACTS = ROOT / "artifacts"


@pytest.fixture(scope="module")
def strict_server(fake) -> Iterator[ChatWaitServer]:
    """Small limits, so that a conversation outgrows them in a few turns."""
    running = ChatWaitServer(server_env(fake.base_url, MAX_INPUT_TOKENS="100", MAX_MESSAGE_CHARS="400"))
    yield running
    running.stop()


@pytest.fixture
def strict(browser: Browser, strict_server) -> Iterator[Page]:
    page = open_page(browser, strict_server.url)
    yield page
    page.context.close()


def test_a_refused_turn_goes_back_to_the_composer_with_the_servers_words(strict: Page) -> None:
    page = strict
    text = "x" * 401
    send(page, text)
    notice = page.locator("#notice")
    expect(notice).to_be_visible()
    expect(notice.locator(".notice-text")).to_contain_text("This message could not be sent.")  # a person's words
    expect(notice.locator(".notice-text")).to_contain_text("Change what is listed below")
    expect(notice.locator(".notice-text")).not_to_contain_text("fields")  # no developer's words
    problems = notice.locator(".notice-fields li")
    expect(problems).to_have_text(["Your message: Longer than 400 characters (401): shorten it."])
    expect(page.locator("#conversation-list .open")).to_have_text(["New conversation"])  # not titled by the refusal
    expect(page.locator(".message")).to_have_count(0)  # no empty bubble, no orphan turn
    expect(page.locator("#input")).to_have_value(text)
    expect(notice.get_by_role("button", name="Try again")).to_have_count(0)  # retrying will not help
    notice.get_by_role("button", name="Details").click()
    expect(notice.locator(".details")).to_contain_text("validation_error")
    expect(notice.locator(".details")).to_contain_text("Fix the fields")  # the service's own words, one click away
    screenshot(page, "refused")


def test_a_conversation_over_the_input_limit_drops_its_oldest_turns_as_advised(strict: Page) -> None:
    page = strict
    for word in ("alpha", "bravo"):
        send(page, f"Remember {word} {'filler ' * 10}@tokens=12")
        expect(last_reply(page)).to_have_attribute("data-status", "complete")
    send(page, "What did I say? @reply=request")
    notice = page.locator("#notice")
    expect(notice).to_contain_text("This conversation has grown too long for the model.")
    notice.get_by_role("button", name="Details").click()
    expect(notice.locator(".details")).to_contain_text("Drop the")  # the server's advice
    expect(page.locator(".message")).to_have_count(4)
    expect(page.locator("#input")).to_have_value("What did I say? @reply=request")
    screenshot(page, "input-too-long")
    notice.get_by_role("button", name="Leave out").click()
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    expect(page.locator(".context-start")).to_be_visible()
    expect(page.locator("#notice")).to_be_hidden()
    asked = json.loads(stored_reply(page))
    contents = [m["content"] for m in asked["messages"]]
    assert contents[-1] == "What did I say? @reply=request"
    assert not any("alpha" in content for content in contents), "the oldest turn was left out"
    assert asked["messages"][0]["role"] == "user"


def test_continuing_in_a_new_conversation_carries_the_text(strict: Page) -> None:
    page = strict
    send(page, f"Long one {'filler ' * 30}@tokens=12")
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    send(page, f"Next one {'filler ' * 30}@tokens=5")
    page.locator("#notice").get_by_role("button", name="Continue in a new conversation").click()
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    expect(page.locator(".message.user")).to_have_count(1)
    expect(page.locator("#conversation-list li")).to_have_count(2)
    expect(page.locator("#input")).to_have_value("")


def test_two_tabs_stream_at_once_and_lose_nothing(browser: Browser, page_server) -> None:
    context = browser.new_context()
    try:
        first, second = context.new_page(), context.new_page()
        for tab in (first, second):
            tab.goto(page_server.url)
            expect(tab.locator("body")).to_have_attribute("data-ready", "true")
        send(first, "From the first tab @tokens=60 @delay_ms=40")
        expect(last_reply(first)).to_have_attribute("data-status", "streaming")
        # The other tab shows it streaming there, keeps its own conversation, and starts another.
        expect(second.locator("#conversation-list .busy")).to_have_count(1)
        expect(second.locator(".welcome")).to_be_visible()  # its own active conversation is untouched
        second.locator("#conversation-list .open", has_text="From the first tab").click()
        expect(second.locator(".message.assistant .state")).to_have_text("Generating in another tab…")
        expect(second.locator("#input")).to_be_disabled()
        screenshot(second, "another-tab")
        second.locator("#new-conversation").click()
        send(second, "From the second tab @tokens=50 @delay_ms=40")
        for tab, tokens in ((first, 60), (second, 50)):
            expect(last_reply(tab)).to_have_attribute("data-status", "complete")
            assert_reply(tab, full_reply(tokens))
        expect(first.locator("#conversation-title")).to_have_text("From the first tab @tokens=60 @delay_ms=40")
        stored = first.evaluate(
            """() => Object.keys(localStorage).filter(k => k.startsWith('chatwait.conversation.'))
                .map(k => JSON.parse(localStorage.getItem(k))).map(c => c.messages.map(m => m.content))"""
        )
        assert sorted(stored) == sorted(
            [
                ["From the first tab @tokens=60 @delay_ms=40", full_reply(60)],
                ["From the second tab @tokens=50 @delay_ms=40", full_reply(50)],
            ]
        ), "each tab's reply whole, neither overwritten"
        first.reload()  # the first tab keeps its own conversation across a reload
        expect(first.locator("#conversation-title")).to_have_text("From the first tab @tokens=60 @delay_ms=40")
    finally:
        context.close()


def test_a_long_reply_is_shown_as_fast_as_it_arrives(page: Page) -> None:
    """10,000 tokens sent as fast as the fake can: all of them shown, each frame rendering only
    the new text. The timings go to artifacts (CI machines are too noisy to assert them)."""
    started = time.monotonic()
    send(page, "Long @tokens=10000 @delay_ms=0")
    expect(last_reply(page)).to_have_attribute("data-status", "complete", timeout=120_000)
    elapsed = time.monotonic() - started
    assert_reply(page, full_reply(10000))
    stats = page.evaluate("import('/static/markdown.js').then(m => ({...m.renderStats, tail: m.TAIL_CHARS}))")
    reply_chars = len(full_reply(10000))
    assert stats["largest"] <= reply_chars + 1  # only the final whole render sees all of it...
    streaming = stats["chars"] - reply_chars
    assert streaming <= stats["renders"] * (stats["tail"] + 2 * 1024) + reply_chars, (
        stats
    )  # ...frames see their new text
    (ARTIFACTS / "page-long-reply.json").write_text(json.dumps({"seconds": round(elapsed, 3), **stats}))


def test_markdown_is_rendered_and_sanitised(page: Page) -> None:
    markdown = (
        "Here is **bold**, `code` and a [link](https://example.com).\n\n"
        "- one\n- two\n\n"
        "1. first\n2. second\n\n"
        "```python\ndef hi():\n    return '<b>not html</b>'\n```\n\n"
        "<script>window.__injected = 1</script><img src=x onerror=window.__injected=2>"
        "[bad](javascript:window.__injected=3)\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    )
    send(page, f"{markdown} @reply=message")
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "complete")
    body = reply.locator(".markdown")
    expect(body.locator("strong")).to_have_text("bold")
    expect(body.locator("ul li")).to_have_count(2)
    expect(body.locator("ol li")).to_have_count(2)
    expect(body.locator("pre code")).to_contain_text("return '<b>not html</b>'")
    expect(body.locator("table td")).to_have_count(2)
    link = body.locator("a", has_text="link")
    expect(link).to_have_attribute("href", "https://example.com")
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    assert body.locator("script, img, b, a[href^='javascript']").count() == 0
    assert "<script>" in norm(reply.inner_text()), "HTML from the model is shown as text"
    assert page.evaluate("window.__injected") is None
    screenshot(page, "markdown")


def test_an_empty_conversation_welcomes_with_the_model_and_examples(page: Page) -> None:
    welcome = page.locator(".welcome")
    expect(welcome).to_be_visible()
    expect(welcome).to_contain_text("Model: fake-model")
    screenshot(page, "welcome")
    welcome.locator(".example").first.click()
    expect(page.locator(".welcome")).to_have_count(0)
    expect(page.locator(".message.user")).to_have_count(1)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
