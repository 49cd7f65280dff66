"""The chat page, used the way a person would, in Chromium (see conftest.py)."""

from __future__ import annotations

import json
import re

from playwright.sync_api import Page, expect

from .conftest import PHONE, WAIT_MS, open_page, screenshot


def full_reply(tokens: int) -> str:
    """What the fake upstream answers to `@tokens=N`."""
    return "".join(f"tok{i} " for i in range(tokens))


def norm(text: str) -> str:
    """Text as a person reads it: Markdown rendering drops and adds line breaks and spaces."""
    return " ".join(text.split())


def send(page: Page, text: str) -> None:
    page.locator("#input").fill(text)
    page.locator("#input").press("Enter")


def last_reply(page: Page):
    return page.locator(".message.assistant").last


def reply_text(page: Page) -> str:
    """The last reply as shown (whitespace normalised)."""
    return norm(last_reply(page).locator(".bubble").inner_text())


STORED_REPLIES = """() => {
    const id = sessionStorage.getItem('chatwait.active');
    const conversation = JSON.parse(localStorage.getItem('chatwait.conversation.' + id));
    return conversation.messages.filter(m => m.role === 'assistant' && !m.deleted).map(m => m.content);
}"""


def stored_reply(page: Page) -> str:
    """The last reply's exact text, as the page keeps it."""
    return page.evaluate(STORED_REPLIES)[-1]


def assert_reply(page: Page, text: str) -> None:
    """The last reply holds exactly `text` and shows it."""
    assert stored_reply(page) == text
    assert reply_text(page) == norm(text)


def wait_for_text(page: Page, minimum_chars: int) -> None:
    page.wait_for_function(
        "n => (document.querySelector('.message.assistant:last-of-type .bubble')?.textContent || '').length >= n",
        arg=minimum_chars,
        timeout=WAIT_MS,
    )


def test_a_reply_streams_in_with_an_indicator_then_completes(page: Page) -> None:
    send(page, "Hello @tokens=40 @delay_ms=100")
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "streaming")
    expect(reply.locator(".cursor")).to_be_visible()
    expect(reply.locator(".state")).to_have_text("Generating…")
    expect(page.locator("#status")).to_have_text("Generating a reply.")
    expect(page.locator("#input")).to_be_disabled()
    expect(page.locator("#stop")).to_be_visible()
    wait_for_text(page, 10)
    partial = reply_text(page)
    assert 0 < len(partial) < len(norm(full_reply(40))), "text appears while the reply is still being generated"
    screenshot(page, "streaming")

    expect(reply).to_have_attribute("data-status", "complete")
    expect(reply.locator(".cursor")).to_be_hidden()
    expect(reply.locator(".state")).to_be_hidden()
    assert_reply(page, full_reply(40))
    expect(page.locator("#input")).to_be_enabled()
    expect(page.locator("#send")).to_be_visible()
    expect(page.locator("#status")).to_have_text("Reply complete.")
    expect(page.locator(".message.user .bubble")).to_have_text("Hello @tokens=40 @delay_ms=100")
    expect(page.locator("#model")).to_have_text("fake-model")

    reply.locator(".details-toggle").click()
    details = reply.locator(".details")
    expect(details).to_contain_text("fake-model")
    expect(details).to_contain_text("Completion tokens")
    expect(details).to_contain_text("stop")
    screenshot(page, "complete")


def test_the_composer_refuses_a_second_message_while_a_reply_streams(page: Page) -> None:
    send(page, "First @tokens=60 @delay_ms=50")
    expect(last_reply(page)).to_have_attribute("data-status", "streaming")
    expect(page.locator("#input")).to_be_disabled()
    expect(page.locator("#send")).to_be_hidden()
    page.locator("#composer").evaluate("form => { form.input.value = 'Second'; form.requestSubmit(); }")
    expect(page.locator(".message.user")).to_have_count(1)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    expect(page.locator("#input")).to_be_enabled()


def test_stop_keeps_the_partial_text_and_stops_the_upstream(page: Page, fake) -> None:
    message = "Stop me @tokens=500 @delay_ms=40"
    send(page, message)
    wait_for_text(page, 30)
    page.locator("#stop").click()
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "stopped")
    expect(reply.locator(".state")).to_have_text("Stopped")
    expect(reply.locator(".retry")).to_be_visible()
    expect(page.locator("#input")).to_be_enabled()
    text = stored_reply(page)
    assert len(text) >= 30 and full_reply(500).startswith(text) and text != full_reply(500)
    assert reply_text(page) == norm(text)
    fake.wait_for_outcome(message, "client_closed")
    screenshot(page, "stopped")
    page.reload()
    expect(last_reply(page)).to_have_attribute("data-status", "stopped")  # saved as a partial reply
    assert_reply(page, text)


def test_an_error_keeps_the_partial_text_and_retry_sends_the_turn_again(page: Page) -> None:
    send(page, "Break @tokens=30 @delay_ms=20 @fault=reset@10 @fail_times=1")
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "error")
    expect(reply.locator(".error")).to_be_visible()
    expect(reply.locator(".error")).to_contain_text(re.compile("try again", re.IGNORECASE))
    assert_reply(page, full_reply(10))
    expect(page.locator("#input")).to_be_enabled()
    screenshot(page, "error")

    reply.locator(".retry").click()
    expect(reply).to_have_attribute("data-status", "complete")
    assert_reply(page, full_reply(30))
    expect(reply.locator(".error")).to_be_hidden()
    expect(page.locator(".message.user")).to_have_count(1)


def test_a_dropped_connection_resumes_to_the_exact_text(page: Page, proxy) -> None:
    proxy.cut_next_stream(after_bytes=2500)
    send(page, "Survive @tokens=60 @delay_ms=40")
    reply = last_reply(page)
    # The reconnecting state lasts one backoff delay (about 0.5 s): watched on every frame, as
    # expect()'s polling slows down to once a second.
    page.wait_for_function(
        """() => {
            const reply = document.querySelector('.message.assistant:last-of-type');
            return reply?.dataset.status === 'reconnecting'
              && reply.querySelector('.state').textContent === 'Reconnecting…';
        }""",
        timeout=WAIT_MS,
    )
    screenshot(page, "reconnecting")
    expect(reply).to_have_attribute("data-status", "complete")
    assert proxy.cuts == 1
    assert_reply(page, full_reply(60))


def test_reload_keeps_the_conversations_and_history_is_sent(page: Page) -> None:
    send(page, "Remember the word avocado @tokens=3")
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    send(page, "What did I say? @reply=request")
    expect(page.locator(".message.assistant")).to_have_count(2)
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    asked = json.loads(stored_reply(page))
    assert [m["role"] for m in asked["messages"]] == ["user", "assistant", "user"]
    assert asked["messages"][0]["content"] == "Remember the word avocado @tokens=3"
    assert asked["messages"][1]["content"] == full_reply(3)

    page.reload()
    expect(page.locator(".message.user")).to_have_count(2)
    expect(page.locator(".message.assistant").first.locator(".bubble")).to_have_text(full_reply(3))
    expect(page.locator("#conversation-list li")).to_have_count(1)
    expect(page.locator("#conversation-title")).to_have_text("Remember the word avocado @tokens=3")

    page.locator("#new-conversation").click()
    expect(page.locator("#conversation-list li")).to_have_count(2)
    expect(page.locator(".message")).to_have_count(0)
    send(page, "A second conversation @tokens=2")
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    page.locator("#conversation-list li .open", has_text="Remember the word").click()
    expect(page.locator(".message.user")).to_have_count(2)
    page.locator("#conversation-list li", has_text="A second conversation").locator(".delete").click()
    expect(page.locator("#conversation-list li")).to_have_count(1)
    page.reload()
    expect(page.locator("#conversation-list li")).to_have_count(1)
    expect(page.locator(".message.user")).to_have_count(2)


def test_reload_in_the_middle_of_a_reply_resumes_it(page: Page) -> None:
    send(page, "Long one @tokens=80 @delay_ms=40")
    wait_for_text(page, 40)
    page.reload()
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "complete")
    assert_reply(page, full_reply(80))
    expect(page.locator(".message.assistant")).to_have_count(1)


def test_markup_in_messages_and_replies_is_shown_as_text(page: Page) -> None:
    markup = "<script>window.__injected = 1</script><img src=x onerror=window.__injected=2><b>bold</b>"
    send(page, f"{markup} @reply=request")
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    assert markup in reply_text(page) and markup in stored_reply(page)
    expect(page.locator(".message.user .bubble")).to_have_text(f"{markup} @reply=request")
    assert page.locator("#messages img, #messages script, #messages b").count() == 0
    assert page.evaluate("window.__injected") is None


def test_auto_scroll_follows_the_reply_until_the_person_scrolls_up(page: Page) -> None:
    send(page, "Scroll @tokens=3000 @delay_ms=5")
    wait_for_text(page, 3000)
    at_bottom = "m => m.scrollHeight - m.scrollTop - m.clientHeight < 60"
    messages = page.locator("#messages")
    assert messages.evaluate("m => m.scrollHeight > m.clientHeight"), "the reply is taller than the view"
    assert messages.evaluate(at_bottom)
    messages.evaluate("m => m.scrollTo(0, 0)")
    expect(page.locator("#jump")).to_be_visible()
    wait_for_text(page, len(reply_text(page)) + 50)
    assert messages.evaluate("m => m.scrollTop") < 50, "scrolled up, the view stays where the person put it"
    page.locator("#jump").click()
    expect(page.locator("#jump")).to_be_hidden()
    assert messages.evaluate(at_bottom)
    page.locator("#stop").click()
    expect(last_reply(page)).to_have_attribute("data-status", "stopped")


def test_phone_layout(browser, proxy) -> None:
    page = open_page(browser, proxy.url, PHONE)
    try:
        expect(page.locator("#sidebar")).not_to_be_in_viewport()
        send(page, "On a phone @tokens=12 @delay_ms=30")
        expect(last_reply(page)).to_have_attribute("data-status", "complete")
        expect(page.locator("#input")).to_be_in_viewport()
        screenshot(page, "phone")
        page.locator("#toggle-sidebar").click()
        expect(page.locator("#sidebar")).to_be_in_viewport()
        expect(page.locator("#conversation-list li")).to_have_count(1)
        screenshot(page, "phone-conversations")
        box = page.locator("#sidebar").bounding_box()
        assert box is not None and box["width"] <= PHONE["width"]
        assert re.fullmatch(r"On a phone @tokens=12 @delay_ms=30", page.locator("#conversation-title").inner_text())
    finally:
        page.context.close()


def test_details_open_in_view_below_a_long_reply(browser, proxy) -> None:
    """On a phone, the Details of a reply that fills the screen open where they can be read."""
    page = open_page(browser, proxy.url, PHONE)
    try:
        send(page, "Long @tokens=300 @delay_ms=1")
        reply = last_reply(page)
        expect(reply).to_have_attribute("data-status", "complete")
        page.locator("#messages").evaluate("list => { list.scrollTop = 0; }")  # read from the top
        reply.locator(".details-toggle").click()
        expect(reply.locator(".details")).to_be_in_viewport()
    finally:
        page.context.close()


def test_a_store_out_of_reach_makes_the_page_resume_not_fail(page: Page) -> None:
    """A response that ends with an `error` without an id (its store was out of reach: the
    stream goes on), then a resume answered 503 store_unavailable: the page keeps resuming and
    the reply completes with the exact text."""
    refused: list[str] = []

    def interrupt(route) -> None:
        response = route.fetch()
        blocks = response.body().split(b"\n\n")
        cut = b"\n\n".join(blocks[:6]) + b"\n\n"  # the stream event and five chunks
        interruption = {
            "error_code": "store_unavailable",
            "message": "The stream store (Redis) is not answering.",
            "detail": "Redis did not serve this reply for 12 s.",
            "action": "Resume.",
            "retryable": True,
            "correlation_id": None,
            "is_final": True,
            "resume_after": 5,
        }
        body = cut + b"event: error\ndata: " + json.dumps(interruption).encode() + b"\n\n"
        route.fulfill(status=200, headers=dict(response.headers), body=body)

    def refuse_once(route) -> None:
        if refused:
            route.continue_()
            return
        refused.append(route.request.url)
        error = {
            "error_code": "store_unavailable",
            "message": "The stream store (Redis) is not answering.",
            "detail": "Redis did not answer.",
            "action": "Try again in a few seconds.",
            "retryable": True,
        }
        route.fulfill(status=503, headers={"Retry-After": "1"}, json=error)

    page.route("**/v1/chat/streaming", interrupt)
    page.route(re.compile(r".*/v1/chat/streaming/[0-9a-f]+.*"), refuse_once)
    send(page, "Through an outage @tokens=40 @delay_ms=5")
    expect(last_reply(page)).to_have_attribute("data-status", "complete")
    assert refused, "the resume that was refused was tried again"
    assert_reply(page, full_reply(40))
