"""What people use every day in a chat page, in Chromium: a reply cut at its length limit says so
and continues in place; Copy on replies and code blocks; code highlighted (the vendored
highlight.js); edit the last message and regenerate a reply, the conversation kept consistent in
localStorage; a model picker fed by /v1/models; errors in a person's words, details one click away."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from .conftest import PHONE, open_page, screenshot
from .test_chat_page import STORED_REPLIES, assert_reply, full_reply, last_reply, send

CONTINUE_PROMPT = "Continue your previous reply exactly where it stopped, without repeating any of it."
CODE = "```python\ndef double(x):\n    return 2 * x  # twice\n```"

STORED = """() => {
    const id = sessionStorage.getItem('chatwait.active');
    return JSON.parse(localStorage.getItem('chatwait.conversation.' + id));
}"""


def _complete(page: Page) -> None:
    expect(last_reply(page)).to_have_attribute("data-status", "complete")


def _turns(page: Page, *messages: str) -> None:
    """Send each message and wait for its reply to complete."""
    for message in messages:
        send(page, message)
        _complete(page)


def _send_code(page: Page) -> None:
    """A reply holding a code block: the fake answers with the message itself (`@reply=message`)."""
    page.locator("#input").fill(f"Here it is:\n\n{CODE}\n@reply=message")
    page.locator("#send").click()
    _complete(page)


def test_a_reply_cut_at_its_length_limit_says_so_and_continues_in_place(page: Page, fake) -> None:
    send(page, "Tell me everything @tokens=5 @finish=length")
    _complete(page)
    reply = last_reply(page)
    expect(reply.locator(".cut")).to_have_text("Stopped at its length limit.")
    expect(reply.get_by_role("button", name="Continue")).to_be_visible()
    screenshot(page, "cut-at-length")
    reply.get_by_role("button", name="Continue").click()
    _complete(page)
    assert_reply(page, full_reply(5) + full_reply(20))  # the fake's default reply, appended in place
    expect(page.locator(".message.assistant")).to_have_count(1)
    expect(reply.locator(".cut")).to_be_hidden()
    expect(reply.get_by_role("button", name="Continue")).to_be_hidden()
    (asked,) = fake.outcomes_for(CONTINUE_PROMPT)
    assert asked["messages"] == 3, "the person's turn, the cut reply, and the request to go on"
    stored = page.evaluate(STORED)
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant"], "one turn, one reply: no hidden turn kept"


def test_a_continuation_joins_the_cut_reply_at_a_word_boundary(page: Page, fake) -> None:
    """Issue 82: the model's continuation begins without a space after "…here." (the fake's first
    word is glued): the page joins them as the service's rescues do, and nowhere else."""
    send(page, "It ends here. @reply=message @finish=length")
    _complete(page)
    assert_reply(page, "It ends here.")
    last_reply(page).get_by_role("button", name="Continue").click()
    _complete(page)
    assert_reply(page, "It ends here. " + full_reply(20))
    joins = page.evaluate(
        """async () => {
            const { needsSpace } = await import('/static/reply.js');
            return [["for so long", "Rome's"], ["done.", "Next"], ["a list,", "then"], ["word", "s"],
                    ["ends ", "Then"], ["(", "x"], ["", "A"], ["3.", "14"]].map(([a, b]) => needsSpace(a, b));
        }"""
    )
    assert joins == [True, True, True, False, False, False, False, True]


def test_copy_buttons_copy_a_reply_and_its_code_blocks(browser: Browser, proxy) -> None:
    page = open_page(browser, proxy.url)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    try:
        _send_code(page)
        reply = last_reply(page)
        reply.locator("pre").get_by_role("button", name="Copy code").click()
        expect(reply.locator("pre .copy")).to_have_text("Copied")
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied.strip() == "def double(x):\n    return 2 * x  # twice"
        reply.get_by_role("button", name="Copy reply").click()
        assert page.evaluate("navigator.clipboard.readText()") == page.evaluate(STORED_REPLIES)[-1]
    finally:
        page.context.close()


def test_code_is_highlighted_by_the_vendored_library(page: Page) -> None:
    _send_code(page)
    code = last_reply(page).locator("pre code")
    expect(code).to_have_class("language-python hljs")
    expect(code.locator(".hljs-keyword").first).to_have_text("def")
    expect(code.locator(".hljs-comment")).to_have_text("# twice")
    assert code.inner_text().strip() == "def double(x):\n    return 2 * x  # twice", "the text is unchanged"
    colours = code.locator(".hljs-keyword").first.evaluate("node => getComputedStyle(node).color")
    assert colours != code.evaluate("node => getComputedStyle(node).color"), "keywords stand out"
    screenshot(page, "code-block")


def test_the_last_message_is_edited_and_its_reply_regenerated(page: Page) -> None:
    _turns(page, "First @tokens=3", "Second @tokens=4")
    users = page.locator(".message.user")
    expect(users.nth(0).get_by_role("button", name="Edit")).to_be_hidden()  # only the last turn
    users.nth(1).get_by_role("button", name="Edit").click()
    editor = users.nth(1).get_by_role("textbox", name="Edit message")
    expect(editor).to_have_value("Second @tokens=4")
    editor.fill("Second, edited @tokens=6")
    editor.press("Enter")
    _complete(page)
    assert_reply(page, full_reply(6))
    expect(users.nth(1).locator(".bubble")).to_have_text("Second, edited @tokens=6")
    stored = page.evaluate(STORED)
    contents = [(m["role"], m["content"]) for m in stored["messages"] if not m.get("deleted")]
    assert contents == [
        ("user", "First @tokens=3"),
        ("assistant", full_reply(3)),
        ("user", "Second, edited @tokens=6"),
        ("assistant", full_reply(6)),
    ]
    page.reload()
    expect(page.locator(".message.user .bubble")).to_have_text(["First @tokens=3", "Second, edited @tokens=6"])


def test_an_edit_cancelled_keeps_the_message(page: Page) -> None:
    _turns(page, "Keep me @tokens=2")
    user = page.locator(".message.user")
    user.get_by_role("button", name="Edit").click()
    user.get_by_role("textbox", name="Edit message").fill("something else")
    user.get_by_role("button", name="Cancel").click()
    expect(page.locator(".message.user .bubble")).to_have_text("Keep me @tokens=2")
    assert page.evaluate(STORED)["messages"][0]["content"] == "Keep me @tokens=2"


def test_the_last_reply_is_regenerated_in_place(page: Page) -> None:
    _turns(page, "One @tokens=2", "Two @tokens=3")
    replies = page.locator(".message.assistant")
    expect(replies.nth(0).get_by_role("button", name="Regenerate")).to_be_hidden()
    before = page.evaluate(STORED)["messages"][-1]["streamId"]
    replies.nth(1).get_by_role("button", name="Regenerate").click()
    _complete(page)
    after = page.evaluate(STORED)["messages"]
    assert after[-1]["streamId"] != before and after[-1]["content"] == full_reply(3), "a new reply, in place"
    expect(replies).to_have_count(2)


def test_the_model_picker_offers_the_services_models_and_the_reply_uses_the_pick(page: Page, fake) -> None:
    picker = page.get_by_role("combobox", name="Model")
    expect(picker).to_be_visible()
    # GET /v1/models: each model with what the service knows of it (here MAX_TOKENS bounds its replies)
    expect(picker.locator("option")).to_have_text(["fake-model — 16k out", "other-model — 16k out"])
    expect(picker.locator("option").first).to_have_attribute("title", "16k out")
    expect(picker).to_have_value("fake-model")
    picker.select_option("other-model")
    _turns(page, "Which model? picker @tokens=2")
    (asked,) = fake.outcomes_for("Which model? picker @tokens=2")
    assert asked["model"] == "other-model"
    last_reply(page).locator(".details-toggle").click()
    expect(last_reply(page).locator(".details")).to_contain_text("other-model")
    page.reload()
    expect(page.get_by_role("combobox", name="Model")).to_have_value("other-model")  # kept with the conversation
    page.locator("#new-conversation").click()
    expect(page.get_by_role("combobox", name="Model")).to_have_value("fake-model")


def test_a_failed_reply_is_told_in_a_persons_words_with_the_services_one_click_away(page: Page) -> None:
    send(page, "Fail now @tokens=3 @fault=401")
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "error")
    expect(reply.locator(".error")).to_have_text("ChatWait cannot reach its model. Tell the operator of this ChatWait.")
    reply.locator(".details-toggle").click()
    details = reply.locator(".details")
    expect(details).to_contain_text("upstream_auth_failed")
    expect(details).to_contain_text("The model provider rejected this service's credentials.")


def test_the_features_on_a_phone(browser: Browser, proxy) -> None:
    page = open_page(browser, proxy.url, PHONE)
    try:
        _send_code(page)
        reply = last_reply(page)
        expect(reply.locator("pre .hljs-keyword").first).to_be_visible()
        expect(reply.get_by_role("button", name="Copy reply")).to_be_visible()
        expect(page.locator(".message.user").get_by_role("button", name="Edit")).to_be_visible()
        expect(page.get_by_role("combobox", name="Model")).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], "nothing wider than the screen"
        screenshot(page, "phone-features")
    finally:
        page.context.close()


def test_on_a_phone_the_title_has_its_room_and_the_length_label_one_line(browser: Browser, proxy) -> None:
    """Issue 82: the title beside the model pill shrank to "Write a…"; "Stopped at its length
    limit." wrapped into four lines beside its buttons."""
    page = open_page(browser, proxy.url, PHONE)
    try:
        send(page, "Haiku @tokens=5 @finish=length")
        _complete(page)
        title = page.locator("#conversation-title")
        expect(title).to_have_text("Haiku @tokens=5 @finish=length")
        measure = "(h) => [h.scrollWidth <= h.clientWidth, h.clientWidth, h.scrollWidth]"
        shown = page.evaluate(measure, title.element_handle())
        assert shown[0] and shown[1] >= PHONE["width"] * 0.6, f"the title shown whole on its line: {shown}"
        label = last_reply(page).locator(".cut")
        expect(label).to_be_visible()
        lines = page.evaluate(
            "(e) => e.getBoundingClientRect().height / parseFloat(getComputedStyle(e).fontSize)", label.element_handle()
        )
        assert lines < 2, f"one line (about 1.2 font sizes high), not {lines:.1f}"
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], "nothing wider than the screen"
        screenshot(page, "phone-cut")
    finally:
        page.context.close()
